import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Starts, tracks and drains runs inside the daemon: every run executes as a child task of this
/// service's task group (no unstructured tasks), at most `max_concurrent_runs` at once (`RunSlots`:
/// queued runs wait in order and say behind which runs; a halted run holds no slot); unfinished
/// runs from the ledger are resumed before the daemon declares itself ready. Graceful shutdown
/// (SIGTERM) drains: runs stop cleanly and are recorded `interrupted`, to resume on the next start.
public final class RunManager: Service {
    public let engine: Engine
    public let plans: PlanRegistry
    /// `max_concurrent_runs`, and who holds and waits for the slots.
    public let slots: RunSlots
    /// Signalled once unfinished runs have been picked up.
    public let recovered = ReadySignal()
    private let logger: Logger

    private struct Active {
        var control: RunControl
        var plan: Plan
        var started: Bool
    }

    private let active = Mutex<[String: Active]>([:])
    /// Runs whose coordination this host holds for work other than running them (a retry or a
    /// rollback of an ended run, a cleanup owed, taking one up), by how many such holders.
    private let holding = Mutex<[String: Int]>([:])
    /// Unfinished runs this host cannot take on (it has not the version of their plan they were
    /// started with), said once each.
    private let unworkable = Mutex<Set<String>>([])
    /// Forwarded commands applied here whose mark in the ledger did not go through yet.
    private let appliedForwarded = Mutex<Set<Int64>>([])
    /// Set when the drain begins: the control socket still answers meanwhile, and says so.
    private let stopping = Mutex<Date?>(nil)
    private let queue: AsyncStream<String>
    private let enqueue: AsyncStream<String>.Continuation

    /// With a shared ledger: this host's registration, before which it coordinates nothing (a
    /// second daemon under a name a live host holds must not act as that host).
    let startAfter: ReadySignal?

    public init(engine: Engine, plans: PlanRegistry, maxConcurrentRuns: Int, startAfter: ReadySignal? = nil, logger: Logger) {
        self.engine = engine
        self.plans = plans
        self.startAfter = startAfter
        slots = RunSlots(limit: maxConcurrentRuns)
        self.logger = logger
        (queue, enqueue) = AsyncStream<String>.makeStream()
    }

    private var ledger: any Ledger { engine.environment.ledger }

    /// The runs this host works on, whose leases it renews (`HostService`): those it runs or
    /// queued, and those it holds for other work. A lease of its own outside them (a give-back
    /// whose answer was lost) runs out, rather than keep the run from the other hosts for good.
    public var coordinated: Set<String> {
        Set(active.withLock { Array($0.keys) }).union(holding.withLock { Array($0.keys) })
    }

    /// Counts `runId` among the runs this host works on until `unhold`: from before it takes the
    /// run's coordination, so that the lease is renewed from the start.
    private func hold(_ runId: String) { holding.withLock { $0[runId, default: 0] += 1 } }

    private func unhold(_ runId: String) {
        holding.withLock { holders in
            if let n = holders[runId], n > 1 { holders[runId] = n - 1 } else { holders[runId] = nil }
        }
    }

    /// With a shared ledger: it and this host's name (runs are coordinated under leases).
    private var shared: (ledger: any SharedLedger, host: String)? {
        guard let shared = ledger as? any SharedLedger, let host = engine.environment.host else { return nil }
        return (shared, host)
    }

    /// Nil when this host may work on the run (one host; or it coordinates the run now, having
    /// taken it over if its coordinator is gone); else the host that coordinates it.
    private func otherCoordinator(of runId: String) async throws -> String? {
        guard let shared else { return nil }
        let holder = try await shared.ledger.coordinate(runId: runId)
        return holder == shared.host ? nil : holder
    }

    // MARK: Commands

    /// Records a new run and queues it. Returns it as recorded (pending).
    public func start(_ request: RunRequest) async throws -> RunRecord {
        let created = try await engine.create(request)
        register(created.run.id, plan: request.plan, mode: created.run.mode)
        return created.run
    }

