import ArgumentParser
import Foundation
import LifeboatKit

@main
struct Lifeboat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lifeboat",
        abstract: "Disaster-recovery restoration: restore many sites from snapshot archives, safely and measured.",
        discussion: """
            Global options: --socket PATH (default: $LIFEBOAT_SOCKET, else the per-user socket) and --json may come before or after the subcommand.

            Exit codes: 0 success; 1 the operation ran and failed; 2 usage error or rejected input; 3 the daemon cannot be reached.
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
    static func main() async {
        // Lines written with FileHandle go straight to the descriptor; this keeps `print`'s in
        // step with them, and in the file as they happen when stdout is not a terminal.
        StandardOutput.lineBuffered()
        do {
            var command = try parseAsRoot(GlobalOptions.reordered(Array(CommandLine.arguments.dropFirst()), root: Lifeboat.self))
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let failure as CLIFailure {
            if !failure.message.isEmpty { printError(failure.message) }
            Foundation.exit(failure.code.rawValue)
        } catch let error as LifeboatError {
            printError("error: \(error.description)")
            Foundation.exit(error.exitCode.rawValue)
        } catch {
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            if code == .success {
                if !message.isEmpty { print(message) }
                Foundation.exit(0)
            }
            if !message.isEmpty { printError(message) }
            // ArgumentParser's usage errors (EX_USAGE, 64) are Lifeboat's "rejected input".
            Foundation.exit(code.rawValue == 64 ? CLIExit.rejected.rawValue : CLIExit.failed.rawValue)
        }
    }
}
