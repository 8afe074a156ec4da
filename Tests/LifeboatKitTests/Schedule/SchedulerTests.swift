import Foundation
import Synchronization
import Testing
import Logging
@testable import LifeboatKit

@Suite struct SchedulerTests {
    final class Fixture: Sendable {
        let dir: TestDirectory
        let ledger: SQLiteLedger
        let plans: PlanRegistry
        let clock: TestClock
        let fired = Mutex<[RunRequest]>([])
        /// Whether starting a run fails (as when the plan's store is unreachable).
        let startFails = Mutex(false)

        init(schedule: String = "\"0 3 * * *\"", name: String = #function) throws {
            dir = TestDirectory(name)
            dir.write("plans/nightly.yaml", """
                snapshots: store
                target: out/{site}/{product}
                sandbox: sandbox/{run}/{site}/{product}
                products: [{ name: contacts }]
                schedule:
                  exercise: \(schedule)
                  scale: { start: 2, factor: 3 }
                """)
            ledger = try SQLiteLedger(path: dir.file("ledger.sqlite"))
            plans = PlanRegistry(directory: dir.file("plans"))
            #expect(plans.reload().isEmpty)
            clock = TestClock(Timestamp.parse("2026-11-25T10:00:00Z")!)
        }

        func scheduler() -> Scheduler {
            let ready = ReadySignal()
            ready.signal()
            let clock = self.clock
            return Scheduler(plans: plans, ledger: ledger, clock: clock, startAfter: ready, logger: Logger(label: "test")) { [self] request in
                if self.startFails.withLock({ $0 }) { throw ControlError(.unavailable, "the store is unreachable") }
                self.fired.withLock { $0.append(request) }
                return RunRecord(id: "r\(self.fired.withLock { $0.count })", plan: request.plan.name, planPath: nil, mode: .exercise,
                                 declaredAt: clock.now(), incidentAt: clock.now(), asOf: clock.now(), createdAt: clock.now(),
                                 startedBy: "scheduler", rtoObjectiveSeconds: nil, rpoObjectiveSeconds: nil, totalWaves: 1)
            }
        }
    }

    @Test func firesAtTheSlotAndGrowsTheScale() async throws {
        let fx = try Fixture()
        let scheduler = fx.scheduler()
        // First sight arms the schedule: 10:00 is after today's 03:00 slot, so nothing fires.
        let wake = try await scheduler.tick()
        #expect(Timestamp.iso(wake) == "2026-11-25T10:01:00Z") // the periodic re-check comes before tomorrow's slot
        #expect(fx.fired.withLock { $0.isEmpty })
        // At 03:00 the next day it fires, with the first scale.
        fx.clock.advance(by: 17 * 3_600)
        try await scheduler.tick()
        #expect(fx.fired.withLock { $0.map(\.scale) } == [2])
        // Not again in the same slot.
        fx.clock.advance(by: 60)
        try await scheduler.tick()
        #expect(fx.fired.withLock { $0.count } == 1)
        // Next day: 2 × 3 = 6 sites, then 18.
        fx.clock.advance(by: 86_400)
        try await scheduler.tick()
        fx.clock.advance(by: 86_400)
        try await scheduler.tick()
        #expect(fx.fired.withLock { $0.map(\.scale) } == [2, 6, 18])
        #expect(fx.fired.withLock { $0.allSatisfy { $0.mode == .exercise && $0.startedBy == "scheduler" } })
        let record = try await fx.ledger.schedule(plan: "nightly")
        #expect(record?.exercises == 3)
    }

    /// An exercise that could not start is not counted: the next one has the scale it would
    /// have had, and the failed slot is not fired again.
    @Test func anExerciseThatDidNotStartDoesNotGrowTheScale() async throws {
        let fx = try Fixture()
        let scheduler = fx.scheduler()
        try await scheduler.tick() // armed at 10:00
        fx.startFails.withLock { $0 = true }
        fx.clock.advance(by: 17 * 3_600)
        try await scheduler.tick()
        fx.clock.advance(by: 60)
        try await scheduler.tick()
        #expect(fx.fired.withLock { $0.isEmpty })
        #expect(try await fx.ledger.schedule(plan: "nightly")?.exercises == 0)
        #expect(try await scheduler.upcoming().first?.nextScale == 2)
        // `schedules` says why the slot started nothing.
        let why = try await scheduler.upcoming().first?.notFired
        #expect(why?.hasPrefix("the slot of 2026-11-26T03:00:00Z started nothing: ") == true && why?.contains("the store is unreachable") == true, "\(why ?? "")")
        fx.startFails.withLock { $0 = false }
        fx.clock.advance(by: 86_400)
        try await scheduler.tick()
        #expect(fx.fired.withLock { $0.map(\.scale) } == [2])
        #expect(try await fx.ledger.schedule(plan: "nightly")?.exercises == 1)
        #expect(try await scheduler.upcoming().first?.notFired == nil)
    }