    /// Records a confirmed soft delete as a run and queues it. Returns it as recorded (pending).
    public func startDelete(_ selection: DeleteSelection, request: RunRequest) async throws -> RunRecord {
        let created = try await engine.createDelete(selection, request: request)
        register(created.run.id, plan: request.plan, mode: .delete)
        return created.run
    }

    /// Asks a run to stop. Running jobs stop within 2 s; destinations stay untouched. A run
    /// another host coordinates gets the cancel through the shared ledger: returns that host.
    @discardableResult
    public func cancel(runId: String, by who: String) async throws -> Forwarded? {
        if let entry = active.withLock({ $0[runId] }) {
            entry.control.cancel(by: who)
            return nil
        }
        // Left by every host for want of its plan's version: cancelled here, without it.
        if let run = try await ledger.run(id: runId), !run.state.isFinal, plans.plan(for: run) == nil {
            let coordinated = try await shared?.ledger.coordinator(of: runId)
            if coordinated == nil || coordinated == shared?.host {
                try await cancelWithoutPlan(run, by: who)
                return nil
            }
        }
        return try await forward(ForwardedCommand(runId: runId, kind: .cancel, by: who))
    }

    /// Cancels an unfinished run that no host coordinates because none has the version of its
    /// plan it was started with (every host got a new one): its jobs that did not start are
    /// recorded cancelled, and its destinations given back. A job caught mid-flight is recovered
    /// only under the run's plan, so then nothing is done and the refusal says what to do.
    private func cancelWithoutPlan(_ run: RunRecord, by who: String) async throws {
        guard let shared else { return try await cancelHeld(run, by: who) }
        hold(run.id)
        defer { unhold(run.id) }
        let holder = try await shared.ledger.coordinate(runId: run.id)
        guard holder == shared.host else { throw ControlError(.conflict, "run \(run.id) is coordinated by host \(holder) now; cancel it again") }
        do {
            try await cancelHeld(run, by: who)
        } catch {
            try? await shared.ledger.releaseCoordination(runId: run.id)
            throw error
        }
        try? await shared.ledger.releaseCoordination(runId: run.id)
    }

    /// `cancelWithoutPlan`, the run's coordination held.
    private func cancelHeld(_ run: RunRecord, by who: String) async throws {
        let jobs = try await ledger.jobs(runId: run.id)
        let caught = jobs.filter(\.state.isActive)
        guard caught.isEmpty else {
            throw ControlError(.conflict, "run \(run.id) cannot be cancelled here: \(plans.unavailable(for: run)), and its job(s) "
                               + "\(caught.prefix(5).map(\.name).joined(separator: ", ")) were caught mid-flight, which only the run's plan recovers; "
                               + PlanRegistry.remedy + ", then cancel it")
        }
        let recorder = JobRecorder(engine.environment)
        let at = engine.environment.clock.now()
        let reason = "\(who) (no host has the version of plan \(run.plan) the run was started with)"
        for job in jobs where !job.state.isFinal {
            do {
                try await recorder.apply(.cancelled(by: reason, at: at), to: job)
            } catch is JobConflict {
                throw ControlError(.conflict, "a host is working run \(run.id) after all (job \(job.name) changed); cancel it again")
            }
        }
        var cancelled = run
        cancelled.state = .cancelled
        cancelled.finishedAt = at
        cancelled.note = "cancelled by \(reason)"
        if run.mode == .exercise, !run.keepSandbox { cancelled.cleanup = RunRecord.cleanupPending }
        try await ledger.updateRun(cancelled)
        ledger.postEvent(LedgerEvent(runId: run.id, at: at, kind: "run.cancelled", message: "run cancelled by \(reason)"))
        try await ledger.flush()
        engine.environment.guardrails.holds.release(run: run.id)
        try? await ledger.releaseHolds(runId: run.id, paths: nil)
        // Its report, and an exercise's sandbox cleaned, as at any run's end.
        if let finisher = engine.environment.finisher { _ = await finisher.finished(cancelled, plan: nil) }
        unworkable.withLock { _ = $0.remove(run.id) }
        logger.notice("run cancelled without its plan", metadata: ["run.id": "\(run.id)", "by": "\(who)", "jobs": "\(jobs.filter { !$0.state.isFinal }.count)"])
    }

