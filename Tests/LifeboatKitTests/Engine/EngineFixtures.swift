import Foundation
import Synchronization
@testable import LifeboatKit

/// A clock tests control: `now()` is a settable instant; sleeps return at once (but honour
/// cancellation) and are recorded.
final class TestClock: LifeboatClock {
    private let state: Mutex<(now: Date, sleeps: [Duration])>

    init(_ start: Date) { state = Mutex((start, [])) }

    func now() -> Date { state.withLock { $0.now } }
    func advance(by seconds: TimeInterval) { state.withLock { $0.now = $0.now.addingTimeInterval(seconds) } }
    var sleeps: [Duration] { state.withLock { $0.sleeps } }

    func sleep(for duration: Duration) async throws {
        state.withLock { $0.sleeps.append(duration) }
        try Task.checkCancellation()
        await Task.yield()
    }
}

/// An executor that restores nothing: it records what ran when, holds jobs for a while, and
/// fails the jobs it is told to.
final class FakeExecutor: JobExecutor {
    struct Record: Sendable {
        var job: String
        var startedAt: Int
        var endedAt: Int
    }

    private struct State {
        var tick = 0
        var running: [String: Int] = [:]
        var maxRunning: [String: Int] = [:]
        var maxTotal = 0
        var total = 0
        var records: [Record] = []
        var failures: [String: [JobError]] = [:]
        var attempts: [String: Int] = [:]
        var recoveries: [String: RecoveryOutcome] = [:]
    }

    private let state = Mutex(State())
    let holdMilliseconds: Int
    let clock: TestClock?
    /// Seconds the clock advances per job.
    let secondsPerJob: TimeInterval

    init(holdMilliseconds: Int = 5, clock: TestClock? = nil, secondsPerJob: TimeInterval = 0) {
        self.holdMilliseconds = holdMilliseconds
        self.clock = clock
        self.secondsPerJob = secondsPerJob
    }

    /// Makes the next attempts of `job` ("site/product") fail with these errors, in order.
    func fail(_ job: String, with errors: [JobError]) { state.withLock { $0.failures[job] = errors } }
    func recover(_ job: String, as outcome: RecoveryOutcome) { state.withLock { $0.recoveries[job] = outcome } }

    var records: [Record] { state.withLock { $0.records } }
    var maxTotal: Int { state.withLock { $0.maxTotal } }
    func maxRunning(_ product: String) -> Int { state.withLock { $0.maxRunning[product] ?? 0 } }
    func attempts(_ job: String) -> Int { state.withLock { $0.attempts[job] ?? 0 } }

    func execute(_ context: JobContext, observer: any JobObserver) async throws -> JobResult {
        let name = context.job.name
        let start = state.withLock { s -> Int in
            s.tick += 1
            s.running[context.job.product, default: 0] += 1
            s.maxRunning[context.job.product] = max(s.maxRunning[context.job.product] ?? 0, s.running[context.job.product]!)
            s.total += 1
            s.maxTotal = max(s.maxTotal, s.total)
            s.attempts[name, default: 0] += 1
            return s.tick
        }
        defer {
            state.withLock { s in
                s.tick += 1
                s.running[context.job.product]! -= 1
                s.total -= 1
                s.records.append(Record(job: name, startedAt: start, endedAt: s.tick))
            }
        }
        try await observer.reserved(stagingPath: "/staging/\(name)")
        try await observer.staged(identity: "1:\(start)")
        try await Task.sleep(for: .milliseconds(holdMilliseconds))
        clock?.advance(by: secondsPerJob)
        let failure = state.withLock { s -> JobError? in
            guard var queue = s.failures[name], !queue.isEmpty else { return nil }
            let error = queue.removeFirst()
            s.failures[name] = queue
            return error
        }
        if let failure { throw failure }
        try await observer.willCommit()
        return JobResult(bytes: 1_000, entries: 10, archiveBytes: 500)
    }

    func recover(_ context: JobContext, observer: any JobObserver) async throws -> RecoveryOutcome {
        state.withLock { $0.recoveries[context.job.name] } ?? .restart
    }
}

/// A store of empty archives with chosen taken-at times, a plan over it, and a fresh ledger.
struct EngineFixture {
    let dir: TestDirectory
    let ledger: SQLiteLedger
    let plan: Plan

    init(sites: [String], products: String, extra: String = "", takenAt: String = "20261124T000000Z", name: String = #function) throws {
        dir = TestDirectory(name)
        let productNames = try PlanLoader.load(text: "snapshots: s\ntarget: /t/{site}/{product}\nproducts:\n" + products,
                                               file: "p.yaml", baseDirectory: "/").products.map(\.name)
        for site in sites {
            for product in productNames {
                dir.write("store/\(site)/\(product)/\(takenAt).tar.gz", "")
            }
        }
        plan = try PlanLoader.load(text: """
            name: test
            snapshots: store
            target: out/{site}/{product}
            sandbox: sandbox/{run}/{site}/{product}
            products:
            \(products)
            \(extra)
            """, file: "test.yaml", baseDirectory: dir.path)
        ledger = try SQLiteLedger(path: dir.file("ledger.sqlite"))
    }

    func engine(_ executor: any JobExecutor, clock: any LifeboatClock = SystemClock(), bus: EventBus = EventBus()) -> Engine {
        Engine(environment: RunEnvironment(ledger: ledger, executor: executor, clock: clock, bus: bus))
    }
}
