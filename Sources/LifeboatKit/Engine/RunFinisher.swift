import Foundation
import Logging

/// What happens when a run reaches its end, before anyone is told it ended: the report is
/// written, and an exercise's sandbox data (Lifeboat's own) is removed unless the run keeps it.
/// The cleanup is a recorded step (`runs.cleanup`: pending → done | failed): a process killed
/// before it finished leaves it pending, and the next start resumes it.
public struct RunFinisher: Sendable {
    let ledger: any Ledger
    let reportsDirectory: String
    let logger: Logger

    public init(ledger: any Ledger, reportsDirectory: String, logger: Logger) {
        self.ledger = ledger
        self.reportsDirectory = reportsDirectory
        self.logger = logger
    }

    /// Writes the report and, when pending, cleans the sandbox. Returns the run as recorded then.
    public func finished(_ run: RunRecord, plan: Plan?) async -> RunRecord {
        var run = run
        // The rehearsal of a delete comes before the report, which shows it.
        if run.mode == .exercise, run.rehearse == "delete", run.state == .succeeded {
            run = await rehearse(run, plan: plan)
        }
        await writeReport(run)
        guard run.cleanup == RunRecord.cleanupPending else { return run }
        return await cleanUp(run, plan: plan)
    }

    /// After a restart, for an exercise whose cleanup is owed: a rehearsal of a delete that a
    /// crash stopped (no outcome recorded) is done again — the trees it had soft-deleted put
    /// back first, by identity — and the report rewritten; then the sandbox is cleaned.
    public func resume(_ run: RunRecord, plan: Plan?) async -> RunRecord {
        var run = run
        if run.mode == .exercise, run.rehearse == "delete", run.state == .succeeded,
           let events = try? await ledger.events(runId: run.id, afterId: 0, limit: 100_000),
           !events.contains(where: { $0.kind == "rehearsal.passed" || $0.kind == "rehearsal.failed" }) {
            logger.notice("redoing the rehearsal of a delete a restart stopped", metadata: ["run.id": "\(run.id)"])
            await DeleteRehearsal.putBack(run, ledger: ledger)
            run = await rehearse(run, plan: plan)
            await writeReport(run)
        }
        run.cleanup = RunRecord.cleanupPending
        return await cleanUp(run, plan: plan)
    }

    private func rehearse(_ run: RunRecord, plan: Plan?) async -> RunRecord {
        var run = run
        let outcome = await DeleteRehearsal.run(run, plan: plan, ledger: ledger)
        if !outcome.problems.isEmpty {
            run.state = .failed
            run.note = "rehearsal of delete failed: " + outcome.problems.prefix(5).joined(separator: "; ")
        }
        run.note = run.note ?? String(format: "rehearsal of delete passed: %d target(s) byte-identical after undelete, undelete RTO max %.3f s",
                                      outcome.identical, outcome.undeleteSeconds.max() ?? 0)
        try? await ledger.updateRun(run)
        try? await ledger.flush()
        return run
    }

    private func writeReport(_ run: RunRecord) async {
        do {
            let path = try await ReportBuilder.write(runId: run.id, ledger: ledger, directory: reportsDirectory, now: Date())
            logger.info("report written", metadata: ["run.id": "\(run.id)", "path": "\(path)"])
        } catch {
            logger.error("could not write the run's report", metadata: ["run.id": "\(run.id)", "error": "\(error)"])
        }
    }

    /// Removes what the exercise committed into its sandbox — each job's data only while it is
    /// still the directory that job committed (by identity) — and the run's emptied folders.
    /// Records the outcome on the run, with an event.
    public func cleanUp(_ run: RunRecord, plan: Plan?) async -> RunRecord {
        var run = run
        CrashPoint.beforeExerciseCleanup.hit()
        do {
            let jobs = try await ledger.jobs(runId: run.id)
            var removed = 0
            for job in jobs where job.state == .succeeded || job.state == .failed {
                // A stop: what is left stays owed, and the next start resumes it.
                if Task.isCancelled {
                    logger.notice("exercise sandbox cleanup stopped by the shutdown; the next start resumes it", metadata: ["run.id": "\(run.id)"])
                    return run
                }
                guard let identity = job.commitIdentity.flatMap(FileIdentity.init(parsing:)),
                      FileIdentity(path: job.destination) == identity else { continue }
                try StagingRecovery.removeCommitted(path: job.destination, identity: identity)
                removed += 1
            }
            // Empty folders up to the run's own sandbox folder ({run}) go too.
            if let sandbox = plan?.sandbox, let runRoot = Self.runRoot(of: sandbox, run: run.id) {
                for job in jobs {
                    var dir = URL(fileURLWithPath: job.destination).deletingLastPathComponent().path
                    while dir.hasPrefix(runRoot) && dir.count >= runRoot.count {
                        if rmdir(dir) != 0 && errno != ENOENT { break }
                        dir = URL(fileURLWithPath: dir).deletingLastPathComponent().path
                    }
                }
            }
            run.cleanup = RunRecord.cleanupDone
            try await ledger.updateRun(run)
            ledger.postEvent(LedgerEvent(runId: run.id, at: Date(), kind: "exercise.cleaned",
                                         message: "removed the sandbox data of \(removed) job(s)"))
            try await ledger.flush()
            logger.info("exercise sandbox removed", metadata: ["run.id": "\(run.id)", "jobs": "\(removed)"])
        } catch {
            run.cleanup = "failed: \(error)"
            logger.error("could not remove exercise sandbox data", metadata: ["run.id": "\(run.id)", "error": "\(error)"])
            try? await ledger.updateRun(run)
            ledger.postEvent(LedgerEvent(runId: run.id, at: Date(), kind: "exercise.cleanup-failed",
                                         message: "could not remove the sandbox data: \(error); it is retried at the next start of lifeboatd"))
            try? await ledger.flush()
        }
        return run
    }

    /// `/var/lib/lifeboat-sandbox/<run>` for `/var/lib/lifeboat-sandbox/{run}/{site}/{product}`.
    static func runRoot(of sandbox: PathTemplate, run: String) -> String? {
        let segments = sandbox.text.split(separator: "/")
        guard let index = segments.firstIndex(where: { $0.contains("{run}") }) else { return nil }
        let prefix = "/" + segments[...index].joined(separator: "/")
        return (try? PathTemplate(prefix))?.render([.run: run])
    }
}
