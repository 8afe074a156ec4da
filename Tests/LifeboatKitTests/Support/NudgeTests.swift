import Foundation
import Testing
@testable import LifeboatKit

/// Wake-ups of loops that otherwise look every so often (the job worker, a run's coordinator
/// following a shared ledger). The waits are a minute long: one that is not woken fails the
/// 30-second bound instead of passing late.
@Suite struct NudgeTests {
    private func elapsed(_ body: () async -> Void) async -> Duration {
        let start = ContinuousClock.now
        await body()
        return .now - start
    }

    @Test func aNudgeEndsTheWaitUnderWay() async {
        let nudge = Nudge()
        let waiter = Task { await elapsed { await nudge.wait(upTo: .seconds(60)) } }
        try? await Task.sleep(for: .milliseconds(50))
        nudge.nudge()
        #expect(await waiter.value < .seconds(30))
    }

    @Test func aNudgeBeforeTheWaitIsNotLostAndCountsOnce() async {
        let nudge = Nudge()
        nudge.nudge()
        nudge.nudge()
        #expect(await elapsed { await nudge.wait(upTo: .seconds(60)) } < .seconds(30))
        // Both nudges came before that wait: the next one runs its time.
        #expect(await elapsed { await nudge.wait(upTo: .milliseconds(80)) } >= .milliseconds(80))
    }

    @Test func aCancelledWaitReturns() async {
        let nudge = Nudge()
        let waiter = Task { await elapsed { await nudge.wait(upTo: .seconds(60)) } }
        try? await Task.sleep(for: .milliseconds(50))
        waiter.cancel()
        #expect(await waiter.value < .seconds(30))
    }

    @Test func aJobEndingWakesItsRunsFollowerOnly() async {
        let wakeups = HostWakeups()
        await wakeups.following("run-a") { nudge in
            wakeups.jobEnded(runId: "run-b")
            #expect(await elapsed { await nudge.wait(upTo: .milliseconds(80)) } >= .milliseconds(80))
            Task { try? await Task.sleep(for: .milliseconds(30)); wakeups.jobEnded(runId: "run-a") }
            #expect(await elapsed { await nudge.wait(upTo: .seconds(60)) } < .seconds(30))
        }
        wakeups.jobEnded(runId: "run-a")  // nobody follows it any more: nothing to wake
    }

    @Test func aRunStartingWakesTheWorkerAndMakesItReadTheRuns() async {
        let wakeups = HostWakeups()
        #expect(!wakeups.takeRunsChanged())
        let worker = Task { await elapsed { await wakeups.claims.wait(upTo: .seconds(60)) } }
        try? await Task.sleep(for: .milliseconds(50))
        wakeups.runStarted()
        #expect(await worker.value < .seconds(30))
        #expect(wakeups.takeRunsChanged())
        #expect(!wakeups.takeRunsChanged())
    }
}
