import ArgumentParser
import CLifeboatd
import Foundation
import LifeboatKit
import Logging

/// `lifeboatd [--config FILE]`: the Lifeboat daemon. Everything it does lives in LifeboatKit
/// (`makeDaemon`); this is only the command line.
@main
struct Lifeboatd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lifeboatd",
        abstract: "The Lifeboat daemon: runs restoration plans and exercises, serves the control socket.",
        discussion: "Without --config: plans from ./plans, logs to stderr, and the ledger in \(DefaultPaths.rootStateDirectory) and the socket "
            + "\(DefaultPaths.systemSocket) when run as root, otherwise in per-user directories ($XDG_STATE_HOME/lifeboat or "
            + "~/.local/state/lifeboat, and $XDG_RUNTIME_DIR/lifeboat/lifeboatd.sock); for this user now: state "
            + "\(DefaultPaths.stateDirectory), socket \(DefaultPaths.socket). With --config, relative paths (and the default "
            + "plans_dir, plans) are resolved beside the config file. SIGHUP reloads plans; SIGTERM drains.",
        version: LifeboatVersion.string
    )

    @Option(help: "The daemon config file (YAML); see config/lifeboatd.yaml.")
    var config: String?

    func run() async throws {
        // A SIGHUP before the reload handler is set up (its default action ends the process) is
        // ignored: there is nothing loaded yet to reload.
        signal(SIGHUP, SIG_IGN)
        let notifier = SystemdNotifier.takenFromEnvironment()
        let arenas = Daemon.limitMallocArenas()
        let openFiles = Daemon.raiseOpenFilesLimit()
        let loaded: DaemonConfig
        do {
            loaded = try config.map(DaemonConfig.load(path:)) ?? DaemonConfig.defaults()
        } catch let error as DiagnosticsError {
            StandardOutput.write(Data("lifeboatd: invalid config\n\(error.description)\n".utf8), to: STDERR_FILENO)
            throw ExitCode(2)
        }
        if let problem = loaded.plansDirectoryProblem {
            let source = loaded.sourcePath.map { path in
                loaded.plansDirectoryMark.map { "\(path):\($0.line):\($0.column): plans_dir" } ?? "\(path): plans_dir (not set: plans beside the config)"
            } ?? "without --config, plans are read from ./plans:"
            StandardOutput.write(Data("lifeboatd: \(source) \(problem)\n".utf8), to: STDERR_FILENO)
            throw ExitCode(2)
        }
        // Before the daemon's threads start, so that they inherit it.
        let niceness = Result { try Daemon.raiseNiceness(to: loaded.niceness) }
        LifeboatLogHandler.bootstrap(level: loaded.logLevel, format: loaded.logFormat)
        let logger = Logger(label: "lifeboatd")
        if case .failure(let error) = niceness {
            logger.warning("could not raise every thread's niceness; some run at the priority lifeboatd was started with",
                           metadata: ["error": "\(error)"])
        }
        let privilege = lifeboatd_sys_nice_dropped()
        if privilege < 0 || privilege == 2 {
            logger.warning("could not give up CAP_SYS_NICE: libdispatch's threads may run above the configured niceness",
                           metadata: ["error": "\(privilege < 0 ? String(cString: strerror(-privilege)) : "not attempted")"])
        }
        do {
            let daemon = try makeDaemon(config: loaded, logger: logger, notifier: notifier)
            // With the state directory held: hooks a killed predecessor left running end before
            // its runs are taken up again, and this daemon's own are recorded.
            try HookRegistry.start(stateDirectory: loaded.stateDirectory, logger: logger)
            logger.info("lifeboatd starting", metadata: ["version": "\(LifeboatVersion.string)", "state_dir": "\(loaded.stateDirectory)",
                                                          "plans_dir": "\(loaded.plansDirectory)", "config": "\(loaded.sourcePath ?? "defaults")",
                                                          "malloc_arenas": "\(arenas)", "open_files": "\(openFiles.map(String.init) ?? "unknown")",
                                                          "niceness": "\((try? niceness.get()).map(String.init) ?? "unchanged")"])
            try await daemon.group.run()
            logger.info("lifeboatd stopped")
        } catch let error as LifeboatError {
            logger.critical("lifeboatd cannot run", metadata: ["error": "\(error.description)"])
            throw ExitCode(1)
        }
    }
}
