import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// With a ledger several hosts share: this host's part of the fleet's work (DESIGN "Several
/// hosts"). It claims ready jobs of running runs (`FOR UPDATE SKIP LOCKED`, in priority order,
/// the plan's limits counted for the whole fleet, at most a fair share of the run's concurrency
/// per live host and `host.max_jobs` in all), and runs each under its claim: every record it
/// makes of the job is fenced by the claim, so a host that lost it (killed, partitioned, frozen
/// past the lease) records — and commits — nothing more. Claims are renewed every third of the
/// lease; a job whose claim was lost is stopped and goes back to the queue — lost as the ledger
/// says, or by this host's own clock when the ledger has not confirmed it within the lease (a
/// host cut off from it stops, and renames nothing into place, before another takes over). A job
/// that a host which is gone left mid-flight is recovered before it is redone (a recorded commit
/// found in place is not redone). When the run is cancelled, its jobs here stop and are recorded
/// cancelled; when this host stops (SIGTERM), they are recorded interrupted and given back for
/// the others to take. A job that ends here leaves its slot to the next ready job of its run,
/// claimed in the transaction that gives its claim back (`SlotRefiller`): a slot does not wait
/// for a claim's round trip between two jobs.
public final class JobWorker: Service, SlotRefiller {
    private let engine: Engine
    private let plans: PlanRegistry
    private let queue: any SharedLedger
    private let host: String
    /// Jobs this host runs at once, over all runs (`host.max_jobs`).
    private let maxJobs: Int
    private let logger: Logger

    /// A job held here: its claim, until when by this host's clock, and what stops it (a cancel
    /// of its run; the claim lost).
    private struct Held {
        var claim: JobClaim
        var deadline: ClaimDeadline
        var stop: RunControl
        var lost: RunControl
        /// The job ended (its last record, giving the claim back, is being made): it no longer
        /// counts against this host's limits when its slot is handed on (`refill(after:)`).
        var ended = false
    }

    /// What a run's jobs are run with here.
    private struct RunContext {
        /// As last read.
        var run: RunRecord
        var plan: Plan
        /// The trees its jobs must stay out of (resolved once per run).
        var protected: ProtectedTrees
    }

    private struct State {
        var held: [Int64: Held] = [:]
        /// Jobs claimed in the place of jobs that ended here, to be started.
        var refilled: [(Held, RunContext)] = []
        /// This host stops: it claims nothing more.
        var draining = false
        /// Live hosts of the fleet, as last seen (a run's concurrency is shared among them).
        var liveHosts = 1
        var renewedAt = Date.distantPast
        /// The running runs whose jobs this host claims.
        var contexts: [String: RunContext] = [:]
        /// The unfinished runs as last read, and when (`claimableRuns`).
        var runs: (read: ContinuousClock.Instant, runs: [RunRecord])?
        /// Whether this host said its ledger writes are stalled (`writesStuck`).
        var stallSaid = false
        /// Runs this host said it cannot work on, its plan not loaded here.
        var planless: Set<String> = []
        /// Whether this host said a newer lifeboat migrated the ledger's schema past its own.
        var schemaSaid = false
        /// What the jobs that succeeded here restored (a delete's moved bytes are not restored).
        var restored = RecentBytes()
    }

    private let state = Mutex(State())

    /// This host's registration: nothing is claimed before it (claims and commits are recorded
    /// under the host's name, which a live daemon elsewhere may hold).
    let startAfter: ReadySignal

    public init(engine: Engine, plans: PlanRegistry, queue: any SharedLedger, host: String, maxJobs: Int, startAfter: ReadySignal = .signalled,
                logger: Logger) {
        self.engine = engine
        self.plans = plans
        self.startAfter = startAfter
        self.queue = queue
        self.host = host
        self.maxJobs = maxJobs
        self.logger = logger
    }

    /// How often the worker looks for claimable jobs; it looks at once when one of its jobs ends
    /// (the jobs that ended meanwhile are refilled with one claim) and when a run starts here.
    static let lookInterval = Duration.milliseconds(250)

    private var wakeups: HostWakeups { engine.environment.wakeups }

