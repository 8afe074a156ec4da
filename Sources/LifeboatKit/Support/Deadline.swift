import Synchronization

/// An operation that did not finish within its deadline (`withDeadline`).
struct DeadlineExceeded: Error {
    var seconds: Double
}

/// Runs `operation`, cancelling it and throwing `DeadlineExceeded` once it has taken `seconds`.
/// The operation must honour cancellation: the call returns when it has ended.
func withDeadline<T: Sendable>(seconds: Double, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    // Beyond a few years (or infinite) is no deadline: nanoseconds would not fit in 64 bits.
    guard seconds.isFinite, seconds < 1e8 else { return try await operation() }
    // The operation's value, or nil from the timer.
    return try await withThrowingTaskGroup(of: Optional<T>.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(nanoseconds: UInt64(max(0, seconds) * 1e9))
            return nil
        }
        defer { group.cancelAll() }
        // `T` may itself be optional: the timer's nil is `.none` of the outer optional only.
        guard case .some(.some(let value)) = try await group.next() else { throw DeadlineExceeded(seconds: seconds) }
        return value
    }
}

/// `valueWithin`'s own reason to give up (not one the operation throws).
private struct PatienceRanOut: Error {}

/// `operation`'s value, or nil once it has taken `seconds`: it is then cancelled and left to end
/// on its own. For calls that may not end at once when cancelled (a query on a connection whose
/// server went silent), which the caller must not wait out.
func valueWithin<T: Sendable>(seconds: Double, _ operation: @escaping @Sendable () async throws -> T) async throws -> T? {
    do {
        return try await abandonable(operation, checkingEvery: .nanoseconds(Int64(max(0, seconds) * 1e9))) { PatienceRanOut() }
    } catch is PatienceRanOut {
        return nil
    }
}

/// `operation`'s value, unless `giveUp` gives a reason first, asked every `interval` while the
/// operation runs: the operation is then cancelled and left to end on its own, and the reason
/// thrown. For calls that may not end at once when cancelled (a query waiting for a connection
/// to a server that went away), which the caller must not wait out; a caller cancelled meanwhile
/// does not wait for it either (`CancellationError`).
func abandonable<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T, checkingEvery interval: Duration,
                              giveUp: @escaping @Sendable () -> (any Error)?) async throws -> T {
    let waiter = Mutex(Waiter<T>.arming)
    let work = Task { try await operation() }
    /// Resumes the caller once: the first answer wins.
    let answer = { @Sendable (result: Result<T, any Error>) in
        let continuation = waiter.withLock { w -> CheckedContinuation<T, any Error>? in
            switch w {
            case .arming:
                w = .answered(result)
                return nil
            case .armed(let continuation):
                w = .done
                return continuation
            case .answered, .done:
                return nil
            }
        }
        continuation?.resume(with: result)
    }
    let timer = Task {
        // Cancelled means the operation answered: the timer then says nothing (its reason could
        // beat the operation's own answer to the caller).
        while (try? await Task.sleep(for: interval)) != nil {
            guard let reason = giveUp() else { continue }
            answer(.failure(reason))
            work.cancel()
            return
        }
    }
    Task {
        let result = await work.result
        timer.cancel()
        answer(result)
    }
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let early = waiter.withLock { w -> Result<T, any Error>? in
                guard case .answered(let result) = w else {
                    w = .armed(continuation)
                    return nil
                }
                w = .done
                return result
            }
            if let early { continuation.resume(with: early) }
        }
    } onCancel: {
        work.cancel()
        timer.cancel()
        answer(.failure(CancellationError()))
    }
}

/// `abandonable`'s caller: its continuation once there is one; the first answer is given to it.
private enum Waiter<T: Sendable> {
    case arming
    /// Answered before the continuation was there.
    case answered(Result<T, any Error>)
    case armed(CheckedContinuation<T, any Error>)
    case done
}
