#if canImport(Glibc)
import Glibc
#endif

/// A file written through a 1 MiB buffer with plain `write(2)`, created exclusively.
final class BufferedFileOutput {
    let path: String
    private var fd: Int32
    private var buffer: [UInt8] = []
    private let capacity = 1 << 20

    init(path: String, mode: mode_t = 0o644) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw FileSystemError(path: path, operation: "create", errno: errno) }
        buffer.reserveCapacity(capacity)
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        if buffer.count + bytes.count > capacity { try flush() }
        if bytes.count >= capacity {
            try writeAll(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw FileSystemError(path: path, operation: "write", errno: errno)
            }
            offset += n
        }
    }

    func close() throws {
        try flush()
        let rc = Glibc.close(fd)
        fd = -1
        guard rc == 0 else { throw FileSystemError(path: path, operation: "close", errno: errno) }
    }
}
