import Foundation

extension Control.Rollback: ServedCommand {
    func answer(_ call: ControlCall) async throws -> [LifeboatKit.Rollback.Outcome] {
        let services = call.services
        guard !services.runs.isActive(run) else {
            throw ControlError(.conflict, "run \(run) is still active; cancel it or let it finish before rolling back")
        }
        // The destinations it puts data back into are held meanwhile, like a run's: a restore
        // going there now (from quarantine too) and a rollback never cross.
        let holds = services.runtime.engine.environment.guardrails.holds
        let holder = "rollback of \(run)"
        let destinations = try await services.ledger.jobs(runId: run)
            .filter { (site == nil || $0.site == site) && (product == nil || $0.product == product) }
            .map { (path: ResolvedPath.of($0.destination), job: $0.name) }
        do {
            try holds.take(run: holder, destinations)
        } catch let refusal as SafetyRefusal {
            throw ControlError(.conflict, refusal.message)
        }
        defer { holds.release(run: holder) }
        return try await LifeboatKit.Rollback(ledger: services.ledger, clock: services.clock)
            .rollback(runId: run, site: site, product: product, force: force ?? false || forceAside ?? false, by: call.peer.description)
    }
}

extension Control.QuarantineList: ServedCommand {
    func answer(_ call: ControlCall) async throws -> [QuarantineManager.Entry] {
        try await QuarantineManager(ledger: call.services.ledger, clock: call.services.clock).list()
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
        let report = try await ReportBuilder.build(runId: run, ledger: call.services.ledger, now: call.services.clock.now())
        return ReportResult(run: run, format: format.rawValue, content: try report.render(format))
    }
}
