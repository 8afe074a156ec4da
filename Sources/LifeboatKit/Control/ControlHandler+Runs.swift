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
        let mode = self.mode ?? .restore
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
    func answer(_ call: ControlCall) async throws -> [RunRecord] { try await RunQueries(services: call.services).runs(limit: limit ?? 50) }
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
    func answer(_ call: ControlCall) async throws -> WatchEvent {
        let queries = RunQueries(services: call.services)
        // Subscribe before reading the current state so no event falls in between.
        let batches = call.services.runtime.bus.watch(runId: run)
        // Whatever ends the answer (an unknown or finished run, an error, the client gone) ends
        // the subscription.
        defer { batches.close() }
        let detail = try await queries.detail(run)
        try await call.send(WatchEvent(snapshot: detail))
        if detail.active {
            try await call.whileConnected {
                batches: for await batch in batches {
                    for event in batch {
                        if event.kind == .finished { break batches }
                        try await call.send(WatchEvent(event: event))
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
        return try await call.services.runs.retry(runId: run, jobId: job)
    }
}
