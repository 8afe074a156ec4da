import Foundation

extension Control.RunStart: ServedCommand {
    /// Starts a restore or exercise (answers the run), or answers a dry run (its report; nothing
    /// is written), or goes on with a delete (`startDelete`).
    func answer(_ call: ControlCall) async throws -> Outcome {
        let services = call.services
        guard let loaded = services.plans.plan(named: plan) else {
            let known = services.plans.plans.map(\.plan.name).joined(separator: ", ")
            throw ControlError(.notFound, "no plan named \"\(plan)\" is loaded (loaded: \(known.isEmpty ? "none" : known)); check plans_dir and `lifeboat reload`")
        }
        if mode == .delete { return .delete(try await startDelete(call, plan: loaded)) }
        for site in sites ?? [] where !Identifier.isValid(site) {
            throw ControlError(.invalidParams, "\"\(site)\" is not a valid site id; \(Identifier.rule)")
        }
        for product in products ?? [] where !Identifier.isValid(product) {
            throw ControlError(.invalidParams, "\"\(product)\" is not a valid product id; \(Identifier.rule)")
        }
        if let scale, scale < 1 { throw ControlError(.invalidParams, "\"scale\" must be at least 1") }
        if mode != .exercise, scale != nil || seed != nil || keep != nil {
            // Refused rather than recorded on a run they do nothing for.
            throw ControlError(.invalidParams, "\"scale\", \"seed\" and \"keep\" apply to exercises only, not to a \(mode.rawValue)")
        }
        var request = RunRequest(plan: loaded, mode: mode, sites: sites, incidentAt: incidentAt, asOf: asOf, declaredAt: declaredAt,
                                 scale: scale, seed: seed, keepSandbox: keep ?? false, startedBy: call.peer.description)
        request.fromSnapshots = fromSnapshots ?? false
        request.products = products
        if let rehearse {
            guard rehearse == "delete" else { throw ControlError(.invalidParams, "\"rehearse\" must be \"delete\", found \"\(rehearse)\"") }
            guard mode == .exercise else { throw ControlError(.invalidParams, "\"rehearse\" applies to exercises only, not to a \(mode.rawValue)") }
            request.rehearse = rehearse
        }
        if mode == .dryRun { return .dryRun(try await services.runtime.engine.dryRun(request)) }
        // An operator who gave up while a slow store was listed (Ctrl-C) started nothing.
        let hangup = call.hangup
        request.stillWanted = { !(hangup?.isSignalled ?? false) }
        do {
            return .started(try await services.runs.start(request))
        } catch let abandoned as RunAbandoned {
            services.logger.notice("run not started: its client went away while it was planned",
                                   metadata: ["plan": "\(plan)", "mode": "\(mode.rawValue)", "uid": "\(call.peer.uid)", "pid": "\(call.peer.pid)"])
            throw abandoned
        }
    }
}

extension Control.RunList: ServedCommand {
    func answer(_ call: ControlCall) async throws -> [RunRecord] {
        // As /api/v1/runs?limit= says it; a limit above the most served is served as the most.
        if let limit, limit < 1 { throw ControlError(.invalidParams, "limit must be a whole number ≥ 1, found \(limit)") }
        return try await RunQueries(services: call.services).runs(limit: limit ?? 50)
    }
}

/// A run verb the daemon answers.
protocol ServedRunVerb: RunVerb {
    static func answer(run: String, _ call: ControlCall) async throws -> Result
}

extension Control.RunCommand: ServedCommand where Verb: ServedRunVerb {
    func answer(_ call: ControlCall) async throws -> Verb.Result { try await Verb.answer(run: run, call) }
}

extension Control.Show: ServedRunVerb {
    static func answer(run: String, _ call: ControlCall) async throws -> RunDetail { try await RunQueries(services: call.services).detail(run) }
}

extension Control.Sites: ServedRunVerb {
    static func answer(run: String, _ call: ControlCall) async throws -> SiteReport { try await RunQueries(services: call.services).sites(run) }
}

extension Control.RunWatch: ServedCommand {
    /// Streams the run's events until it ends: one line per event, then the final state. Sent
    /// at most `pace` apart, each job's events in between collapsed to its latest (a run of many
    /// small jobs changes thousands of states a second; a watcher draws, or prints final states).
    /// With a shared ledger, the run is also followed in the ledger, every `ledgerLook`: the jobs
    /// of other hosts that no coordinator here tells of (the run is coordinated elsewhere, or
    /// was taken over from or by this host meanwhile), and the run's end when it ends elsewhere.
    func answer(_ call: ControlCall) async throws -> WatchEvent {
        let queries = RunQueries(services: call.services)
        // Subscribe before reading the current state so no event falls in between.
        let batches = call.services.runtime.bus.watch(runId: run)
        // Whatever ends the answer (an unknown or finished run, an error, the client gone) ends
        // the subscription.
        defer { batches.close() }
        let detail = try await queries.detail(run)
        try await call.send(WatchEvent(snapshot: detail))
        let shared = (call.services.ledger as? any SharedLedger).map { RunInLedger(ledger: $0, detail: detail) }
        if detail.active || (shared != nil && !detail.run.hasEnded) {
            try await call.whileConnected {
                var shared = shared
                watching: while let batch = await batches.batch(waitingUpTo: shared == nil ? .seconds(3_600) : Self.ledgerLook) {
                    for event in batch {
                        if event.kind == .finished { break watching }
                        // This host's bus and the ledger tell of the same jobs, each at its own
                        // pace: a job's state is told once, and never one it has moved past.
                        if event.kind == .job, let job = event.job, shared?.isNews(job) == false { continue }
                        if let run = event.run { shared?.saw(run) }
                        try await call.send(WatchEvent(event: event))
                    }
                    if var ledger = shared, ledger.due {
                        // Coordinated here, the run's own changes and its end come from the bus
                        // (its end once its report is written).
                        let here = call.services.runs.isActive(run)
                        // Not answered (the database restarting, this host cut off): looked at
                        // again, and not waited for once the host finds the ledger gone.
                        if let events = try? await ledger.look(at: call.services.clock.now(), runToo: !here, through: queries) {
                            for event in events { try await call.send(WatchEvent(event: event)) }
                        }
                        shared = ledger
                        if !here, ledger.run.hasEnded { break watching }
                    }
                    await batches.pause(Self.pace)
                    try Task.checkCancellation()
                }
            }
        }
        var done = try await queries.detail(run)
        if doneJobs == false { done.jobs = [] }
        return WatchEvent(done: done)
    }

