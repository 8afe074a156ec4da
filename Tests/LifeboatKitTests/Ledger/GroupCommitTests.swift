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

    /// Opens once; whoever waits before that waits until then.
    final class Gate: Sendable {
        private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

        func open() {
            let waiters = state.withLock { s in
                s.open = true
                defer { s.waiters = [] }
                return s.waiters
            }
            for waiter in waiters { waiter.resume() }
        }

        func wait() async {
            await withCheckedContinuation { continuation in
                let open = state.withLock { s in
                    if !s.open { s.waiters.append(continuation) }
                    return s.open
                }
                if open { continuation.resume() }
            }
        }
    }

    @Test func aWriterIsNotHeldToCommitTheBatchesAfterItsOwn() async throws {
        let (firstStarted, first, second) = (Gate(), Gate(), Gate())
        let commits = GroupCommit<Int>(committer: { operations in
            if operations.contains(1) {
                firstStarted.open()
                await first.wait()
            }
            if operations.contains(2) { await second.wait() }
        })
        let writer = Task { try await commits.write(1) }
        await firstStarted.wait()
        commits.post(2) // queued behind the batch being committed: the next batch
        first.open()
        // The writer's change is durable once its batch is: it returns while the next batch
        // is still being committed (which waits here until the writer returned, or 5 s).
        let returned = await withTaskGroup(of: Bool.self) { group in
            group.addTask { (try? await writer.value) != nil }
            group.addTask {
                try? await Task.sleep(for: .seconds(5))
                second.open()
                return false
            }
            let first = await group.next() ?? false
            second.open()
            group.cancelAll()
            return first
        }
        try await commits.flush()
        #expect(returned, "the first writer was held until the batch after its own was committed")
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

    /// A job that posts its verifying and then verifies for an hour is not shown restoring all
    /// that hour: with no write to go with them, posted changes are written after their linger.
    @Test func postedChangesAloneAreWrittenAfterTheirLinger() async throws {
        let recorder = Recorder()
        let commits = GroupCommit<Int>(committer: recorder.commit)
        commits.post(1)
        commits.post(2)
        // Generous deadlines: under the whole suite, blocking tests can keep Swift's few pool
        // threads, and so the linger's timer, waiting for seconds.
        var deadline = ContinuousClock.now + .seconds(60)
        while recorder.batches.withLock({ $0.isEmpty }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(recorder.batches.withLock { $0 }.flatMap { $0 } == [1, 2])
        // Later posts linger again, and go after the earlier ones.
        commits.post(3)
        deadline = ContinuousClock.now + .seconds(60)
        while recorder.batches.withLock({ $0.flatMap { $0 }.count < 3 }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(recorder.batches.withLock { $0 }.flatMap { $0 } == [1, 2, 3])
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

    /// A database that does not answer: awaited writes and flushes fail to their callers at
    /// once; posted changes are kept, in order, and written once it answers; a change it refuses
    /// is dropped; once retrying stops, unanswered posts are dropped too.
    @Test func postedChangesWaitOutADatabaseThatDoesNotAnswer() async throws {
        struct NoAnswer: Error {}
        struct Refused: Error {}
        let down = Atomic<Bool>(true)
        let recorder = Recorder()
        let commits = GroupCommit<Int>(committer: { operations in
            if down.load(ordering: .relaxed) { throw NoAnswer() }
            if operations.contains(99) { throw Refused() }
            try await recorder.commit(operations)
        }, unanswered: { $0 is NoAnswer })
        commits.post(1)
        commits.post(2)
        await #expect(throws: NoAnswer.self) { try await commits.write(3) }
        commits.post(4)
        await #expect(throws: NoAnswer.self) { try await commits.flush() }
        #expect(commits.droppedPosts.load(ordering: .relaxed) == 0)
        #expect(recorder.batches.withLock { $0 }.isEmpty)
        // It answers: the kept changes go first, in their order, then what comes after them;
        // the one it refuses alone is dropped.
        down.store(false, ordering: .relaxed)
        commits.post(99)
        try await commits.write(5)
        #expect(recorder.batches.withLock { $0 }.flatMap { $0 } == [1, 2, 4, 5])
        #expect(commits.droppedPosts.load(ordering: .relaxed) == 1)
        // Closed for good: an unanswered post is dropped, not kept for ever.
        down.store(true, ordering: .relaxed)
        commits.stopRetrying()
        commits.post(6)
        try await commits.flush()
        #expect(commits.droppedPosts.load(ordering: .relaxed) == 2)
        down.store(false, ordering: .relaxed)
        try await commits.write(7)
        #expect(recorder.batches.withLock { $0 }.flatMap { $0 } == [1, 2, 4, 5, 7])
    }

    /// A committer that made a batch durable but for some posted changes it writes last (the
    /// PostgreSQL ledger's events after a transaction of several steps): the waiters of the rest
    /// hear success; what was left is kept for the next batch when nobody could be asked, and
    /// made one by one when it was refused (the one refused alone is dropped, counted and told).
    @Test func whatAPartialCommitLeftIsKeptOrMadeAlone() async throws {
        struct NoAnswer: Error {}
        struct Refused: Error {}
        let down = Atomic<Bool>(true)
        let recorder = Recorder()
        let told = Mutex<[String]>([])
        let commits = GroupCommit<Int>(committer: { operations in
            // Negative numbers stand for changes written after the rest (alone, in one call);
            // -3 is refused.
            let (rest, last) = (operations.filter { $0 >= 0 }, operations.indices.filter { operations[$0] < 0 })
            let error: (any Error)? = down.load(ordering: .relaxed) ? NoAnswer() : last.contains { operations[$0] == -3 } ? Refused() : nil
            if rest.isEmpty, let error { throw error }
            if !rest.isEmpty { try await recorder.commit(rest) }
            if let error, !last.isEmpty { throw PartialCommit(left: last, error: error) }
            if !last.isEmpty { try await recorder.commit(last.map { operations[$0] }) }
        }, unanswered: { $0 is NoAnswer }, dropped: { count, why in told.withLock { $0.append("\(count) \(why)") } })
        commits.post(-1)
        try await commits.write(1, thenPost: [-2])
        // Unanswered: kept, and written (first) with the next batch.
        #expect(recorder.batches.withLock { $0 } == [[1]])
        down.store(false, ordering: .relaxed)
        try await commits.write(2)
        #expect(recorder.batches.withLock { $0 } == [[1], [2], [-1, -2]])
        #expect(commits.droppedPosts.load(ordering: .relaxed) == 0)
        // Refused: made one by one; the one refused alone is dropped, the other written.
        commits.post(-3)
        commits.post(-4)
        try await commits.write(3)
        #expect(recorder.batches.withLock { $0 } == [[1], [2], [-1, -2], [3], [-4]])
        #expect(commits.droppedPosts.load(ordering: .relaxed) == 1)
        #expect(told.withLock { $0 } == ["1 Refused()"])
    }

    /// Posted changes a partial commit says are held back (`retryAfter`: PostgreSQL's events
    /// lock held by another session) are set aside, with the deferrable ones queued after them,
    /// in order; the batches in between are given none of them, so they never wait on what holds
    /// them. A flush tries them at once; once their time came they are tried again with no other
    /// write to carry them; then written, in the order posted. (Waits long enough for a loaded
    /// machine: the set-aside times are 30 s where a test must not reach them.)
    @Test func changesHeldBackAreSetAsideWhileTheRestGoesOn() async throws {
        struct Held: Error {}
        let held = Atomic<Bool>(true)
        let retryAfter = Atomic<Int>(30_000)
        let given = Mutex<[[Int]]>([])
        let recorder = Recorder()
        let commits = GroupCommit<Int>(committer: { operations in
            // Negative numbers stand for events: written after the rest, held back while `held`.
            given.withLock { $0.append(operations) }
            let (rest, last) = (operations.filter { $0 >= 0 }, operations.indices.filter { operations[$0] < 0 })
            if !rest.isEmpty { try await recorder.commit(rest) }
            guard !last.isEmpty else { return }
            if held.load(ordering: .relaxed) {
                throw PartialCommit(left: last, error: Held(), retryAfter: .milliseconds(retryAfter.load(ordering: .relaxed)))
            }
            try await recorder.commit(last.map { operations[$0] })
        }, deferrable: { $0 < 0 })
        commits.post(-1)
        try await commits.write(1)
        commits.post(-2)
        try await commits.write(2)
        commits.post(-3)
        try await commits.write(3)
        #expect(given.withLock { $0 } == [[-1, 1], [2], [3]])
        // A flush tries them at once: still held, set aside again.
        try await commits.flush()
        try await commits.write(4)
        #expect(given.withLock { $0 } == [[-1, 1], [2], [3], [-1, -2, -3], [4]])
        held.store(false, ordering: .relaxed)
        try await commits.flush()
        #expect(recorder.batches.withLock { $0 } == [[1], [2], [3], [4], [-1, -2, -3]])
        // Their time come, they are tried with nothing else to carry them.
        held.store(true, ordering: .relaxed)
        retryAfter.store(200, ordering: .relaxed)
        commits.post(-5)
        try await commits.write(5)
        held.store(false, ordering: .relaxed)
        try await waitUntil(timeout: .seconds(30)) { recorder.batches.withLock { $0.last } == [-5] }
        #expect(commits.droppedPosts.load(ordering: .relaxed) == 0)
        // Set aside when the ledger closes: dropped, and said.
        held.store(true, ordering: .relaxed)
        retryAfter.store(30_000, ordering: .relaxed)
        commits.post(-6)
        try await commits.write(6)
        commits.stopRetrying()
        #expect(commits.droppedPosts.load(ordering: .relaxed) == 1)
    }

    /// What is set aside is bounded like what waits for an answer: past `keptPosts`, the oldest
    /// go first, counted and said.
    @Test func changesSetAsideAreBounded() async throws {
        struct Held: Error {}
        let told = Mutex<[String]>([])
        let commits = GroupCommit<Int>(committer: { operations in
            let last = operations.indices.filter { operations[$0] < 0 }
            if !last.isEmpty { throw PartialCommit(left: last, error: Held(), retryAfter: .seconds(30)) }
        }, deferrable: { $0 < 0 }, dropped: { count, why in told.withLock { $0.append("\(count) \(why)") } })
        let limit = GroupCommit<Int>.keptPosts
        for event in 1...(limit + 10) { commits.post(-event) }
        try await commits.write(1)
        #expect(commits.droppedPosts.load(ordering: .relaxed) == 10)
        #expect(told.withLock { $0 } == ["10 more than \(limit) changes waited for what held them back; the oldest went first"])
        commits.stopRetrying()
        #expect(commits.droppedPosts.load(ordering: .relaxed) == 10 + limit)
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
