import CLinux
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

    /// How much nicer than the daemon the extraction threads run (`nice`, per thread).
    ///
    /// When restores keep every core busy, the rest of the host still answers at once: an
    /// operator's `lifeboat status` (a new process), the control socket and the web view, and the
    /// daemon's own heartbeats and claim renewals (its other threads) — a host too busy to renew
    /// its claims would lose its jobs to the others. Restores lose nothing when nothing else
    /// wants the cores; the kernel shares them by weight only when something does.
    static let niceness: Int32 = 10

    private static let lowered: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Lowers the calling pool thread's priority, once per thread.
    static func lowerPriority() {
        guard pthread_getspecific(lowered) == nil else { return }
        _ = lifeboat_renice_thread(niceness)
        pthread_setspecific(lowered, UnsafeRawPointer(bitPattern: 1))
    }
}

/// Runs blocking work (file I/O, inflate) on the blocking pool so Swift concurrency's small
/// cooperative pool stays free for the ledger, the socket and the scheduler. Cancelling the
/// awaiting task sets `flag`, which the work is expected to poll to stop; work not yet started
/// when the task is cancelled does not start (it throws `CancellationError`).
func runBlocking<T: Sendable>(flag: CancellationFlag, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withTaskCancellationHandler {
        try await BlockingPool.io.runIfActive {
            BlockingPool.lowerPriority()
            return try body()
        }
    } onCancel: {
        flag.cancel()
    }
}
