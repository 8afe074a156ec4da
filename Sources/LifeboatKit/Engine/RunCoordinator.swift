import Foundation
import Logging

/// What a run needs from the outside world.
public struct RunEnvironment: Sendable {
    public var ledger: any Ledger
    public var executor: any JobExecutor
    public var clock: any LifeboatClock
    public var bus: EventBus
    public var logger: Logger
    /// What keeps runs off data they do not own (other plans, the state directory, held paths).
    public var guardrails: Guardrails
    /// Reports and exercise cleanup when a run ends (nil: neither).
    public var finisher: RunFinisher?
    /// This daemon's host name, recorded on each job attempt it runs (nil: none recorded).
    public var host: String?
    /// Opens the plans' snapshot stores (directories, buckets with the config's `s3:` settings).
    public var stores: SnapshotStores
    /// The runs going on here, as they go (what `status` reads).
    public var board: RunBoard

    public init(ledger: any Ledger, executor: any JobExecutor, clock: any LifeboatClock = SystemClock(),
                bus: EventBus = EventBus(), logger: Logger = Logger(label: "lifeboat"), guardrails: Guardrails = Guardrails(),
                finisher: RunFinisher? = nil, host: String? = nil, stores: SnapshotStores = SnapshotStores(), board: RunBoard = RunBoard()) {
        self.ledger = ledger
        self.executor = executor
        self.clock = clock
        self.bus = bus
        self.logger = logger
        self.guardrails = guardrails
        self.finisher = finisher
        self.host = host
        self.stores = stores
        self.board = board
    }
}

/// Executes one run as one structured task tree — run → waves → jobs — honouring dependencies,
/// priorities, limits, retries, wave gates, halts and cancellation, and recording every state
/// change in the ledger as it happens.
final class RunCoordinator {
    private let env: RunEnvironment
    private let plan: Plan
    private let control: RunControl
    private var run: RunRecord
    private var scheduler: RunScheduler
    private var logger: Logger
    private let recorder: JobRecorder

    init(run: RunRecord, jobs: [JobRecord], plan: Plan, control: RunControl, environment: RunEnvironment) {
        self.run = run
        self.plan = plan
        self.control = control
        env = environment
        scheduler = RunScheduler(jobs: jobs, plan: plan)
        logger = environment.logger
        logger[metadataKey: "run.id"] = "\(run.id)"
        recorder = JobRecorder(environment)
    }

    private var now: Date { env.clock.now() }

    // MARK: Run

    /// Runs to the end (succeeded, failed or cancelled) or to an interruption (the task was
    /// cancelled by a drain: the run is recorded `interrupted` and resumes on the next start).
    /// A run that ended is finished (report, exercise cleanup) before the bus gets its last
    /// `finished` event from this process, so whoever follows it sees it done in every respect.
    func execute() async -> RunRecord {
        env.board.begin(run, jobs: scheduler.jobs)
        defer { env.board.end(run.id) }
        var final = await executeRun()
        env.guardrails.holds.release(run: run.id)
        // A run that ended holds nothing anywhere (the ledger ignores its holds even if this fails).
        if final.state.isFinal, let shared = env.ledger as? any SharedLedger { try? await shared.releaseHolds(runId: run.id, path: nil) }
        if final.state.isFinal, let finisher = env.finisher {
            final = await finisher.finished(final, plan: plan)
        }
        env.bus.publish(RunEvent(kind: .finished, runId: final.id, at: now, run: final, message: lastMessage))
        return final
    }

    /// The trees this run must stay out of, resolved when it starts.
    private var protected: ProtectedTrees?
    /// Destinations as resolved when the run started (what it holds).
    private var resolved: [String: String] = [:]