    /// Lets a halted run go on with its next wave (here, or through the shared ledger on the host
    /// that coordinates it: returns that host).
    @discardableResult
    public func resume(runId: String, by who: String) async throws -> Forwarded? {
        guard let entry = active.withLock({ $0[runId] }) else {
            return try await forward(ForwardedCommand(runId: runId, kind: .resume, by: who))
        }
        guard entry.control.resume() else { throw Self.notHalted(runId) }
        return nil
    }

    private static func notHalted(_ runId: String) -> ControlError {
        ControlError(.conflict, "run \(runId) is not halted; resume applies to a run halted by a wave gate")
    }

    /// Records a command for the host that coordinates a going run of the shared ledger.
    private func forward(_ command: ForwardedCommand) async throws -> Forwarded {
        var command = command
        let going = "only pending, running or halted runs can be " + (command.kind == .cancel ? "cancelled" : "resumed")
        guard let run = try await ledger.run(id: command.runId) else {
            throw ControlError(.notFound, "no run \(command.runId) in the ledger; see `lifeboat runs`")
        }
        guard !run.state.isFinal else {
            throw ControlError(.conflict, "run \(command.runId) is \(run.state.rawValue), not active; \(going)")
        }
        guard let shared else {
            // One host: an unfinished run that is not going here was left at the start.
            guard plans.plan(for: run) == nil else { throw ControlError(.conflict, "run \(command.runId) is not active; \(going)") }
            throw ControlError(.conflict, "run \(command.runId) is left as it is: \(plans.unavailable(for: run)); \(PlanRegistry.remedy), or cancel it")
        }
        if command.kind == .resume, run.state != .halted { throw Self.notHalted(command.runId) }
        // No host coordinates it, and this one cannot take it up: the resume would wait for a
        // host that has the run's plan version, perhaps for ever (a rollout gave every host a new one).
        if plans.plan(for: run) == nil, try await shared.ledger.coordinator(of: command.runId) == nil {
            throw ControlError(.conflict, "no host coordinates run \(command.runId) now, and this one cannot: \(plans.unavailable(for: run)); "
                               + "a host that has the run's version takes it up within \(Int(shared.ledger.lease / 3) + 1) s (resume it again then), "
                               + "else \(PlanRegistry.remedy), or cancel the run")
        }
        command.by += " on host \(shared.host)"
        do {
            try await shared.ledger.forward(command)
        } catch let lost as any LedgerNoAnswer where lost.gotNoAnswer {
            // The insert may have been made before its answer was lost: not "failed".
            let run = command.runId
            let next = command.kind == .cancel
                ? "give it again (`lifeboat cancel \(run)`: a run cancelled twice is cancelled once)"
                : "see `lifeboat show \(run)` in \(Int(shared.ledger.lease / 3) + 1) s, and resume it again only if it is still halted "
                    + "(a second resume would pass the next halt)"
            throw ControlError(.unavailable, "\(lost); the \(command.kind.rawValue) of run \(run) may have been recorded before the answer "
                               + "was lost, and is then applied by its coordinator: \(next)")
        }
        let host = try await shared.ledger.coordinator(of: command.runId)
        logger.notice("command forwarded", metadata: ["run.id": "\(command.runId)", "command": "\(command.kind.rawValue)", "to": "\(host ?? "-")"])
        return Forwarded(host: host, withinSeconds: Int(shared.ledger.lease / 3) + 1)
    }

