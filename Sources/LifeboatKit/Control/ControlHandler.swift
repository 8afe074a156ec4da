import Foundation
import Logging

/// What the control socket serves: the daemon's state and operations.
public struct DaemonContext: Sendable {
    public var config: DaemonConfig
    public var runs: RunManager
    public var plans: PlanRegistry
    public var ledger: any Ledger
    public var bus: EventBus
    public var access: AccessControl
    public var startedAt: Date
    public var clock: any LifeboatClock
    /// Re-reads the config file and plans (SIGHUP and `reload`); returns the problems found.
    public var reload: @Sendable () async -> [PlanRegistry.Problem]
    public var scheduler: Scheduler
    public var logger: Logger
}

/// Routes control requests to the daemon: read commands for anyone who can connect, mutating
/// commands for admins only, each logged with the caller's uid and pid.
public struct ControlHandler: Sendable {
    public let context: DaemonContext

    public init(context: DaemonContext) { self.context = context }

    /// Commands that change something.
    public static let mutating: Set<String> = ["run.start", "run.cancel", "run.resume", "job.retry", "rollback", "quarantine.purge", "reload"]

    /// Whether a request changes something: a dry run (`run.start` with mode `dry-run`) writes
    /// nothing, so anyone who may read may ask for one.
    /// A delete (`run.start` with mode `delete`) has its own role, `deleters`, checked where it is
    /// handled so that its refusals are recorded too.
    static func isMutating(_ request: ControlRequest) -> Bool {
        guard mutating.contains(request.command) else { return false }
        let mode = try? request.string("mode")
        return !(request.command == "run.start" && (mode == RunMode.dryRun.rawValue || mode == RunMode.delete.rawValue))
    }

    public static let commands: [String] = ["status", "plans", "plan.check", "run.start", "run.list", "run.show", "run.sites", "run.watch",
                                            "run.cancel", "run.resume", "job.retry", "rollback", "quarantine.list",
                                            "quarantine.purge", "report", "reload", "schedules"]

    /// Answers one request; `send` writes a response line (several for `run.watch`).
    /// Errors other than writing to the client (which mean it went away, and end the connection)
    /// are answered: an unexpected one as `internal`, naming the command, and logged.
    public func handle(_ request: ControlRequest, peer: PeerCredentials, send: @Sendable (Data) async throws -> Void) async throws {
        @Sendable func answer(_ data: Data) async throws {
            do { try await send(data) } catch { throw SendFailure(underlying: error) }
        }
        do {
            guard Self.commands.contains(request.command) else {
                throw ControlError(.unknownCommand, "unknown command \"\(String(request.command.prefix(64)))\"; commands: \(Self.commands.joined(separator: ", "))")
            }
            if Self.isMutating(request) {
                guard context.access.mayMutate(peer) else {
                    context.logger.warning("mutating command refused", metadata: ["command": "\(request.command)", "uid": "\(peer.uid)", "pid": "\(peer.pid)"])
                    throw ControlError(.forbidden, "\(request.command) needs an admin (root, the daemon's user or a configured admin); \(peer) may only read")
                }
                context.logger.notice("mutating command", metadata: ["command": "\(request.command)", "uid": "\(peer.uid)", "pid": "\(peer.pid)"])
            }
            if request.command == "run.watch" {
                try await watch(request, send: answer)
                return
            }
            let data = try await respond(request, peer: peer)
            try await answer(data)
        } catch let error as ControlError {
            try await answer(ControlResponse.failure(id: request.id, error))
        } catch let error as DiagnosticsError {
            try await answer(ControlResponse.failure(id: request.id, ControlError(.rejected, error.description)))
        } catch let error as RunRequestError {
            try await answer(ControlResponse.failure(id: request.id, ControlError(.rejected, error.message)))
        } catch let error as LifeboatError {
            try await answer(ControlResponse.failure(id: request.id, ControlError(error.exitCode == .rejected ? .rejected : .internalError, error.description)))
        } catch let error as SendFailure {
            throw error.underlying
        } catch is CancellationError {
            try await answer(ControlResponse.failure(id: request.id, ControlError(.unavailable, "the daemon is stopping; ask again once it is back")))
        } catch {
            context.logger.error("command failed", metadata: ["command": "\(request.command)", "error": "\(error)"])
            try await answer(ControlResponse.failure(id: request.id, ControlError(
                .internalError, "\(request.command) failed inside the daemon: \(error); the daemon's log (journalctl -u lifeboatd) has the details")))
        }
    }

    /// A cancel's or resume's answer; when another host coordinates the run, which one and when
    /// it applies the command.
    static func answer(_ runId: String, state: String, _ forwarded: RunManager.Forwarded?) -> [String: String] {
        var answer = ["run": runId, "state": state]
        if let forwarded {
            answer["forwarded_to"] = forwarded.host ?? ""
            answer["note"] = "run \(runId) is coordinated by " + (forwarded.host.map { "host \($0)" } ?? "no live host right now (the next to take it over applies it)")
                + "; the command went through the shared ledger and applies within \(forwarded.withinSeconds) s"
        }
        return answer
    }

