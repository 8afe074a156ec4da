import Foundation
import Logging

/// Creates, runs and resumes runs against a ledger. The daemon's run manager and the in-process
/// `lifeboat run` both go through it.
public struct Engine: Sendable {
    public let environment: RunEnvironment

    public init(environment: RunEnvironment) { self.environment = environment }

    /// Resolves a request into a run and records it (with all its jobs) in the ledger.
    public func create(_ request: RunRequest) async throws -> (run: RunRecord, jobs: [JobRecord]) {
        guard request.mode != .dryRun else { throw RunRequestError("a dry run is not recorded; use dryRun(_:)") }
        // A delete is created only from a resolved, confirmed selection (createDelete).
        guard request.mode != .delete else { throw RunRequestError("a delete needs a confirmed selection: lifeboat delete PLAN --sites … --dry-run, then --confirm TOKEN") }
        var prepared = try await RunPlanner.prepare(request, now: environment.clock.now(), stores: environment.stores)
        try await chooseSources(&prepared, fromSnapshots: request.fromSnapshots)
        guard request.stillWanted() else { throw RunAbandoned() }
        try checkDestinations(prepared, plan: request.plan)
        let jobs: [JobRecord]
        do {
            jobs = try await environment.ledger.createRun(prepared.run, jobs: prepared.jobs)
        } catch {
            environment.guardrails.holds.release(run: prepared.run.id)
            throw error
        }
        environment.ledger.postEvent(LedgerEvent(runId: prepared.run.id, at: environment.clock.now(), kind: "run.created",
                                                 message: "\(request.mode.rawValue) of plan \(request.plan.name) by \(request.startedBy): \(prepared.waves.map(\.count).reduce(0, +)) site(s), \(jobs.count) job(s)"))
        return (prepared.run, jobs)
    }

    /// A restore job whose target is gone and has unpurged soft-deleted data in quarantine (from a
    /// delete run) takes it from there — a rename back: RPO 0 relative to the deletion, RTO of a
    /// rename — instead of the newest snapshot, unless `fromSnapshots`, or unless it was deleted
    /// after the run's as-of (by default the incident): data deleted after the incident may hold
    /// the damage, as a snapshot taken after it may, and is no more restored than such a snapshot.
    /// Each job records its source.
    func chooseSources(_ prepared: inout RunPlanner.Prepared, fromSnapshots: Bool) async throws {
        guard prepared.run.mode == .restore else { return }
        var deleted: [String: QuarantineRecord] = [:]
        if !fromSnapshots {
            for entry in try await environment.ledger.quarantine(includePurged: false)
            where entry.reason == "delete" && entry.createdAt <= prepared.run.asOf {
                // The newest soft delete of a target wins.
                if let known = deleted[entry.originalPath], known.createdAt > entry.createdAt { continue }
                deleted[entry.originalPath] = entry
            }
        }
        for i in prepared.jobs.indices {
            var job = prepared.jobs[i]
            var st = stat()
            // Only the very tree deleted (its recorded identity) is renamed back into place.
            if let entry = deleted[job.destination], lstat(job.destination, &st) != 0, FileSystem.isDirectory(entry.path),
               entry.identity.map({ FileIdentity(path: entry.path)?.description == $0 }) ?? true {
                job.source = JobRecord.sourceQuarantine
                job.snapshotPath = entry.path
                job.snapshotTakenAt = entry.createdAt
                job.archiveBytes = 0
                job.rpoSeconds = 0
                job.rpoMet = true
            } else if job.snapshotPath != nil {
                job.source = JobRecord.sourceSnapshot
            }
            prepared.jobs[i] = job
        }
    }

