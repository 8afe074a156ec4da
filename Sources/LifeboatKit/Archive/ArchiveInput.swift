import Crypto
import Foundation

/// The compressed bytes of an archive, read sequentially in large chunks and hashed on the way
/// when a checksum is to be checked.
final class ArchiveInput {
    let path: String
    private let reader: ArchiveReading
    private var hasher: SHA256?
    /// Compressed bytes read so far.
    private(set) var bytesRead: Int64 = 0

    convenience init(path: String, hashing: Bool) throws {
        try self.init(path: path, reader: LocalFileReader(path: path), hashing: hashing)
    }

    init(path: String, reader: ArchiveReading, hashing: Bool) throws {
        self.path = path
        self.reader = reader
        self.hasher = hashing ? SHA256() : nil
    }

    /// Fills `buffer` with the next bytes; returns 0 at the end of the file.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let base = buffer.baseAddress else { return 0 }
        let n = try reader.read(into: buffer)
        if n > 0 {
            hasher?.update(bufferPointer: UnsafeRawBufferPointer(start: base, count: n))
            bytesRead += Int64(n)
        }
        return n
    }

    /// The SHA-256 of everything read, in lowercase hex; nil when not hashing.
    func finishHash() -> String? {
        guard let hasher else { return nil }
        return hasher.finalize().hexDigits
    }

    /// Read errors worth retrying: the storage may come back (NFS, flaky disks).
    static func isTransient(_ e: Int32) -> Bool {
        e == EIO || e == EAGAIN || e == ETIMEDOUT || e == ESTALE || e == EBUSY || e == ENOLINK
    }
}

/// An archive in a local directory store.
final class LocalFileReader: ArchiveReading {
    private let fd: Int32
    private let path: String

    init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            throw ArchiveError(.io, "cannot open the archive", archive: path, errno: e, isTransient: ArchiveInput.isTransient(e))
        }
        var st = stat()
        if fstat(fd, &st) == 0, (st.st_mode & S_IFMT) != S_IFREG {
            close(fd)
            throw ArchiveError(.io, "the archive is not a regular file", archive: path)
        }
        // Tell the kernel to read ahead aggressively: the archive is read once, front to back.
        _ = posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_SEQUENTIAL))
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let base = buffer.baseAddress else { return 0 }
        while true {
            let n = Foundation.read(fd, base, buffer.count)
            if n >= 0 { return n }
            let e = errno
            if e == EINTR { continue }
            throw ArchiveError(.io, "cannot read the archive", archive: path, errno: e, isTransient: ArchiveInput.isTransient(e))
        }
    }
}
