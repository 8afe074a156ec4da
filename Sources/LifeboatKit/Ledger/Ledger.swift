import Foundation

/// Where runs, jobs and their timings are recorded. SQLite on one host (`SQLiteLedger`); the
/// protocol keeps the engine independent of it so a shared backend can come later.
///
/// Every awaited write is durable when it returns. `post…` writes are queued and become durable
/// with the next batch: use them only where losing the last few on a crash is safe.
public protocol Ledger: Sendable {
    func createRun(_ run: RunRecord, jobs: [JobRecord]) async throws -> [JobRecord]
    /// Records a run's update and, in the same transaction (all or none), its jobs' transitions,
    /// each a compare-and-set as `updateJob`'s: a retry puts jobs back to pending with their run.
    func updateRun(_ run: RunRecord, jobs: [(job: JobRecord, from: JobState)]) async throws
    /// Records a job's transition (`JobLifecycle`): the row changes only while its state is still
    /// `previous` (compare-and-set); otherwise nothing is written and `JobConflict` is thrown.
    func updateJob(_ job: JobRecord, from previous: JobState) async throws
    /// Queues a job's transition without waiting for it to be durable; a conflict then drops it
    /// (counted), and the job's next awaited write conflicts in turn.
    func postJob(_ job: JobRecord, from previous: JobState)
    /// Queues an event without waiting for it to be durable.
    func postEvent(_ event: LedgerEvent)
    /// Waits until everything queued so far is durable.
    func flush() async throws

    func run(id: String) async throws -> RunRecord?
    func runs(limit: Int) async throws -> [RunRecord]
    func jobs(runId: String) async throws -> [JobRecord]
    /// A run's events with ids above `afterId`, by id. Ids are given in commit order (whichever
    /// host wrote them): asking again after the last id seen misses none.
    func events(runId: String, afterId: Int64, limit: Int) async throws -> [LedgerEvent]
    /// Runs that were going when the process stopped (pending, running, halted, interrupted, and
    /// cancelling: `RunRecord.isCancelling`).
    func unfinishedRuns() async throws -> [RunRecord]
    /// Finished exercises whose sandbox cleanup is pending or failed (`runs.cleanup`).
    func runsOwingCleanup() async throws -> [RunRecord]
    /// Succeeded restore/exercise jobs of a plan, for forecasts.
    func throughput(plan: String?) async throws -> ThroughputHistory
    /// Finished runs of a plan and mode, newest first.
    func runs(plan: String, mode: RunMode, limit: Int) async throws -> [RunRecord]

    /// Jobs of a run counted by state.
    func jobCounts(runId: String) async throws -> [JobState: Int]
    /// Bytes restored by jobs that finished since `date` (for throughput).
    func bytesRestored(since date: Date) async throws -> Int64

    func schedule(plan: String) async throws -> ScheduleRecord?
    func saveSchedule(_ record: ScheduleRecord) async throws

    /// Records displaced data; with `job`, the job's update (its `quarantine_path`) goes in the
    /// same transaction, so after a crash the two never disagree (compare-and-set on the job's
    /// state, which this update keeps).
    func addQuarantine(_ record: QuarantineRecord, updating job: JobRecord?) async throws -> QuarantineRecord
    func updateQuarantine(_ record: QuarantineRecord) async throws
    func quarantine(includePurged: Bool) async throws -> [QuarantineRecord]

    /// Records the destinations a run holds (resolved paths, with their jobs' names), all or
    /// none. On one host the daemon's memory decides between runs (`DestinationHolds`) and the
    /// ledger only remembers where each was taken, for a restart. Several hosts sharing the
    /// ledger decide here: refused (`SafetyRefusal`) when a going run of any host holds one of
    /// them, one inside one, or one around one; holds of runs that ended count for nothing,
    /// whoever took them, unless a host holds the run (its coordination: a rollback moving data
    /// back).
    func takeHolds(runId: String, _ destinations: [(path: String, job: String)]) async throws
    /// Gives back destinations of a run (nil: all of them).
    func releaseHolds(runId: String, paths: [String]?) async throws
    /// Where its jobs' destinations resolved when the run took them (of one job, or nil: of all),
    /// oldest first: for a run resumed after a restart or taken over from another host, and for
    /// the hosts that run a job without coordinating its run.
    func holds(runId: String, job: String?) async throws -> [(job: String, path: String)]
}

/// An error of a ledger call that got no answer: the database refused or dropped the connection,
/// or is shutting down. Whether the call took effect is not known; a job whose write got none goes
/// back to the queue, as after a crash, instead of failing.
public protocol LedgerNoAnswer: Error {
    var gotNoAnswer: Bool { get }
}

extension Ledger {
    func updateRun(_ run: RunRecord) async throws {
        try await updateRun(run, jobs: [])
    }

    /// All of a run's events, by id, read a page at a time.
    func allEvents(runId: String) async throws -> [LedgerEvent] {
        var events: [LedgerEvent] = []
        while true {
            let page = try await self.events(runId: runId, afterId: events.last?.id ?? 0, limit: 5_000)
            events += page
            if page.count < 5_000 { return events }
        }
    }
}

/// A job write whose expected state no longer holds: another writer changed the job since (a
/// second coordinator, an operator's retry). Nothing was written.
public struct JobConflict: Error, CustomStringConvertible, Sendable {
    public var jobId: Int64?
    public var job: String
    public var expected: JobState
    public var found: JobState?

    public init(jobId: Int64?, job: String, expected: JobState, found: JobState?) {
        self.jobId = jobId
        self.job = job
        self.expected = expected
        self.found = found
    }

    public var description: String {
        "job \(jobId.map { "\($0)" } ?? "?") (\(job)) is recorded as \(found?.rawValue ?? "unknown"), not \(expected.rawValue) as this write expected: "
            + "another writer changed it; nothing was overwritten"
    }
}