    private func executeRun() async -> RunRecord {
        do {
            // Cancelled while queued: it ends cancelled without starting.
            if control.isCancelled { return try await finish() }
            // Destinations are held by one run at a time (taken again on resume and retry).
            do {
                let unfinished = scheduler.jobs.filter { !$0.state.isFinal }.map(\.destination)
                resolved = Dictionary(zip(unfinished, ResolvedPath.all(unfinished)), uniquingKeysWith: { first, _ in first })
                let destinations = scheduler.jobs.compactMap { job in resolved[job.destination].map { ($0, job.name) } }
                try env.guardrails.holds.take(run: run.id, destinations)
                // Several hosts share the ledger: the holds are the fleet's, not only this host's.
                if let shared = env.ledger as? any SharedLedger {
                    do {
                        try await shared.takeHolds(runId: run.id, destinations)
                    } catch {
                        env.guardrails.holds.release(run: run.id)
                        throw error
                    }
                }
            } catch let refusal as SafetyRefusal {
                // Nothing starts; each job says why, so the report does too.
                for (i, job) in scheduler.jobs.enumerated() where !job.state.isFinal {
                    try await transition(i, .failed(code: .sandbox, message: "\(job.name): not started: \(refusal.message)", at: now))
                }
                run.state = .failed
                run.finishedAt = now
                run.note = refusal.message
                try await saveRun(event: "run refused: \(refusal.message)")
                logger.error("run refused", metadata: ["reason": "\(refusal.message)"])
                return run
            }
            protected = env.guardrails.protectedTrees(for: plan, mode: run.mode)
            try await recoverActiveJobs()
            // Dependencies are counted from the states after recovery.
            scheduler = RunScheduler(jobs: scheduler.jobs, plan: plan)
            // Reasons from before this start (interrupted by a shutdown, a retry, a halt before a
            // restart) no longer hold; the events keep the history.
            run.state = .running
            run.note = nil
            run.startedAt = run.startedAt ?? now
            try await saveRun(event: "run started (\(run.mode.rawValue), \(scheduler.jobs.count) jobs, \(run.totalWaves) wave(s))")
            env.bus.publish(RunEvent(kind: .started, runId: run.id, at: now, run: run, message: lastMessage))
            logger.info("run started", metadata: ["plan": "\(plan.name)", "mode": "\(run.mode.rawValue)", "jobs": "\(scheduler.jobs.count)"])

            var wave = run.currentWave
            while wave < run.totalWaves {
                if control.isCancelled || Task.isCancelled { break }
                run.currentWave = wave
                try await saveRun(event: nil)
                try await runWave(wave)
                if control.isCancelled || Task.isCancelled { break }
                if try await !gatePasses(wave) { break }
                wave += 1
            }
            return try await finish()
        } catch {
            // Only ledger failures land here: the run cannot record its progress, so it stops and
            // stays resumable.
            logger.error("run stopped: ledger write failed", metadata: ["error": "\(error)"])
            run.note = "stopped: \(error)"
            return run
        }
    }

    private func finish() async throws -> RunRecord {
        let draining = Task.isCancelled && !control.isCancelled
        if draining {
            // SIGTERM drain: jobs that did not finish go back to pending; the run resumes later.
            for (i, job) in scheduler.jobs.enumerated() where !job.state.isFinal {
                try await transition(i, .interrupted(at: now))
            }
            run.state = .interrupted
            run.note = "interrupted by shutdown; resumes on the next start"
            try await saveRun(event: run.note)
            logger.notice("run interrupted", metadata: ["run.id": "\(run.id)"])
            return run
        }
        if control.isCancelled {
            let who = control.cancelledBy ?? "operator"
            for (i, job) in scheduler.jobs.enumerated() where !job.state.isFinal {
                try await transition(i, .cancelled(by: who, at: now))
            }
            run.state = .cancelled
            run.note = "cancelled by \(who)"
        } else {
            let jobs = scheduler.jobs
            run.state = jobs.allSatisfy { $0.state == .succeeded } ? .succeeded : .failed
            if run.state == .failed {
                let failed = jobs.filter { $0.state != .succeeded }.count
                run.note = "\(failed) of \(jobs.count) job(s) did not succeed"
            }
        }
        run.finishedAt = now
        // The sandbox cleanup is owed from now on, recorded with the final state.
        if run.mode == .exercise, !run.keepSandbox { run.cleanup = RunRecord.cleanupPending }
        let summary = RunSummary(run: run, jobs: scheduler.jobs)
        try await saveRun(event: "run \(run.state.rawValue): \(summary.overall.states.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))")
        try await env.ledger.flush()
        logger.info("run finished", metadata: ["state": "\(run.state.rawValue)", "jobs": "\(scheduler.jobs.count)"])
        return run
    }

