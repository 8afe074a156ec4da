import Foundation
import GRDB
import Synchronization

/// Group commit over one writer (SQLite's one writer connection, or one PostgreSQL transaction at
/// a time): writes queued while a transaction is being made durable go together into the next
/// one, so N concurrent jobs cost about one fsync (or round trip), not N.
///
/// `write` returns once its change is durable. `post` queues a change without waiting; it
/// becomes durable with the next batch, which it starts itself after `linger` when nothing else
/// does. Order is preserved across both.
///
/// Batches are committed by a drain of their own, started when a write finds none running and
/// ending when nothing is pending: no caller's task is held to commit the others' batches, and a
/// cancelled caller cannot cancel a commit (a cancelled job still has to record that it was
/// cancelled).
///
/// A batch that fails because the database could not be asked (`unanswered`: refused, dropped,
/// no connection) fails its awaited writes to their callers at once, who decide (a fenced job
/// stops); its posted changes, which have nobody to tell, are kept at the head of the queue, in
/// order, and tried again after `retryPause` until the database answers or `stopRetrying()`.
///
/// A partial commit may say that what it left waits for something held elsewhere (`retryAfter`:
/// PostgreSQL's events lock, held by another session). Those posted changes, and the
/// `deferrable` ones queued after them, are then set aside, in order, and tried again after that
/// long, while the batches in between go on without them: the lane does not pause.
final class GroupCommit<Operation: Sendable>: Sendable {
    /// Commits operations in one transaction, in order, durable when it returns; throws (having
    /// committed none of them) when any fails — or `PartialCommit` when all but some posted
    /// changes, written after the rest, are durable.
    typealias Committer = @Sendable ([Operation]) async throws -> Void
    /// The same, synchronously, on the writer's own thread.
    typealias SerialCommitter = ([Operation]) throws -> Void

    /// Where the drain runs.
    enum Lane: Sendable {
        /// In a task of its own, each batch awaited (a PostgreSQL transaction on a pooled connection).
        case task(Committer)
        /// On the writer's thread, batch after batch without leaving it: `schedule` runs the
        /// drain it is given there, handing it the committer that is valid on that thread (SQLite's
        /// one writer connection). A batch then costs no thread hop, only its commit.
        case serial(schedule: @Sendable (_ drain: @escaping @Sendable (SerialCommitter) -> Void) -> Void)
    }

    private struct Waiter {
        var ticket: Int
        var continuation: CheckedContinuation<Void, Error>
    }

    private struct Item {
        var ticket: Int
        /// nil: a flush, which only waits.
        var operation: Operation?
        /// A caller waits for this one (posted changes have nobody to tell of a failure).
        var awaited: Bool
    }

    private struct State {
        var pending: [Item] = []
        var nextTicket = 1
        var waiters: [Waiter] = []
        var flushing = false
        /// A posted change waits out `linger` before it is written without a write to go with.
        var lingering = false
        /// When the batch being committed was sent (nil between batches).
        var committingSince: ContinuousClock.Instant?
        /// Tickets whose batch failed, with the error (only for awaited writes).
        var failures: [Int: Error] = [:]
        var committedThrough = 0
        /// Posted changes set aside (`PartialCommit.retryAfter`), in order, and until when.
        var deferred: [Item] = []
        var deferredUntil: ContinuousClock.Instant?
    }

    private let lane: Lane
    private let state = Mutex(State())
    /// Posted changes that could not be written (the database refused them, or they were more
    /// than `keptPosts` waiting for it): nobody was waiting to be told.
    let droppedPosts = Atomic<Int>(0)
    /// Whether a failed batch failed for want of an answer (nil: every failure is the change's).
    private let unanswered: (@Sendable (any Error) -> Bool)?
    /// Which posted changes are set aside behind those a partial commit deferred (nil: none).
    private let deferrable: (@Sendable (Operation) -> Bool)?
    /// Cleared by `stopRetrying()`: posted changes of an unanswered batch are then dropped.
    private let retrying = Atomic<Bool>(true)
    /// Posted changes kept for a database that does not answer, at most (the oldest go first).
    static var keptPosts: Int { 100_000 }
    /// The wait before a batch of kept changes is tried again.
    static var retryPause: Duration { .milliseconds(500) }

    /// Told of posted changes dropped: how many, and why (nobody waits on them to hear it).
    private let dropped: @Sendable (_ count: Int, _ why: String) -> Void

    init(lane: Lane, unanswered: (@Sendable (any Error) -> Bool)? = nil, deferrable: (@Sendable (Operation) -> Bool)? = nil,
         dropped: @escaping @Sendable (_ count: Int, _ why: String) -> Void = { _, _ in }) {
        self.lane = lane
        self.unanswered = unanswered
        self.deferrable = deferrable
        self.dropped = dropped
    }

