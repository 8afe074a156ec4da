import Foundation

/// Where runs, jobs and their timings are recorded. SQLite on one host (`SQLiteLedger`); the
/// protocol keeps the engine independent of it so a shared backend can come later.
///
/// Every awaited write is durable when it returns. `post…` writes are queued and become durable
/// with the next batch: use them only where losing the last few on a crash is safe.
public protocol Ledger: Sendable {
    func createRun(_ run: RunRecord, jobs: [JobRecord]) async throws -> [JobRecord]
    func updateRun(_ run: RunRecord) async throws
    func updateJob(_ job: JobRecord) async throws
    /// Queues a job update without waiting for it to be durable.
    func postJob(_ job: JobRecord)
    /// Queues an event without waiting for it to be durable.
    func postEvent(_ event: LedgerEvent)
    /// Waits until everything queued so far is durable.
    func flush() async throws

    func run(id: String) async throws -> RunRecord?
    func runs(limit: Int) async throws -> [RunRecord]
    func jobs(runId: String) async throws -> [JobRecord]
    func events(runId: String, afterId: Int64, limit: Int) async throws -> [LedgerEvent]
    /// Runs that were going when the process stopped (pending, running, halted, interrupted).
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
    /// same transaction, so after a crash the two never disagree.
    func addQuarantine(_ record: QuarantineRecord, updating job: JobRecord?) async throws -> QuarantineRecord
    func updateQuarantine(_ record: QuarantineRecord) async throws
    func quarantine(includePurged: Bool) async throws -> [QuarantineRecord]
}