    /// Applies the commands other hosts forwarded for the runs this host runs.
    private func applyForwarded(_ shared: any SharedLedger) async throws {
        let here = active.withLock { Array($0.keys) }
        let commands = try await shared.forwardedCommands(runIds: here)
        // Applied here before, their mark lost: marked again, not applied again (a stale resume
        // must not pass a later halt).
        var applied = commands.filter { command in appliedForwarded.withLock { $0.contains(command.id ?? -1) } }
        do {
            for command in commands where !applied.contains(command) {
                // A run that left this host meanwhile: its command is for the host that has it.
                guard let entry = active.withLock({ $0[command.runId] }) else { continue }
                try await apply(command, to: entry.control)
                if let id = command.id { appliedForwarded.withLock { _ = $0.insert(id) } }
                applied.append(command)
            }
        } catch {
            await markApplied(applied, shared)
            throw error
        }
        await markApplied(applied, shared)
    }

    private func apply(_ command: ForwardedCommand, to control: RunControl) async throws {
        logger.notice("applying a forwarded command", metadata: ["run.id": "\(command.runId)", "command": "\(command.kind.rawValue)", "by": "\(command.by)"])
        switch command.kind {
        case .cancel: control.cancel(by: command.by)
        case .resume:
            guard !control.resume() else { return }
            // Taken over from a host that is gone, the run is recorded halted before this
            // host's coordinator is back at that gate: the resume decides it when it is.
            if try await ledger.run(id: command.runId)?.state == .halted {
                control.resumeAtHalt()
                logger.notice("forwarded resume applies when this host is back at the run's gate", metadata: ["run.id": "\(command.runId)"])
            } else {
                logger.notice("forwarded resume ignored: the run is not halted", metadata: ["run.id": "\(command.runId)"])
            }
        }
    }

    /// Marks commands applied; one whose mark is lost is marked again on the next look.
    private func markApplied(_ commands: [ForwardedCommand], _ shared: any SharedLedger) async {
        guard !commands.isEmpty else { return }
        do {
            try await shared.markApplied(commands)
            appliedForwarded.withLock { applied in for command in commands { if let id = command.id { applied.remove(id) } } }
        } catch {
            logger.warning("could not mark forwarded commands applied; marked on the next look", metadata: ["error": "\(error)"])
        }
    }

