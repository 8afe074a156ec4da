import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Fires unattended exercises from plan schedules (`schedule.exercise`, UTC). The last fire per
/// plan is kept in the ledger; an exercise missed while the daemon was down runs once at
/// start-up, not once per missed slot. Each exercise samples more sites than the one before
/// (`scale: {start, factor}`), capped at every site.
public final class Scheduler: Service {
    private let plans: PlanRegistry
    private let ledger: any Ledger
    private let clock: any LifeboatClock
    private let startAfter: ReadySignal
    private let fire: @Sendable (RunRequest) async throws -> RunRecord
    private let logger: Logger
    /// The longest sleep between checks (plans may be reloaded meanwhile).
    let recheck: Duration
    /// Each scheduled plan's expression at the last check (nil before the first): a schedule
    /// that is new or changed since is armed anew, as cron would start it.
    private let seen = Mutex<[String: String]?>(nil)
    /// Per plan, why its last due slot started no exercise (shown by `schedules`; cleared by
    /// the next exercise that starts).
    private let notFired = Mutex<[String: String]>([:])
    /// Ends the wait for the next look (a reload may have changed the schedules).
    private let reloaded = Nudge()

    /// Looks at the schedules now (after a reload).
    public func wake() { reloaded.nudge() }

    public init(plans: PlanRegistry, ledger: any Ledger, clock: any LifeboatClock, startAfter: ReadySignal, logger: Logger,
                recheck: Duration = .seconds(60), fire: @escaping @Sendable (RunRequest) async throws -> RunRecord) {
        self.plans = plans
        self.ledger = ledger
        self.clock = clock
        self.startAfter = startAfter
        self.logger = logger
        self.recheck = recheck
        self.fire = fire
    }

    /// Seconds before the schedules are looked at again after a check failed.
    static let retryAfterFailure = 10