    /// Writing an answer failed: the client is gone.
    private struct SendFailure: Error {
        var underlying: any Error
    }

    private func respond(_ request: ControlRequest, peer: PeerCredentials) async throws -> Data {
        let id = request.id
        switch request.command {
        case "status": return ControlResponse.success(id: id, try await status())
        case "plans": return ControlResponse.success(id: id, plans())
        case "plan.check": return ControlResponse.success(id: id, try planCheck(request, peer: peer))
        case "run.start": return try await startRun(request, peer: peer)
        case "run.list":
            return ControlResponse.success(id: id, try await RunQueries(context: context).runs(limit: try request.int("limit") ?? 50))
        case "run.show": return ControlResponse.success(id: id, try await showRun(try request.requiredString("run")))
        case "run.sites": return ControlResponse.success(id: id, try await RunQueries(context: context).sites(try request.requiredString("run")))
        case "run.cancel":
            let runId = try request.requiredString("run")
            let forwarded = try await context.runs.cancel(runId: runId, by: peer.description)
            return ControlResponse.success(id: id, Self.answer(runId, state: "cancelling", forwarded))
        case "run.resume":
            let runId = try request.requiredString("run")
            try await requireDeleterForDeleteRun(runId, peer: peer, what: "resuming")
            let forwarded = try await context.runs.resume(runId: runId, by: peer.description)
            return ControlResponse.success(id: id, Self.answer(runId, state: "running", forwarded))
        case "job.retry":
            let runId = try request.requiredString("run")
            guard let job = try request.int("job") else { throw ControlError(.invalidParams, "\"job\" (a job id) is required") }
            try await requireDeleterForDeleteRun(runId, peer: peer, what: "retrying a job of")
            return ControlResponse.success(id: id, try await context.runs.retry(runId: runId, jobId: Int64(job)))
        case "reload":
            let problems = await context.reload()
            return ControlResponse.success(id: id, ReloadResult(plans: context.plans.plans.map(\.plan.name), problems: problems))
        default:
            return try await respondDR(request, peer: peer)
        }
    }

    // MARK: Status

    public struct RunStatus: Codable, Sendable {
        public var id: String
        public var plan: String
        public var mode: RunMode
        public var state: RunState
        public var jobs: Int
        public var done: Int
        public var counts: [String: Int]
        public var note: String?
        /// When the run will finish at its measured pace, and whether that misses the RTO objective.
        public var forecast: RTOForecast
        /// Why it waits for a run slot (queued behind which runs, the limit), when it does.
        public var waiting: RunWait?
    }

    public struct Status: Codable, Sendable {
        public var version: String
        public var pid: Int32
        public var startedAt: Date
        public var uptimeSeconds: Double
        public var socket: String
        public var ledger: String
        public var plans: Int
        public var planProblems: [PlanRegistry.Problem]
        public var runs: [RunStatus]
        /// Bytes restored in the last minute, per second.
        public var bytesPerSecond: Double
        /// With a shared (PostgreSQL) ledger: this daemon's host name and every host of the fleet.
        public var host: String?
        public var hosts: [HostRecord]?
    }

    func status() async throws -> Status { try await RunQueries(context: context).status() }

    // MARK: Plans

    /// `plans`: one loaded plan.
    public struct PlanInfo: Codable, Sendable {
        public var name: String
        public var file: String
        public var description: String?
        public var products: [String]
        public var waves: Int
        public var snapshots: String
        public var target: String
        public var sandbox: String?
        public var schedule: String?
        public var nextExercise: Date?
        /// Every setting as it takes effect, defaults included.
        public var settings: PlanSettings
    }

    /// `plans`: the loaded plans and the problems with plan files.
    public struct PlansResult: Codable, Sendable {
        public var plans: [PlanInfo]
        public var problems: [PlanRegistry.Problem]
    }

    /// `reload`: the plans now served and the problems found.
    public struct ReloadResult: Codable, Sendable {
        public var plans: [String]
        public var problems: [PlanRegistry.Problem]
    }

    func plans() -> PlansResult {
        let now = context.clock.now()
        let infos = context.plans.plans.map { entry in
            PlanInfo(name: entry.plan.name, file: entry.file, description: entry.plan.description,
                     products: entry.plan.products.map(\.name), waves: entry.plan.waves.count, snapshots: entry.plan.snapshots,
                     target: entry.plan.target.text, sandbox: entry.plan.sandbox?.text, schedule: entry.plan.schedule?.exercise.text,
                     nextExercise: entry.plan.schedule?.exercise.nextFire(after: now), settings: PlanSettings(entry.plan))
        }
        return PlansResult(plans: infos, problems: context.plans.problems)
    }

    struct CheckResult: Codable {
        var ok: Bool
        var plan: String?
        var errors: [Diagnostic]
        var settings: PlanSettings?
    }