    /// Records a soft delete of a resolved, confirmed selection as a run of mode `delete`, its
    /// jobs in the selection's waves, and holds its targets.
    public func createDelete(_ selection: DeleteSelection, request: RunRequest) async throws -> (run: RunRecord, jobs: [JobRecord]) {
        let now = environment.clock.now()
        let plan = request.plan
        var run = RunRecord(id: RunRecord.makeID(at: now), plan: plan.name, planPath: plan.sourcePath, planVersion: plan.version, mode: .delete, declaredAt: now,
                            incidentAt: now, asOf: now, createdAt: now, startedBy: request.startedBy,
                            rtoObjectiveSeconds: nil, rpoObjectiveSeconds: nil, totalWaves: selection.waves.count)
        run.reason = request.reason
        var jobs: [JobRecord] = []
        for (wave, sites) in selection.waves.enumerated() {
            for site in sites {
                for (order, product) in plan.products.enumerated() {
                    guard let target = selection.targets.first(where: { $0.site == site && $0.product == product.name }) else { continue }
                    var job = JobRecord(runId: run.id, site: site, product: product.name, wave: wave, priority: product.priority,
                                        productOrder: order, destination: target.destination)
                    // The content confirmed (the token's): the job moves the target only if it
                    // is still that when its wave comes, however long a gate held it.
                    job.treeDigest = target.digest
                    jobs.append(job)
                }
            }
        }
        let prepared = RunPlanner.Prepared(run: run, jobs: jobs, waves: selection.waves)
        try checkDestinations(prepared, plan: plan)
        let recorded: [JobRecord]
        do {
            recorded = try await environment.ledger.createRun(run, jobs: jobs)
        } catch {
            environment.guardrails.holds.release(run: run.id)
            throw error
        }
        environment.ledger.postEvent(LedgerEvent(runId: run.id, at: now, kind: "run.created",
                                                 message: "delete of plan \(plan.name) by \(request.startedBy): \(selection.sites.count) site(s) (\(selection.sites.joined(separator: ", "))), "
                                                     + "products \(selection.products.joined(separator: ", ")), \(jobs.count) target(s), \(ByteSize.format(selection.bytes)) in \(selection.files) file(s); "
                                                     + "token \(selection.token); reason: \(request.reason ?? "(none given)")"))
        try await environment.ledger.flush()
        return (run, recorded)
    }

    /// Records a refused delete as an ended run with no jobs (who, when, why it was refused), so
    /// that every attempt is in the ledger, `runs` and `show`.
    public func recordRefusedDelete(_ request: RunRequest, sites: [String], refusal: String) async throws -> RunRecord {
        let now = environment.clock.now()
        var run = RunRecord(id: RunRecord.makeID(at: now), plan: request.plan.name, planPath: request.plan.sourcePath,
                            planVersion: request.plan.version, mode: .delete,
                            state: .failed, declaredAt: now, incidentAt: now, asOf: now, createdAt: now, startedBy: request.startedBy,
                            rtoObjectiveSeconds: nil, rpoObjectiveSeconds: nil, totalWaves: 0)
        run.reason = request.reason
        run.finishedAt = now
        run.note = "refused: " + String(refusal.prefix(2_000))
        _ = try await environment.ledger.createRun(run, jobs: [])
        environment.ledger.postEvent(LedgerEvent(runId: run.id, at: now, kind: "delete.refused",
                                                 message: "delete of plan \(request.plan.name) by \(request.startedBy) refused; asked for site(s) "
                                                     + "\(sites.prefix(200).joined(separator: ", "))\(sites.count > 200 ? ", …" : ""); reason given: \(request.reason ?? "(none)"); \(refusal)"))
        try await environment.ledger.flush()
        return run
    }

    /// Refuses a run whose destinations, resolved, fall where it must not write — another run's
    /// held destination, one another job of the run also names, a snapshot store, the state
    /// directory or (for exercises) production — and holds them for the run when they do not.
    private func checkDestinations(_ prepared: RunPlanner.Prepared, plan: Plan) throws {
        let guardrails = environment.guardrails
        let protected = guardrails.protectedTrees(for: plan, mode: prepared.run.mode)
        let exercise = prepared.run.mode == .exercise
        var resolved: [(path: String, job: String)] = []
        resolved.reserveCapacity(prepared.jobs.count)
        for (job, path) in zip(prepared.jobs, ResolvedPath.all(prepared.jobs.map(\.destination))) {
            if let why = exercise ? protected.exerciseRefusal(path) : protected.restoreRefusal(path) {
                throw SafetyRefusal(message: "\(job.name): \(exercise ? "sandbox" : "target") \(job.destination) \(why); refusing to start the \(prepared.run.mode.rawValue)")
            }
            resolved.append((path, job.name))
        }
        try guardrails.holds.take(run: prepared.run.id, resolved)
    }

    /// Takes the destinations of a recorded run's unfinished jobs for it (a run resumed after a
    /// restart holds them from the moment the daemon serves again, queued or not).
    public func hold(runId: String) async throws {
        let jobs = try await environment.ledger.jobs(runId: runId)
        let unfinished = jobs.filter { !$0.state.isFinal }
        let held = try await environment.heldDestinations(runId: runId, unfinished: unfinished)
        try environment.guardrails.holds.take(run: runId, unfinished.compactMap { job in held[job.destination].map { (path: $0, job: job.name) } })
    }

    /// Runs (or resumes) a recorded run to its end, its halt-and-decision, or an interruption.
    /// Cancelling the calling task is a drain: the run is recorded `interrupted`.
    public func execute(runId: String, plan: Plan, control: RunControl = RunControl()) async throws -> RunRecord {
        guard let run = try await environment.ledger.run(id: runId) else {
            throw RunRequestError("no run \(runId) in the ledger")
        }
        guard !run.state.isFinal || run.isCancelling else { return run }
        let jobs = try await environment.ledger.jobs(runId: runId)
        let coordinator = RunCoordinator(run: run, jobs: jobs, plan: plan, control: control, environment: environment)
        return await coordinator.execute()
    }

