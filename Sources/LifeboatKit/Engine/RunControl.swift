import Synchronization

/// Operator commands to a running run: cancel (any time) and resume (after a halted gate).
/// Waiting is cancellation-aware, so the run's task tree stays structured.
public final class RunControl: Sendable {
    private struct State {
        var cancelledBy: String?
        var resumeRequested = false
        var cancelWaiters = WaitQueue<Void>()
        var resumeWaiters = WaitQueue<Bool>()
        var halted = false
        /// A resume that came before this coordinator reached the gate the run is recorded
        /// halted at (a run taken over from a host that is gone): it decides that halt.
        var resumeAtHalt = false
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
            return (s.cancelWaiters.takeAll(), s.resumeWaiters.takeAll())
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
            return s.resumeWaiters.takeAll()
        }
        guard let waiters else { return false }
        for c in waiters { c.resume(returning: true) }
        return true
    }

    /// A resume for the halt the run is recorded at, which this coordinator (it took the run
    /// over) has not reached yet: applied when it does. A halted run is resumed at once.
    public func resumeAtHalt() {
        let applied = state.withLock { s -> Bool in
            guard !s.halted else { return false }
            s.resumeAtHalt = true
            return true
        }
        if !applied { resume() }
    }

    /// Returns when a cancel is requested, or when the calling task is cancelled.
    func waitForCancel() async {
        await state.wait(in: \.cancelWaiters, cancelled: ()) { $0.cancelledBy != nil ? () : nil }
    }

    /// Returns when a cancel is requested, the calling task is cancelled, `interval` passed, or
    /// `nudge` is nudged.
    func waitForCancel(upTo interval: Duration, or nudge: Nudge? = nil) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForCancel() }
            group.addTask {
                if let nudge { await nudge.wait(upTo: interval) } else { try? await Task.sleep(for: interval) }
            }
            await group.next()
            group.cancelAll()
        }
    }

    /// Marks the run halted and waits: true to go on (resume), false to stop (cancel).
    /// A halted run gives its run slot up while it waits; `takeSlotAgain` follows a resume.
    func haltAndWait() async -> Bool {
        state.withLock { s in
            s.halted = true
            s.resumeRequested = s.resumeAtHalt
            s.resumeAtHalt = false
        }
        slots?.release(runId)
        let decision = await state.wait(in: \.resumeWaiters, cancelled: false) { s in
            if s.cancelledBy != nil { return false }
            return s.resumeRequested ? true : nil
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
