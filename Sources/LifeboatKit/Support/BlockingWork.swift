import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// A cancellation signal that blocking work (extraction on its own thread) can poll, set when the
/// awaiting task is cancelled.
public final class CancellationFlag: Sendable {
    private let flag = Atomic<Bool>(false)

    public init() {}

    public var isCancelled: Bool { flag.load(ordering: .relaxed) }
    public func cancel() { flag.store(true, ordering: .relaxed) }
}

/// How async work ended, for blocking work to look at without waiting for it (nil while it
/// goes on): a blocking thread never waits for, say, the ledger.
final class PendingOutcome: Sendable {
    private let state = Mutex<Result<Void, any Error>?>(nil)

    var outcome: Result<Void, any Error>? { state.withLock { $0 } }

    /// Runs `work` and notes how it ended (and ends as it did).
    func settle(_ work: () async throws -> Void) async throws {
        do {
            try await work()
            state.withLock { $0 = .success(()) }
        } catch {
            state.withLock { $0 = .failure(error) }
            throw error
        }
    }
}

/// Threads for blocking work, started once and shared by every run: a bounded pool rather than a
/// thread per call (a tiny job used to start two threads; thousands of jobs, thousands of thread
/// starts). Sized for more jobs at once than cores (a job also waits on the disk) while staying
/// bounded: work past the pool's size queues.
enum BlockingPool {
    /// Extraction and commits.
    static let io: NIOThreadPool = start(max(16, 4 * System.coreCount))
    /// Supervision of hook processes (mostly asleep in poll(2); apart so that long hooks never
    /// hold up extraction).
    static let hooks: NIOThreadPool = start(32)

    private static func start(_ threads: Int) -> NIOThreadPool {
        let pool = NIOThreadPool(numberOfThreads: threads)
        pool.start()
        return pool
    }
}

/// Runs blocking work (file I/O, inflate) on the blocking pool so Swift concurrency's small
/// cooperative pool stays free for the ledger, the socket and the scheduler. Cancelling the
/// awaiting task sets `flag`, which the work is expected to poll to stop; work not yet started
/// when the task is cancelled does not start (it throws `CancellationError`).
func runBlocking<T: Sendable>(flag: CancellationFlag, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withTaskCancellationHandler {
        try await BlockingPool.io.runIfActive(body)
    } onCancel: {
        flag.cancel()
    }
}
