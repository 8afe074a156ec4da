import Foundation
import Logging

/// What can happen to a job (DESIGN.md "Job states"). `JobLifecycle.apply` turns one into the
/// job's next record and what to record about it; nothing else decides a job's state.
public enum JobEvent: Sendable, Hashable {
    /// Its wave opened, but dependencies or limits hold it back: pending → waiting.
    case queued(at: Date)
    /// An attempt begins (the first, a retry after a transient failure, or a restart): → restoring.
    case started(at: Date, host: String?)
    /// The attempt's staging directory is chosen (before it is made).
    case reserved(stagingPath: String)
    /// The staging directory exists with this identity, which the destination has once committed.
    case staged(identity: String)
    /// The staged data is being checked (sidecar, verify command): restoring → verifying.
    case verifying
    /// The destination is about to change: → committing.
    case committing
    /// Data the commit displaced went to quarantine at `path`.
    case quarantined(path: String)
    /// The executor finished: succeeded, or failed when `post_restore` failed after the commit.
    case finished(JobResult, at: Date, timing: RunTiming)
    /// The attempt failed and will be tried again after `backoff` (the state stays).
    case attemptFailed(message: String, backoff: String)
    /// It failed for good (or never started: refused, no snapshot).
    case failed(code: JobError.Code, message: String, at: Date)
    /// An operator cancelled its run.
    case cancelled(by: String, at: Date)
    /// The daemon is stopping, or this host lost the job's claim: back to pending, to run again
    /// after the restart or on the host that holds the claim now.
    case interrupted(at: Date, reason: String = "shutdown")
    /// A dependency ended without success.
    case skipped(dependency: String, at: Date)
    /// An operator queued it again (`job.retry`): failed, cancelled or skipped → pending.
    case retried(RunTiming)
    /// After a crash, its commit was found in place: → succeeded, not redone.
    case recoveredCommitted(quarantinePath: String?, treeDigest: String?, measured: MeasuredTree?, postRestore: PostRestoreRun? = nil,
                            at: Date, timing: RunTiming)
    /// After a crash, its commit had not happened: the attempt is discarded, → pending.
    case recoveredRestart
}

/// What RTO is measured against: the run's declaration time and objective.
public struct RunTiming: Sendable, Hashable {
    public var declaredAt: Date
    public var rtoObjectiveSeconds: Double?
    public var rpoObjectiveSeconds: Double?

    public init(declaredAt: Date, rtoObjectiveSeconds: Double?, rpoObjectiveSeconds: Double? = nil) {
        self.declaredAt = declaredAt
        self.rtoObjectiveSeconds = rtoObjectiveSeconds
        self.rpoObjectiveSeconds = rpoObjectiveSeconds
    }

    public init(_ run: RunRecord) {
        self.init(declaredAt: run.declaredAt, rtoObjectiveSeconds: run.rtoObjectiveSeconds, rpoObjectiveSeconds: run.rpoObjectiveSeconds)
    }
}

/// One change of a job and what recording it takes (`JobRecorder` does the recording).
public struct JobTransition: Sendable, Hashable {
    /// How the ledger gets the new record.
    public enum Write: Sendable, Hashable {
        /// Nothing to write.
        case none
        /// Queued; durable with the next awaited write (safe to lose in a crash).
        case queued
        /// Durable before the job goes on.
        case durable
    }

    /// The state the ledger must still hold for the write to apply (compare-and-set).
    public var previous: JobState
    public var job: JobRecord
    public var write: Write
    /// The ledger event's kind and words (nil: none).
    public var event: Event?
    /// Whether followers (watch, the web view) hear of it.
    public var publish: Bool
    /// The daemon log's line (nil: none).
    public var log: LogLine?

    public struct Event: Sendable, Hashable {
        public var kind: String
        public var message: String
    }

    public struct LogLine: Sendable, Hashable {
        public var level: Logger.Level
        public var message: String
    }
}

/// An event that cannot happen to a job in its state: a bug, or two writers for one job.
public struct IllegalJobTransition: Error, CustomStringConvertible, Sendable {
    public var job: String
    public var state: JobState
    public var event: String

    public var description: String { "job \(job) is \(state.rawValue): it cannot take \"\(event)\"" }
}

