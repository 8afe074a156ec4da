import Foundation

/// Job states (DESIGN.md): pending → waiting → restoring → verifying → committing →
/// succeeded | failed | cancelled | skipped.
public enum JobState: String, Sendable, Codable, CaseIterable {
    case pending, waiting, restoring, verifying, committing
    case succeeded, failed, cancelled, skipped

    public var isFinal: Bool {
        switch self {
        case .succeeded, .failed, .cancelled, .skipped: return true
        default: return false
        }
    }

    /// Work is in progress on disk (staging exists or a commit may be under way).
    public var isActive: Bool { self == .restoring || self == .verifying || self == .committing }
}

/// One (site, product) of a run, as recorded in the ledger (`jobs` table).
public struct JobRecord: Sendable, Codable, Hashable, Identifiable {
    public var id: Int64?
    public var runId: String
    public var site: String
    public var product: String
    /// 0-based wave index.
    public var wave: Int
    public var priority: Int
    /// Position of the product in the plan (ties of priority go in declared order).
    public var productOrder: Int
    public var state: JobState
    /// 1 for the first try; incremented by retries, resumes and `job.retry`.
    public var attempt: Int
    public var destination: String
    public var snapshotPath: String?
    public var snapshotTakenAt: Date?
    public var queuedAt: Date?
    public var startedAt: Date?
    public var finishedAt: Date?
    public var bytes: Int64
    public var entries: Int64
    public var archiveBytes: Int64
    public var skippedEntries: Int
    /// RPO = incident_at − snapshot taken_at.
    public var rpoSeconds: Double?
    /// RTO = finished_at − declared_at.
    public var rtoSeconds: Double?
    public var rpoMet: Bool?
    public var rtoMet: Bool?
    public var errorCode: String?
    public var error: String?
    /// The staging directory of the current attempt.
    public var stagingPath: String?
    /// Identity (`dev:ino`) of the staging directory, written durably before the commit so a
    /// restart can tell whether the commit happened (the destination then has this identity).
    public var commitIdentity: String?
    /// Where the displaced data went.
    public var quarantinePath: String?
    /// Output of hooks (verify.command, post_restore), capped.
    public var hookOutput: String?
    /// The committed tree's names, types, modes, sizes and modification times (`TreeDigest`),
    /// taken once the job's own work on it was done: rollback refuses a tree changed since.
    public var treeDigest: String?
    /// Where a restore job's data comes from: `snapshot` (an archive) or `quarantine` (the
    /// unpurged data of a soft delete, renamed back: RPO 0 relative to the deletion).
    public var source: String?

    public static let sourceSnapshot = "snapshot"
    public static let sourceQuarantine = "quarantine"

    /// Whether the job puts soft-deleted data back (`snapshotPath` is then that quarantine path).
    public var fromQuarantine: Bool { source == Self.sourceQuarantine }
    /// The host that ran (or runs) the current attempt: the daemon's `host.name`; nil when no
    /// attempt started, or for runs from before hosts were recorded.
    public var host: String?

    public init(runId: String, site: String, product: String, wave: Int, priority: Int, productOrder: Int, destination: String) {
        self.runId = runId
        self.site = site
        self.product = product
        self.wave = wave
        self.priority = priority
        self.productOrder = productOrder
        self.state = .pending
        self.attempt = 0
        self.destination = destination
        self.bytes = 0
        self.entries = 0
        self.archiveBytes = 0
        self.skippedEntries = 0
    }

    /// `acme/jira`
    public var name: String { "\(site)/\(product)" }

    /// Its data was put in place: it succeeded, or failed after its commit (`post_restore`),
    /// which measured its RTO as a success does. A job that failed before its commit has none.
    public var committed: Bool { state == .succeeded || (state == .failed && rtoSeconds != nil) }

    /// The command that queues this job again (`job.retry`), for messages that say what to do.
    public var retryCommand: String { "lifeboat retry \(runId) \(name)" }

    /// What to do about this failed job of `run`, in words with the command: restore it alone
    /// from the snapshot before when its archive cannot be restored (damaged, unsafe, over a
    /// limit: a retry would read the same archive), with the run's incident times so that its RPO
    /// and RTO stay the incident's; else fix the cause and retry it.
    public func remedy(in run: RunRecord) -> String {
        let archive: Set<String> = [JobError.Code.integrity.rawValue, JobError.Code.unsafeEntry.rawValue, JobError.Code.limit.rawValue]
        if run.mode == .restore, let code = errorCode, archive.contains(code), let taken = snapshotTakenAt {
            return "its archive cannot be restored; restore it from the snapshot before: `lifeboat restore \(run.plan) --sites \(site) --products \(product) "
                + "--as-of \(Timestamp.iso(taken.addingTimeInterval(-1))) --incident-at \(Timestamp.iso(run.incidentAt)) --declared-at \(Timestamp.iso(run.declaredAt))`"
        }
        return run.state.isFinal ? "fix the cause, then `\(retryCommand)`" : "fix the cause; once the run has ended: `\(retryCommand)`"
    }

    /// Why it did not succeed, without the job's own name in front (messages often begin with
    /// it), on one line (a hook's output keeps its line breaks in `error`), for lines that
    /// already name the job: one event is one line in a follower's log.
    public var reason: String? {
        guard let error else { return nil }
        let words = error.hasPrefix(name + ": ") ? error.dropFirst(name.count + 2) : Substring(error)
        return words.split(whereSeparator: \.isNewline).joined(separator: " / ")
    }

    /// Duration of the current attempt, if it ran.
    public var duration: TimeInterval? {
        guard let startedAt, let finishedAt else { return nil }
        return finishedAt.timeIntervalSince(startedAt)
    }
}