    /// The least time between two batches of a watch's events.
    static let pace = Duration.milliseconds(100)
    /// How often a watch looks in a shared ledger at its run.
    static let ledgerLook = Duration.milliseconds(500)
}

/// A run as a watcher follows it in a shared ledger: the changes of its jobs and of the run
/// since the last look, as the events a coordinator tells, and what the watcher was told.
struct RunInLedger {
    let ledger: any SharedLedger
    private(set) var run: RunRecord
    /// How far on each job is, as the watcher was told it.
    private var told: [Int64: JobProgress]
    private var cursor: JobChangeCursor?
    private var looked: ContinuousClock.Instant?

    init(ledger: any SharedLedger, detail: RunDetail) {
        self.ledger = ledger
        run = detail.run
        told = Dictionary(detail.jobs.compactMap { job in job.id.map { ($0, JobProgress(job)) } }, uniquingKeysWith: max)
    }

    /// Whether a look is due (`Control.RunWatch.ledgerLook` since the last one).
    var due: Bool { looked.map { ContinuousClock.now - $0 >= Control.RunWatch.ledgerLook } ?? true }

    /// Whether the watcher is yet to be told `job` as it is: it is further on than what it was
    /// told (a later attempt, or a later state of the same one); remembered as told if so.
    mutating func isNews(_ job: JobRecord) -> Bool {
        guard let id = job.id else { return true }
        let progress = JobProgress(job)
        if let known = told[id], progress <= known { return false }
        told[id] = progress
        return true
    }

    /// The run as the watcher was told it.
    mutating func saw(_ run: RunRecord) { self.run = run }

    /// The jobs that moved on since the last look, then (`runToo`) the run, if it changed. The
    /// run is read first: a run that ended did so after its jobs, which the read after it sees.
    /// Nothing is taken as told unless both reads were answered.
    mutating func look(at now: Date, runToo: Bool, through queries: RunQueries) async throws -> [RunEvent] {
        looked = .now
        let (ledger, runId, cursor) = (ledger, run.id, cursor)
        let (latest, changed, next) = try await queries.read { _ in
            let latest = runToo ? try await ledger.run(id: runId) : nil
            let (changed, next) = try await ledger.jobChanges(runId: runId, since: cursor)
            return (latest, changed, next)
        }
        self.cursor = next
        var events = changed.filter { isNews($0) }.map { RunEvent(kind: .job, runId: run.id, at: now, job: $0) }
        if let latest, (latest.state, latest.note, latest.currentWave, latest.finishedAt) != (run.state, run.note, run.currentWave, run.finishedAt) {
            run = latest
            events.append(RunEvent(kind: .run, runId: run.id, at: now, run: latest))
        }
        return events
    }
}

/// How far on a job is: its attempt, then its state's place in the lifecycle. A job that goes
/// back to the queue within an attempt (interrupted) is not further on: it is told again when
/// its next attempt starts.
struct JobProgress: Comparable {
    var attempt: Int
    var step: Int

    init(_ job: JobRecord) {
        attempt = job.attempt
        switch job.state {
        case .pending: step = 0
        case .waiting: step = 1
        case .restoring: step = 2
        case .verifying: step = 3
        case .committing: step = 4
        case .succeeded, .failed, .cancelled, .skipped: step = 5
        }
    }

    static func < (a: Self, b: Self) -> Bool { (a.attempt, a.step) < (b.attempt, b.step) }
}

extension Control.Cancel: ServedRunVerb {
    static func answer(run: String, _ call: ControlCall) async throws -> RunStateChange {
        let forwarded = try await call.services.runs.cancel(runId: run, by: call.peer.description)
        return RunStateChange(run: run, state: "cancelling", forwarded: forwarded)
    }
}

extension Control.Resume: ServedRunVerb {
    static func answer(run: String, _ call: ControlCall) async throws -> RunStateChange {
        try await call.requireDeleterForDeleteRun(run, what: "resuming")
        let forwarded = try await call.services.runs.resume(runId: run, by: call.peer.description)
        return RunStateChange(run: run, state: "running", forwarded: forwarded)
    }
}

extension Control.JobRetry: ServedCommand {
    func answer(_ call: ControlCall) async throws -> RunRecord {
        try await call.requireDeleterForDeleteRun(run, what: "retrying a job of")
        return try await call.services.runs.retry(runId: run, job: job)
    }
}