    /// Runs one job of a finished run again (and the jobs it made skip), on this host or (with a
    /// shared ledger) the fleet: this host coordinates the run until it ends again.
    public func retry(runId: String, job named: JobRef) async throws -> RunRecord {
        try await withEndedRun(runId, else: "retry a job once its run has ended") { run in
            var run = run
            guard let plan = plans.plan(for: run) else {
                throw ControlError(.conflict, plans.unavailable(for: run) + "; to retry its jobs here, " + PlanRegistry.remedy)
            }
            let jobs = try await ledger.jobs(runId: runId)
            guard let job = jobs.first(where: named.names) else {
                throw ControlError(.notFound, "run \(runId) has no job \(named) (job ids are numbered across runs); its jobs are listed by lifeboat show \(runId)")
            }
            guard job.state == .failed || job.state == .cancelled || job.state == .skipped else {
                throw ControlError(.conflict, "job \(job.id.map(String.init) ?? "?") (\(job.name)) is \(job.state.rawValue); only failed, cancelled or skipped jobs can be retried")
            }
            // The job, what it depends on that did not succeed (first: a job skipped for a failed
            // dependency would only be skipped again), and the jobs of its site that were skipped.
            let site = jobs.filter { $0.site == job.site }
            var reset: [JobRecord] = []
            var stack = [job]
            while let next = stack.popLast() {
                guard next.state != .succeeded, !reset.contains(where: { $0.id == next.id }) else { continue }
                reset.append(next)
                let after = plan.product(named: next.product)?.after ?? []
                stack += site.filter { after.contains($0.product) }
            }
            let chosen = Set(reset.compactMap(\.id))
            reset += site.filter { $0.state == .skipped && !chosen.contains($0.id ?? -1) }
            reset.sort { ($0.id ?? 0) < ($1.id ?? 0) }
            // A dependency still pending (its run stopped before it) has nothing to reset; one caught
            // mid-flight by a crash is refused by the lifecycle (its recovery comes first, on resume).
            let retried = try reset.filter { $0.state != .pending && $0.state != .waiting }.map { try JobLifecycle.apply(.retried(RunTiming(run)), to: $0) }
            run.state = .pending
            // The time it stood ended (and halted before a cancel ended it) is no part of its
            // pace or throughput.
            if let ended = run.finishedAt {
                run.endPause(at: ended)
                run.pause(at: ended)
                run.endPause(at: engine.environment.clock.now())
            }
            run.finishedAt = nil
            // What a retry does to the run, in words (`retry` prints it).
            run.note = "retrying \(reset.map(\.name).joined(separator: ", ")): the run goes on for these job(s) only; its other jobs keep "
                + "their outcome, and it ends succeeded only if every job has"
            run.currentWave = min(run.currentWave, job.wave)
            // The jobs and the run together: a failure leaves neither, not a pending job in an
            // ended run that could then be retried no more.
            try await ledger.updateRun(run, jobs: retried.map { ($0.job, $0.previous) })
            let recorder = JobRecorder(engine.environment)
            for transition in retried { recorder.announce(transition) }
            register(runId, plan: plan, mode: run.mode)
            // The run goes on here: its coordination is given back when it ends (`execute`).
            return (run, keep: true)
        }
    }

    /// Puts back what a restore (or a delete) of an ended run displaced (`Rollback`), while no run
    /// of any host goes into its destinations and no other host retries or rolls the run back.
    public func rollback(runId: String, site: String?, product: String?, force: Bool, by who: String) async throws -> [Rollback.Outcome] {
        try await withEndedRun(runId, else: "cancel it or let it finish before rolling back") { _ in
            // The destinations it puts data back into are held meanwhile, like a run's (here and,
            // with a shared ledger, across the fleet): a restore going there now (from quarantine
            // too) and a rollback never cross.
            let destinations = try await ledger.jobs(runId: runId)
                .filter { (site == nil || $0.site == site) && (product == nil || $0.product == product) }
                .map { (path: ResolvedPath.of($0.destination), job: $0.name) }
            let holds = engine.environment.guardrails.holds
            let holder = "rollback of \(runId)"
            do {
                try holds.take(run: holder, destinations)
                defer { holds.release(run: holder) }
                // Under the run's own id: they count for the other hosts while this one holds the run.
                try await shared?.ledger.takeHolds(runId: runId, destinations)
                let outcomes: [Rollback.Outcome]
                do {
                    outcomes = try await Rollback(ledger: ledger, clock: engine.environment.clock)
                        .rollback(runId: runId, site: site, product: product, force: force, by: who)
                } catch {
                    try? await shared?.ledger.releaseHolds(runId: runId, paths: nil)
                    throw error
                }
                try await shared?.ledger.releaseHolds(runId: runId, paths: nil)
                return (outcomes, keep: false)
            } catch let refusal as SafetyRefusal {
                throw ControlError(.conflict, refusal.message)
            }
        }
    }

