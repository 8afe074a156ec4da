import CLinux
import Crypto
import Foundation

/// A fingerprint of a directory tree as it is on disk: every entry's relative name, type and
/// permission bits, every file's size and modification time, every link's target, in name order;
/// never following a symbolic link. Taken when a job's work on its destination is done, it lets a
/// rollback tell whether anything was written, added, removed or changed since (the directory's
/// identity alone says only that it is the same directory).
///
/// Cheap enough for every commit: one `getdents` walk with `fstatat` relative to directory
/// descriptors, fixed binary records into one running SHA-256.
public enum TreeDigest {
    /// `sha256:<hex>` of the tree at `path`, or nil when it cannot be read.
    public static func of(_ path: String) -> String? {
        var hasher = SHA256()
        guard walk(path, { hasher.update(bufferPointer: $0) }) else { return nil }
        return "sha256:" + hasher.finalize().hexDigits
    }

    /// Hands the tree's records to `consume` in digest order, each prefixed with its length;
    /// false when the tree cannot be read.
    static func walk(_ path: String, _ consume: (UnsafeRawBufferPointer) -> Void) -> Bool {
        let root = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard root >= 0 else { return false }
        // One getdents buffer for the whole walk (one per directory cost more than the walk).
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 32 << 10, alignment: 8)
        defer { buffer.deallocate() }
        // Depth-first in name order: (directory fd, its relative path as bytes).
        var stack: [(fd: Int32, prefix: [UInt8])] = [(root, [])]
        defer { for entry in stack { close(entry.fd) } }
        var record: [UInt8] = []
        record.reserveCapacity(512)
        while let (fd, prefix) = stack.popLast() {
            defer { close(fd) }
            guard let names = listing(fd, buffer: buffer) else { return false }
            var subdirectories: [(Int32, [UInt8])] = []
            var handedOver = false
            defer { if !handedOver { for (child, _) in subdirectories { close(child) } } }
            for name in names {
                var st = stat()
                let ok = name.withUnsafeBufferPointer { buffer in
                    buffer.withMemoryRebound(to: CChar.self) { fstatat(fd, $0.baseAddress!, &st, AT_SYMLINK_NOFOLLOW) == 0 }
                }
                guard ok else { return false }
                let relative = prefix.isEmpty ? Array(name.dropLast()) : prefix + [UInt8(ascii: "/")] + name.dropLast()
                record.removeAll(keepingCapacity: true)
                record += relative
                record.append(0)
                append(UInt64(st.st_mode), to: &record)
                switch st.st_mode & S_IFMT {
                case S_IFDIR:
                    let child = name.withUnsafeBufferPointer { buffer in
                        buffer.withMemoryRebound(to: CChar.self) { openat(fd, $0.baseAddress!, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
                    }
                    guard child >= 0 else { return false }
                    subdirectories.append((child, relative))
                case S_IFLNK:
                    var target = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
                    let n = name.withUnsafeBufferPointer { buffer in
                        buffer.withMemoryRebound(to: CChar.self) { nameBuffer in
                            target.withUnsafeMutableBytes { readlinkat(fd, nameBuffer.baseAddress!, $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count) }
                        }
                    }
                    guard n >= 0 else { return false }
                    record += target[..<n]
                default:
                    append(UInt64(bitPattern: Int64(st.st_size)), to: &record)
                    append(UInt64(bitPattern: Int64(st.st_mtim.tv_sec)), to: &record)
                    append(UInt64(bitPattern: Int64(st.st_mtim.tv_nsec)), to: &record)
                }
                // Length-prefixed, so no record can run into the next.
                var length = UInt32(record.count).littleEndian
                withUnsafeBytes(of: &length) { consume($0) }
                record.withUnsafeBytes { consume($0) }
            }
            stack += subdirectories.reversed()
            handedOver = true
        }
        return true
    }

    private static func append(_ value: UInt64, to record: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { record += $0 }
    }

    /// The names in a directory (NUL-terminated, without `.` and `..`), in byte order. Read with
    /// getdents64 on `fd` itself: fdopendir would dup, fstat and fcntl it first, which for tiny
    /// restores was a sixth of a job's system calls.
    private static func listing(_ fd: Int32, buffer: UnsafeMutableRawBufferPointer) -> [[UInt8]]? {
        var names: [[UInt8]] = []
        while true {
            let filled = lifeboat_getdents64(fd, buffer.baseAddress!, UInt(buffer.count))
            if filled < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if filled == 0 { break }
            // struct linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name.
            var offset = 0
            while offset < filled {
                let length = Int(buffer.loadUnaligned(fromByteOffset: offset + 16, as: UInt16.self))
                let nameBytes = buffer[(offset + 19)..<(offset + length)]
                var name = Array(nameBytes.prefix { $0 != 0 })
                name.append(0)
                offset += length
                if name == [UInt8(ascii: "."), 0] || name == [UInt8(ascii: "."), UInt8(ascii: "."), 0] { continue }
                names.append(name)
            }
        }
        return names.sorted { $0.lexicographicallyPrecedes($1) }
    }
}
