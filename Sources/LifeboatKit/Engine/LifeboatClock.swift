import Foundation

/// Time as the engine and scheduler see it: wall-clock instants for the ledger and sleeps for
/// backoff and scheduling. Tests inject a controllable clock.
public protocol LifeboatClock: Sendable {
    func now() -> Date
    /// Sleeps; throws `CancellationError` when the task is cancelled.
    func sleep(for duration: Duration) async throws
}

/// The real clock.
public struct SystemClock: LifeboatClock {
    public init() {}
    public func now() -> Date { Date() }
    public func sleep(for duration: Duration) async throws {
        try await Task.sleep(for: duration)
    }
}
