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
           let events = try? await ledger.allEvents(runId: run.id),
           !events.contains(where: { $0.kind == "rehearsal.passed" || $0.kind == "rehearsal.failed" }) {
            logger.notice("redoing the rehearsal of a delete a restart stopped", metadata: ["run.id": "\(run.id)"])
            await DeleteRehearsal.putBack(run, ledger: ledger)
            run = await rehearse(run, plan: plan)
            await writeReport(run)
        }
        run.cleanup = RunRecord.cleanupPending
        return await cleanUp(run, plan: plan, afterRestart: true)
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
            return
        }
        if let shared = ledger as? any SharedLedger, shared.holdsBackEvents(runId: run.id) { writeAgainWithHeldEvents(run, shared) }
    }

    /// Events of the run that a session holding the events' lock held back at its end are not in
    /// the report just written: it is written again once they are in the ledger (checked every
    /// second while this process runs; a stop before then drops them, and says so).
    private func writeAgainWithHeldEvents(_ run: RunRecord, _ shared: any SharedLedger) {
        logger.notice("the run's report was written without events the ledger holds back; it is written again once they are in",
                      metadata: ["run.id": "\(run.id)"])
        let (ledger, directory, logger) = (self.ledger, reportsDirectory, self.logger)
        Task {
            while shared.holdsBackEvents(runId: run.id) {
                try await Task.sleep(for: .seconds(1))
            }
            do {
                let path = try await ReportBuilder.write(runId: run.id, ledger: ledger, directory: directory, now: Date())
                logger.notice("report written again, with the events the ledger held back", metadata: ["run.id": "\(run.id)", "path": "\(path)"])
            } catch {
                logger.warning("could not write the run's report again with the events the ledger held back",
                               metadata: ["run.id": "\(run.id)", "error": "\(error)"])
            }
        }
    }

    /// Removes what the exercise committed into its sandbox — each job's data only while it is
    /// still the directory that job committed (by identity) — and the run's emptied folders.
    /// Records the outcome on the run, with an event: `done`, or `incomplete: …` naming the jobs
    /// whose data is no longer where they committed it (moved, replaced, or reached through a
    /// link now), which is left wherever it is.
    /// - Parameter afterRestart: a cleanup the restart stopped may have removed some data
    ///   already, so a job's path found empty is not called moved.
    public func cleanUp(_ run: RunRecord, plan: Plan?, afterRestart: Bool = false) async -> RunRecord {
        var run = run
        CrashPoint.beforeExerciseCleanup.hit()
        do {
            let jobs = try await ledger.jobs(runId: run.id)
            let runRoot = plan?.sandbox.flatMap { Self.runRoot(of: $0, run: run.id) }
            var removed = 0
            var leftAlone: [String] = []
            // Only what was committed: a job that failed its checks left nothing in the sandbox.
            for job in jobs where job.committed {
                // A stop: what is left stays owed, and the next start resumes it.
                if Task.isCancelled {
                    logger.notice("exercise sandbox cleanup stopped by the shutdown; the next start resumes it", metadata: ["run.id": "\(run.id)"])
                    return run
                }
                guard let identity = job.commitIdentity.flatMap(FileIdentity.init(parsing:)) else { continue }
                guard FileIdentity(path: job.destination) == identity else {
                    if let why = Self.notThere(job.destination, runRoot: runRoot, afterRestart: afterRestart) {
                        leftAlone.append("\(job.name) (\(why))")
                    }
                    continue
                }
                try StagingRecovery.removeCommitted(path: job.destination, identity: identity)
                removed += 1
            }
            // Empty folders up to the run's own sandbox folder ({run}) go too.
            if let runRoot {
                for job in jobs {
                    var dir = URL(fileURLWithPath: job.destination).deletingLastPathComponent().path
                    while dir.hasPrefix(runRoot) && dir.count >= runRoot.count {
                        if rmdir(dir) != 0 && errno != ENOENT { break }
                        dir = URL(fileURLWithPath: dir).deletingLastPathComponent().path
                    }
                }
            }
            var message = "removed the sandbox data of \(removed) job(s)"
            if leftAlone.isEmpty {
                run.cleanup = RunRecord.cleanupDone
            } else {
                let list = leftAlone.prefix(10).joined(separator: "; ") + (leftAlone.count > 10 ? "; … and \(leftAlone.count - 10) more" : "")
                let left = "the data of \(leftAlone.count) job(s) is no longer where the exercise committed it and is left where it is, for you to find and remove: \(list)"
                run.cleanup = RunRecord.cleanupIncomplete + left
                message += "; " + left
            }
            try await ledger.updateRun(run)
            ledger.postEvent(LedgerEvent(runId: run.id, at: Date(), kind: "exercise.cleaned", message: message))
            try await ledger.flush()
            if leftAlone.isEmpty {
                logger.info("exercise sandbox removed", metadata: ["run.id": "\(run.id)", "jobs": "\(removed)"])
            } else {
                logger.warning("exercise sandbox removed, except data no longer where it was committed",
                               metadata: ["run.id": "\(run.id)", "jobs": "\(removed)", "left": "\(leftAlone.joined(separator: "; "))"])
            }
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

    /// Why the data a job committed at `destination` is not there: a symbolic link on the way
    /// below the run's sandbox folder, other data at the path, or nothing (not said after a
    /// restart, when the cleanup it stopped may have removed it).
    static func notThere(_ destination: String, runRoot: String?, afterRestart: Bool) -> String? {
        if let runRoot, ResolvedPath.isInside(destination, runRoot) {
            var path = runRoot
            let below = destination.dropFirst(runRoot.count).split(separator: "/")
            for component in [Substring("")] + below {
                if !component.isEmpty { path += "/" + component }
                if FileSystem.lstatKind(path) == .symlink { return "\(path) is a symbolic link now" }
            }
        }
        if FileIdentity(path: destination) != nil { return "\(destination) holds other data now" }
        return afterRestart ? nil : "nothing is at \(destination) now"
    }

    /// `/var/lib/lifeboat-sandbox/<run>` for `/var/lib/lifeboat-sandbox/{run}/{site}/{product}`.
    static func runRoot(of sandbox: PathTemplate, run: String) -> String? {
        let segments = sandbox.text.split(separator: "/")
        guard let index = segments.firstIndex(where: { $0.contains("{run}") }) else { return nil }
        let prefix = "/" + segments[...index].joined(separator: "/")
        return (try? PathTemplate(prefix))?.render([.run: run])
    }
}
