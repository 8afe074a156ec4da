import Synchronization

/// Tasks parked until something under a lock changes, in the order they came, each with an id
/// so that a cancelled task can take itself out. Lives inside the state a `Mutex` guards; the
/// one way Lifeboat waits is `Mutex.wait(in:cancelled:_:)`.
struct WaitQueue<Value: Sendable>: Sendable {
    struct Waiter: Sendable {
        var id: Int
        /// What the waiter waits for (a run id, say), for `take(tag:)`; "" when it does not matter.
        var tag: String
        var continuation: CheckedContinuation<Value, Never>
    }

    private(set) var waiters: [Waiter] = []
    private var lastID = 0

    var isEmpty: Bool { waiters.isEmpty }

    mutating func makeID() -> Int {
        lastID += 1
        return lastID
    }

    mutating func park(_ waiter: Waiter) { waiters.append(waiter) }

    /// The waiter with this id, taken out (nil if it was already answered).
    mutating func take(id: Int) -> CheckedContinuation<Value, Never>? {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return nil }
        return waiters.remove(at: index).continuation
    }

    /// The waiters with this tag, taken out.
    mutating func take(tag: String) -> [CheckedContinuation<Value, Never>] {
        let mine = waiters.filter { $0.tag == tag }.map(\.continuation)
        waiters.removeAll { $0.tag == tag }
        return mine
    }

    /// The waiter that came first, taken out.
    mutating func takeFirst() -> Waiter? { waiters.isEmpty ? nil : waiters.removeFirst() }

    /// Every waiter, taken out.
    mutating func takeAll() -> [CheckedContinuation<Value, Never>] {
        defer { waiters.removeAll() }
        return waiters.map(\.continuation)
    }
}

extension Mutex {
    /// Waits for a value decided under this lock: `decide` answers at once, or returns nil to
    /// park the caller in the queue at `queue` (whoever changes the state resumes it). A task
    /// cancelled before or while it waits is answered `cancelled` and leaves the queue.
    func wait<T: Sendable>(in queue: WritableKeyPath<Value, WaitQueue<T>> & Sendable, tag: String = "", cancelled: T,
                           _ decide: (inout Value) -> T?) async -> T {
        let id = withLock { $0[keyPath: queue].makeID() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<T, Never>) in
                let now = withLock { state -> T? in
                    if Task.isCancelled { return cancelled }
                    if let answer = decide(&state) { return answer }
                    state[keyPath: queue].park(.init(id: id, tag: tag, continuation: c))
                    return nil
                }
                if let now { c.resume(returning: now) }
            }
        } onCancel: {
            withLock { $0[keyPath: queue].take(id: id) }?.resume(returning: cancelled)
        }
    }
}
