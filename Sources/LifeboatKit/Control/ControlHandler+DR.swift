import Foundation

extension ControlHandler {
    /// Rollback, quarantine, reports and schedules.
    func respondDR(_ request: ControlRequest, peer: PeerCredentials) async throws -> Data {
        let id = request.id
        switch request.command {
        case "rollback":
            let runId = try request.requiredString("run")
            guard !context.runs.isActive(runId) else {
                throw ControlError(.conflict, "run \(runId) is still active; cancel it or let it finish before rolling back")
            }
            // The destinations it puts data back into are held meanwhile, like a run's: a restore
            // going there now (from quarantine too) and a rollback never cross.
            let site = try request.string("site"), product = try request.string("product")
            let holds = context.runs.engine.environment.guardrails.holds
            let holder = "rollback of \(runId)"
            let destinations = try await context.ledger.jobs(runId: runId)
                .filter { (site == nil || $0.site == site) && (product == nil || $0.product == product) }
                .map { (path: ResolvedPath.of($0.destination), job: $0.name) }
            do {
                try holds.take(run: holder, destinations)
            } catch let refusal as SafetyRefusal {
                throw ControlError(.conflict, refusal.message)
            }
            defer { holds.release(run: holder) }
            do {
                let outcomes = try await Rollback(ledger: context.ledger, clock: context.clock)
                    .rollback(runId: runId, site: try request.string("site"), product: try request.string("product"),
                              force: try request.bool("force") ?? false || request.bool("force_aside") ?? false, by: peer.description)
                return ControlResponse.success(id: id, outcomes)
            } catch let refusal as Rollback.Refusal {
                throw ControlError(.conflict, refusal.message)
            }
        case "quarantine.list":
            return ControlResponse.success(id: id, try await QuarantineManager(ledger: context.ledger, clock: context.clock).list())
        case "quarantine.purge":
            var olderThan: DurationSpec?
            if let text = try request.string("older_than") {
                guard let d = DurationSpec(parsing: text) else { throw ControlError(.invalidParams, "\"older_than\" must be a duration like 30d, found \"\(text)\"") }
                olderThan = d
            }
            do {
                // Data a going run may need (its destination is held) is never purged under it.
                let holds = context.runs.engine.environment.guardrails.holds
                let result = try await QuarantineManager(ledger: context.ledger, clock: context.clock)
                    .purge(inUse: { holds.holder(of: ResolvedPath.of($0)) != nil }, olderThan: olderThan, dryRun: try request.bool("dry_run") ?? false,
                           confirmed: try request.bool("yes") ?? false, by: peer.description)
                return ControlResponse.success(id: id, result)
            } catch let refusal as Rollback.Refusal {
                throw ControlError(.conflict, refusal.message)
            }
        case "report":
            let runId = try request.requiredString("run")
            let formatText = try request.string("format") ?? "md"
            guard let format = ReportFormat(rawValue: formatText) else {
                throw ControlError(.invalidParams, "\"format\" must be md, json or html, found \"\(formatText)\"")
            }
            let report = try await ReportBuilder.build(runId: runId, ledger: context.ledger, now: context.clock.now())
            return ControlResponse.success(id: id, ReportResult(run: runId, format: format.rawValue, content: try report.render(format)))
        case "schedules":
            return ControlResponse.success(id: id, try await context.scheduler.upcoming())
        default:
            throw ControlError(.unknownCommand, "unknown command \(request.command)")
        }
    }

    /// `report`: a run's report rendered in one format.
    public struct ReportResult: Codable, Sendable {
        public var run: String
        public var format: String
        public var content: String
    }
}
