import Foundation
import Synchronization

/// A cancellation signal that blocking work (extraction on its own thread) can poll, set when the
/// awaiting task is cancelled.
public final class CancellationFlag: Sendable {
    private let flag = Atomic<Bool>(false)

    public init() {}

    public var isCancelled: Bool { flag.load(ordering: .relaxed) }
    public func cancel() { flag.store(true, ordering: .relaxed) }
}

/// Runs blocking work (file I/O, inflate) on a thread of its own so Swift concurrency's small
/// cooperative pool stays free for the ledger, the socket and the scheduler. Cancelling the
/// awaiting task sets `flag`; the work is expected to poll it and stop.
func runBlocking<T: Sendable>(_ name: String, flag: CancellationFlag,
                              _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
            let thread = Thread {
                continuation.resume(with: Result { try body() })
            }
            thread.name = name
            thread.stackSize = 1 << 20
            thread.start()
        }
    } onCancel: {
        flag.cancel()
    }
}
