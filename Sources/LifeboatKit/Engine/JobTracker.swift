import Foundation
import Synchronization

/// Follows one job through its attempt: records state changes in the ledger (the commit record
/// durably), publishes events, samples progress.
final class JobTracker: JobObserver {
    private let current: Mutex<JobRecord>
    private let ledger: any Ledger
    private let bus: EventBus
    private let clock: any LifeboatClock
    private let lastProgress = Mutex<Date>(.distantPast)
    /// How long displaced data is kept (the plan's quarantine retention).
    private let retention: TimeInterval
    /// Why data goes to quarantine: `restore` (displaced by a commit) or `delete` (soft-deleted).
    private let quarantineReason: String

    init(job: JobRecord, retention: TimeInterval, ledger: any Ledger, bus: EventBus, clock: any LifeboatClock,
         quarantineReason: String = "restore") {
        current = Mutex(job)
        self.retention = retention
        self.quarantineReason = quarantineReason
        self.ledger = ledger
        self.bus = bus
        self.clock = clock
    }

    var job: JobRecord { current.withLock { $0 } }

    /// Applies a change and returns the new record.
    @discardableResult
    func update(_ change: (inout JobRecord) -> Void) -> JobRecord {
        current.withLock { job in
            change(&job)
            return job
        }
    }

    func publish(_ job: JobRecord) {
        bus.publish(RunEvent(kind: .job, runId: job.runId, at: clock.now(), job: job))
    }

    func reserved(stagingPath: String) async throws {
        let job = update { job in
            job.state = .restoring
            job.stagingPath = stagingPath
        }
        try await ledger.updateJob(job)
        publish(job)
    }

    func staged(identity: String) async {
        let job = update { $0.commitIdentity = identity }
        ledger.postJob(job)
    }

    func stateChanged(_ state: JobState) async {
        let job = update { $0.state = state }
        ledger.postJob(job)
        publish(job)
    }

    func progress(archiveBytesRead: Int64) {
        let now = clock.now()
        let due = lastProgress.withLock { last -> Bool in
            guard now.timeIntervalSince(last) >= 0.25 else { return false }
            last = now
            return true
        }
        guard due else { return }
        var event = RunEvent(kind: .progress, runId: job.runId, at: now, job: job)
        event.archiveBytesRead = archiveBytesRead
        bus.publish(event)
    }

    func willCommit() async throws {
        let job = update { $0.state = .committing }
        try await ledger.updateJob(job)
        publish(job)
    }

    func didQuarantine(path: String, originalPath: String) async throws {
        let job = update { $0.quarantinePath = path }
        let now = clock.now()
        _ = try await ledger.addQuarantine(QuarantineRecord(
            runId: job.runId, jobId: job.id, site: job.site, product: job.product, path: path,
            originalPath: originalPath, createdAt: now, retainUntil: now.addingTimeInterval(retention), reason: quarantineReason),
            updating: job)
    }
}
