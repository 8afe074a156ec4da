import Foundation

/// One daemon per state directory: an exclusive `flock` on `<state_dir>/lifeboatd.lock`, held for
/// the process's life (the kernel drops it if the process dies, so a crash leaves no stale lock).
public final class StateLock: Sendable {
    public let path: String
    private let fd: Int32

    public struct Busy: LifeboatError {
        public var path: String
        /// What the lock file says: `4242` or `4242 lifeboat run`.
        public var holder: String?
        public var exitCode: CLIExit { .failed }
        public var description: String {
            let parts = holder?.split(separator: " ", maxSplits: 1).map(String.init) ?? []
            let who = parts.count > 1 ? parts[1] : "lifeboatd"
            return "another \(who)\(parts.first.map { " (pid \($0))" } ?? "") is using the state directory \(URL(fileURLWithPath: path).deletingLastPathComponent().path); stop it first, or use another state directory"
        }
    }

    /// - Parameter holder: what to write beside the pid, for the refusal another process gets.
    public init(stateDirectory: String, holder: String? = nil) throws {
        path = stateDirectory + "/lifeboatd.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileSystemError(path: path, operation: "open the lock file", errno: errno) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            close(fd)
            throw Busy(path: path, holder: holder?.isEmpty == false ? holder : nil)
        }
        ftruncate(fd, 0)
        let pid = "\(getpid())\(holder.map { " \($0)" } ?? "")\n"
        _ = pid.withCString { write(fd, $0, strlen($0)) }
        self.fd = fd
    }

    deinit { close(fd) }
}
