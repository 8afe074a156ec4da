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
    /// News between this host's coordinators and its job worker (a shared ledger).
    public var wakeups: HostWakeups

    public init(ledger: any Ledger, executor: any JobExecutor, clock: any LifeboatClock = SystemClock(),
                bus: EventBus = EventBus(), logger: Logger = Logger(label: "lifeboat"), guardrails: Guardrails = Guardrails(),
                finisher: RunFinisher? = nil, host: String? = nil, stores: SnapshotStores = SnapshotStores(), board: RunBoard = RunBoard(),
                wakeups: HostWakeups = HostWakeups()) {
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
        self.wakeups = wakeups
    }

    /// With a ledger several hosts share (and this daemon's host name): the jobs of runs are
    /// claimed from it by every host's `JobWorker`, and a run's coordinator follows them there
    /// instead of running them itself.
    public var queue: (any SharedLedger)? {
        host == nil ? nil : ledger as? any SharedLedger
    }
}

extension RunEnvironment {
    /// Where a run's unfinished jobs' destinations are held, by destination: where they resolve
    /// now, or, for a run resumed after a restart or taken over from another host while the
    /// ledger still holds its destinations, where the run took them — so that a job whose path
    /// was relinked meanwhile is refused (`JobRunner`) rather than held anew.
    func heldDestinations(runId: String, unfinished: [JobRecord]) async throws -> [String: String] {
        let paths = unfinished.map(\.destination)
        var resolved = Dictionary(zip(paths, ResolvedPath.all(paths)), uniquingKeysWith: { first, _ in first })
        var taken: [String: String] = [:]
        for hold in try await ledger.holds(runId: runId, job: nil) where taken[hold.job] == nil { taken[hold.job] = hold.path }
        for job in unfinished { if let path = taken[job.name] { resolved[job.destination] = path } }
        return resolved
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
    /// Each job's index in the scheduler, by id (jobs followed in a shared ledger).
    private let jobIndex: [Int64: Int]
    /// Where the last look at the jobs' changes in a shared ledger left off.
    private var followed: JobChangeCursor?

    init(run: RunRecord, jobs: [JobRecord], plan: Plan, control: RunControl, environment: RunEnvironment) {
        self.run = run
        self.plan = plan
        self.control = control
        env = environment
        scheduler = RunScheduler(jobs: jobs, plan: plan)
        logger = environment.logger
        logger[metadataKey: "run.id"] = "\(run.id)"
        recorder = JobRecorder(environment)
        jobIndex = Dictionary(jobs.enumerated().compactMap { i, job in job.id.map { ($0, i) } }, uniquingKeysWith: { first, _ in first })
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
        // Taken over, or left to the fleet (a drain, a ledger write that failed): the run goes on
        // under another coordinator, whose end it is (its report, its cleanup); this host's
        // watchers follow it in the ledger meanwhile (`Control.RunWatch`).
        if coordinationLost || leftToFleet { return final }
        // A run that ended holds nothing anywhere (the ledger ignores its holds even if this fails).
        if final.state.isFinal { try? await env.ledger.releaseHolds(runId: run.id, paths: nil) }
        if final.state.isFinal, let finisher = env.finisher {
            final = await finisher.finished(final, plan: plan)
        }
        env.bus.publish(RunEvent(kind: .finished, runId: final.id, at: now, run: final, message: lastMessage))
        return final
    }

    /// The trees this run must stay out of, resolved when it starts.
    private var protected: ProtectedTrees?
    /// Another host took the run over (this host's lease on it ran out: paused, cut off).
    private var coordinationLost = false
    /// With a shared ledger, this host stopped coordinating the run before its end (a drain, a
    /// ledger write refused): another host, or this one later, takes it up.
    private var leftToFleet = false

    /// Runs this run's jobs (and recovers those a crash caught).
    private var runner: JobRunner { JobRunner(run: run, plan: plan, env: env, recorder: recorder, protected: protected) }
    /// Destinations as resolved when the run started (what it holds).
    private var resolved: [String: String] = [:]

    private func executeRun() async -> RunRecord {
        do {
            // A cancel another coordinator recorded (it stopped before the run ended) still holds.
            if run.isCancelling { control.cancel(by: "the run's cancel (taken over from its previous coordinator)") }
            // Cancelled while queued: it ends cancelled without starting.
            if control.isCancelled { return try await finish() }
            // Destinations are held by one run at a time (taken again on resume and retry).
            do {
                resolved = try await env.heldDestinations(runId: run.id, unfinished: scheduler.jobs.filter { !$0.state.isFinal })
                let destinations = scheduler.jobs.compactMap { job in resolved[job.destination].map { ($0, job.name) } }
                try env.guardrails.holds.take(run: run.id, destinations)
                // Recorded for a restart; with several hosts sharing the ledger, the holds are
                // the fleet's, not only this host's.
                do {
                    try await env.ledger.takeHolds(runId: run.id, destinations)
                } catch {
                    env.guardrails.holds.release(run: run.id)
                    throw error
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
            // With a shared queue, a job caught mid-flight is recovered by the host that claims
            // it next (its claim says so), never under a host that may still be running it.
            if env.queue == nil { try await recoverActiveJobs() }
            // Dependencies are counted from the states after recovery.
            scheduler = RunScheduler(jobs: scheduler.jobs, plan: plan)
            // Started before: resumed after a restart, a halt or a retry, or taken over from a
            // host that is gone.
            let started = run.startedAt == nil ? "started" : "resumed"
            // Reasons from before this start (interrupted by a shutdown, a retry, a halt before a
            // restart) no longer hold; the events keep the history.
            run.state = .running
            run.note = nil
            run.startedAt = run.startedAt ?? now
            try await saveRun(event: "run \(started) (\(run.mode.rawValue), \(scheduler.jobs.count) jobs, \(run.totalWaves) wave(s))")
            if env.queue != nil { env.wakeups.runStarted() }
            env.bus.publish(RunEvent(kind: .started, runId: run.id, at: now, run: run, message: lastMessage))
            logger.info("run \(started)", metadata: ["plan": "\(plan.name)", "mode": "\(run.mode.rawValue)", "jobs": "\(scheduler.jobs.count)"])

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
        } catch is CancellationError where Task.isCancelled && !control.isCancelled && env.queue != nil {
            // A stop caught a ledger write mid-flight.
            return leftToOtherHosts()
        } catch let lost as RunLeaseLost {
            coordinationLost = true
            logger.notice("run taken over by another host: this host's lease on it ran out (paused, or cut off from the ledger); it goes on there",
                          metadata: ["run.id": "\(run.id)", "host": "\(lost.host)"])
            return run
        } catch {
            // Only ledger failures land here: the run cannot record its progress, so it stops and
            // stays resumable.
            logger.error("run stopped: ledger write failed", metadata: ["error": "\(error)"])
            run.note = "stopped: \(error)"
            // What was not recorded did not happen: with a shared ledger the run is taken up
            // again from the ledger (this host lets its lease go), and ended there.
            leftToFleet = env.queue != nil
            return run
        }
    }

    /// A stop with a shared ledger: the fleet goes on with the run's jobs, and another host takes
    /// the coordination over (this one releases it as it stops). The run stays as recorded.
    private func leftToOtherHosts() -> RunRecord {
        logger.notice("run left to the other hosts", metadata: ["run.id": "\(run.id)"])
        leftToFleet = true
        return run
    }

    private func finish() async throws -> RunRecord {
        let draining = Task.isCancelled && !control.isCancelled
        if draining, env.queue != nil { return leftToOtherHosts() }
        if draining {
            // SIGTERM drain: jobs that did not finish go back to pending; the run resumes later.
            for (i, job) in scheduler.jobs.enumerated() where !job.state.isFinal {
                try await transition(i, .interrupted(at: now))
            }
            run.state = .interrupted
            run.note = "interrupted by shutdown; resumes on the next start"
            try await saveRun(event: run.note)
            // The events posted on the way out are recorded before the daemon stops.
            try await env.ledger.flush()
            logger.notice("run interrupted", metadata: ["run.id": "\(run.id)"])
            return run
        }
        if control.isCancelled {
            let who = control.cancelledBy ?? "operator"
            if let queue = env.queue { try await stopClaimedJobs(cancelledBy: who, queue) }
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
        // With a shared queue the fleet's hosts claim the wave's jobs; this one follows them.
        if env.queue != nil { return try await followWave(wave) }
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
                    let (runner, job) = (self.runner, scheduler.jobs[i])
                    group.addTask { .job(i, await runner.execute(job, control: control)) }
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
                    await releaseHolds(of: [job])
                    for skipped in try scheduler.finish(i, as: job, at: now) { try await recorder.record(skipped) }
                    checkForecast()
                    fill()
                }
            }
            // Ends the cancel watcher (and anything left) when the wave is done.
            group.cancelAll()
        }
    }

    /// Jobs that ended give their destinations back (here and, with a shared ledger, fleet-wide,
    /// in one statement; one host's ledger forgets them when the run ends).
    private func releaseHolds(of jobs: [JobRecord]) async {
        let paths = jobs.compactMap { job in job.state.isFinal ? resolved[job.destination] : nil }
        guard !paths.isEmpty else { return }
        for path in paths { env.guardrails.holds.release(run: run.id, path: path) }
        if let shared = env.ledger as? any SharedLedger { try? await shared.releaseHolds(runId: run.id, paths: paths) }
    }

    // MARK: Jobs other hosts run

    /// How often a coordinator looks in a shared ledger at the jobs the fleet's hosts run; sooner
    /// when a job ends on this host, but on average never more often than every `followGap`:
    /// up to `followBurst` looks may come at once (a small run's few endings are each seen as
    /// they come), then each waits its turn (a large run's many endings coalesce).
    static let followInterval = Duration.milliseconds(250)
    static let followGap = Duration.milliseconds(40)
    static let followBurst = 8

    /// Follows the wave's jobs, claimed and run by the fleet's hosts, until they all ended (or a
    /// cancel or a drain comes).
    private func followWave(_ wave: Int) async throws {
        try await env.wakeups.following(run.id) { jobEndedHere in
            // Looks allowed at once: one more every `followGap`, up to `followBurst`.
            var allowed = Double(Self.followBurst)
            var counted = ContinuousClock.now
            while !control.isCancelled, !Task.isCancelled {
                let now = ContinuousClock.now
                allowed = min(Double(Self.followBurst), allowed + (now - counted) / Self.followGap)
                counted = now
                if allowed < 1 {
                    await control.waitForCancel(upTo: Self.followGap * (1 - allowed))
                    continue
                }
                allowed -= 1
                try await followJobs()
                guard scheduler.jobs.contains(where: { $0.wave <= wave && !$0.state.isFinal }) else { return }
                await control.waitForCancel(upTo: Self.followInterval, or: jobEndedHere)
            }
        }
    }

    /// Takes the jobs' states from the ledger, where the hosts that run them record them: a job
    /// that ended releases its destination and makes its dependents skip if it did not succeed;
    /// changes of jobs other hosts run are told to this host's followers and board (this host's
    /// own worker told them of its jobs already).
    private func followJobs() async throws {
        guard let queue = env.queue else { return }
        let (changed, cursor) = try await queue.jobChanges(runId: run.id, since: followed)
        followed = cursor
        var ended: [(Int, JobRecord)] = []
        for job in changed {
            guard let id = job.id, let i = jobIndex[id], scheduler.jobs[i] != job else { continue }
            let previous = scheduler.jobs[i]
            if job.host != env.host, job.state != previous.state {
                env.board.moved(job, from: previous.state)
                env.bus.publish(RunEvent(kind: .job, runId: run.id, at: now, job: job))
            }
            if job.state.isFinal, !previous.state.isFinal { ended.append((i, job)) } else { scheduler.update(i, to: job) }
        }
        await releaseHolds(of: ended.map(\.1))
        for (i, job) in ended {
            for skipped in try scheduler.ended(i, as: job, at: now) { try await recorder.record(skipped) }
            checkForecast()
        }
    }

    /// A cancel with a shared queue: the run is recorded cancelled first, so that no host claims
    /// its jobs any more and the hosts running some stop them (recording them cancelled); it is
    /// then followed until every job ended. A job left mid-flight by a host that is gone (no
    /// live claim) is recovered here: nobody else would, the run being cancelled. A job a host
    /// started after this host last looked refuses the cancel written over it (`JobConflict`):
    /// it is looked at again.
    private func stopClaimedJobs(cancelledBy who: String, _ queue: any SharedLedger) async throws {
        if !run.isCancelling {
            run.beginCancelling(by: who)
            try await saveRun(event: run.note)
        }
        while true {
            do {
                // Claims first: a job still active after them had no live claim before (hosts
                // give a claim back only after recording the job's end, and none is taken now).
                let held = Set(try await queue.liveClaims(runId: run.id).map(\.jobId))
                try await followJobs()
                let active = scheduler.jobs.indices.filter { scheduler.jobs[$0].state.isActive }
                guard !active.isEmpty else {
                    for (i, job) in scheduler.jobs.enumerated() where !job.state.isFinal { try await transition(i, .cancelled(by: who, at: now)) }
                    return
                }
                for i in active where !held.contains(scheduler.jobs[i].id ?? -1) {
                    scheduler.update(i, to: try await runner.recover(scheduler.jobs[i]))
                }
            } catch is JobConflict {
                // A host recorded the job meanwhile: look again.
            }
            try await Task.sleep(for: Self.followInterval)
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
        run.pause(at: now)
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
        run.endPause(at: now)
        try await saveRun(event: "resumed after wave \(wave + 1) gate")
        if env.queue != nil { env.wakeups.runStarted() }
        return true
    }

    // MARK: Resume

    /// Jobs caught mid-flight by a crash or drain: finish a commit that happened, restart the rest.
    private func recoverActiveJobs() async throws {
        for (i, job) in scheduler.jobs.enumerated() where job.state.isActive || job.state == .waiting {
            guard job.state.isActive else {
                try await transition(i, .interrupted(at: now))
                continue
            }
            scheduler.update(i, to: try await runner.recover(job))
        }
    }
}