    /// Runs `body` on a run that ended, holding it for this host: with a shared ledger, by taking
    /// its coordination, so that no other host retries it or rolls it back meanwhile. Refused while
    /// the run goes, here or on another host (named; `otherwise` says what to do), and while another
    /// host holds it. The coordination is given back after `body` unless it says to keep it (a
    /// retry: the run goes on here).
    private func withEndedRun<T>(_ runId: String, else otherwise: String,
                                 _ body: (RunRecord) async throws -> (T, keep: Bool)) async throws -> T {
        guard !isActive(runId) else { throw ControlError(.conflict, "run \(runId) is still active; \(otherwise)") }
        guard let run = try await ledger.run(id: runId) else { throw ControlError(.notFound, "no run \(runId)") }
        guard let shared else { return try await body(run).0 }
        hold(runId)
        defer { unhold(runId) }
        func going(_ run: RunRecord) -> String? {
            run.isCancelling ? "cancelling" : run.state.isFinal ? nil : run.state.rawValue
        }
        let holder: String
        do {
            holder = try await shared.ledger.coordinate(runId: runId)
        } catch {
            // Its answer lost, the run may be this host's now, and renewed with its others for as
            // long as it runs: given back.
            await giveBack(runId, shared.ledger)
            throw error
        }
        guard holder == shared.host else {
            if let state = going(run) { throw ControlError(.conflict, "run \(runId) is still \(state), coordinated by host \(holder); \(otherwise)") }
            throw ControlError(.conflict, "run \(runId) is being retried or rolled back by host \(holder); try again once that is done")
        }
        do {
            // Read again now that it is held: it may have been set going meanwhile.
            guard let held = try await ledger.run(id: runId) else { throw ControlError(.notFound, "no run \(runId)") }
            if let state = going(held) {
                throw ControlError(.conflict, "run \(runId) is still \(state) (its coordinator is gone: a host takes it over within a third of the lease); \(otherwise)")
            }
            let (value, keep) = try await body(held)
            // Done either way: a lease not given back only makes the others wait for it.
            if !keep { await giveBack(runId, shared.ledger) }
            return value
        } catch {
            await giveBack(runId, shared.ledger)
            throw error
        }
    }

    private func giveBack(_ runId: String, _ shared: any SharedLedger) async {
        do { try await shared.releaseCoordination(runId: runId) } catch {
            logger.warning("could not give back the run's lease", metadata: ["run.id": "\(runId)", "error": "\(error)"])
        }
    }

    /// Run ids that are queued or running, with whether each has started.
    public var activeRuns: [(id: String, plan: String, started: Bool, halted: Bool)] {
        active.withLock { $0.map { ($0.key, $0.value.plan.name, $0.value.started, $0.value.control.isHalted) } }.sorted { $0.id < $1.id }
    }

    public func isActive(_ runId: String) -> Bool { active.withLock { $0[runId] != nil } }

    /// Why a run waits for a slot (queued, or resumed after a halt), or nil when it does not.
    /// A run registered a moment ago and not yet in the slots' queue waits too when no slot is
    /// free: said at once, so its start does not look like a run going.
    public func wait(of runId: String) -> RunWait? {
        if let wait = slots.wait(of: runId) { return wait }
        guard active.withLock({ $0[runId].map { !$0.started } ?? false }) else { return nil }
        return slots.waitIfQueued(runId)
    }

    public var stoppingSince: Date? { stopping.withLock { $0 } }

    /// Queues a run once: a run already queued or running here is not queued again (the start of
    /// a new run and the look for runs to take over may meet).
    private func register(_ runId: String, plan: Plan, mode: RunMode) {
        let added = active.withLock { active -> Bool in
            guard active[runId] == nil else { return false }
            active[runId] = Active(control: RunControl(slots: slots, runId: runId), plan: plan, started: false)
            return true
        }
        guard added else { return }
        if mode == .exercise { slots.markRehearsal(runId) }
        enqueue.yield(runId)
    }

    // MARK: Service

