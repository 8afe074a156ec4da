import Foundation
import Testing
@testable import LifeboatKit

/// `status` reads the board, not the ledger: the board must say what the ledger says.
@Suite struct RunBoardTests {
    @Test func theBoardCountsWhatTheLedgerRecords() async throws {
        let sites = (1...4).map { "site\($0)" }
        let fixture = try EngineFixture(sites: sites, products: "  - name: contacts\n  - name: jira\n    after: [contacts]", extra: "concurrency: 3")
        // Jobs hold long enough to look at the board while three of them are restoring.
        let executor = FakeExecutor(holdMilliseconds: 1_500)
        executor.fail("site1/contacts", with: [JobError(.integrity, "checksum mismatch")])
        let board = RunBoard()
        let engine = Engine(environment: RunEnvironment(ledger: fixture.ledger, executor: executor, board: board))
        let created = try await engine.create(RunRequest(plan: fixture.plan, mode: .restore))
        let runId = created.run.id
        #expect(board.run(runId) == nil)
        async let finished = engine.execute(runId: runId, plan: fixture.plan)
        // Mid-run, every job sits still in the executor: the board and the ledger agree.
        try await waitUntil { try await fixture.ledger.jobCounts(runId: runId)[.restoring] == 3 }
        let live = try #require(board.run(runId))
        #expect(live.run.state == .running)
        #expect(live.counts == (try await fixture.ledger.jobCounts(runId: runId)))
        #expect(live.counts[.restoring] == 3 && live.counts.values.reduce(0, +) == 8)
        let run = try await finished
        #expect(run.state == .failed)
        // Ended, the run leaves the board; what it restored stays counted for throughput.
        #expect(board.run(runId) == nil)
        let counts = try await fixture.ledger.jobCounts(runId: runId)
        #expect(counts == [.succeeded: 6, .failed: 1, .skipped: 1])
        #expect(board.bytesRestored(since: .distantPast) == 6 * 1_000)
        #expect(board.bytesRestored(since: Date().addingTimeInterval(60)) == 0)
    }
}
