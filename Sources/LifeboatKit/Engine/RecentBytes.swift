import Foundation

/// Bytes restored by jobs that finished lately: when each finished and how much it restored,
/// kept for `window` (what `status` and `/metrics` ask about is the last minute).
struct RecentBytes: Sendable {
    private var finished: [(at: Date, bytes: Int64)] = []
    let window: TimeInterval

    init(window: TimeInterval = 300) { self.window = window }

    /// A job that finished at `at` restored `bytes`. Entries older than the window are dropped
    /// once they make up half of what is kept.
    mutating func add(_ bytes: Int64, at: Date) {
        finished.append((at, bytes))
        if let first = finished.first, at.timeIntervalSince(first.at) > 2 * window {
            finished.removeAll { at.timeIntervalSince($0.at) > window }
        }
    }

    /// Bytes of the jobs that finished since `date` (within the window).
    func since(_ date: Date) -> Int64 { finished.reduce(0) { $1.at >= date ? $0 + $1.bytes : $0 } }
}
