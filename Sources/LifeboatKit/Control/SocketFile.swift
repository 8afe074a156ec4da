import CLinux
import Foundation

/// The control socket's file: a stale one from a crash is replaced, a live daemon is detected and
/// refused, and the file appears only once its mode and group are right.
enum SocketFile {
    struct Failure: LifeboatError {
        var message: String
        var exitCode: CLIExit { .failed }
        var description: String { message }
    }

    /// The longest path a Unix socket can have (`sun_path` less its terminating NUL).
    static let maxPathBytes = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// A short name beside `path` to bind before the socket gets its mode and group; a name of
    /// its own, so that daemons sharing the directory never take each other's (the process id
    /// alone is not: daemons in one process, or in containers of their own, can share it).
    static func temporaryName(for path: String) throws -> String {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let letters = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        let candidate = (directory == "/" ? "" : directory) + "/.lb" + String((0..<6).map { _ in letters.randomElement()! })
        // NIO binds paths of at most 103 bytes (the BSDs' limit) whatever the platform's.
        guard candidate.utf8.count <= min(maxPathBytes, 103) else {
            throw Failure(message: "the socket's directory \(directory) is too deep to bind a socket in (at most \(min(maxPathBytes, 103) - 10) bytes); choose a shorter socket.path")
        }
        return candidate
    }

    /// Makes the parent directory and clears a stale socket at `path`; refuses when something
    /// else is there or a daemon answers on it.
    static func prepare(_ path: String) throws {
        guard path.utf8.count <= maxPathBytes else {
            throw Failure(message: "socket.path \(path) is \(path.utf8.count) bytes; a Unix socket path has at most \(maxPathBytes): choose a shorter one")
        }
        let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try FileSystem.createDirectories(parent, mode: 0o755)
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        guard (st.st_mode & S_IFMT) == S_IFSOCK else {
            throw Failure(message: "\(path) exists and is not a socket; remove it or set socket.path to another file")
        }
        if canConnect(path) {
            throw Failure(message: "another lifeboatd is already listening on \(path); stop it first or use another socket.path")
        }
        guard unlink(path) == 0 || errno == ENOENT else {
            throw Failure(message: "cannot remove the stale socket \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Why the socket's directory lets others than this user and root replace the socket (rename
    /// it away and listen in its place, so that operators' commands go to them), if it does: a
    /// directory of another owner, or one writable by group or others without the sticky bit.
    static func directoryRisk(_ path: String) -> String? {
        let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var st = stat()
        guard stat(parent, &st) == 0 else { return nil }
        if st.st_uid != 0 && st.st_uid != geteuid() { return "\(parent) belongs to uid \(st.st_uid)" }
        let mode = st.st_mode & 0o7777
        if mode & 0o022 != 0 && mode & S_ISVTX == 0 {
            return "\(parent) is writable by \(mode & 0o002 != 0 ? "every user" : "its group") (mode \(String(mode, radix: 8)))"
        }
        return nil
    }

    /// Whether something accepts connections on the Unix socket at `path`.
    static func canConnect(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard var address = UnixAddress(path) else { return false }
        return address.withSockaddr { connect(fd, $0, $1) } == 0
    }

    /// Gives the freshly bound socket its mode and group, then moves it to its public name
    /// (never over another file). On failure the temporary socket file is removed.
    static func publish(_ temporary: String, as path: String, mode: mode_t, group: String?) throws {
        do {
            try setUp(temporary, for: path, mode: mode, group: group)
        } catch {
            _ = unlink(temporary)
            throw error
        }
        guard lifeboat_renameat2(AT_FDCWD, temporary, AT_FDCWD, path, UInt32(LIFEBOAT_RENAME_NOREPLACE)) == 0 else {
            let e = errno
            _ = unlink(temporary)
            throw Failure(message: e == EEXIST ? "\(path) appeared while starting; another lifeboatd is starting on it"
                                               : "cannot create the socket \(path): \(String(cString: strerror(e)))")
        }
    }

    private static func setUp(_ temporary: String, for path: String, mode: mode_t, group: String?) throws {
        guard chmod(temporary, mode) == 0 else {
            throw Failure(message: "cannot give the socket \(path) mode \(String(mode, radix: 8)) (socket.mode): \(String(cString: strerror(errno)))")
        }
        if let group {
            guard let entry = getgrnam(group) else { throw Failure(message: "socket.group \(group) does not exist") }
            guard chown(temporary, uid_t.max, entry.pointee.gr_gid) == 0 else {
                throw Failure(message: "cannot give the socket \(path) to group \(group) (socket.group): \(String(cString: strerror(errno))); run lifeboatd as root or as a member of \(group)")
            }
        }
    }
}

/// A `sockaddr_un` for a filesystem path.
struct UnixAddress {
    var storage = sockaddr_un()
    var length: socklen_t

    init?(_ path: String) {
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count < MemoryLayout.size(ofValue: storage.sun_path) else { return nil }
        storage.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &storage.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
    }

    mutating func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        let length = self.length
        return withUnsafePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }
}