    /// What this host is at, from memory (`/metrics`, every few seconds): the jobs it holds and
    /// the bytes its jobs restored over the last minute — not the fleet's rows, read again.
    public var work: HostWork {
        let minuteAgo = engine.environment.clock.now().addingTimeInterval(-60)
        return state.withLock { s in
            HostWork(jobs: s.held.values.filter { !$0.ended }.count, bytesPerSecond: Double(s.restored.since(minuteAgo)) / 60)
        }
    }

    public func run() async throws {
        guard await startAfter.waitForStart() else { return }
        queue.refillSlots(with: self)
        await withDiscardingTaskGroup { group in
            group.addTask { await self.watchDeadlines() }
            // Since when the ledger does not answer (said once, and when it answers again).
            var unreachableSince: Date?
            while !Task.isCancelled, !Task.isShuttingDownGracefully {
                var pause = Self.lookInterval
                for (held, context) in state.withLock({ s in defer { s.refilled = [] }; return s.refilled }) {
                    group.addTask { await self.work(held, context) }
                }
                do {
                    // A stop is not held up by a ledger that does not answer.
                    let claimed = try await cancelWhenGracefulShutdown {
                        try await self.renewClaimsWhenDue()
                        var claimed: [(JobClaim, ContinuousClock.Instant, RunContext)] = []
                        for (context, free) in try await self.claimableRuns() {
                            let (claims, sent) = try await self.claim(run: context.run, plan: context.plan, max: free)
                            for claim in claims {
                                claimed.append((claim, sent, context))
                            }
                        }
                        return claimed
                    }
                    if let since = unreachableSince {
                        logger.notice("claiming jobs again: the ledger answers", metadata: ["unreachable_seconds": "\(Int(Date().timeIntervalSince(since)))"])
                        unreachableSince = nil
                    }
                    for (claim, sent, context) in claimed {
                        guard let held = hold(claim, until: ClaimDeadline(until: sent + leaseDuration)) else {
                            giveBack([claim])
                            continue
                        }
                        group.addTask { await self.work(held, context) }
                    }
                } catch where Task.isShuttingDownGracefully || Task.isCancelled {
                    break
                } catch {
                    if unreachableSince == nil {
                        logger.warning("cannot claim jobs: ledger unreachable; trying again every third of the lease", metadata: ["error": "\(error)"])
                        unreachableSince = Date()
                    }
                    pause = .milliseconds(Int64(queue.lease * 1_000 / 3))
                }
                let wait = pause
                await cancelWhenGracefulShutdown { await self.wakeups.claims.wait(upTo: wait) }
            }
            // A drain: the jobs here stop, recorded interrupted, and go back to the queue; so do
            // jobs claimed in their slots meanwhile, not yet started.
            queue.refillSlots(with: nil)
            let refilled = state.withLock { s in
                s.draining = true
                defer { s.refilled = [] }
                return s.refilled
            }
            giveBack(refilled.map(\.0.claim))
            group.cancelAll()
        }
    }

    /// Gives back claims of jobs this host does not run, in the next batch: one is started for
    /// them, not waited for (a stop is not held up by a ledger that does not answer; a claim not
    /// given back expires with its lease).
    private func giveBack(_ claims: [JobClaim]) {
        guard !claims.isEmpty else { return }
        for claim in claims { queue.releaseClaim(claim) }
        let (queue, logger) = (self.queue, self.logger)
        Task {
            do { try await queue.flush() } catch {
                logger.warning("could not give claims back; they expire with their lease", metadata: ["jobs": "\(claims.count)", "error": "\(error)"])
            }
        }
    }

    public func refill(after released: JobClaim) -> ClaimRules? {
        guard !queue.writesStuck else { return nil }
        return state.withLock { s in
            guard !s.draining, let leaving = s.held[released.jobId], leaving.claim == released, !leaving.lost.isCancelled,
                  !leaving.deadline.passed(), !leaving.stop.isCancelled, let context = s.contexts[released.runId],
                  context.run.state == .running else { return nil }
            // One job comes as one leaves: within this host's share of the run and its own limit,
            // counting the other jobs here but those that ended already (they are held until their
            // tasks end).
            let others = s.held.values.filter { !$0.ended && $0.claim.jobId != released.jobId }
            let ofRun = others.reduce(0) { $0 + ($1.claim.runId == released.runId ? 1 : 0) }
            guard ofRun < Self.share(of: context.plan, among: s.liveHosts), others.count < maxJobs else { return nil }
            s.held[released.jobId]?.ended = true
            return ClaimRules(plan: context.plan)
        }
    }

