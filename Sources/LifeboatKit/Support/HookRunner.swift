import CLinux
import Foundation
import NIOPosix

/// A command run by Lifeboat without a shell: `verify.command`, `post_restore`, `notify`.
public struct HookCommand: Sendable {
    /// The program and its arguments; the program is looked up in `PATH` when it has no "/".
    public var argv: [String]
    /// After this long the command's process group gets SIGTERM, then SIGKILL after `killGrace`.
    public var timeout: Duration
    public var killGrace: Duration
    /// Written to the command's standard input, which is then closed (empty input when nil).
    public var stdin: [UInt8]?
    /// Extra environment variables on top of Lifeboat's own.
    public var environment: [String: String]
    /// Output (stdout and stderr together) kept; the rest is read and counted, not kept.
    public var outputLimit: Int

    public init(
        _ argv: [String], timeout: Duration = .seconds(300), killGrace: Duration = .seconds(5),
        stdin: [UInt8]? = nil, environment: [String: String] = [:], outputLimit: Int = 64 << 10
    ) {
        self.argv = argv
        self.timeout = timeout
        self.killGrace = killGrace
        self.stdin = stdin
        self.environment = environment
        self.outputLimit = outputLimit
    }
}

/// How a hook ended.
public struct HookResult: Sendable, Codable, Equatable {
    /// The exit status, when the command exited.
    public var exitStatus: Int32?
    /// The signal that ended it, when one did.
    public var signal: Int32?
    /// The timeout expired and the command was killed.
    public var timedOut: Bool
    /// Standard output and standard error interleaved, at most `outputLimit` bytes (lossy UTF-8).
    public var output: String
    /// More output was produced than kept.
    public var outputTruncated: Bool
    /// Wall time from start to exit.
    public var seconds: Double

    /// Exit status 0 within the timeout.
    public var succeeded: Bool { exitStatus == 0 && !timedOut }

    /// The end of its output (at most `limit` characters), without the blank lines around it that
    /// would break a one-line message; nil when it said nothing.
    public func lastWords(_ limit: Int) -> String? {
        let words = output.suffix(limit).trimmingCharacters(in: .whitespacesAndNewlines)
        return words.isEmpty ? nil : words
    }

    /// "exit status 3", "killed by signal 9 after the 30s timeout"…
    public var summary: String {
        var text = exitStatus.map { "exit status \($0)" } ?? signal.map { "killed by signal \($0)" } ?? "unknown status"
        if timedOut { text += " (timed out)" }
        return text
    }
}

/// A hook could not be started.
public struct HookError: LifeboatError, Sendable {
    public var argv: [String]
    public var detail: String
    public var errno: Int32?
    public var exitCode: CLIExit { .failed }
    public var description: String {
        "cannot run \(argv.first.map { String(reflecting: $0) } ?? "an empty command"): \(detail)"
            + (errno.map { ": \(SystemError.describe($0))" } ?? "")
    }
}

/// Runs hook commands: no shell, own process group, timeout with SIGTERM then SIGKILL, output
/// captured and capped, cancellation-aware (a cancelled task terminates the command and throws
/// `CancellationError` once it is gone).
public enum HookRunner {
    public static func run(_ command: HookCommand) async throws -> HookResult {
        guard !command.argv.isEmpty else { throw HookError(argv: [], detail: "the command is empty") }
        let process = try SpawnedHook(command)
        // The process runs: it is supervised to its end whatever happens to the awaiting task
        // (a cancel terminates it through `cancel()`), so it is never left unreaped.
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<HookResult, Never>) in
                BlockingPool.hooks.submit { _ in continuation.resume(returning: process.superviseToEnd()) }
            }
        } onCancel: {
            process.cancel()
        }
        try Task.checkCancellation()
        return result
    }
}