    convenience init(committer: @escaping Committer, unanswered: (@Sendable (any Error) -> Bool)? = nil,
                     deferrable: (@Sendable (Operation) -> Bool)? = nil,
                     dropped: @escaping @Sendable (_ count: Int, _ why: String) -> Void = { _, _ in }) {
        self.init(lane: .task(committer), unanswered: unanswered, deferrable: deferrable, dropped: dropped)
    }

    /// The database is closed for good: posted changes it cannot take are dropped from now on,
    /// not kept for an answer that will not come (those set aside too).
    func stopRetrying() {
        retrying.store(false, ordering: .relaxed)
        let deferred = state.withLock { s in
            defer { (s.deferred, s.deferredUntil) = ([], nil) }
            return s.deferred.count
        }
        if deferred > 0 {
            droppedPosts.add(deferred, ordering: .relaxed)
            dropped(deferred, "they were set aside, waiting for what held them back, when the ledger closed")
        }
    }

    /// Whether posted changes that `match` are set aside (`PartialCommit.retryAfter`), waiting
    /// for what holds them back; false once the database closed (they were dropped then).
    func setsAside(where match: (Operation) -> Bool) -> Bool {
        state.withLock { s in s.deferred.contains { $0.operation.map(match) ?? false } }
    }

    /// How long the batch being committed has been waited for (zero between batches): every
    /// write queued behind it waits as long.
    var stalled: Duration {
        state.withLock { s in s.committingSince.map { .now - $0 } ?? .zero }
    }

    /// How long a posted change waits for company (the next write, other posts) before it is
    /// written by itself: what others read of the jobs (`show`, the web view, the other hosts)
    /// lags them by about this much at most, while a burst of posts still goes in one batch.
    static var linger: Duration { .milliseconds(250) }

    func post(_ operation: Operation) {
        let alone = state.withLock { s -> Bool in
            s.pending.append(Item(ticket: s.nextTicket, operation: operation, awaited: false))
            s.nextTicket += 1
            // A drain going writes it; a linger going is its company.
            guard !s.flushing, !s.lingering else { return false }
            s.lingering = true
            return true
        }
        if alone {
            Task {
                try? await Task.sleep(for: Self.linger)
                self.writeLingering()
            }
        }
    }

    /// The linger is over: what is still pending is written, unless a drain is already at it.
    private func writeLingering() {
        let leader = state.withLock { s -> Bool in
            s.lingering = false
            guard !s.flushing, !s.pending.isEmpty else { return false }
            s.flushing = true
            return true
        }
        if leader { startDrain() }
    }

    /// Queues `operation` and returns once it is durable; `posted` are queued right after it, in
    /// the same batch, and written (or, when the batch fails, tried) before it returns or throws.
    func write(_ operation: Operation, thenPost posted: [Operation] = []) async throws {
        try await enqueue(operation, thenPost: posted)
    }

    /// Waits until everything queued so far is durable.
    func flush() async throws {
        try await enqueue(nil)
    }

    private func enqueue(_ operation: Operation?, thenPost posted: [Operation] = []) async throws {
        let (ticket, leader) = state.withLock { s -> (Int, Bool) in
            let ticket = s.nextTicket
            s.nextTicket += 1
            s.pending.append(Item(ticket: ticket, operation: operation, awaited: true))
            for operation in posted {
                s.pending.append(Item(ticket: s.nextTicket, operation: operation, awaited: false))
                s.nextTicket += 1
            }
            if s.flushing { return (ticket, false) }
            s.flushing = true
            return (ticket, true)
        }
        if leader { startDrain() }
        try await wait(for: ticket)
    }