/// The job state machine: pure, no I/O.
public enum JobLifecycle {
    /// The job after `event`, with what to record; throws when `event` cannot happen in its state.
    public static func apply(_ event: JobEvent, to job: JobRecord) throws -> JobTransition {
        let from = job.state
        var next = job
        func illegal() -> IllegalJobTransition { IllegalJobTransition(job: job.name, state: from, event: event.name) }
        func transition(_ write: JobTransition.Write, event: JobTransition.Event? = nil, publish: Bool = false,
                        log: JobTransition.LogLine? = nil) -> JobTransition {
            JobTransition(previous: from, job: next, write: write, event: event, publish: publish, log: log)
        }
        /// The event and log line of a job that ended (or stopped) here.
        func ended() -> JobTransition {
            // Ended without its snapshot restored (not committed): nothing was recovered, so it
            // misses the RPO objective, whatever its snapshot's age (it has no RTO at all).
            if next.state != .succeeded, next.rtoSeconds == nil, next.rpoMet != nil { next.rpoMet = false }
            let words = next.error ?? "\(next.state.rawValue) (\(ByteSize.format(next.bytes)), \(next.entries) entries)"
            let log: JobTransition.LogLine = switch next.state {
            case .succeeded: .init(level: .info, message: "job committed")
            case .failed: .init(level: .error, message: "job failed")
            default: .init(level: .notice, message: "job stopped")
            }
            return transition(.durable, event: .init(kind: "job.\(next.state.rawValue)", message: "\(next.name): \(words)"), publish: true, log: log)
        }
        func measureRTO(at: Date, _ timing: RunTiming) {
            next.finishedAt = at
            let rto = at.timeIntervalSince(timing.declaredAt)
            next.rtoSeconds = rto
            next.rtoMet = timing.rtoObjectiveSeconds.map { rto <= $0 }
        }

        switch event {
        case .queued(let at):
            guard from == .pending else { throw illegal() }
            next.state = .waiting
            next.queuedAt = job.queuedAt ?? at
            return transition(.queued)

        case .started(let at, let host):
            guard !from.isFinal else { throw illegal() }
            next.attempt += 1
            next.state = .restoring
            next.startedAt = at
            next.finishedAt = nil
            next.error = nil
            next.errorCode = nil
            next.stagingPath = nil
            // The commit identity stays only for a job queued again after it committed (`retried`
            // kept it): the executor runs post_restore again on that data instead of restoring.
            if from.isActive { next.commitIdentity = nil }
            next.host = host
            return transition(.queued, publish: true)

        case .reserved(let path):
            guard from == .restoring else { throw illegal() }
            next.stagingPath = path
            next.commitIdentity = nil
            return transition(.durable, publish: true)

        case .staged(let identity):
            guard from.isActive else { throw illegal() }
            next.commitIdentity = identity
            return transition(.queued)

        case .verifying:
            guard from == .restoring else { throw illegal() }
            next.state = .verifying
            return transition(.queued, publish: true)

        case .committing:
            guard from.isActive else { throw illegal() }
            next.state = .committing
            return transition(.durable, publish: true)

        case .quarantined(let path):
            guard from.isActive else { throw illegal() }
            next.quarantinePath = path
            return transition(.durable)

        case .finished(let result, let at, let timing):
            guard from.isActive else { throw illegal() }
            next.bytes = result.bytes
            next.entries = result.entries
            next.archiveBytes = result.archiveBytes
            next.skippedEntries = result.skippedEntries
            next.quarantinePath = result.quarantinePath ?? job.quarantinePath
            next.hookOutput = result.hookOutput
            next.treeDigest = result.treeDigest
            next.stagingPath = nil
            if let error = result.postRestoreError {
                next.state = .failed
                next.errorCode = JobError.Code.hook.rawValue
                next.error = error
            } else {
                next.state = .succeeded
            }
            measureRTO(at: at, timing)
            return ended()

        case .attemptFailed(let message, let backoff):
            guard from.isActive else { throw illegal() }
            return transition(.none, event: .init(kind: "job.retry", message: "\(job.name) attempt \(job.attempt) failed (\(message)); retrying in \(backoff)"),
                              log: .init(level: .warning, message: "transient failure; retrying: \(message)"))

        case .failed(let code, let message, let at):
            guard !from.isFinal else { throw illegal() }
            next.state = .failed
            next.errorCode = code.rawValue
            next.error = message
            next.finishedAt = at
            next.stagingPath = nil
            return ended()

        case .cancelled(let by, let at):
            guard !from.isFinal else { throw illegal() }
            next.state = .cancelled
            next.errorCode = JobError.Code.cancelled.rawValue
            next.error = from.isActive ? "cancelled by \(by)" : "cancelled by \(by) before it started"
            next.finishedAt = at
            next.stagingPath = nil
            return ended()

        case .interrupted(let at, let reason):
            switch from {
            case .pending: return transition(.none)
            case .waiting:
                next.state = .pending
                return transition(.durable)
            case .committing:
                // Its commit may have happened (the rename, then post_restore): left as recorded,
                // staging path and commit identity with it, for the next start to find out (`recover`).
                return transition(.none)
            case .restoring, .verifying:
                next.state = .pending
                next.errorCode = JobError.Code.cancelled.rawValue
                next.error = "interrupted by \(reason)"
                next.finishedAt = at
                next.stagingPath = nil
                next.commitIdentity = nil
                return ended()
            case .succeeded, .failed, .cancelled, .skipped: throw illegal()
            }

        case .skipped(let dependency, let at):
            guard from == .pending || from == .waiting else { throw illegal() }
            next.state = .skipped
            next.errorCode = JobError.Code.dependency.rawValue
            next.error = "skipped: dependency \(dependency)"
            next.finishedAt = at
            return ended()

        case .retried(let timing):
            guard from == .failed || from == .cancelled || from == .skipped else { throw illegal() }
            next.state = .pending
            next.error = nil
            next.errorCode = nil
            next.finishedAt = nil
            // Its RTO is measured again when it ends. What it committed (a post_restore failed
            // after the commit) is known by its identity, for post_restore to run again on it.
            next.rtoSeconds = nil
            next.rtoMet = nil
            // Its snapshot's RPO holds again, to be met once it is restored.
            next.rpoMet = timing.rpoObjectiveSeconds.flatMap { objective in next.rpoSeconds.map { $0 <= objective } }
            next.commitIdentity = job.committed ? job.commitIdentity : nil
            return transition(.durable, event: .init(kind: "job.retry", message: "\(job.name) queued again by an operator"), publish: true)

        case .recoveredCommitted(let quarantinePath, let treeDigest, let measured, let postRestore, let at, let timing):
            guard from.isActive else { throw illegal() }
            next.state = .succeeded
            if let postRestore {
                next.hookOutput = String(postRestore.output.prefix(64 << 10))
                if let error = postRestore.error {
                    next.state = .failed
                    next.errorCode = JobError.Code.hook.rawValue
                    next.error = error
                }
            }
            next.quarantinePath = quarantinePath ?? job.quarantinePath
            next.treeDigest = treeDigest ?? job.treeDigest
            if let measured, job.bytes == 0, job.entries == 0 { (next.bytes, next.entries) = (measured.bytes, measured.entries) }
            next.stagingPath = nil
            measureRTO(at: at, timing)
            let found = quarantinePath.map { "moved into quarantine (\($0)) before the restart" } ?? "commit found in place after restart"
            let hook = postRestore.map { $0.error == nil ? "; post_restore run again and passed" : "; post_restore run again and failed" } ?? ""
            return transition(.durable, event: .init(kind: "job.recovered", message: "\(job.name): \(found); not redone\(hook)"),
                              publish: true, log: .init(level: .info, message: "job committed"))

        case .recoveredRestart:
            guard from.isActive else { throw illegal() }
            next.state = .pending
            next.stagingPath = nil
            next.commitIdentity = nil
            return transition(.durable, event: .init(kind: "job.restart", message: "\(job.name): interrupted attempt \(job.attempt) discarded; starting over"))
        }
    }
}

extension JobEvent {
    /// The event's name, for errors and tests.
    public var name: String {
        switch self {
        case .queued: "queued"
        case .started: "started"
        case .reserved: "reserved"
        case .staged: "staged"
        case .verifying: "verifying"
        case .committing: "committing"
        case .quarantined: "quarantined"
        case .finished: "finished"
        case .attemptFailed: "attempt failed"
        case .failed: "failed"
        case .cancelled: "cancelled"
        case .interrupted: "interrupted"
        case .skipped: "skipped"
        case .retried: "retried"
        case .recoveredCommitted: "recovered (committed)"
        case .recoveredRestart: "recovered (restart)"
        }
    }
}

/// A committed tree measured where it is (a job recovered after a restart: its result died with
/// the process).
public struct MeasuredTree: Sendable, Hashable {
    public var bytes: Int64
    public var entries: Int64
}
