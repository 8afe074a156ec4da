import Synchronization

/// Operator commands to a running run: cancel (any time) and resume (after a halted gate).
/// Waiting is cancellation-aware, so the run's task tree stays structured.
public final class RunControl: Sendable {
    private struct State {
        var cancelledBy: String?
        var resumeRequested = false
        var cancelWaiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var resumeWaiters: [Int: CheckedContinuation<Bool, Never>] = [:]
        var nextID = 0
        var halted = false
    }

    private let state = Mutex(State())
    /// The run's share of the daemon's `max_concurrent_runs` (nil: no limit, as in `lifeboat run`).
    let slots: RunSlots?
    let runId: String

    public init(slots: RunSlots? = nil, runId: String = "") {
        self.slots = slots
        self.runId = runId
    }

    public var isCancelled: Bool { state.withLock { $0.cancelledBy != nil } }
    public var cancelledBy: String? { state.withLock { $0.cancelledBy } }
    public var isHalted: Bool { state.withLock { $0.halted } }

    /// Asks the run to stop: no new jobs, running jobs stop, the run ends `cancelled`.
    public func cancel(by who: String) {
        let (cancelWaiters, resumeWaiters) = state.withLock { s in
            if s.cancelledBy == nil { s.cancelledBy = who }
            let waiters = (Array(s.cancelWaiters.values), Array(s.resumeWaiters.values))
            s.cancelWaiters.removeAll()
            s.resumeWaiters.removeAll()
            return waiters
        }
        for c in cancelWaiters { c.resume() }
        for c in resumeWaiters { c.resume(returning: false) }
        // A run waiting for a run slot stops waiting: it ends cancelled without one.
        slots?.withdraw(runId)
    }

    /// Lets a halted run go on with its next wave. Returns false when it is not halted.
    @discardableResult
    public func resume() -> Bool {
        let waiters: [CheckedContinuation<Bool, Never>]? = state.withLock { s in
            guard s.halted, s.cancelledBy == nil else { return nil }
            s.resumeRequested = true
            let waiters = Array(s.resumeWaiters.values)
            s.resumeWaiters.removeAll()
            return waiters
        }
        guard let waiters else { return false }
        for c in waiters { c.resume(returning: true) }
        return true
    }

    /// Returns when a cancel is requested, or when the calling task is cancelled.
    func waitForCancel() async {
        let id = state.withLock { s in
            s.nextID += 1
            return s.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.cancelledBy != nil || Task.isCancelled { return true }
                    s.cancelWaiters[id] = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            let c = state.withLock { $0.cancelWaiters.removeValue(forKey: id) }
            c?.resume()
        }
    }

    /// Marks the run halted and waits: true to go on (resume), false to stop (cancel).
    /// A halted run gives its run slot up while it waits; `takeSlotAgain` follows a resume.
    func haltAndWait() async -> Bool {
        let id = state.withLock { s in
            s.halted = true
            s.resumeRequested = false
            s.nextID += 1
            return s.nextID
        }
        slots?.release(runId)
        let decision = await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                let now = state.withLock { s -> Bool? in
                    if s.cancelledBy != nil || Task.isCancelled { return false }
                    if s.resumeRequested { return true }
                    s.resumeWaiters[id] = c
                    return nil
                }
                if let now { c.resume(returning: now) }
            }
        } onCancel: {
            let c = state.withLock { $0.resumeWaiters.removeValue(forKey: id) }
            c?.resume(returning: false)
        }
        state.withLock { $0.halted = false }
        return decision
    }

    /// After a resume: takes a run slot again. `waiting` runs first when none is free at once.
    /// False when the wait ended without a slot (a cancel or a drain).
    func takeSlotAgain(waiting: () async throws -> Void) async rethrows -> Bool {
        guard let slots, !slots.tryAcquire(runId) else { return true }
        try await waiting()
        guard !isCancelled else { return false }
        return await slots.acquire(runId)
    }
}