    func planCheck(_ request: ControlRequest, peer: PeerCredentials) throws -> CheckResult {
        do {
            let plan: Plan
            if let text = try request.string("text") {
                guard text.utf8.count <= YAMLReader.maxBytes else { throw ControlError(.tooLarge, "plan text over 1 MiB") }
                plan = try PlanLoader.load(text: text, file: try request.string("file") ?? "plan.yaml", baseDirectory: context.plans.directory)
            } else if let name = try request.string("plan") {
                guard let entry = context.plans.plans.first(where: { $0.plan.name == name }) else {
                    throw ControlError(.notFound, "no plan named \(name) is loaded")
                }
                plan = try PlanLoader.load(path: entry.file)
            } else {
                throw ControlError(.invalidParams, "give \"text\" (the plan's YAML) or \"plan\" (a loaded plan's name)")
            }
            return CheckResult(ok: true, plan: plan.name, errors: [], settings: PlanSettings(plan))
        } catch let error as DiagnosticsError {
            return CheckResult(ok: false, plan: nil, errors: error.diagnostics)
        }
    }

    // MARK: Runs

    /// Starts a restore or exercise (returns the run), or answers a dry run (returns its report;
    /// nothing is written).
    func startRun(_ request: ControlRequest, peer: PeerCredentials) async throws -> Data {
        let planName = try request.requiredString("plan")
        guard let plan = context.plans.plan(named: planName) else {
            let known = context.plans.plans.map(\.plan.name).joined(separator: ", ")
            throw ControlError(.notFound, "no plan named \"\(planName)\" is loaded (loaded: \(known.isEmpty ? "none" : known)); check plans_dir and `lifeboat reload`")
        }
        let modeText = try request.string("mode") ?? "restore"
        guard let mode = RunMode(rawValue: modeText) else {
            throw ControlError(.invalidParams, "\"mode\" must be restore, exercise, dry-run or delete, found \"\(modeText)\"")
        }
        if mode == .delete { return try await startDelete(request, plan: plan, peer: peer) }
        let sites = try request.strings("sites")
        for site in sites ?? [] where !Identifier.isValid(site) {
            throw ControlError(.invalidParams, "\"\(site)\" is not a valid site id; \(Identifier.rule)")
        }
        let scale = try request.int("scale")
        if let scale, scale < 1 { throw ControlError(.invalidParams, "\"scale\" must be at least 1") }
        let seed = try request.int("seed"), keep = try request.bool("keep")
        if mode != .exercise, scale != nil || seed != nil || keep != nil {
            // Refused rather than recorded on a run they do nothing for.
            throw ControlError(.invalidParams, "\"scale\", \"seed\" and \"keep\" apply to exercises only, not to a \(mode.rawValue)")
        }
        var runRequest = RunRequest(plan: plan, mode: mode, sites: sites, incidentAt: try request.time("incident_at"),
                                    asOf: try request.time("as_of"), declaredAt: try request.time("declared_at"),
                                    scale: scale, seed: seed.map(Int64.init), keepSandbox: keep ?? false,
                                    startedBy: peer.description)
        runRequest.fromSnapshots = try request.bool("from_snapshots") ?? false
        if let rehearse = try request.string("rehearse") {
            guard rehearse == "delete" else { throw ControlError(.invalidParams, "\"rehearse\" must be \"delete\", found \"\(rehearse)\"") }
            guard mode == .exercise else { throw ControlError(.invalidParams, "\"rehearse\" applies to exercises only, not to a \(mode.rawValue)") }
            runRequest.rehearse = rehearse
        }
        if mode == .dryRun {
            return ControlResponse.success(id: request.id, try await context.runs.engine.dryRun(runRequest))
        }
        return ControlResponse.success(id: request.id, try await context.runs.start(runRequest))
    }

    public struct RunDetail: Codable, Sendable {
        public var run: RunRecord
        public var jobs: [JobRecord]
        public var summary: RunSummary
        public var active: Bool
        /// Why it waits for a run slot (queued behind which runs, the limit), when it does.
        public var waiting: RunWait?
    }

    func showRun(_ runId: String) async throws -> RunDetail { try await RunQueries(context: context).detail(runId) }

    /// Streams the run's events until it ends: one response per event, then the final state.
    func watch(_ request: ControlRequest, send: @Sendable (Data) async throws -> Void) async throws {
        let runId = try request.requiredString("run")
        // Subscribe before reading the current state so no event falls in between.
        let events = context.bus.subscribe(runId: runId)
        let detail = try await showRun(runId)
        try await send(ControlResponse.success(id: request.id, WatchEvent(snapshot: detail)))
        if detail.active {
            for await event in events {
                if event.kind == .finished { break }
                try await send(ControlResponse.success(id: request.id, WatchEvent(event: event)))
            }
        }
        let final = try await showRun(runId)
        try await send(ControlResponse.success(id: request.id, WatchEvent(done: final)))
    }

    /// One line of `run.watch`: the opening snapshot, an event, or the end with the final state.
    public struct WatchEvent: Codable, Sendable {
        public var snapshot: RunDetail?
        public var event: RunEvent?
        public var done: RunDetail?

        init(snapshot: RunDetail) { self.snapshot = snapshot }
        init(event: RunEvent) { self.event = event }
        init(done: RunDetail) { self.done = done }
    }
}