    public func claimed(_ claims: [JobClaim], sent: ContinuousClock.Instant) {
        let unwanted = state.withLock { s -> [JobClaim] in
            guard !s.draining else { return claims }
            var unwanted: [JobClaim] = []
            for claim in claims {
                // A job still held here (its task has not ended: a claim that ran out, given back
                // with the job's refused record, and claimed again) is not run twice.
                guard let context = s.contexts[claim.runId], s.held[claim.jobId] == nil else {
                    unwanted.append(claim)
                    continue
                }
                let held = Held(claim: claim, deadline: ClaimDeadline(until: sent + leaseDuration), stop: RunControl(), lost: RunControl())
                s.held[claim.jobId] = held
                s.refilled.append((held, context))
            }
            return unwanted
        }
        giveBack(unwanted)
        wakeups.claims.nudge()
        logger.debug("slots handed on", metadata: ["claimed": "\(claims.count - unwanted.count)", "given_back": "\(unwanted.count)"])
    }

    /// Claims up to `max` of a run's jobs; says at debug level how long the claim took (the
    /// fleet's claimers take turns on the run: `scripts/bench-hosts` reads these lines).
    private func claim(run: RunRecord, plan: Plan, max: Int) async throws -> (claims: [JobClaim], sent: ContinuousClock.Instant) {
        let start = ContinuousClock.now
        let claims = try await queue.claimJobs(runId: run.id, host: host, rules: ClaimRules(plan: plan), max: max)
        let took = (ContinuousClock.now - start).components
        let seconds = Double(took.seconds) + Double(took.attoseconds) * 1e-18
        logger.debug("jobs claimed", metadata: ["run.id": "\(run.id)", "asked": "\(max)", "claimed": "\(claims.count)",
                                                "claim.seconds": "\(String(format: "%.6f", seconds))"])
        return (claims, start)
    }

    /// Holds a claimed job; nil when its task here has not ended yet (the job is not run twice).
    private func hold(_ claim: JobClaim, until deadline: ClaimDeadline) -> Held? {
        let held = Held(claim: claim, deadline: deadline, stop: RunControl(), lost: RunControl())
        return state.withLock { s in
            guard s.held[claim.jobId] == nil else { return nil }
            s.held[claim.jobId] = held
            return held
        }
    }

    private var leaseDuration: Duration { .milliseconds(Int64(queue.lease * 1_000)) }