    private func wait(for ticket: Int) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            let outcome: Result<Void, Error>? = state.withLock { s in
                if let error = s.failures.removeValue(forKey: ticket) { return .failure(error) }
                if s.committedThrough >= ticket { return .success(()) }
                s.waiters.append(Waiter(ticket: ticket, continuation: continuation))
                return nil
            }
            if let outcome { continuation.resume(with: outcome) }
        }
    }

    private func startDrain() {
        switch lane {
        case .task(let commit):
            Task { await self.drain(commit) }
        case .serial(let schedule):
            schedule { commit in self.drain(commit) }
        }
    }

    /// Commits batches until nothing is pending (one drain at a time).
    private func drain(_ commit: Committer) async {
        while let batch = nextBatch() {
            var failed: [Int: Error] = [:]
            // What failed, and why: the whole batch, or what a partial commit left.
            var left: [Item] = []
            var why: (any Error)?
            let carriers = batch.filter { $0.operation != nil }
            do {
                // A batch of flushes alone has nothing to commit: what they wait for is done.
                if !carriers.isEmpty { try await commit(carriers.compactMap(\.operation)) }
            } catch let partial as PartialCommit {
                // The rest is durable: only what was left fails, as a batch of its own would.
                left = partial.left.filter { carriers.indices.contains($0) }.map { carriers[$0] }
                why = partial.retryAfter.map { DeferredPosts(error: partial.error, retryAfter: $0) } ?? partial.error
            } catch {
                (left, why) = (batch, error)
            }
            if let why {
                if let partial = why as? DeferredPosts, retrying.load(ordering: .relaxed) {
                    // Held back, not refused: set aside (and the like of them queued after),
                    // while the next batches go on.
                    for item in left where item.awaited { failed[item.ticket] = partial.error }
                    setAside(left.filter { !$0.awaited }, for: partial.retryAfter)
                    settle(batch, failed: failed)
                    continue
                }
                if unanswered?(why) == true && retrying.load(ordering: .relaxed) {
                    // Nobody could be asked: the callers hear so (a flush too: what it waits for
                    // is not durable), the posted changes wait at the head of the queue for an answer.
                    for item in left where item.awaited { failed[item.ticket] = why }
                    keep(left.filter { !$0.awaited })
                    settle(batch, failed: failed)
                    try? await Task.sleep(for: Self.retryPause)
                    continue
                }
                // One bad change must not sink its neighbours: retry them one by one.
                for item in left {
                    guard let operation = item.operation else { continue }
                    do { try await commit([operation]) } catch { note(error, of: item, in: &failed) }
                }
            }
            settle(batch, failed: failed)
        }
    }

    /// ``drain(_:)`` on the writer's thread.
    private func drain(_ commit: SerialCommitter) {
        while let batch = nextBatch() {
            var failed: [Int: Error] = [:]
            let operations = batch.compactMap(\.operation)
            do {
                // A batch of flushes alone has nothing to commit: what they wait for is done.
                if !operations.isEmpty { try commit(operations) }
            } catch {
                for item in batch {
                    guard let operation = item.operation else { continue }
                    do { try commit([operation]) } catch { note(error, of: item, in: &failed) }
                }
            }
            settle(batch, failed: failed)
        }
    }

    /// Puts the posted changes of an unanswered batch back at the head of the queue, before
    /// anything queued since, keeping at most `keptPosts` of them.
    private func keep(_ posted: [Item]) {
        let dropped = state.withLock { s -> Int in
            s.pending.insert(contentsOf: posted, at: 0)
            let waiting = s.pending.count { !$0.awaited }
            guard waiting > Self.keptPosts else { return 0 }
            var excess = waiting - Self.keptPosts
            s.pending.removeAll { item in
                guard excess > 0, !item.awaited else { return false }
                excess -= 1
                return true
            }
            return waiting - Self.keptPosts
        }
        if dropped > 0 {
            droppedPosts.add(dropped, ordering: .relaxed)
            self.dropped(dropped, "more than \(Self.keptPosts) changes waited for a database that does not answer; the oldest went first")
        }
    }

    /// Takes what is pending as the next batch; nil (and the drain over) when nothing is. While
    /// posted changes are set aside, the deferrable ones queued meanwhile join them; once their
    /// time came, or when a flush asks for everything (a run's end, a stop), they lead the batch.
    private func nextBatch() -> [Item]? {
        state.withLock { s in
            var batch = s.pending
            s.pending.removeAll(keepingCapacity: true)
            if let until = s.deferredUntil, let deferrable {
                if ContinuousClock.now < until, !batch.contains(where: { $0.operation == nil }) {
                    s.deferred += batch.filter { !$0.awaited && $0.operation.map(deferrable) == true }
                    batch.removeAll { !$0.awaited && $0.operation.map(deferrable) == true }
                } else {
                    batch = s.deferred + batch
                    (s.deferred, s.deferredUntil) = ([], nil)
                }
            }
            if batch.isEmpty { s.flushing = false }
            s.committingSince = batch.isEmpty ? nil : .now
            return batch.isEmpty ? nil : batch
        }
    }

    /// Sets posted changes aside (before any set aside already: they are older) for `interval`,
    /// keeping at most `keptPosts` of them (the oldest go first); a drain starts when it is
    /// over, if none is going then.
    private func setAside(_ posted: [Item], for interval: Duration) {
        let excess = state.withLock { s -> Int in
            s.deferred = posted + s.deferred
            s.deferredUntil = .now + interval
            let excess = s.deferred.count - Self.keptPosts
            guard excess > 0 else { return 0 }
            s.deferred.removeFirst(excess)
            return excess
        }
        if excess > 0 {
            droppedPosts.add(excess, ordering: .relaxed)
            dropped(excess, "more than \(Self.keptPosts) changes waited for what held them back; the oldest went first")
        }
        Task {
            try? await Task.sleep(for: interval)
            let leader = self.state.withLock { s -> Bool in
                guard !s.flushing, !s.deferred.isEmpty, s.deferredUntil.map({ ContinuousClock.now >= $0 }) ?? true else { return false }
                s.flushing = true
                return true
            }
            if leader { self.startDrain() }
        }
    }

    /// A change of a failed batch that failed alone too: its waiter hears why; a posted change
    /// has nobody to tell, and is counted.
    private func note(_ error: Error, of item: Item, in failed: inout [Int: Error]) {
        if item.awaited {
            failed[item.ticket] = error
        } else {
            droppedPosts.add(1, ordering: .relaxed)
            dropped(1, "\(error)")
        }
    }

    /// The batch is done: its waiters resume, each with its own outcome.
    private func settle(_ batch: [Item], failed: [Int: Error]) {
        var failed = failed
        let last = batch[batch.count - 1].ticket
        let ready = state.withLock { s -> [(Waiter, Error?)] in
            // Kept changes tried again have older tickets than a batch already settled.
            s.committedThrough = max(s.committedThrough, last)
            // Done before its waiters hear so: none of them finds its own batch still under way.
            s.committingSince = nil
            var ready: [(Waiter, Error?)] = []
            s.waiters.removeAll { waiter in
                guard waiter.ticket <= last else { return false }
                ready.append((waiter, failed.removeValue(forKey: waiter.ticket)))
                return true
            }
            // Failures of tickets whose waiter has not registered yet.
            for (ticket, error) in failed { s.failures[ticket] = error }
            return ready
        }
        for (waiter, error) in ready {
            if let error { waiter.continuation.resume(throwing: error) } else { waiter.continuation.resume() }
        }
    }
}

