import Synchronization
import Testing
@testable import LifeboatKit

/// The group commit's own rules, over a committer that records what it is given.
@Suite struct GroupCommitTests {
    /// Records each batch, and whether the task committing it was cancelled.
    final class Recorder: Sendable {
        let batches = Mutex<[[Int]]>([])
        let sawCancellation = Atomic<Bool>(false)

        func commit(_ operations: [Int]) async throws {
            if Task.isCancelled { sawCancellation.store(true, ordering: .relaxed) }
            batches.withLock { $0.append(operations) }
        }
    }

    @Test func aFlushWithNothingPendingCommitsNothing() async throws {
        let recorder = Recorder()
        let commits = GroupCommit<Int>(committer: recorder.commit)
        try await commits.flush()
        #expect(recorder.batches.withLock { $0 }.isEmpty)
        commits.post(1)
        try await commits.flush()
        #expect(recorder.batches.withLock { $0 } == [[1]])
    }

    @Test func postedChangesGoFirstInTheOrderQueued() async throws {
        let recorder = Recorder()
        let commits = GroupCommit<Int>(committer: recorder.commit)
        commits.post(1)
        commits.post(2)
        try await commits.write(3, thenPost: [4])
        #expect(recorder.batches.withLock { $0 }.flatMap { $0 } == [1, 2, 3, 4])
    }

    @Test func aCancelledWriterStillHasItsChangeCommitted() async throws {
        let recorder = Recorder()
        let commits = GroupCommit<Int>(committer: recorder.commit)
        let writer = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await commits.write(7)
        }
        try await writer.value
        #expect(recorder.batches.withLock { $0 } == [[7]])
        let cancelled = recorder.sawCancellation.load(ordering: .relaxed)
        #expect(!cancelled, "the commit ran in the cancelled writer's task")
    }

    @Test func concurrentWritesAllLandInBatches() async throws {
        let recorder = Recorder()
        let commits = GroupCommit<Int>(committer: recorder.commit)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<200 { group.addTask { try await commits.write(i) } }
            try await group.waitForAll()
        }
        let batches = recorder.batches.withLock { $0 }
        #expect(batches.flatMap { $0 }.sorted() == Array(0..<200))
        #expect(batches.allSatisfy { !$0.isEmpty })
    }
}