    public func run() async throws {
        // Stopped (SIGTERM) before the ledger answered (or before this host was registered):
        // nothing was started, nothing to drain.
        guard let owingCleanup = try await resumeAtStart() else { return }
        recovered.signal()
        await withDiscardingTaskGroup { group in
            if let shared = self.shared?.ledger {
                group.addTask { await self.adoptOrphans(shared) }
            }
            // Sandbox cleanups a stop left owed are resumed once the daemon serves: one of a
            // large exercise takes minutes, which must not keep the socket closed.
            if !owingCleanup.isEmpty { group.addTask { await self.resumeCleanups(owingCleanup) } }
            for await runId in queue.cancelOnGracefulShutdown() {
                group.addTask {
                    // Queued runs wait here (recorded pending); a drain cancels the wait. A run
                    // cancelled while queued executes without a slot, to be recorded cancelled.
                    let granted = await self.slots.acquire(runId)
                    if !granted, Task.isCancelled { return }
                    await self.execute(runId)
                    self.slots.release(runId)
                    self.slots.forget(runId)
                }
            }
            // Drain: every run still going is cancelled as a task, which the engine records as
            // an interruption (not an operator's cancel), so the next start resumes it. The
            // control socket and the web view stop after this service: they show the drain.
            self.stopping.withLock { $0 = self.engine.environment.clock.now() }
            group.cancelAll()
        }
        enqueue.finish()
    }

    /// At start, unfinished runs are resumed; returns the ended exercises whose sandbox cleanup
    /// is owed, or nil when the daemon was stopped first (e.g. while an unreachable database kept
    /// it waiting: a stop is not held up by it).
    private func resumeAtStart() async throws -> [RunRecord]? {
        do {
            return try await cancelWhenGracefulShutdown {
                try await self.sayingWhenSlow {
                    if let startAfter = self.startAfter {
                        await startAfter.wait()
                        try Task.checkCancellation()
                    }
                    return try await self.resumeUnfinished()
                }
            }
        } catch where Task.isShuttingDownGracefully || Task.isCancelled {
            return nil
        }
    }