/// One running hook, supervised by one thread that polls its output, its stdin, its pidfd, the
/// clock and a cancellation pipe.
private final class SpawnedHook: @unchecked Sendable {
    // Everything below is touched only by the supervising thread, except `cancelWrite`, which is
    // written once by `cancel()` (a write(2) on a pipe is thread-safe).
    private let command: HookCommand
    private let pid: pid_t
    private let pidFD: Int32
    private var outputFD: Int32
    private var inputFD: Int32
    private let cancelRead: Int32
    private let cancelWrite: Int32
    private let started = ContinuousClock.now

    init(_ command: HookCommand) throws {
        self.command = command
        var output: [Int32] = [0, 0], input: [Int32] = [0, 0], cancel: [Int32] = [0, 0]
        guard lifeboat_pipe2(&output, O_CLOEXEC) == 0 else { throw HookError(argv: command.argv, detail: "pipe2", errno: errno) }
        guard lifeboat_pipe2(&input, O_CLOEXEC) == 0 else {
            let e = errno
            close(output[0]); close(output[1])
            throw HookError(argv: command.argv, detail: "pipe2", errno: e)
        }
        guard lifeboat_pipe2(&cancel, O_CLOEXEC | O_NONBLOCK) == 0 else {
            let e = errno
            for fd in output + input { close(fd) }
            throw HookError(argv: command.argv, detail: "pipe2", errno: e)
        }
        defer {
            close(output[1])
            close(input[0])
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_adddup2(&actions, output[1], 2)
        // Nothing else of the daemon's: its sockets would outlive it in a hook left behind.
        _ = lifeboat_spawn_close_from(&actions, 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Own process group, so a timeout ends the command's children too; default signal
        // dispositions and an empty mask whatever Lifeboat's are.
        var all = sigset_t(), none = sigset_t()
        sigfillset(&all)
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var environment = ProcessInfo.processInfo.environment
        for (key, value) in command.environment { environment[key] = value }
        let argv = command.argv.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, command.argv[0], &actions, &attributes, argv, envp)
        guard rc == 0 else {
            for fd in [output[0], input[1], cancel[0], cancel[1]] { close(fd) }
            throw HookError(argv: command.argv, detail: rc == ENOENT ? "command not found" : "posix_spawn failed", errno: rc)
        }
        self.pid = pid
        // Recorded in the state directory until reaped: a daemon killed outright leaves its
        // hooks running, and the next one ends them (`HookRegistry`).
        HookRegistry.started(pid, argv: command.argv)
        pidFD = lifeboat_pidfd_open(pid, 0)
        outputFD = output[0]
        inputFD = input[1]
        cancelRead = cancel[0]
        cancelWrite = cancel[1]
        _ = fcntl(inputFD, F_SETFL, O_NONBLOCK)
        if command.stdin?.isEmpty ?? true {
            close(inputFD)
            inputFD = -1
        }
    }

    /// Asks the supervisor to terminate the command (any thread).
    func cancel() {
        var byte: UInt8 = 1
        _ = write(cancelWrite, &byte, 1)
    }

    /// Runs on the supervising thread until the command has exited and its output is read.
    func superviseToEnd() -> HookResult {
        defer {
            for fd in [outputFD, inputFD, cancelRead, cancelWrite, pidFD] where fd >= 0 { close(fd) }
        }
        var kept: [UInt8] = []
        var truncated = false
        var stdinOffset = 0
        let stdinData = command.stdin ?? []
        var exited = false, timedOut = false
        var status: Int32 = 0
        let deadline = started + command.timeout
        var killAt: ContinuousClock.Instant?
        var drainUntil: ContinuousClock.Instant?
        var buffer = [UInt8](repeating: 0, count: 16 << 10)

        while true {
            let now = ContinuousClock.now
            if !exited {
                if killAt == nil, now >= deadline {
                    timedOut = true
                    terminate(now: now, killAt: &killAt)
                }
                if let at = killAt, now >= at { kill(-pid, SIGKILL) }
            }
            if exited, outputFD < 0 || (drainUntil.map { now >= $0 } ?? false) { break }

            var fds: [pollfd] = []
            if outputFD >= 0 { fds.append(pollfd(fd: outputFD, events: Int16(POLLIN), revents: 0)) }
            if inputFD >= 0 { fds.append(pollfd(fd: inputFD, events: Int16(POLLOUT), revents: 0)) }
            if !exited {
                fds.append(pollfd(fd: cancelRead, events: Int16(POLLIN), revents: 0))
                if pidFD >= 0 { fds.append(pollfd(fd: pidFD, events: Int16(POLLIN), revents: 0)) }
            }
            let wake = [exited ? drainUntil : (killAt ?? deadline)].compactMap { $0 }.min() ?? now
            var timeoutMS = Self.milliseconds(until: wake, from: now)
            if !exited, pidFD < 0 { timeoutMS = min(timeoutMS, 50) }  // no pidfd: poll waitpid
            _ = poll(&fds, nfds_t(fds.count), Int32(timeoutMS))

            for entry in fds where entry.revents != 0 {
                if entry.fd == outputFD {
                    let n = read(outputFD, &buffer, buffer.count)
                    if n > 0 {
                        let room = command.outputLimit - kept.count
                        if room > 0 { kept.append(contentsOf: buffer[..<min(n, room)]) }
                        if n > room { truncated = true }
                    } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                        close(outputFD)
                        outputFD = -1
                    }
                } else if entry.fd == inputFD {
                    let n = stdinData.withUnsafeBytes { raw in
                        write(inputFD, raw.baseAddress! + stdinOffset, stdinData.count - stdinOffset)
                    }
                    if n > 0 { stdinOffset += n }
                    // Done, or the command closed its input (EPIPE): either way, stop writing.
                    if stdinOffset == stdinData.count || (n < 0 && errno != EAGAIN && errno != EINTR) {
                        close(inputFD)
                        inputFD = -1
                    }
                } else if entry.fd == cancelRead, killAt == nil {
                    terminate(now: ContinuousClock.now, killAt: &killAt)
                }
            }
            if !exited, Self.hasExited(pid, pidFD: pidFD) {
                // The leader is a zombie until reaped, so its process group id cannot be reused:
                // end whatever it left behind in its group, then reap it.
                kill(-pid, SIGKILL)
                while waitpid(pid, &status, 0) < 0, errno == EINTR {}
                HookRegistry.reaped(pid)
                exited = true
                if inputFD >= 0 {
                    close(inputFD)
                    inputFD = -1
                }
                // Output written by processes that escaped the group is read for one more second.
                drainUntil = ContinuousClock.now + .seconds(1)
            }
        }
        let wasSignaled = (status & 0x7F) != 0 && (status & 0x7F) != 0x7F
        return HookResult(
            exitStatus: wasSignaled ? nil : (status >> 8) & 0xFF,
            signal: wasSignaled ? status & 0x7F : nil,
            timedOut: timedOut,
            output: String(decoding: kept, as: UTF8.self),
            outputTruncated: truncated,
            seconds: Self.seconds(ContinuousClock.now - started))
    }

    private func terminate(now: ContinuousClock.Instant, killAt: inout ContinuousClock.Instant?) {
        kill(-pid, SIGTERM)
        killAt = now + command.killGrace
    }

    /// Whether the process has exited, without reaping it.
    private static func hasExited(_ pid: pid_t, pidFD: Int32) -> Bool {
        if pidFD >= 0 {
            var entry = pollfd(fd: pidFD, events: Int16(POLLIN), revents: 0)
            return poll(&entry, 1, 0) == 1
        }
        var info = siginfo_t()
        return waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info._sifields._sigchld.si_pid == pid
    }

    private static func milliseconds(until instant: ContinuousClock.Instant, from now: ContinuousClock.Instant) -> Int {
        guard instant > now else { return 0 }
        let (seconds, attoseconds) = (instant - now).components
        return Int(min(seconds, 3_600)) * 1_000 + Int(attoseconds / 1_000_000_000_000_000) + 1
    }

    private static func seconds(_ d: Duration) -> Double {
        let (s, atto) = d.components
        return Double(s) + Double(atto) / 1e18
    }
}
