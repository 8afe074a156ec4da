import Foundation
import Logging
import Synchronization

/// The hooks a daemon has started and not yet reaped, one file each in `<state_dir>/hooks/`
/// (named by the hook's pid, holding its start time and its command), so that the next daemon
/// on the state directory can end what a daemon killed outright (SIGKILL, the OOM killer, a
/// crash) left running: a verify command still reading staging that the next start discards, a
/// `post_restore` that the next start runs again on the same data, a notifier.
///
/// Under systemd the unit's control group ends them with the daemon; elsewhere (a container
/// without an init, a daemon started by hand or by another supervisor) nothing else would.
///
/// A hook leads its own process group (`HookRunner`), so its group id is its pid. A recorded
/// group is ended only when it is provably the one the earlier daemon started: its leader is
/// alive with the recorded start time, or the leader is gone and the group still has members
/// (Linux does not hand out a pid that is still some process group's id). A pid reused by an
/// unrelated process has another start time and is left alone.
public final class HookRegistry: Sendable {
    /// The registry of the daemon (or `lifeboat run`) holding the state directory, if any.
    static let current = Mutex<HookRegistry?>(nil)

    let directory: String

    init(directory: String) {
        self.directory = directory
    }

    /// Makes `<stateDirectory>/hooks`, ends what an earlier process on the state directory left
    /// running, and records this process's hooks there from now on. Call once the state
    /// directory's lock is held.
    public static func start(stateDirectory: String, logger: Logger) throws {
        let registry = HookRegistry(directory: stateDirectory + "/hooks")
        try FileSystem.createDirectories(registry.directory, mode: 0o700)
        registry.endLeftovers(logger: logger)
        current.withLock { $0 = registry }
    }

    /// A hook was started (`pid`, leading its own group).
    static func started(_ pid: pid_t, argv: [String]) {
        guard let registry = current.withLock({ $0 }), let start = startTime(of: pid) else { return }
        let text = "\(start)\n\(argv.first ?? "")\n"
        _ = FileManager.default.createFile(atPath: registry.directory + "/\(pid)", contents: Data(text.utf8),
                                           attributes: [.posixPermissions: 0o600])
    }

    /// A hook was reaped: its group is no longer this process's to answer for.
    static func reaped(_ pid: pid_t) {
        guard let registry = current.withLock({ $0 }) else { return }
        _ = unlink(registry.directory + "/\(pid)")
    }

    /// Ends the groups of the hooks recorded by an earlier process: SIGTERM, then SIGKILL to those
    /// still there after `grace`. Returns what was ended, for the log and tests.
    @discardableResult
    func endLeftovers(logger: Logger, grace: Duration = .seconds(5)) -> [pid_t] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var ended: [pid_t] = []
        for name in names {
            let path = directory + "/" + name
            defer { _ = unlink(path) }
            guard let pid = pid_t(name), pid > 1,
                  let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            guard let recorded = lines.first.flatMap({ UInt64($0) }) else { continue }
            let command = lines.count > 1 ? String(lines[1]) : ""
            if let start = Self.startTime(of: pid) {
                // A live process under that pid: the hook itself, or someone else's since.
                guard start == recorded else { continue }
            } else if kill(-pid, 0) != 0 {
                continue // neither the leader nor any of its group is left
            }
            logger.notice("ending a hook the previous lifeboatd left running when it was killed; its job is taken up again",
                          metadata: ["pid": "\(pid)", "command": "\(command)"])
            kill(-pid, SIGTERM)
            ended.append(pid)
        }
        let deadline = ContinuousClock.now + grace
        while ended.contains(where: { kill(-$0, 0) == 0 }), ContinuousClock.now < deadline { usleep(20_000) }
        for pid in ended where kill(-pid, 0) == 0 {
            logger.warning("a hook left running ignored SIGTERM for \(grace); killed", metadata: ["pid": "\(pid)"])
            kill(-pid, SIGKILL)
        }
        return ended
    }

    /// The process's start time (clock ticks after boot, field 22 of `/proc/PID/stat`); nil when
    /// there is no such process.
    static func startTime(of pid: pid_t) -> UInt64? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // After the command's closing parenthesis: field 3 (state) onwards.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? UInt64(fields[19]) : nil
    }
}
