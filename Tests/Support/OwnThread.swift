import Foundation
import Synchronization
import Testing

/// Runs each test of a suite on a thread of its own (integration suites, and unit suites that
/// wait on real servers with second-scale leases), at most `IntegrationSlots.width` at a time.
///
/// Integration tests wait for child processes with blocking calls. On Swift Testing's shared
/// threads (as many as cores: two on CI) one such wait stalls every other test's tasks, and with
/// them their deadlines: a unit test's 60 s wait once expired before it had looked twice. On a
/// thread of its own, a test blocks only itself; the bound keeps the machine from running every
/// daemon of the suite at once.
public struct OwnThreadTrait: SuiteTrait, TestTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        // The suite itself, and a parameterised test as a whole, only group their test cases;
        // a scope inside a scope (however the library nests them) reuses the outer one.
        guard !test.isSuite, testCase != nil || !test.isParameterized, !Self.inScope else { return try await function() }
        try await IntegrationSlots.shared.withSlot {
            let executor = ThreadExecutor(name: test.name)
            defer { executor.shutdown() }
            try await Self.$inScope.withValue(true) {
                try await withTaskExecutorPreference(executor) { try await function() }
            }
        }
    }

    @TaskLocal static var inScope = false
}

extension SuiteTrait where Self == OwnThreadTrait {
    /// Each test on a thread of its own (see `OwnThreadTrait`).
    public static var ownThread: Self { OwnThreadTrait() }
}

/// How many integration tests run at once (their daemons and CLIs share the machine's cores).
final class IntegrationSlots: Sendable {
    static let width = max(2, ProcessInfo.processInfo.activeProcessorCount)
    static let shared = IntegrationSlots(width: width)

    private struct State {
        var free: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state: Mutex<State>

    init(width: Int) { state = Mutex(State(free: width)) }

    func withSlot<T>(_ body: () async throws -> T) async rethrows -> T {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                guard s.free > 0 else { s.waiters.append(c); return false }
                s.free -= 1
                return true
            }
            if now { c.resume() }
        }
        defer {
            let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
                guard !s.waiters.isEmpty else { s.free += 1; return nil }
                return s.waiters.removeFirst() // the slot passes straight to the next test
            }
            next?.resume()
        }
        return try await body()
    }
}

/// A task executor with one thread: the jobs of the tasks that prefer it run there, in order.
final class ThreadExecutor: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var stopping = false
    private var threadRunning = false
    private let name: String

    init(name: String) {
        self.name = name
        condition.lock()
        startThread()
        condition.unlock()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        // A task that outlived the test (an unstructured one) still gets its jobs run.
        if !threadRunning { startThread() }
        condition.signal()
        condition.unlock()
    }

    /// Lets the thread end once it has no jobs left.
    func shutdown() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    /// Called with the lock held.
    private func startThread() {
        threadRunning = true
        let thread = Thread { [self] in run() }
        thread.name = "test: " + name
        thread.start()
    }

    private func run() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopping { condition.wait() }
            if jobs.isEmpty {
                threadRunning = false
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