    /// The last run event's words: the `started` and `finished` events carry them too.
    private var lastMessage: String?

    private func saveRun(event message: String?) async throws {
        try await env.ledger.updateRun(run)
        env.board.update(run)
        if let message {
            lastMessage = message
            env.ledger.postEvent(LedgerEvent(runId: run.id, at: now, kind: "run.\(run.state.rawValue)", message: message))
        }
        env.bus.publish(RunEvent(kind: .run, runId: run.id, at: now, run: run, message: message))
    }

    /// Warns once per run, as soon as the measured pace forecasts a missed RTO objective.
    private var forecastWarned = false

    private func checkForecast() {
        guard !forecastWarned, run.rtoObjectiveSeconds != nil else { return }
        let forecast = RTOForecast(run: run, totalJobs: scheduler.jobs.count, finishedJobs: scheduler.finishedCount, now: now)
        guard forecast.missesObjective else { return }
        forecastWarned = true
        let message = forecast.summary
        logger.warning("RTO objective forecast to be missed", metadata: ["forecast": "\(message)"])
        env.ledger.postEvent(LedgerEvent(runId: run.id, at: now, kind: "rto.forecast-miss", message: message))
        env.bus.publish(RunEvent(kind: .forecastMiss, runId: run.id, at: now, run: run, message: message))
    }

    // MARK: Waves

    private enum ChildResult: Sendable {
        case job(Int, JobRecord)
        case cancelRequested
    }

    private func runWave(_ wave: Int) async throws {
        for skipped in try scheduler.activate(wave: wave, at: now) { try await recorder.record(skipped) }
        // Jobs of this wave not yet startable are waiting (dependencies, limits).
        for (i, job) in scheduler.jobs.enumerated() where job.wave == wave && job.state == .pending {
            try await transition(i, .queued(at: now))
        }
        try await withThrowingTaskGroup(of: ChildResult.self) { group in
            let control = self.control
            group.addTask {
                await control.waitForCancel()
                return .cancelRequested
            }
            var cancelling = false
            func fill() {
                guard !cancelling, !control.isCancelled, !Task.isCancelled else { return }
                while let i = scheduler.next() {
                    let context = makeContext(for: scheduler.jobs[i])
                    let env = self.env
                    let retry = plan.retry
                    let retention = plan.quarantine.retention.timeInterval
                    let protected = self.protected
                    let recorder = self.recorder
                    group.addTask {
                        .job(i, await Self.runJob(context, retry: retry, retention: retention, protected: protected, env: env,
                                                  recorder: recorder, control: control))
                    }
                }
            }
            fill()
            while cancelling ? scheduler.running > 0 : scheduler.hasWork {
                guard let result = try await group.next() else { break }
                switch result {
                case .cancelRequested:
                    cancelling = true
                    group.cancelAll()
                case .job(let i, let job):
                    if job.state.isFinal, let path = resolved[job.destination] {
                        env.guardrails.holds.release(run: run.id, path: path)
                        if let shared = env.ledger as? any SharedLedger { try? await shared.releaseHolds(runId: run.id, path: path) }
                    }
                    for skipped in try scheduler.finish(i, as: job, at: now) { try await recorder.record(skipped) }
                    checkForecast()
                    fill()
                }
            }
            // Ends the cancel watcher (and anything left) when the wave is done.
            group.cancelAll()
        }
    }

