import Foundation
import Testing
@testable import LifeboatKit

/// A claim's deadline by the host's own clock: confirmations only move it later, the ledger's
/// "gone" ends it at once, and a commit needs some of it left.
@Suite struct ClaimDeadlineTests {
    @Test func confirmationsOnlyMoveItLaterAndALossEndsIt() {
        let now = ContinuousClock.now
        let deadline = ClaimDeadline(until: now + .seconds(30))
        #expect(!deadline.passed())
        #expect(!deadline.passed(within: .seconds(20)))
        #expect(deadline.passed(within: .seconds(40)))
        // A late answer to an older request does not shorten it.
        deadline.extend(to: now + .seconds(5))
        #expect(!deadline.passed(within: .seconds(20)))
        deadline.extend(to: now + .seconds(60))
        #expect(!deadline.passed(within: .seconds(50)))
        deadline.expire()
        #expect(deadline.passed())
        // Once lost, a confirmation of a request sent before can still not revive it past now.
        deadline.extend(to: now - .seconds(1))
        #expect(deadline.passed())
    }

    @Test func aDeadlineInThePastHasPassed() {
        #expect(ClaimDeadline(until: .now - .milliseconds(1)).passed())
    }

    /// The job goes back to the queue, saying why, when its host lost the claim.
    @Test func aJobInterruptedByALostClaimSaysSo() throws {
        var job = JobRecord(runId: "r", site: "s", product: "p", wave: 0, priority: 0, productOrder: 0, destination: "/d")
        job.state = .verifying
        let back = try JobLifecycle.apply(.interrupted(at: Date(), reason: "the loss of its claim on host h"), to: job)
        #expect(back.job.state == .pending && back.job.error == "interrupted by the loss of its claim on host h")
    }
}
