import Foundation

/// One job of a run, from its start to its outcome, with its retries — and, after a crash or a
/// host lost mid-job, its recovery. The run's coordinator runs its jobs through it on one host;
/// with a shared ledger, every host's `JobWorker` runs the jobs it claimed through it.
struct JobRunner: Sendable {
    let run: RunRecord
    let plan: Plan
    let env: RunEnvironment
    /// Writes the job's transitions (fenced by the job's claim when it was claimed).
    let recorder: JobRecorder
    /// The trees the run must stay out of (nil: none checked, as in unit tests).
    let protected: ProtectedTrees?
    /// Where a job's destination resolved when its run took it: held here when the run is
    /// coordinated here, else as the ledger holds it (empty: not known).
    func held(_ job: JobRecord) async throws -> [String] {
        if let path = env.guardrails.holds.path(heldBy: .init(run: run.id, job: job.name)) { return [path] }
        return try await env.ledger.holds(runId: run.id, job: job.name).map(\.path)
    }

    private var quarantineReason: String { run.mode == .delete ? "delete" : "restore" }

    func tracker(for job: JobRecord) -> JobTracker {
        JobTracker(job: job, retention: plan.quarantine.retention.timeInterval, recorder: recorder, quarantineReason: quarantineReason)
    }

    /// What the executor needs to run `job` (its snapshot as recorded at planning).
    func context(for job: JobRecord) -> JobContext {
        let snapshot = job.snapshotPath.flatMap { path -> Snapshot? in
            guard let takenAt = job.snapshotTakenAt else { return nil }
            // A bucket's archive is not looked at here: its size was recorded from the listing.
            guard !S3Location.isS3(path) else {
                return Snapshot(site: job.site, product: job.product, takenAt: takenAt, path: path,
                                size: job.archiveBytes, sidecarPath: nil)
            }
            let sidecar = path + ".sha256"
            return Snapshot(site: job.site, product: job.product, takenAt: takenAt, path: path,
                            size: FileSystem.size(of: path) ?? 0, sidecarPath: FileSystem.exists(sidecar) ? sidecar : nil)
        }
        var context = JobContext(job: job, run: run, plan: plan, snapshot: snapshot, stores: env.stores)
        context.proceedsIfHeldElsewhere = env.ledger is any SharedLedger
        return context
    }

    /// Runs `job` with its retries. Never throws: every outcome is a job state (the outcome stands
    /// in memory even when the ledger cannot take it).
    func execute(_ job: JobRecord, control: RunControl) async -> JobRecord {
        var context = context(for: job)
        let tracker = tracker(for: job)
        let retry = plan.retry
        do {
            // A delete moves what is there; it reads no snapshot.
            if run.mode != .delete { _ = try context.requiredSnapshot() }
            // Where the destination really is now, symbolic links followed at every level.
            if let protected {
                let resolved = ResolvedPath.of(job.destination)
                let exercise = run.mode == .exercise
                if let why = exercise ? protected.exerciseRefusal(resolved) : protected.restoreRefusal(resolved) {
                    throw JobError(.sandbox, "\(job.name): \(exercise ? "exercise" : run.mode.rawValue) destination \(job.destination) \(why); refusing to touch it"
                                   + (exercise ? ": exercises never write into production, backups or Lifeboat's state" : ""))
                }
                // A link on the way changed since the run took the destination: the path now
                // leads where this run holds nothing (another site's data, another run's
                // destination). Nothing is touched; a retry takes the destination anew.
                let held = try await held(job)
                if let first = held.first, !held.contains(resolved) {
                    throw JobError(.sandbox, "\(job.name): destination \(job.destination) resolved to \(first) when run \(run.id) took it, and resolves to \(resolved) now (a symbolic link on its path changed); refusing to touch either. Check the link, then retry the job (\(job.retryCommand))")
                }
                // The parent staging opens (the destination itself may be a link the commit swaps).
                context.checkedParent = (try? StagingDirectory.split(job.destination).parent).map(ResolvedPath.of)
            }
            var attempt = 0
            while true {
                attempt += 1
                // Queued, not awaited: the executor's `reserved` record follows at once and is
                // durable, carrying this one with it (the group commit keeps order).
                let started = try await tracker.apply(.started(at: env.clock.now(), host: env.host))
                do {
                    var attemptContext = context
                    attemptContext.job = started
                    let result = try await env.executor.execute(attemptContext, observer: tracker)
                    let finished = try tracker.transition(.finished(result, at: env.clock.now(), timing: RunTiming(run)))
                    if finished.job.state == .succeeded, finished.job.fromQuarantine, let path = finished.job.snapshotPath {
                        try await closeSoftDelete(path, job: finished.job)
                    }
                    try await tracker.commit(finished)
                    if finished.job.state == .succeeded { CrashPoint.afterLedgerCommit.hit() }
                    return finished.job
                } catch let error as JobError where error.isTransient && attempt < retry.attempts && !control.isCancelled {
                    try await tracker.apply(.attemptFailed(message: error.message, backoff: "\(retry.backoff)"))
                    try await env.clock.sleep(for: .seconds(retry.backoff.seconds))
                }
            }
        } catch is PostRestoreInterrupted where !control.isCancelled {
            // A drain, after the commit: the record stays as it is (its commit recorded), and the
            // next start finds the commit and runs post_restore again.
            recorder.logger.notice("post_restore stopped by the shutdown; the next start runs it again",
                                   metadata: ["job": "\(job.name)"])
            return tracker.job
        } catch let stopped as PostRestoreInterrupted {
            // An operator's cancel after the commit stops only the hook, and says so.
            var result = stopped.result
            result.postRestoreError = "\(job.name): post_restore was stopped by a cancel after the commit; the restored data is committed and kept"
            do {
                let finished = try tracker.transition(.finished(result, at: env.clock.now(), timing: RunTiming(run)))
                try await tracker.commit(finished)
                return finished.job
            } catch {
                recorder.logger.error("could not record the job's outcome", metadata: ["job": "\(job.name)", "error": "\(error)"])
                return tracker.job
            }
        } catch let conflict as JobConflict {
            // Another writer recorded the job meanwhile (a shared run's coordinator cancelled it
            // between its claim and its start): that record stands.
            recorder.logger.notice("job left as another writer recorded it", metadata: ["job": "\(job.name)", "reason": "\(conflict)"])
            return tracker.job
        } catch {
            let now = env.clock.now()
            let event: JobEvent = if control.isCancelled && (error is CancellationError || Task.isCancelled) {
                .cancelled(by: control.cancelledBy ?? "operator", at: now)
            } else if error is ClaimExpired || error is LeaseLost || error is RunLeaseLost || recorder.claimExpired {
                // Back to the queue for whoever holds the claim (or coordinates the run) now,
                // refused if another host does: a short outage of the ledger lets a lease run out
                // with nobody else taking it.
                .interrupted(at: now, reason: "the loss of its claim on host \(env.host ?? "?")")
            } else if (error as? any LedgerNoAnswer)?.gotNoAnswer == true {
                // The shared ledger did not answer (restarted, failed over, cut off): whether the
                // write took is not known. Back to the queue, as after a crash, not failed.
                .interrupted(at: now, reason: "a ledger that did not answer on host \(env.host ?? "?")")
            } else if error is CancellationError || Task.isCancelled {
                .interrupted(at: now)
            } else if let error = error as? JobError {
                .failed(code: error.code, message: error.message, at: now)
            } else {
                .failed(code: .internalError, message: "\(error)", at: now)
            }
            // A host that lost the job's claim records nothing more: its write is refused.
            guard let ended = try? tracker.transition(event) else { return tracker.job }
            do {
                try await tracker.commit(ended)
            } catch {
                recorder.logger.error("could not record the job's outcome", metadata: ["job": "\(ended.job.name)", "error": "\(error)"])
            }
            return ended.job
        }
    }

