import ArgumentParser
import Foundation
import LifeboatKit
import Logging

/// `lifeboat run`: the engine in-process, without a daemon (for trying a plan on one host, and
/// for resuming a run from its ledger after a crash).
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a plan in this process (no daemon): restore, exercise or dry-run.",
        discussion: "Exit 0 when every job succeeded, 1 when any failed, 2 for a rejected plan or request."
    )

    @Argument(help: "The plan file.")
    var plan: String

    @Option(help: "restore, exercise or dry-run.")
    var mode: String = "restore"

    @OptionGroup var selection: RunSelectionOptions

    @OptionGroup var exercise: ExerciseOptions

    @Option(help: "The ledger (SQLite); default: in-process/ledger.sqlite in the state directory, apart from the daemon's.")
    var ledger: String?

    @Option(help: "The daemon's state directory, whose lock this command takes (default: \(DefaultPaths.stateDirectory)).")
    var stateDir: String?

    @Flag(help: "Resume this plan's unfinished runs in the ledger instead of starting a new one.")
    var resume = false

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        // A delete goes through the daemon only, behind its token and its deleters.
        guard let runMode = RunMode(rawValue: mode), runMode != .delete else {
            throw CLIFailure(code: .rejected, message: "error: --mode must be restore, exercise or dry-run, found \"\(mode)\"")
        }
        let loaded = try PlanLoader.load(path: plan)
        for warning in loaded.warnings { printError(warning.description) }
        if runMode == .dryRun { return try await dryRun(loaded) }
        // One runner per state directory: the daemon's lock is taken (a live daemon refuses this
        // command, naming its pid), and runs go to a ledger of their own beside the daemon's.
        // With --ledger alone, the state directory is the ledger's own directory.
        let stateDirectory = stateDir ?? ledger.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path } ?? DefaultPaths.stateDirectory
        let ledgerPath = ledger ?? DefaultPaths.ledger(in: stateDirectory + "/in-process")
        try FileSystem.createDirectories(stateDirectory, mode: 0o700)
        try FileSystem.createDirectories(URL(fileURLWithPath: ledgerPath).deletingLastPathComponent().path, mode: 0o700)
        let lock = try StateLock(stateDirectory: stateDirectory, holder: "lifeboat run")
        defer { withExtendedLifetime(lock) {} }
        var logger = Logger(label: "lifeboat")
        logger.logLevel = .warning
        try HookRegistry.start(stateDirectory: stateDirectory, logger: logger)
        let reports = URL(fileURLWithPath: ledgerPath).deletingLastPathComponent().path + "/reports"
        // The daemon's runtime, on a ledger of its own. With --ledger alone, what must stay out of
        // reach is that ledger (its directory may well hold the store and targets, as a scratch
        // directory does).
        let runtime = try LifeboatRuntime(.init(ledger: .sqlite(path: ledgerPath), guarded: stateDir == nil && ledger != nil ? ledgerPath : stateDirectory,
                                                reportsDirectory: reports),
                                          plans: { [loaded] }, logger: logger)
        let (store, bus, engine) = (runtime.ledger, runtime.bus, runtime.engine)
        let request = try selection.request(plan: loaded, mode: runMode, exercise: exercise)

        var runIDs: [String] = []
        if resume {
            runIDs = try await store.unfinishedRuns().filter { $0.plan == loaded.name }.map(\.id)
            guard !runIDs.isEmpty else {
                throw CLIFailure(code: .rejected, message: "error: no unfinished run of plan \(loaded.name) in \(ledgerPath)")
            }
        } else {
            let created = try await engine.create(request)
            runIDs = [created.run.id]
            if !json { print("run \(created.run.id): \(runMode.rawValue) of \(loaded.name), \(created.jobs.count) job(s); ledger \(ledgerPath)") }
        }

        var failed = false
        for id in runIDs {
            let events = bus.subscribe(runId: id)
            let notifications = bus.subscribe(runId: id)
            let dispatcher = runtime.notifications(plan: { _ in loaded })
            let final = try await withThrowingTaskGroup(of: RunRecord?.self) { group in
                if !json {
                    group.addTask {
                        for await event in events { ProgressLines.print(event) }
                        return nil
                    }
                }
                group.addTask {
                    await dispatcher.run(notifications)
                    return nil
                }
                let final = try await engine.execute(runId: id, plan: loaded)
                // Progress and notifications end with the run's `finished` event.
                try await group.waitForAll()
                return final
            }
            let jobs = try await store.jobs(runId: id)
            if json {
                try printJSON(RunResultJSON(run: final, summary: RunSummary(run: final, jobs: jobs), jobs: jobs))
            } else {
                SummaryPrinter.print(run: final, jobs: jobs)
                if final.state.isFinal { print("report: \(reports)/\(id).html") }
            }
            failed = failed || final.state != .succeeded
        }
        if failed { throw CLIFailure(code: .failed, message: "") }
    }
}

