import Foundation
import Logging

extension ControlCall {
    /// Going on with a delete run (resume after its gate, retry of a job) deletes more: that is a
    /// deleter's decision too.
    func requireDeleterForDeleteRun(_ runId: String, what: String) async throws {
        guard try await services.ledger.run(id: runId)?.mode == .delete, !services.access.mayDelete(peer) else { return }
        services.logger.warning("delete refused", metadata: ["run.id": "\(runId)", "uid": "\(peer.uid)", "pid": "\(peer.pid)", "why": "\(what) a delete run"])
        throw ControlError(.forbidden, "\(what) delete run \(runId) deletes more: it needs a deleter (root, or `deleters` in the daemon's config); \(peer) is not one")
    }
}

extension Control.RunStart {
    /// `run.start {plan, mode: "delete", sites, products?, reason?, dry_run? | confirm}`: a soft
    /// delete, behind its layers of protection (DESIGN.md "Soft deletes"): only root or a deleter
    /// may delete; every id must name an existing target of the plan; the plan's `max_sites`; and
    /// the token of a dry run over the very same selection, plan version and target content.
    /// Every attempt is logged; a refused real delete is recorded in the ledger as a run (up to
    /// `AccessControl.recordedRefusals` per caller within `refusalWindow`; the log has them all).
    func startDelete(_ call: ControlCall, plan: Plan) async throws -> DeleteAnswer {
        let dryRun = self.dryRun ?? false
        let sites = self.sites ?? []
        let peer = call.peer
        if let reason, reason.count > 2_000 { throw ControlError(.invalidParams, "\"reason\" is over 2000 characters") }
        if dryRun, confirm != nil { throw ControlError(.invalidParams, "give \"dry_run\" or \"confirm\", not both") }
        var runRequest = RunRequest(plan: plan, mode: .delete, startedBy: peer.description)
        runRequest.reason = reason
        runRequest.products = products
        let logger = call.services.logger
        let engine = call.services.runtime.engine
        let attempt: [String: String] = ["plan": plan.name, "uid": "\(peer.uid)", "pid": "\(peer.pid)", "sites": "\(sites.count)",
                                         "dry_run": "\(dryRun)", "reason": reason ?? ""]

        /// Logs and (for a real delete) records the refusal, then throws it.
        func refuse(_ code: ControlError.Code, _ message: String) async throws -> Never {
            var metadata = attempt.mapValues { Logger.MetadataValue.string($0) }
            metadata["why"] = .string(message)
            logger.warning("delete refused", metadata: metadata)
            guard !dryRun else { throw ControlError(code, message) }
            guard call.services.access.mayRecordRefusal(of: peer, at: call.services.clock.now()) else {
                throw ControlError(code, message + " (this attempt is in the daemon's log only: \(peer) made more than \(AccessControl.recordedRefusals) refused deletes within \(Int(AccessControl.refusalWindow / 60)) minutes)")
            }
            do {
                let run = try await engine.recordRefusedDelete(runRequest, sites: sites, refusal: message)
                throw ControlError(code, message + " (this attempt is recorded as run \(run.id))")
            } catch let error as ControlError {
                throw error
            } catch {
                throw ControlError(code, message + " (recording this attempt failed: \(error))")
            }
        }

        logger.notice("delete requested", metadata: attempt.mapValues { .string($0) })
        if !dryRun, !call.services.access.mayDelete(peer) {
            try await refuse(.forbidden, "delete needs a deleter: root, or a uid or group listed under `deleters` in the daemon's config; \(peer) is not one (being an admin is not enough)")
        }
        let protected = engine.environment.guardrails.protectedTrees(for: plan, mode: .delete)
        let selection: DeleteSelection
        do {
            // Walks every target (sizes, digests): blocking work, on the bounded pool.
            selection = try await runBlocking(flag: CancellationFlag()) {
                try DeleteSelection.resolve(plan: plan, sites: sites, products: products, protected: protected)
            }
        } catch let refusal as DeleteRefusal {
            try await refuse(.rejected, refusal.message)
        }
        if dryRun {
            return DeleteAnswer(dryRun: true, selection: selection, run: nil)
        }
        guard let confirm else {
            try await refuse(.rejected, "a delete needs --confirm TOKEN: run the same `lifeboat delete \(plan.name) … --dry-run` first, check what it lists, then give its token")
        }
        guard confirm == selection.token else {
            try await refuse(.rejected, "the confirmation token \(confirm) does not match this delete of \(selection.sites.count) site(s) of plan \(plan.name): "
                             + "the sites (or their order, which decides the waves), products, the plan or the targets' content differ from the dry run that gave it; run the same delete with --dry-run again and check what it lists")
        }
        let run: RunRecord
        do {
            run = try await call.services.runs.startDelete(selection, request: runRequest)
        } catch let refusal as SafetyRefusal {
            try await refuse(.conflict, refusal.message)
        }
        logger.notice("delete started", metadata: ["run.id": "\(run.id)", "plan": "\(plan.name)", "uid": "\(peer.uid)", "pid": "\(peer.pid)",
                                                   "sites": "\(selection.sites.joined(separator: ","))", "token": "\(selection.token)"])
        return DeleteAnswer(dryRun: false, selection: selection, run: run)
    }
}