/// A committer's batch was made durable except the operations at `left` (indices into what it
/// was given), which it writes after the rest and could not: they failed with `error`. Posted
/// changes among them are kept for the next batch when nobody could be asked, like those of a
/// batch that failed for want of an answer; with `retryAfter`, they wait for something held
/// elsewhere, and are set aside for that long (see `GroupCommit`).
struct PartialCommit: Error {
    var left: [Int]
    var error: any Error
    var retryAfter: Duration? = nil
}

/// What a partial commit left waits for something held elsewhere (`PartialCommit.retryAfter`).
private struct DeferredPosts: Error {
    var error: any Error
    var retryAfter: Duration
}

/// A change to the SQLite ledger, made inside the batch's transaction.
typealias SQLiteWrite = @Sendable (Database) throws -> Void

extension GroupCommit where Operation == SQLiteWrite {
    /// Batches over one GRDB writer, drained on its queue: a transaction per batch.
    ///
    /// A batch the database cannot take for a reason outside it waits and is tried again, however
    /// long it takes, rather than given up: a write given up would leave the ledger behind what
    /// the jobs did on disk (a posted change has nobody to tell), and a job's next step would
    /// then find the record in a state it did not expect. Those reasons: a write lock held by
    /// another process (the daemon is the only writer: an operator's `sqlite3` with a transaction
    /// open, a backup tool), a full filesystem, an I/O error, a file made read-only. `waiting` is
    /// told when such a wait starts (and every minute of it), and when it ends (error nil).
    convenience init(writer: any DatabaseWriter, waiting: @escaping @Sendable (_ waited: Duration, _ error: DatabaseError?) -> Void = { _, _ in }) {
        self.init(lane: .serial(schedule: { drain in
            writer.asyncWriteWithoutTransaction { db in
                drain { operations in
                    let started = ContinuousClock.now
                    var reported = ContinuousClock.Instant?.none
                    while true {
                        do {
                            try db.inTransaction {
                                for operation in operations { try operation(db) }
                                return .commit
                            }
                            if reported != nil { waiting(.now - started, nil) }
                            return
                        } catch let error as DatabaseError where Self.waitsOut(error) {
                            if reported.map({ .now - $0 >= .seconds(60) }) ?? true {
                                reported = .now
                                waiting(.now - started, error)
                            }
                            // A busy database already waited its timeout inside SQLite.
                            if error.resultCode != .SQLITE_BUSY { Thread.sleep(forTimeInterval: 1) }
                        }
                    }
                }
            }
        }))
    }

    /// Whether a failed batch waits for the database (see above) rather than failing its writes.
    static func waitsOut(_ error: DatabaseError) -> Bool {
        [.SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_FULL, .SQLITE_IOERR, .SQLITE_READONLY].contains(error.resultCode)
    }

    /// A write that returns a value (an inserted row's id), durable when it returns.
    func write<T: Sendable>(_ operation: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let result = Mutex<T?>(nil)
        try await write { db in
            let value = try operation(db)
            result.withLock { $0 = value }
        }
        guard let value = result.withLock({ $0 }) else { throw DatabaseError(message: "the write produced no result") }
        return value
    }
}
