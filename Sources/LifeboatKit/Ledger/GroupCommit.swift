import GRDB
import Synchronization

/// Group commit over one writer (SQLite's one writer connection, or one PostgreSQL transaction at
/// a time): writes queued while a transaction is being made durable go together into the next
/// one, so N concurrent jobs cost about one fsync (or round trip), not N.
///
/// `write` returns once its change is durable. `post` queues a change without waiting; it
/// becomes durable with the next batch. Order is preserved across both.
final class GroupCommit<Operation: Sendable>: Sendable {
    /// Commits operations in one transaction, in order, durable when it returns; throws (having
    /// committed none of them) when any fails.
    typealias Committer = @Sendable ([Operation]) async throws -> Void

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
        /// When the batch being committed was sent (nil between batches).
        var committingSince: ContinuousClock.Instant?
        /// Tickets whose batch failed, with the error (only for awaited writes).
        var failures: [Int: Error] = [:]
        var committedThrough = 0
    }

    private let committer: Committer
    private let state = Mutex(State())
    /// Posted changes that could not be written (nobody was waiting to be told).
    let droppedPosts = Atomic<Int>(0)

    init(committer: @escaping Committer) { self.committer = committer }

    /// How long the batch being committed has been waited for (zero between batches): every
    /// write queued behind it waits as long.
    var stalled: Duration {
        state.withLock { s in s.committingSince.map { .now - $0 } ?? .zero }
    }

    func post(_ operation: Operation) {
        _ = state.withLock { s in
            let ticket = s.nextTicket
            s.nextTicket += 1
            s.pending.append(Item(ticket: ticket, operation: operation, awaited: false))
            return ticket
        }
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
        if leader { await drain() }
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

    /// One transaction. Deliberately not cancellable: a cancelled job still has to record that it
    /// was cancelled.
    private func commit(_ operations: [Operation]) async throws {
        guard !operations.isEmpty else { return }
        try await Task { try await committer(operations) }.value
    }

    /// Commits batches until nothing is pending. Only one caller drains at a time.
    private func drain() async {
        while true {
            let batch = state.withLock { s -> [Item] in
                let batch = s.pending
                s.pending.removeAll(keepingCapacity: true)
                if batch.isEmpty { s.flushing = false }
                s.committingSince = batch.isEmpty ? nil : .now
                return batch
            }
            if batch.isEmpty { return }
            var failed: [Int: Error] = [:]
            do {
                try await commit(batch.compactMap(\.operation))
            } catch {
                // One bad change must not sink its neighbours: retry them one by one.
                for item in batch {
                    guard let operation = item.operation else { continue }
                    do {
                        try await commit([operation])
                    } catch where item.awaited {
                        failed[item.ticket] = error
                    } catch {
                        droppedPosts.add(1, ordering: .relaxed)
                    }
                }
            }
            let last = batch[batch.count - 1].ticket
            let ready = state.withLock { s -> [(Waiter, Error?)] in
                s.committedThrough = last
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
}

/// A change to the SQLite ledger, made inside the batch's transaction.
typealias SQLiteWrite = @Sendable (Database) throws -> Void

extension GroupCommit where Operation == SQLiteWrite {
    /// Batches over one GRDB writer.
    convenience init(writer: any DatabaseWriter) {
        self.init(committer: { operations in
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                writer.asyncWrite({ db in
                    for operation in operations { try operation(db) }
                }, completion: { _, result in continuation.resume(with: result) })
            }
        })
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