    /// A job caught mid-flight (its process or host died, or a drain stopped it): a commit that
    /// happened is recorded (and fingerprinted), anything else goes back to pending with its
    /// staging removed. Returns the job as recorded.
    func recover(_ job: JobRecord) async throws -> JobRecord {
        let tracker = tracker(for: job)
        let now = env.clock.now()
        let outcome: RecoveryOutcome
        do {
            outcome = try await env.executor.recover(context(for: job), observer: tracker)
        } catch {
            // A drain stopped the recovery (the post_restore it runs again after a commit, say):
            // the job stays as recorded, its commit with it, for the next start to recover again.
            // Recorded failed, its commit would be hidden from rollback and a retry would commit
            // it a second time (found by a soft-delete probe: SIGTERM soon after a restart).
            if error is CancellationError || Task.isCancelled { throw CancellationError() }
            try await tracker.apply(.failed(code: .io, message: "could not recover after restart: \(error)", at: now))
            return tracker.job
        }
        switch outcome {
        case .committed(let quarantine, let postRestore):
            let found = tracker.job
            // The committed tree is fingerprinted (a delete's where it went), for rollback and
            // undelete to compare. A delete job's recorded digest is what its confirmation covered
            // (another form): the tree's own replaces it, as when the job ends without a crash.
            var digest: String?
            let tree = run.mode == .delete ? quarantine ?? found.quarantinePath : found.destination
            if found.treeDigest == nil || run.mode == .delete, run.mode != .exercise, let tree { digest = TreeDigest.of(tree) }
            // What the job moved or wrote, measured where it is (its result died with the process).
            let measured = tree.map(TreeSize.bytesAndFiles).map { MeasuredTree(bytes: $0.0, entries: $0.1) }
            let recovered = try tracker.transition(.recoveredCommitted(quarantinePath: quarantine, treeDigest: digest, measured: measured,
                                                                       postRestore: postRestore, at: now, timing: RunTiming(run)))
            if recovered.job.fromQuarantine, let path = recovered.job.snapshotPath { try await closeSoftDelete(path, job: recovered.job) }
            try await tracker.commit(recovered)
        case .restart:
            try await tracker.apply(.recoveredRestart)
        }
        return tracker.job
    }

    /// The soft-deleted data a restore took back is no longer in quarantine: its entry is closed
    /// (so undelete and purge know), with an event saying which run took it.
    private func closeSoftDelete(_ path: String, job: JobRecord) async throws {
        let now = env.clock.now()
        guard var entry = try await env.ledger.quarantine(includePurged: false).first(where: { $0.path == path && $0.reason == "delete" }) else { return }
        entry.purgedAt = now
        try await env.ledger.updateQuarantine(entry)
        env.ledger.postEvent(LedgerEvent(runId: entry.runId, jobId: entry.jobId, at: now, kind: "quarantine.restored",
                                         message: "\(job.name): the soft-deleted data at \(path) was renamed back to \(job.destination) by restore run \(job.runId)"))
    }
}