    /// Resolves everything a run would do and forecasts it; writes nothing.
    public func dryRun(_ request: RunRequest) async throws -> DryRunReport {
        var request = request
        request.mode = request.mode == .dryRun ? .restore : request.mode
        var prepared = try await RunPlanner.prepare(request, now: environment.clock.now(), runID: "dry-run", stores: environment.stores)
        try await chooseSources(&prepared, fromSnapshots: request.fromSnapshots)
        let history = try await environment.ledger.throughput(plan: request.plan.name)
        let fallback = history.jobs > 0 ? history : try await environment.ledger.throughput(plan: nil)
        return DryRunReport(prepared: prepared, plan: request.plan, history: fallback)
    }
}

/// What a dry run found: the jobs in wave order with their snapshots and RPO, and a forecast.
public struct DryRunReport: Sendable, Codable {
    public struct Job: Sendable, Codable {
        public var site: String
        public var product: String
        public var wave: Int
        public var destination: String
        public var snapshot: String?
        public var snapshotTakenAt: Date?
        public var archiveBytes: Int64
        public var rpoSeconds: Double?
        public var rpoMet: Bool?
        /// `snapshot` or `quarantine` (soft-deleted data renamed back).
        public var source: String?
        /// Something is at the destination now: a restore moves it to quarantine (a site that
        /// was not lost would be rolled back to its snapshot).
        public var destinationHoldsData: Bool
    }

    public var plan: String
    public var incidentAt: Date
    public var asOf: Date
    public var waves: [[String]]
    public var jobs: [Job]
    public var missingSnapshots: Int
    public var archiveBytes: Int64
    /// Forecast wall time, from past throughput in the ledger; nil without history.
    public var forecastSeconds: Double?
    public var forecastBasis: String
    public var rtoObjectiveSeconds: Double?
    /// When the incident was declared (RTO is counted from it): the run's `--declared-at`, or now.
    public var declaredAt: Date
    /// The RTO the forecast finish would reach: the time already gone since the declaration plus
    /// the forecast wall time; nil without a forecast.
    public var forecastRtoSeconds: Double?

    /// What makes this dry run a failure to report (exit 1): jobs that would fail for want of a
    /// snapshot. Nil when every job has one.
    public var failure: String? {
        guard missingSnapshots > 0 else { return nil }
        return "\(missingSnapshots) of \(jobs.count) job(s) have no snapshot taken at or before \(Timestamp.iso(asOf)) and would fail"
            + (missingSnapshots == jobs.count ? " (every job): check the plan's snapshots store and --as-of" : "")
    }

    init(prepared: RunPlanner.Prepared, plan: Plan, history: ThroughputHistory) {
        self.plan = plan.name
        incidentAt = prepared.run.incidentAt
        asOf = prepared.run.asOf
        waves = prepared.waves
        jobs = prepared.jobs.map {
            Job(site: $0.site, product: $0.product, wave: $0.wave, destination: $0.destination, snapshot: $0.snapshotPath,
                snapshotTakenAt: $0.snapshotTakenAt, archiveBytes: $0.archiveBytes, rpoSeconds: $0.rpoSeconds, rpoMet: $0.rpoMet,
                source: $0.source, destinationHoldsData: prepared.run.mode == .restore && FileSystem.exists($0.destination))
        }
        missingSnapshots = prepared.jobs.filter { $0.snapshotPath == nil }.count
        archiveBytes = prepared.jobs.reduce(0) { $0 + $1.archiveBytes }
        rtoObjectiveSeconds = plan.objectives.rto.map { Double($0.seconds) }
        if let rate = history.bytesPerSecond, let perJob = history.secondsPerJob {
            // Each job streams at the measured per-job rate; `concurrency` run at once.
            let lanes = Double(max(1, min(plan.concurrency, prepared.jobs.count)))
            forecastSeconds = archiveBytes > 0
                ? Double(archiveBytes) / rate / lanes
                : perJob * Double(prepared.jobs.count) / lanes
            forecastBasis = "\(history.jobs) past job(s) at \(ByteSize.format(Int64(rate)))/s per job, \(Int(lanes)) at once"
        } else {
            forecastSeconds = nil
            forecastBasis = "no past runs in the ledger to forecast from"
        }
        declaredAt = prepared.run.declaredAt
        forecastRtoSeconds = forecastSeconds.map { prepared.run.createdAt.timeIntervalSince(prepared.run.declaredAt) + $0 }
    }
}
