import Foundation

extension Control.Rollback: ServedCommand {
    func answer(_ call: ControlCall) async throws -> [LifeboatKit.Rollback.Outcome] {
        try await call.services.runs.rollback(runId: run, site: site, product: product, force: force ?? false || forceAside ?? false,
                                              by: call.peer.description)
    }
}

extension Control.QuarantineList: ServedCommand {
    func answer(_ call: ControlCall) async throws -> [QuarantineManager.Entry] {
        // The sizes on disk are measured once the ledger has answered (a walk is not a wait on it).
        let records = try await RunQueries(services: call.services).read { try await $0.quarantine(includePurged: false) }
        return QuarantineManager(ledger: call.services.ledger, clock: call.services.clock).entries(records)
    }
}

extension Control.QuarantinePurge: ServedCommand {
    func answer(_ call: ControlCall) async throws -> QuarantineManager.PurgeResult {
        var age: DurationSpec?
        if let olderThan {
            guard let d = DurationSpec(parsing: olderThan) else {
                throw ControlError(.invalidParams, "\"older_than\" must be a duration like 30d, found \"\(olderThan)\"")
            }
            age = d
        }
        // Data a going run may need (its destination is held) is never purged under it.
        let holds = call.services.runtime.engine.environment.guardrails.holds
        return try await QuarantineManager(ledger: call.services.ledger, clock: call.services.clock)
            .purge(inUse: { holds.holder(of: ResolvedPath.of($0)) != nil }, olderThan: age, dryRun: dryRun ?? false,
                   confirmed: yes ?? false, by: call.peer.description)
    }
}

extension Control.Report: ServedCommand {
    func answer(_ call: ControlCall) async throws -> ReportResult {
        let format = self.format ?? .md
        let (run, now) = (run, call.services.clock.now())
        let report = try await RunQueries(services: call.services).read { try await ReportBuilder.build(runId: run, ledger: $0, now: now) }
        return ReportResult(run: run, format: format.rawValue, content: try report.render(format))
    }
}
