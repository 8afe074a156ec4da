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
