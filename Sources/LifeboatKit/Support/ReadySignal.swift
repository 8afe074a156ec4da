import Synchronization
import ServiceLifecycle

/// A one-shot latch: tasks wait until it is signalled (e.g. "recovery done"). Waiting ends
/// early when the waiting task is cancelled, so a failing service group never hangs on it.
public final class ReadySignal: Sendable {
    private struct State {
        var done = false
        var waiters = WaitQueue<Void>()
    }

    private let state = Mutex(State())

    public init() {}

    /// A signal given already (for what has nothing to wait for).
    public static var signalled: ReadySignal {
        let signal = ReadySignal()
        signal.signal()
        return signal
    }

    public var isSignalled: Bool { state.withLock { $0.done } }

    public func signal() {
        let waiters = state.withLock { s in
            s.done = true
            return s.waiters.takeAll()
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once signalled, or when the task is cancelled (check `isSignalled` if it matters).
    public func wait() async {
        await state.wait(in: \.waiters, cancelled: ()) { $0.done ? () : nil }
    }
}

extension ReadySignal {
    /// For a service that starts once this is signalled: waits, and returns false when a
    /// graceful shutdown (or cancellation) comes first, so that the service returns at once (one
    /// left waiting would hold up the whole shutdown, e.g. while the ledger is unreachable).
    public func waitForStart() async -> Bool {
        await cancelWhenGracefulShutdown { await self.wait() }
        return isSignalled
    }
}