    /// Stops the jobs whose claim ran out by this host's clock: the ledger has not confirmed it
    /// within the lease (it does not answer, or too late), so another host may take them over.
    /// Looks every twentieth of the lease, independently of the ledger; and says when the ledger
    /// stops answering and when it answers again.
    private func watchDeadlines() async {
        var problem: LedgerProblem?
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            switch (problem, queue.problem) {
            case (nil, let now?):
                logger.warning("ledger unreachable: \(now.reason); this host claims nothing, and commits nothing it cannot record, until it answers",
                               metadata: ["since": "\(Timestamp.iso(now.since))"])
                problem = now
            case (let was?, nil):
                logger.notice("the ledger answers again", metadata: ["unreachable_seconds": "\(Int(Date().timeIntervalSince(was.since)))"])
                problem = nil
            default:
                break
            }
            for held in state.withLock({ Array($0.held.values) }) where held.deadline.passed() && !held.lost.isCancelled {
                logger.error("claim lost: this host could not renew the job's lease in time (the ledger did not answer, or this host was paused); its work here stops, another host may take the job over",
                             metadata: ["run.id": "\(held.claim.runId)", "job": "\(held.claim.job.name)", "token": "\(held.claim.token)"])
                held.lost.cancel(by: "lost claim")
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.leaseDuration / 20) }
        }
    }

    /// Renews the claims held here every third of the lease; a claim that was lost (expired
    /// while this host did not renew it: paused, partitioned) stops its job, which then records nothing.
    private func renewClaimsWhenDue() async throws {
        let now = Date()
        guard state.withLock({ now.timeIntervalSince($0.renewedAt) >= queue.lease / 3 }) else { return }
        let held = state.withLock { Array($0.held.values) }
        let sent = ContinuousClock.now
        let alive = try await queue.liveHostCount()
        state.withLock {
            $0.liveHosts = max(1, alive)
            $0.renewedAt = now
        }
        guard !held.isEmpty, !writesStuck() else { return }
        let kept = try await queue.renewClaims(held.map(\.claim))
        // A claim given back meanwhile (its job ended) is not renewed, and not lost either.
        let stillHeld = state.withLock { s in Set(s.held.values.map { $0.claim }) }
        for entry in held where stillHeld.contains(entry.claim) {
            if kept.contains(entry.claim.jobId) {
                entry.deadline.extend(to: sent + leaseDuration)
            } else if !entry.lost.isCancelled, !entry.deadline.givingBack {
                logger.error("claim lost: the job's lease ran out before this host renewed it; its work here is discarded",
                             metadata: ["run.id": "\(entry.claim.runId)", "job": "\(entry.claim.job.name)", "token": "\(entry.claim.token)"])
                entry.deadline.expire()
                entry.lost.cancel(by: "lost claim")
            }
        }
    }

    /// Running runs whose plan is loaded here, with how many more jobs this host may claim of
    /// each; the jobs of a cancelled run are stopped.
    private func claimableRuns() async throws -> [(RunContext, Int)] {
        var claimable: [(RunContext, Int)] = []
        // A newer lifeboat migrated the schema since this host started: nothing more is claimed
        // with an older idea of the tables (the jobs held go on to their end).
        if let ahead = queue.schemaAhead {
            if state.withLock({ s in defer { s.schemaSaid = true }; return !s.schemaSaid }) {
                logger.error("\(ahead); this host claims nothing until it is upgraded")
            }
            return []
        }
        let (held, liveHosts) = state.withLock { ($0.held, $0.liveHosts) }
        var room = writesStuck() ? 0 : maxJobs - held.count
        let runs = try await unfinishedRuns()
        // A run no longer running (halted, cancelled) leaves no slot to its next job.
        let going = Set(runs.filter { $0.state == .running }.map(\.id))
        let known = state.withLock { s in
            s.contexts = s.contexts.filter { going.contains($0.key) }
            return s.contexts
        }
        for run in runs {
            if run.isCancelling {
                for entry in held.values where entry.claim.runId == run.id { entry.stop.cancel(by: run.cancellingBy ?? "operator") }
                continue
            }
            guard run.state == .running else { continue }
            guard let plan = plans.plan(for: run) else {
                // Said once per run (this is looked at four times a second).
                if state.withLock({ $0.planless.insert(run.id).inserted }) {
                    logger.warning("claiming none of the run's jobs: \(plans.unavailable(for: run)); other hosts work it, or \(PlanRegistry.remedy)", metadata: ["run.id": "\(run.id)", "plan": "\(run.plan)"])
                }
                continue
            }
            // The trees its jobs must stay out of are resolved once per run on this host.
            let protected = known[run.id]?.protected ?? engine.environment.guardrails.protectedTrees(for: plan, mode: run.mode)
            let context = RunContext(run: run, plan: plan, protected: protected)
            state.withLock { $0.contexts[run.id] = context }
            let free = min(room, Self.share(of: plan, among: liveHosts) - held.values.filter { $0.claim.runId == run.id }.count)
            if free > 0 {
                claimable.append((context, free))
                room -= free
            }
        }
        return claimable
    }

    /// Whether this host's ledger writes have waited on one batch for more than a lease (a
    /// connection the server dropped during a network cut can keep it waiting for ever, while
    /// other connections answer). Then its jobs cannot get on: it renews no claim and claims
    /// nothing, so that their leases run out, its own clock stops them here and other hosts take
    /// them over; it claims again once the batch ends. Said once each way.
    private func writesStuck() -> Bool {
        let stuck = queue.writesStuck
        let say = state.withLock { s -> Bool in
            defer { s.stallSaid = stuck }
            return s.stallSaid != stuck
        }
        if say && stuck {
            logger.error("ledger writes stalled: a batch of this host's records has waited \(queue.writesStalled.components.seconds) s for the ledger; this host renews no claim and claims nothing, so that other hosts take its jobs over (restart lifeboatd if this lasts)")
        } else if say {
            logger.notice("ledger writes go through again; claiming jobs again")
        }
        return stuck
    }

    /// The unfinished runs, read again once per look interval: a worker woken by its jobs'
    /// ends (many times a second) reuses the last read. A run cancelled or halted meanwhile is
    /// safe: a claim takes jobs only of a run the ledger says is running; its jobs here stop
    /// at the next read.
    private func unfinishedRuns() async throws -> [RunRecord] {
        if !wakeups.takeRunsChanged(), let last = state.withLock({ $0.runs }), ContinuousClock.now - last.read < Self.lookInterval {
            return last.runs
        }
        let read = ContinuousClock.now
        let runs = try await queue.unfinishedRuns()
        state.withLock { $0.runs = (read, runs) }
        return runs
    }

    /// This host's share of a run's concurrency: the run's limit holds for the fleet (the claims
    /// see to that), and each live host takes at most its part, so that all of them get work.
    private static func share(of plan: Plan, among liveHosts: Int) -> Int {
        (plan.concurrency + liveHosts - 1) / liveHosts
    }

    /// One claimed job, then its claim given back and the worker woken to refill the slot.
    private func work(_ held: Held, _ context: RunContext) async {
        let claim = held.claim
        await execute(held, context)
        // The job ended here: its claim is neither renewed nor watched any more (a flush held up
        // by the ledger is not a claim lost while the job runs).
        state.withLock { s in
            if s.held[claim.jobId]?.claim == claim { s.held[claim.jobId] = nil }
        }
        // Given back with the job's last record, in its commit; otherwise (the job did not end
        // here: interrupted by a stop, its recovery failed) now. If it cannot be written, the
        // claim expires with its lease and the job's state tells its taker what to do.
        if !held.deadline.givenBack {
            queue.releaseClaim(claim)
            do { try await queue.flush() } catch {
                logger.warning("could not give a claim back; it expires with its lease", metadata: ["job": "\(claim.job.name)", "error": "\(error)"])
            }
        }
        wakeups.jobEnded(runId: claim.runId)
        wakeups.claims.nudge()
    }

    /// One claimed job: recovered first when a host that is gone left it mid-flight, then run,
    /// with every record fenced by the claim. A cancel of its run or the claim lost stops it.
    private func execute(_ held: Held, _ context: RunContext) async {
        let (claim, stop, run) = (held.claim, held.stop, context.run)
        let env = engine.environment
        let recorder = JobRecorder(env).fenced(by: claim, on: queue, until: held.deadline)
        let runner = JobRunner(run: run, plan: context.plan, env: env, recorder: recorder, protected: context.protected)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await stop.waitForCancel() }
            group.addTask { await held.lost.waitForCancel() }
            group.addTask {
                var job = claim.job
                if claim.isTakeover {
                    self.logger.notice("taking over a job another host left mid-flight", metadata: ["run.id": "\(run.id)", "job": "\(job.name)", "state": "\(job.state.rawValue)"])
                    do {
                        job = try await runner.recover(job)
                    } catch {
                        self.logger.error("could not recover the job", metadata: ["job": "\(job.name)", "error": "\(error)"])
                        return
                    }
                }
                guard !job.state.isFinal else { return }
                let ended = await runner.execute(job, control: stop)
                if ended.state == .succeeded, run.mode != .delete, let at = ended.finishedAt {
                    self.state.withLock { $0.restored.add(ended.bytes, at: at) }
                }
            }
            // The first to end is the job (then the stop watcher goes) or the stop (then the job
            // is cancelled, and records how it ended).
            await group.next()
            group.cancelAll()
        }
    }
}

/// What a host is at (`JobWorker.work`).
public struct HostWork: Sendable {
    /// The jobs it holds: claimed, and not yet ended here.
    public var jobs: Int
    /// Over the last minute.
    public var bytesPerSecond: Double
}
