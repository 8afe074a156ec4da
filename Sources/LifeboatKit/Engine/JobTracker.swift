import Foundation
import Synchronization

/// Follows one job through its attempts: each event goes through the lifecycle and the recorder
/// (the commit record durably before the commit), and progress is sampled for followers.
final class JobTracker: JobObserver {
    private let current: Mutex<JobRecord>
    private let recorder: JobRecorder
    private let lastProgress = Mutex<Date>(.distantPast)
    /// How long displaced data is kept (the plan's quarantine retention).
    private let retention: TimeInterval
    /// Why data goes to quarantine: `restore` (displaced by a commit) or `delete` (soft-deleted).
    private let quarantineReason: String

    init(job: JobRecord, retention: TimeInterval, recorder: JobRecorder, quarantineReason: String = "restore") {
        current = Mutex(job)
        self.retention = retention
        self.quarantineReason = quarantineReason
        self.recorder = recorder
    }

    var job: JobRecord { current.withLock { $0 } }

    /// The transition `event` makes from the job's current record (not yet recorded).
    func transition(_ event: JobEvent) throws -> JobTransition {
        try JobLifecycle.apply(event, to: job)
    }

    /// Records a transition; the job is then its new record.
    func commit(_ transition: JobTransition) async throws {
        try await recorder.record(transition)
        current.withLock { $0 = transition.job }
    }

    /// Applies `event` and records it; returns the job's new record.
    @discardableResult
    func apply(_ event: JobEvent) async throws -> JobRecord {
        let transition = try transition(event)
        try await commit(transition)
        return transition.job
    }

    // MARK: JobObserver

    func reserved(stagingPath: String) async throws { try await apply(.reserved(stagingPath: stagingPath)) }

    func staged(identity: String) async throws { try await apply(.staged(identity: identity)) }

    func verifying() async throws { try await apply(.verifying) }

    func willCommit() async throws { try await apply(.committing) }

    func mayCommit() throws { try recorder.checkClaim() }

    func proceedingThoughHeld(_ destination: String) {
        recorder.logger.notice("another process holds the destination (a host that lost this job's claim and has not noticed yet, or is frozen; or a daemon or extract that does not share this ledger): going on, since the ledger gives the job to this host",
                               metadata: ["job": "\(job.name)", "destination": "\(destination)"])
    }

    func progress(archiveBytesRead: Int64) {
        let now = recorder.clock.now()
        let due = lastProgress.withLock { last -> Bool in
            guard now.timeIntervalSince(last) >= 0.25 else { return false }
            last = now
            return true
        }
        guard due else { return }
        let job = self.job
        var event = RunEvent(kind: .progress, runId: job.runId, at: now, job: job)
        event.archiveBytesRead = archiveBytesRead
        recorder.bus.publish(event)
    }

    func didQuarantine(path: String, originalPath: String, identity: FileIdentity?) async throws {
        let transition = try transition(.quarantined(path: path))
        let job = transition.job
        let now = recorder.clock.now()
        try await recorder.record(transition, quarantine: QuarantineRecord(
            runId: job.runId, jobId: job.id, site: job.site, product: job.product, path: path,
            originalPath: originalPath, createdAt: now, retainUntil: now.addingTimeInterval(retention), reason: quarantineReason,
            identity: identity))
        current.withLock { $0 = job }
    }
}