    /// Runs `body`, saying so in the log if the ledger keeps it waiting (a connection pool gives
    /// up on an unreachable database only after a minute).
    private func sayingWhenSlow<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await Task.sleep(for: .seconds(5))
                if self.startAfter?.isSignalled == false {
                    self.logger.warning("the ledger has not answered for 5 s, or this host's name is held by a live host (the host registration's lines say which); lifeboatd serves once it is registered")
                } else {
                    self.logger.warning("the ledger has not answered for 5 s (unreachable?); lifeboatd serves once it answers, or exits when its connection pool gives up (about a minute) for systemd to start it again")
                }
            }
            defer { group.cancelAll() }
            return try await body()
        }
    }

    /// Adopts the unfinished runs; returns the ended exercises whose sandbox cleanup is owed
    /// here (killed in between, or failed), their coordination held.
    private func resumeUnfinished() async throws -> [RunRecord] {
        var owing: [RunRecord] = []
        if engine.environment.finisher != nil {
            for run in try await ledger.runsOwingCleanup() {
                // Held until its cleanup is done (`resumeCleanups`), which may wait its turn for minutes.
                hold(run.id)
                let holder: String?
                do { holder = try await otherCoordinator(of: run.id) } catch {
                    unhold(run.id)
                    throw error
                }
                if let holder {
                    unhold(run.id)
                    logger.info("exercise cleanup left to its coordinator", metadata: ["run.id": "\(run.id)", "host": "\(holder)"])
                    continue
                }
                owing.append(run)
            }
        }
        for run in try await ledger.unfinishedRuns() { try await adopt(run) }
        return owing
    }

    /// Resumes the sandbox cleanups of exercises a stop left owed (and the rehearsal of a delete
    /// a crash stopped), one after the other, until a drain.
    private func resumeCleanups(_ runs: [RunRecord]) async {
        guard let finisher = engine.environment.finisher else { return }
        for run in runs where !Task.isCancelled {
            logger.notice("resuming exercise cleanup", metadata: ["run.id": "\(run.id)", "cleanup": "\(run.cleanup ?? "")"])
            _ = await finisher.resume(run, plan: plans.plan(for: run))
            try? await shared?.ledger.releaseCoordination(runId: run.id)
            unhold(run.id)
        }
    }

    /// After a reload: the unfinished runs left for want of their plan's version are tried again
    /// (the version they were started with may be back).
    public func takeUpAfterReload() async {
        let waiting = unworkable.withLock { $0 }
        guard !waiting.isEmpty else { return }
        do {
            for run in try await ledger.unfinishedRuns() where waiting.contains(run.id) { try await adopt(run) }
        } catch {
            logger.warning("cannot look for runs to take up after the reload", metadata: ["error": "\(error)"])
        }
    }

    /// Resumes an unfinished run here: at start, and (with a shared ledger) when its coordinator
    /// is gone. A run another live host coordinates, or that this daemon runs already, is left.
    private func adopt(_ run: RunRecord) async throws {
        guard !isActive(run.id) else { return }
        guard let plan = plans.plan(for: run) else {
            // Not taken (a host that has the run's version may): said once per run when no host
            // coordinates it (a shared ledger's orphans are looked at every third of a lease).
            if let shared, let holder = try await shared.ledger.coordinator(of: run.id), holder != shared.host { return }
            if unworkable.withLock({ $0.insert(run.id).inserted }) {
                let why = "\(plans.unavailable(for: run)); this host leaves it as it is until you \(PlanRegistry.remedy) (or cancel it)"
                logger.error("cannot resume run: \(why)", metadata: ["run.id": "\(run.id)", "plan": "\(run.plan)"])
                // On one host, the run's note says it (not "resumes on the next start").
                if shared == nil {
                    var noted = run
                    noted.note = "not resumed: \(why)"
                    try? await ledger.updateRun(noted)
                }
            }
            return
        }
        hold(run.id)
        defer { unhold(run.id) }
        if let holder = try await otherCoordinator(of: run.id) {
            logger.debug("run coordinated by another host", metadata: ["run.id": "\(run.id)", "host": "\(holder)"])
            return
        }
        unworkable.withLock { _ = $0.remove(run.id) }
        logger.notice("resuming run", metadata: ["run.id": "\(run.id)", "state": "\(run.state.rawValue)"])
        do {
            try await engine.hold(runId: run.id)
        } catch {
            // Refused again when it executes, and recorded on the run then.
            logger.error("resumed run overlaps another", metadata: ["run.id": "\(run.id)", "error": "\(error)"])
        }
        register(run.id, plan: plan, mode: run.mode)
    }

    /// With a shared ledger: takes over, every third of the lease, the unfinished runs whose
    /// coordinator is gone (its lease ran out, or it stopped and let them go).
    private func adoptOrphans(_ shared: any SharedLedger) async {
        let interval = Duration.milliseconds(Int64(shared.lease * 1_000 / 3))
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            guard !Task.isCancelled, !Task.isShuttingDownGracefully else { return }
            do {
                // Not with an older idea of the tables than the ledger's (`JobWorker` says so).
                if shared.schemaAhead == nil {
                    for run in try await ledger.unfinishedRuns() where !isActive(run.id) { try await adopt(run) }
                }
                try await applyForwarded(shared)
            } catch {
                logger.warning("cannot look for runs to take over: ledger unreachable", metadata: ["error": "\(error)"])
            }
        }
    }

    private func execute(_ runId: String) async {
        guard let entry = active.withLock({ active -> Active? in
            active[runId]?.started = true
            return active[runId]
        }) else { return }
        do {
            _ = try await engine.execute(runId: runId, plan: entry.plan, control: entry.control)
        } catch {
            logger.error("run could not execute", metadata: ["run.id": "\(runId)", "error": "\(error)"])
        }
        _ = active.withLock { $0.removeValue(forKey: runId) }
        // Ended, interrupted by a drain or stopped by the ledger: another host may go on with it.
        // (A drain cancels this: the host gives back all its runs' leases as it stops.)
        if let shared, !Task.isCancelled { await giveBack(runId, shared.ledger) }
    }
}
