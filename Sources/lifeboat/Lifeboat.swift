import ArgumentParser
import Foundation
import LifeboatKit

@main
struct Lifeboat: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lifeboat",
        abstract: "Disaster-recovery restoration: restore many sites from snapshot archives, safely and measured.",
        discussion: """
            Global options: --socket PATH (default: $LIFEBOAT_SOCKET, else this user's daemon's socket, then the system daemon's \(DefaultPaths.systemSocket)) and --json may come before or after the subcommand.

            Exit codes: 0 success; 1 the operation ran and failed; 2 usage error or rejected input; 3 the daemon cannot be reached or cannot serve it now (ask again); 4 a run halted at a wave gate (--exit-on-halt).
            """,
        version: LifeboatVersion.string,
        subcommands: [
            StatusCommand.self,
            PlansCommand.self,
            RestoreCommand.self,
            ExerciseCommand.self,
            DryRunCommand.self,
            DeleteCommand.self,
            RunsCommand.self,
            ShowCommand.self,
            WatchCommand.self,
            SitesCommand.self,
            CancelCommand.self,
            ResumeCommand.self,
            RetryCommand.self,
            RollbackCommand.self,
            QuarantineCommand.self,
            ReportCommand.self,
            SchedulesCommand.self,
            ReloadCommand.self,
            PlanCommand.self,
            SnapshotCommand.self,
            FleetCommand.self,
            RunCommand.self,
            DemoCommand.self,
            GenerateManualCommand.self,
        ]
    )

    /// Runs the command line with Lifeboat's exit codes: ArgumentParser's usage errors become 2,
    /// Lifeboat's errors map through `LifeboatError.exitCode`.
    ///
    /// Synchronous on purpose: the commands that only talk to the daemon (`status`, `runs`,
    /// `watch`, …) run right here on the main thread and start no threads. An `async` main put
    /// them on Swift's concurrency pool, which cost four thread starts and as many hand-offs,
    /// each a wait for a core when a restore keeps them all busy (`lifeboat status` took 3× its
    /// CPU time in wall time under a full run). The few commands that need async work (the demo,
    /// local runs, fleet generation, snapshot tools that read object storage) run to their end on
    /// the pool while this thread waits.
    static func main() {
        // Lines written with FileHandle go straight to the descriptor; this keeps `print`'s in
        // step with them, and in the file as they happen when stdout is not a terminal.
        StandardOutput.lineBuffered()
        do {
            var command = try parseAsRoot(GlobalOptions.reordered(Array(CommandLine.arguments.dropFirst()), root: Lifeboat.self))
            if let asyncCommand = command as? AsyncParsableCommand {
                try runToEnd(asyncCommand)
            } else {
                try command.run()
            }
        } catch let failure as CLIFailure {
            if !failure.message.isEmpty { fail(failure.message, code: failure.code, kind: nil) }
            Foundation.exit(failure.code.rawValue)
        } catch let error as LifeboatError {
            fail("error: \(error.description)", code: error.exitCode, kind: (error as? ControlClient.Refused)?.error.code.rawValue)
            Foundation.exit(error.exitCode.rawValue)
        } catch {
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            if code == .success {
                if !message.isEmpty { print(message) }
                Foundation.exit(0)
            }
            // ArgumentParser's usage errors (EX_USAGE, 64) are Lifeboat's "rejected input".
            let usage = code.rawValue == 64
            let exit: CLIExit = usage ? .rejected : .failed
            if !message.isEmpty { fail(message, code: exit, kind: usage ? "usage" : nil) }
            Foundation.exit(exit.rawValue)
        }
    }

    /// Says why the command failed on standard error: in words, or, with `--json`, as
    /// `{"error": {"code", "message", "exit_code"}}` on one line (the control socket's error codes
    /// when the daemon refused; `usage` for a command line that does not parse; else the exit
    /// code's name), for scripts that read JSON.
    private static func fail(_ message: String, code: CLIExit, kind: String?) {
        let arguments = CommandLine.arguments.dropFirst().prefix { $0 != "--" }
        guard arguments.contains("--json") else { return printError(message) }
        let words = message.lowercased().hasPrefix("error: ") ? String(message.dropFirst("error: ".count)) : message
        let names: [CLIExit: String] = [.failed: "failed", .rejected: "rejected", .unreachable: "unreachable", .halted: "halted"]
        let body: [String: Any] = ["error": ["code": kind ?? names[code] ?? "failed", "message": words, "exit_code": Int(code.rawValue)]]
        guard let data = try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes]) else { return printError(message) }
        printError(String(decoding: data, as: UTF8.self))
    }

    /// Runs an async command on Swift's concurrency pool and waits for it on this thread (which
    /// is not one of the pool's, so nothing the command awaits can be starved by the wait).
    private static func runToEnd(_ command: AsyncParsableCommand) throws {
        final class Run: @unchecked Sendable {
            var command: AsyncParsableCommand
            var error: (any Error)?
            let done = DispatchSemaphore(value: 0)
            init(_ command: AsyncParsableCommand) { self.command = command }
        }
        let run = Run(command)
        Task.detached {
            do { try await run.command.run() } catch { run.error = error }
            run.done.signal()
        }
        run.done.wait()
        if let error = run.error { throw error }
    }
}