struct RunResultJSON: Encodable {
    var run: RunRecord
    var summary: RunSummary
    var jobs: [JobRecord]
}

extension RunCommand {
    /// A dry run writes nothing: no state directory, lock or ledger is made (as root, the default
    /// state directory is /var/lib/lifeboat/state, which a first try must not create). Its engine
    /// records into a scratch ledger that goes with it, so its forecast has no throughput history;
    /// the daemon's `lifeboat dry-run` has its history.
    private func dryRun(_ loaded: Plan) async throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lifeboat-dry-run-\(UUID().uuidString)").path
        try FileSystem.createDirectories(scratch, mode: 0o700)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var logger = Logger(label: "lifeboat")
        logger.logLevel = .warning
        let runtime = try LifeboatRuntime(.init(ledger: .sqlite(path: scratch + "/ledger.sqlite"), guarded: stateDir ?? DefaultPaths.stateDirectory,
                                                reportsDirectory: scratch + "/reports"),
                                          plans: { [loaded] }, logger: logger)
        let request = try selection.request(plan: loaded, mode: .dryRun, exercise: exercise)
        try DryRunPrinter.finish(try await runtime.engine.dryRun(request), json: json) { try printJSON($0) }
    }
}

/// Sites, times and sampling of a run request, shared by `run`, `restore`, `exercise`, `dry-run`.
struct RunSelectionOptions: ParsableArguments {
    @Option(help: "Comma-separated sites to restore (default: every site the plan selects).")
    var sites: String?

    @Option(help: "A file with one site per line.")
    var sitesFile: String?

    @Option(help: "Comma-separated products (default: every product of the plan); e.g. one product again from an older snapshot with --as-of.")
    var products: String?

    @Option(help: "When the data loss happened (ISO-8601); default: now.")
    var incidentAt: String?

    @Option(help: "Select snapshots at or before this time (ISO-8601); default: the incident time.")
    var asOf: String?

    @Option(help: "When the incident was declared (ISO-8601), the origin of RTO; default: now.")
    var declaredAt: String?

    func siteList() throws -> [String]? {
        var list: [String] = []
        if let sites { list += sites.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        if let sitesFile {
            guard let text = try? String(contentsOfFile: sitesFile, encoding: .utf8) else {
                throw CLIFailure(code: .rejected, message: "error: cannot read --sites-file \(sitesFile)")
            }
            list += text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        }
        guard sites != nil || sitesFile != nil else { return nil }
        for site in list where !Identifier.isValid(site) {
            throw CLIFailure(code: .rejected, message: "error: \"\(site)\" is not a valid site id; \(Identifier.rule)")
        }
        return list
    }

    func productList() throws -> [String]? {
        guard let products else { return nil }
        let list = products.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        for product in list where !Identifier.isValid(product) {
            throw CLIFailure(code: .rejected, message: "error: \"\(product)\" is not a valid product id; \(Identifier.rule)")
        }
        return list
    }

    func time(_ text: String?, _ flag: String) throws -> Date? {
        guard let text else { return nil }
        guard let date = Timestamp.parse(text) else {
            throw CLIFailure(code: .rejected, message: "error: \(flag) \"\(text)\" is not a time; use ISO-8601 like 2026-11-24T03:15:00Z")
        }
        return date
    }

    func request(plan: Plan, mode: RunMode, exercise: ExerciseOptions, startedBy: String = "cli") throws -> RunRequest {
        try exercise.check(mode: mode)
        var request = RunRequest(plan: plan, mode: mode, sites: try siteList(), incidentAt: try time(incidentAt, "--incident-at"),
                                 asOf: try time(asOf, "--as-of"), declaredAt: try time(declaredAt, "--declared-at"),
                                 scale: exercise.scale, seed: exercise.seed, keepSandbox: exercise.keep, startedBy: startedBy)
        request.products = try productList()
        return request
    }
}

/// Sampling and sandbox options, which only exercises have (`exercise`, `run --mode exercise`).
struct ExerciseOptions: ParsableArguments {
    @Option(help: "Exercises: the number of sites to sample.")
    var scale: Int?

    // Unconditional: a recorded seed may be negative (`--seed -5` is a value, not an option).
    @Option(parsing: .unconditional, help: "Exercises: the sampling seed (to repeat an exercise).")
    var seed: Int64?

    @Flag(help: "Exercises: keep the sandbox data after the report.")
    var keep = false

    /// None of them applies to a restore or a dry run: refused rather than recorded unused.
    func check(mode: RunMode) throws {
        guard mode != .exercise else { return }
        let given = [scale.map { _ in "--scale" }, seed.map { _ in "--seed" }, keep ? "--keep" : nil].compactMap { $0 }
        if !given.isEmpty {
            throw CLIFailure(code: .rejected, message: "error: \(given.joined(separator: ", ")) apply to exercises only, not to a \(mode.rawValue)")
        }
    }
}