    /// Applies an event the coordinator itself decided to job `i`, and records it.
    private func transition(_ i: Int, _ event: JobEvent) async throws {
        let job = try await recorder.apply(event, to: scheduler.jobs[i])
        scheduler.update(i, to: job)
    }

    private func gatePasses(_ wave: Int) async throws -> Bool {
        let specs = plan.waveSpecs(for: run.mode)
        guard wave < specs.count || wave < run.totalWaves else { return true }
        let gate = wave < specs.count ? specs[wave].gate : WaveGate()
        let jobs = scheduler.jobs.filter { $0.wave == wave }
        let failures = jobs.filter { $0.state == .failed }.count
        guard !gate.passes(failures: failures, jobs: jobs.count) else { return true }
        // A gate holds back the waves after it; with nothing left to run there (the last wave, or a
        // retry in an ended run), it has nothing to halt.
        guard scheduler.jobs.contains(where: { $0.wave > wave && !$0.state.isFinal }) else { return true }
        let message = "wave \(wave + 1) gate failed: \(failures) of \(jobs.count) job(s) failed"
            + (gate.maxFailures.map { " (max_failures \($0))" } ?? "")
            + (gate.maxFailureRatio.map { " (max_failure_ratio \($0))" } ?? "")
            + (run.mode == .delete && !plan.wavesDeclared ? " (a delete's canary wave)" : "")
        run.state = .halted
        run.note = HaltNotice.note(gate: message)
        try await saveRun(event: message)
        env.bus.publish(RunEvent(kind: .gateFailed, runId: run.id, at: now, run: run, message: message))
        logger.warning("wave gate failed; run halted", metadata: ["wave": "\(wave + 1)", "failures": "\(failures)"])
        let goOn = await control.haltAndWait()
        guard goOn, !Task.isCancelled else { return false }
        let slotted = try await control.takeSlotAgain {
            run.state = .pending
            run.note = "resumed after wave \(wave + 1) gate; waiting for a run slot (max_concurrent_runs)"
            try await saveRun(event: run.note)
        }
        guard slotted, !control.isCancelled, !Task.isCancelled else { return false }
        run.state = .running
        run.note = nil
        try await saveRun(event: "resumed after wave \(wave + 1) gate")
        return true
    }

    // MARK: Jobs

    private func makeContext(for job: JobRecord) -> JobContext {
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
        return JobContext(job: job, run: run, plan: plan, snapshot: snapshot, stores: env.stores)
    }