    /// An exercise still going at its plan's next slot: that slot starts nothing (exercises
    /// longer than their period would pile up and take every run slot from restores), is not
    /// counted, and `schedules` says why; the slot after it fires as usual.
    @Test func aSlotWhileTheLastExerciseIsStillGoingStartsNothing() async throws {
        let fx = try Fixture()
        let scheduler = fx.scheduler()
        try await scheduler.tick() // armed at 10:00
        fx.clock.advance(by: 17 * 3_600)
        try await scheduler.tick()
        #expect(fx.fired.withLock { $0.map(\.scale) } == [2])
        var going = RunRecord(id: "20261126-030000-0001", plan: "nightly", planPath: nil, mode: .exercise, declaredAt: fx.clock.now(),
                              incidentAt: fx.clock.now(), asOf: fx.clock.now(), createdAt: fx.clock.now(), startedBy: "scheduler",
                              rtoObjectiveSeconds: nil, rpoObjectiveSeconds: nil, totalWaves: 1)
        going.state = .running
        _ = try await fx.ledger.createRun(going, jobs: [])
        fx.clock.advance(by: 86_400)
        try await scheduler.tick()
        fx.clock.advance(by: 60)
        try await scheduler.tick()
        #expect(fx.fired.withLock { $0.count } == 1)
        #expect(try await fx.ledger.schedule(plan: "nightly")?.exercises == 1)
        #expect(try await scheduler.upcoming().first?.notFired
                == "the slot of 2026-11-27T03:00:00Z started nothing: exercise 20261126-030000-0001 of the plan is still running")
        going.state = .succeeded
        going.finishedAt = fx.clock.now()
        try await fx.ledger.updateRun(going)
        fx.clock.advance(by: 86_400)
        try await scheduler.tick()
        #expect(fx.fired.withLock { $0.map(\.scale) } == [2, 6])
    }

    @Test func missedSlotsWhileDownFireOnceAtStartUp() async throws {
        let fx = try Fixture()
        try await fx.scheduler().tick() // armed at 10:00
        // The daemon is down for five days: five 03:00 slots pass.
        fx.clock.advance(by: 5 * 86_400)
        let restarted = fx.scheduler()
        try await restarted.tick()
        try await restarted.tick()
        #expect(fx.fired.withLock { $0.count } == 1)
        let upcoming = try await restarted.upcoming()
        #expect(upcoming.first.flatMap { $0.next }.map(Timestamp.iso) == "2026-12-01T03:00:00Z")
        #expect(upcoming.first?.nextScale == 6)
    }

    /// A schedule changed by a reload is armed anew, as cron starts a new crontab: a slot of
    /// the new expression that passed before the change is not "missed" (found by a review:
    /// it fired at once). The count stays, so the scale goes on growing.
    @Test func aScheduleChangedWhileRunningStartsFromTheChange() async throws {
        let fx = try Fixture()
        let scheduler = fx.scheduler()
        try await scheduler.tick() // armed at 10:00 with 03:00 daily
        fx.clock.advance(by: 17 * 3_600)
        try await scheduler.tick() // fires at 03:00 the next day
        #expect(fx.fired.withLock { $0.count } == 1)
        // At 06:30, the plan is changed to 06:00 daily and reloaded: 06:00 today has passed.
        fx.clock.advance(by: 3 * 3_600 + 30 * 60)
        fx.dir.write("plans/nightly.yaml", (try String(contentsOfFile: fx.dir.file("plans/nightly.yaml"), encoding: .utf8))
            .replacingOccurrences(of: "\"0 3 * * *\"", with: "\"0 6 * * *\""))
        #expect(fx.plans.reload().isEmpty)
        let wake = try await scheduler.tick()
        #expect(fx.fired.withLock { $0.count } == 1, "fired for a slot before the change")
        #expect(Timestamp.iso(wake) == "2026-11-26T06:31:00Z")
        #expect(try await scheduler.upcoming().first.flatMap { $0.next }.map(Timestamp.iso) == "2026-11-27T06:00:00Z")
        // Its first slot after the change fires, with the next scale.
        fx.clock.advance(by: 86_400 - 30 * 60)
        try await scheduler.tick()
        #expect(fx.fired.withLock { $0.map(\.scale) } == [2, 6])
        // Unchanged across ticks and restarts: nothing is armed anew.
        fx.clock.advance(by: 60)
        try await fx.scheduler().tick()
        #expect(try await fx.ledger.schedule(plan: "nightly")?.armedAt == Timestamp.parse("2026-11-26T06:30:00Z"))
    }

    /// The same for a schedule that never fired yet (the review's case: armed with @yearly).
    @Test func aScheduleThatNeverFiredChangedWhileRunningStartsFromTheChange() async throws {
        let fx = try Fixture(schedule: "\"@yearly\"")
        let scheduler = fx.scheduler()
        try await scheduler.tick() // armed at 10:00 on 2026-11-25
        fx.clock.advance(by: 30 * 60)
        fx.dir.write("plans/nightly.yaml", (try String(contentsOfFile: fx.dir.file("plans/nightly.yaml"), encoding: .utf8))
            .replacingOccurrences(of: "\"@yearly\"", with: "\"15 10 * * *\""))
        #expect(fx.plans.reload().isEmpty)
        try await scheduler.tick() // 10:30: today's 10:15 passed, after the arming but before the change
        #expect(fx.fired.withLock { $0.isEmpty }, "fired for a slot before the change")
        fx.clock.advance(by: 86_400)  // 10:30 the next day: its 10:15 fires
        try await scheduler.tick()
        #expect(fx.fired.withLock { $0.count } == 1)
    }

    @Test func scaleIsCappedAtAllSites() {
        let scale = ExerciseScale(start: 10, factor: 2)
        #expect((0..<6).map { scale.sites(forExercise: $0, total: 100) } == [10, 20, 40, 80, 100, 100])
        #expect(RunPlanner.sample((1...5).map { "s\($0)" }, count: scale.sites(forExercise: 3, total: Int.max), seed: 1).count == 5)
    }
}
