#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Small, allocation-light file system helpers over libc.
public enum FileSystem {
    public enum Kind: Sendable { case regular, directory, symlink, other }

    public struct Entry: Sendable {
        public var name: String
        public var kind: Kind
    }

    /// The entries of a directory (without `.` and `..`), sorted by name. Symlinks are reported as
    /// symlinks, never followed.
    public static func directoryEntries(_ path: String) throws -> [Entry] {
        guard let dir = opendir(path) else { throw FileSystemError(path: path, operation: "open directory", errno: errno) }
        defer { closedir(dir) }
        var entries: [Entry] = []
        while let ent = readdir(dir) {
            let name = withUnsafePointer(to: ent.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name == "." || name == ".." { continue }
            var kind: Kind
            switch Int32(ent.pointee.d_type) {
            case Int32(DT_REG): kind = .regular
            case Int32(DT_DIR): kind = .directory
            case Int32(DT_LNK): kind = .symlink
            case Int32(DT_UNKNOWN): kind = lstatKind(path + "/" + name)
            default: kind = .other
            }
            entries.append(Entry(name: name, kind: kind))
        }
        return entries.sorted { $0.name < $1.name }
    }

    static func lstatKind(_ path: String) -> Kind {
        var st = stat()
        guard lstat(path, &st) == 0 else { return .other }
        switch st.st_mode & S_IFMT {
        case S_IFREG: return .regular
        case S_IFDIR: return .directory
        case S_IFLNK: return .symlink
        default: return .other
        }
    }

    /// The size of a file (not following symlinks), or nil.
    public static func size(of path: String) -> Int64? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return Int64(st.st_size)
    }

    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// Whether `path` exists with symbolic links followed (a dangling link does not).
    public static func isReachable(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// `strerror(errno)` of the last failed call.
    public static func lastError() -> String { String(cString: strerror(errno)) }

    /// Creates a directory and its missing parents with `mode`.
    public static func createDirectories(_ path: String, mode: mode_t = 0o755) throws {
        var current = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, mode) != 0 && errno != EEXIST {
                throw FileSystemError(path: current, operation: "create directory", errno: errno)
            }
        }
        guard isDirectory(path) else { throw FileSystemError(path: path, operation: "create directory", errno: ENOTDIR) }
    }
}

/// A failed system call on a path: what was tried, on which path, and why.
public struct FileSystemError: LifeboatError, Sendable {
    public var path: String
    public var operation: String
    public var errno: Int32

    public init(path: String, operation: String, errno: Int32) {
        self.path = path
        self.operation = operation
        self.errno = errno
    }

    public var exitCode: CLIExit { .failed }

    public var description: String { "cannot \(operation) \(path): \(String(cString: strerror(errno)))" }
}
