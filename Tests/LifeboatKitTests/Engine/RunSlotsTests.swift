import Foundation
import Testing
@testable import LifeboatKit

/// `max_concurrent_runs`: order, wait reasons, halts that give the slot up, cancels and reloads.
@Suite struct RunSlotsTests {
    @Test func queuedRunsStartInOrderAndSayWhatTheyWaitBehind() async throws {
        let slots = RunSlots(limit: 1)
        #expect(await slots.acquire("a"))
        async let b = slots.acquire("b")
        try await waitUntil { slots.wait(of: "b") != nil }
        async let c = slots.acquire("c")
        try await waitUntil { slots.wait(of: "c") != nil }
        let reason = try #require(slots.wait(of: "c"))
        #expect(reason.holders == ["a"] && reason.ahead == ["b"] && reason.limit == 1)
        #expect(reason.message.contains("max_concurrent_runs is 1 and run(s) a hold the slot(s); 1 run(s) queued before it (b)"))
        #expect(!slots.tryAcquire("d"), "a free-for-all would jump the queue")
        slots.release("a")
        #expect(await b)
        #expect(slots.holders == ["b"] && slots.wait(of: "c")?.ahead == [])
        // A reload that raises the limit starts the next at once.
        slots.setLimit(2)
        #expect(await c)
        #expect(slots.holders == ["b", "c"])
    }

    /// An unattended exercise never delays a restore beyond the one it runs: a restore queued
    /// after it gets the next slot first, and each says so.
    @Test func exercisesYieldTheirTurnToRestores() async throws {
        let slots = RunSlots(limit: 1)
        #expect(await slots.acquire("running"))
        slots.markRehearsal("exercise")
        async let exercise = slots.acquire("exercise")
        try await waitUntil { slots.wait(of: "exercise") != nil }
        // Predicted the moment it is registered, before it queues: nothing ahead of it.
        #expect(slots.waitIfQueued("restore")?.ahead == [])
        async let restore = slots.acquire("restore")
        try await waitUntil { slots.wait(of: "restore") != nil }
        #expect(slots.wait(of: "restore")?.ahead == [] && slots.wait(of: "exercise")?.ahead == ["restore"])
        // The slot goes at once (release grants it): to the restore, queued last.
        slots.release("running")
        let first = slots.holders
        #expect(first == ["restore"] && slots.wait(of: "exercise")?.ahead == [])
        // Whichever got it lets go, so that neither wait is left hanging if the order was wrong.
        slots.release(first.first ?? "")
        let granted = (await restore, await exercise)
        #expect(granted == (true, true))
        slots.forget("exercise")
    }

    @Test func aWithdrawnWaitEndsWithoutASlot() async throws {
        let slots = RunSlots(limit: 1)
        #expect(await slots.acquire("a"))
        let control = RunControl(slots: slots, runId: "b")
        async let b = slots.acquire("b")
        try await waitUntil { slots.wait(of: "b") != nil }
        control.cancel(by: "uid 0")
        #expect(await b == false)
        #expect(slots.holders == ["a"] && slots.wait(of: "b") == nil)
    }

    /// The decision: a run halted by a wave gate holds no slot (a halted canary does not block an
    /// unrelated urgent restore); resumed, it waits for a free slot like a queued run.
    @Test func aHaltedRunGivesItsSlotUpAndAResumedOneWaitsItsTurn() async throws {
        let fixture = try EngineFixture(sites: ["a", "b", "c"], products: "  - name: contacts", extra: """
            waves:
              - { sites: 1, gate: { max_failures: 0 } }
              - { sites: rest }
            """)
        let executor = FakeExecutor()
        executor.fail("a/contacts", with: [JobError(.integrity, "bad")])
        let engine = fixture.engine(executor)
        let created = try await engine.create(RunRequest(plan: fixture.plan, mode: .restore))
        let runId = created.run.id
        let slots = RunSlots(limit: 1)
        let control = RunControl(slots: slots, runId: runId)
        #expect(await slots.acquire(runId))
        async let finished = engine.execute(runId: runId, plan: fixture.plan, control: control)
        try await waitUntil { control.isHalted }
        #expect(slots.holders == [], "a halted run keeps its slot")
        #expect(await slots.acquire("urgent"))
        // Resumed while the urgent run holds the only slot: it waits, recorded pending and why.
        #expect(control.resume())
        try await waitUntil { slots.wait(of: runId) != nil }
        let waiting = try await fixture.ledger.run(id: runId)
        #expect(waiting?.state == .pending)
        #expect(waiting?.note == "resumed after wave 1 gate; waiting for a run slot (max_concurrent_runs)")
        #expect(executor.records.count == 1, "wave 2 started without a slot")
        slots.release("urgent")
        let run = try await finished
        #expect(run.state == .failed)
        #expect(try await fixture.ledger.jobs(runId: runId).filter { $0.state == .succeeded }.map(\.site) == ["b", "c"])
        #expect(slots.holders == [runId])
    }
}