    /// One job with its retries. Never throws: every outcome is a job state.
    private static func runJob(_ context: JobContext, retry: RetryPolicy, retention: TimeInterval, protected: ProtectedTrees?,
                               env: RunEnvironment, recorder: JobRecorder, control: RunControl) async -> JobRecord {
        let tracker = JobTracker(job: context.job, retention: retention, recorder: recorder,
                                 quarantineReason: context.run.mode == .delete ? "delete" : "restore")
        do {
            // A delete moves what is there; it reads no snapshot.
            if context.run.mode != .delete { _ = try context.requiredSnapshot() }
            // Where the destination really is now, symbolic links followed at every level.
            if let protected {
                let resolved = ResolvedPath.of(context.job.destination)
                let exercise = context.run.mode == .exercise
                if let why = exercise ? protected.exerciseRefusal(resolved) : protected.restoreRefusal(resolved) {
                    throw JobError(.sandbox, "\(context.job.name): \(exercise ? "exercise" : context.run.mode.rawValue) destination \(context.job.destination) \(why); refusing to touch it"
                                   + (exercise ? ": exercises never write into production, backups or Lifeboat's state" : ""))
                }
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
                    let finished = try tracker.transition(.finished(result, at: env.clock.now(), timing: RunTiming(context.run)))
                    if finished.job.state == .succeeded, finished.job.fromQuarantine, let path = finished.job.snapshotPath {
                        try await closeSoftDelete(path, job: finished.job, env: env)
                    }
                    try await tracker.commit(finished)
                    if finished.job.state == .succeeded { CrashPoint.afterLedgerCommit.hit() }
                    return finished.job
                } catch let error as JobError where error.isTransient && attempt < retry.attempts && !control.isCancelled {
                    try await tracker.apply(.attemptFailed(message: error.message, backoff: "\(retry.backoff)"))
                    try await env.clock.sleep(for: .seconds(retry.backoff.seconds))
                }
            }
        } catch {
            let now = env.clock.now()
            let event: JobEvent = if error is CancellationError || Task.isCancelled {
                control.isCancelled ? .cancelled(by: control.cancelledBy ?? "operator", at: now) : .interrupted(at: now)
            } else if let error = error as? JobError {
                .failed(code: error.code, message: error.message, at: now)
            } else {
                .failed(code: .internalError, message: "\(error)", at: now)
            }
            // The outcome stands in memory even when the ledger cannot take it (the run then
            // stops on its next write and stays resumable).
            guard let ended = try? tracker.transition(event) else { return tracker.job }
            do {
                try await tracker.commit(ended)
            } catch {
                recorder.logger.error("could not record the job's outcome", metadata: ["job": "\(ended.job.name)", "error": "\(error)"])
            }
            return ended.job
        }
    }

    /// The soft-deleted data a restore took back is no longer in quarantine: its entry is closed
    /// (so undelete and purge know), with an event saying which run took it.
    static func closeSoftDelete(_ path: String, job: JobRecord, env: RunEnvironment) async throws {
        let now = env.clock.now()
        guard var entry = try await env.ledger.quarantine(includePurged: false).first(where: { $0.path == path && $0.reason == "delete" }) else { return }
        entry.purgedAt = now
        try await env.ledger.updateQuarantine(entry)
        env.ledger.postEvent(LedgerEvent(runId: entry.runId, jobId: entry.jobId, at: now, kind: "quarantine.restored",
                                         message: "\(job.name): the soft-deleted data at \(path) was renamed back to \(job.destination) by restore run \(job.runId)"))
    }

    // MARK: Resume

    /// Jobs caught mid-flight by a crash or drain: finish a commit that happened, restart the rest.
    private func recoverActiveJobs() async throws {
        for (i, job) in scheduler.jobs.enumerated() where job.state.isActive || job.state == .waiting {
            guard job.state.isActive else {
                try await transition(i, .interrupted(at: now))
                continue
            }
            let tracker = JobTracker(job: job, retention: plan.quarantine.retention.timeInterval, recorder: recorder,
                                     quarantineReason: run.mode == .delete ? "delete" : "restore")
            let outcome: RecoveryOutcome
            do {
                outcome = try await env.executor.recover(makeContext(for: job), observer: tracker)
            } catch {
                try await tracker.apply(.failed(code: .io, message: "could not recover after restart: \(error)", at: now))
                scheduler.update(i, to: tracker.job)
                continue
            }
            switch outcome {
            case .committed(let quarantine):
                let found = tracker.job
                // The committed tree is fingerprinted (a delete's where it went), for rollback
                // and undelete to compare.
                var digest: String?
                if found.treeDigest == nil {
                    if run.mode == .restore { digest = TreeDigest.of(found.destination) }
                    if run.mode == .delete, let moved = quarantine ?? found.quarantinePath { digest = TreeDigest.of(moved) }
                }
                let recovered = try tracker.transition(.recoveredCommitted(quarantinePath: quarantine, treeDigest: digest, at: now, timing: RunTiming(run)))
                if recovered.job.fromQuarantine, let path = recovered.job.snapshotPath { try await Self.closeSoftDelete(path, job: recovered.job, env: env) }
                try await tracker.commit(recovered)
            case .restart:
                try await tracker.apply(.recoveredRestart)
            }
            scheduler.update(i, to: tracker.job)
        }
    }
}