    public func run() async throws {
        guard await startAfter.waitForStart() else { return }
        do {
            try await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    let next: Date
                    do {
                        next = try await self.tick()
                    } catch let error where !(error is CancellationError) {
                        // A ledger that does not answer (or lost an answer) stops no service but
                        // this check: the daemon goes on, and the schedules are looked at again.
                        self.logger.error("could not check the plans' schedules; looking again in \(Self.retryAfterFailure) s", metadata: ["error": "\(error)"])
                        next = self.clock.now().addingTimeInterval(Double(Self.retryAfterFailure))
                    }
                    let wait = max(0, min(next.timeIntervalSince(self.clock.now()), Double(self.recheck.components.seconds)))
                    // Until the next fire or re-check, or a reload, whichever comes first.
                    let interval = Duration.milliseconds(Int64(wait * 1_000) + 10)
                    await withTaskGroup(of: Void.self) { group in
                        group.addTask { try? await self.clock.sleep(for: interval) }
                        group.addTask { await self.reloaded.wait(upTo: interval) }
                        await group.next()
                        group.cancelAll()
                    }
                    try Task.checkCancellation()
                }
            }
        } catch is CancellationError {
            // Graceful shutdown: stop quietly.
        }
    }

    /// Fires what is due now; returns when the next check is due.
    @discardableResult
    public func tick() async throws -> Date {
        let now = clock.now()
        var wake = now.addingTimeInterval(Double(recheck.components.seconds))
        let scheduled = plans.plans.compactMap { entry in entry.plan.schedule.map { (entry.plan, $0) } }
        let previous = seen.withLock { seen in
            defer { seen = Dictionary(scheduled.map { ($0.0.name, $0.1.exercise.text) }, uniquingKeysWith: { $1 }) }
            return seen
        }
        for (plan, schedule) in scheduled {
            let stored = try await ledger.schedule(plan: plan.name)
            var record = stored ?? ScheduleRecord(plan: plan.name, lastFireAt: nil, exercises: 0, armedAt: now)
            if stored == nil {
                try await ledger.saveSchedule(record)
            } else if let previous, previous[plan.name] != schedule.exercise.text, record.base < now {
                // Changed (or back) by a reload while the daemon ran: the slots before now were
                // not missed. (A schedule changed while the daemon was down fires once, as missed.)
                try await rearm(&record, at: now)
            }
            if let due = schedule.exercise.nextFire(after: record.base), due <= now,
               let busy = try await ledger.unfinishedRuns().first(where: { $0.plan == plan.name && $0.mode == .exercise }) {
                // Exercises longer than their period would pile up and take every run slot from
                // real restores: the slot is used up, not counted, and said so.
                var skipped = record
                skipped.lastFireAt = now
                if let shared = ledger as? any SharedLedger {
                    if try await shared.recordFire(skipped, replacing: record) { record = skipped }
                } else {
                    try await ledger.saveSchedule(skipped)
                    record = skipped
                }
                say(plan.name, "the slot of \(Timestamp.iso(due)) started nothing: exercise \(busy.id) of the plan is still \(busy.state.rawValue)")
            } else if let due = schedule.exercise.nextFire(after: record.base), due <= now {
                let sites = schedule.scale.sites(forExercise: record.exercises, total: Int.max)
                logger.notice("scheduled exercise due", metadata: ["plan": "\(plan.name)", "slot": "\(Timestamp.iso(due))",
                                                                    "exercise": "\(record.exercises + 1)", "sites": "\(sites)"])
                // Recorded first: a crash right after must not fire it again at the next start.
                let previous = record
                record.lastFireAt = now
                record.exercises += 1
                var ours = true
                if let shared = ledger as? any SharedLedger {
                    // Several hosts share the schedule: the one whose record lands fires it.
                    ours = try await shared.recordFire(record, replacing: previous)
                    if !ours {
                        logger.info("scheduled exercise fired by another host", metadata: ["plan": "\(plan.name)"])
                        record = try await ledger.schedule(plan: plan.name) ?? record
                    }
                } else {
                    try await ledger.saveSchedule(record)
                }
                if ours {
                    do {
                        var request = RunRequest(plan: plan, mode: .exercise, scale: sites, startedBy: "scheduler")
                        request.rehearse = schedule.rehearse
                        let run = try await fire(request)
                        notFired.withLock { _ = $0.removeValue(forKey: plan.name) }
                        logger.notice("scheduled exercise started", metadata: ["plan": "\(plan.name)", "run.id": "\(run.id)"])
                    } catch {
                        say(plan.name, "the slot of \(Timestamp.iso(due)) started nothing: \(error)")
                        // Not counted: the next exercise keeps this one's scale. The slot stays
                        // fired (the error is logged; the next slot fires as usual).
                        var uncounted = record
                        uncounted.exercises -= 1
                        if let shared = ledger as? any SharedLedger {
                            if try await shared.recordFire(uncounted, replacing: record) { record = uncounted }
                        } else {
                            try await ledger.saveSchedule(uncounted)
                            record = uncounted
                        }
                    }
                }
            }
            if let next = schedule.exercise.nextFire(after: max(record.base, now)) { wake = min(wake, next) }
        }
        return wake
    }

    /// Why a due slot of `plan` started no exercise: logged, and kept for `schedules`.
    private func say(_ plan: String, _ why: String) {
        notFired.withLock { $0[plan] = why }
        logger.error("scheduled exercise not started", metadata: ["plan": "\(plan)", "why": "\(why)"])
    }

    /// Arms `record` anew at `now`, keeping its count (the scale goes on growing).
    private func rearm(_ record: inout ScheduleRecord, at now: Date) async throws {
        var armed = record
        armed.armedAt = now
        if let shared = ledger as? any SharedLedger {
            // Another host may have re-armed (or fired) it first: theirs stands.
            if try await shared.recordFire(armed, replacing: record) {
                record = armed
            } else {
                record = try await ledger.schedule(plan: record.plan) ?? armed
            }
        } else {
            try await ledger.saveSchedule(armed)
            record = armed
        }
        logger.notice("schedule armed anew", metadata: ["plan": "\(record.plan)", "armed": "\(Timestamp.iso(now))"])
    }

    /// The schedules and their next fires, for `lifeboat schedules`.
    public struct Upcoming: Sendable, Codable {
        public var plan: String
        public var expression: String
        public var next: Date?
        public var last: Date?
        public var exercises: Int
        /// Sites the next exercise will sample: its scale, capped at the sites the plan selects
        /// in its store now (uncapped when the store cannot be read).
        public var nextScale: Int
        /// Why the last due slot started no exercise, if it did not (this daemon's view).
        public var notFired: String?
    }

    /// `sites`: how many sites a plan selects in its store now (nil: not known).
    public func upcoming(sites: (Plan) async -> Int? = { _ in nil }) async throws -> [Upcoming] {
        let now = clock.now()
        var result: [Upcoming] = []
        for entry in plans.plans {
            guard let schedule = entry.plan.schedule else { continue }
            let record = try await ledger.schedule(plan: entry.plan.name)
            // Not yet armed: the first slot after now.
            let base = record.map(\.base) ?? now
            result.append(Upcoming(plan: entry.plan.name, expression: schedule.exercise.text,
                                   next: schedule.exercise.nextFire(after: base), last: record?.lastFireAt,
                                   exercises: record?.exercises ?? 0,
                                   nextScale: schedule.scale.sites(forExercise: record?.exercises ?? 0, total: await sites(entry.plan) ?? Int.max),
                                   notFired: notFired.withLock { $0[entry.plan.name] }))
        }
        return result
    }
}
