import Synchronization

/// A counting semaphore for async code (limits concurrent notification deliveries); waiting is cancellable.
final class AsyncSemaphore: Sendable {
    private struct State {
        var permits: Int
        var waiters = WaitQueue<Bool>()
    }

    private let state: Mutex<State>

    init(_ permits: Int) { state = Mutex(State(permits: permits)) }

    /// Takes a permit; false when the task was cancelled while waiting (no permit taken).
    func wait() async -> Bool {
        await state.wait(in: \.waiters, cancelled: false) { s in
            guard s.permits > 0 else { return nil }
            s.permits -= 1
            return true
        }
    }

    func signal() {
        let next = state.withLock { s -> CheckedContinuation<Bool, Never>? in
            guard let next = s.waiters.takeFirst() else {
                s.permits += 1
                return nil
            }
            return next.continuation
        }
        next?.resume(returning: true)
    }
}
