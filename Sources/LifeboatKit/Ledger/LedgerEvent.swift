import Foundation

/// An append-only record of something that happened in a run (`events` table).
public struct LedgerEvent: Sendable, Codable, Hashable {
    public var id: Int64?
    public var runId: String
    public var jobId: Int64?
    public var at: Date
    /// `run.state`, `job.state`, `gate.failed`, `rto.forecast-miss`, `rollback`, …
    public var kind: String
    public var message: String

    public init(runId: String, jobId: Int64? = nil, at: Date, kind: String, message: String) {
        self.runId = runId
        self.jobId = jobId
        self.at = at
        self.kind = kind
        self.message = message
    }
}

/// Displaced data kept by a commit or rollback (`quarantine` table).
public struct QuarantineRecord: Sendable, Codable, Hashable {
    public var id: Int64?
    public var runId: String
    public var jobId: Int64?
    public var site: String
    public var product: String
    /// Where the data sits now.
    public var path: String
    /// Where it was displaced from.
    public var originalPath: String
    public var createdAt: Date
    /// Purgeable after this.
    public var retainUntil: Date
    public var purgedAt: Date?
    /// `restore` (displaced by a restore) or `rollback` (restored data displaced by a rollback).
    public var reason: String
    /// The quarantined data's `dev:ino` when it was moved in: a purge removes only that (nil in
    /// entries recorded before the ledger kept it).
    public var identity: String?

    public init(runId: String, jobId: Int64?, site: String, product: String, path: String, originalPath: String,
                createdAt: Date, retainUntil: Date, reason: String, identity: FileIdentity?) {
        self.runId = runId
        self.jobId = jobId
        self.site = site
        self.product = product
        self.path = path
        self.originalPath = originalPath
        self.createdAt = createdAt
        self.retainUntil = retainUntil
        self.reason = reason
        self.identity = identity?.description
    }
}

/// The scheduler's memory of a plan's exercises (`schedules` table).
public struct ScheduleRecord: Sendable, Codable, Hashable {
    public var plan: String
    /// When the schedule last fired an exercise.
    public var lastFireAt: Date?
    /// Exercises fired so far (the scale grows with it).
    public var exercises: Int
    /// When the scheduler first saw this plan's schedule: slots before it are not "missed".
    public var armedAt: Date

    public init(plan: String, lastFireAt: Date?, exercises: Int, armedAt: Date) {
        self.plan = plan
        self.lastFireAt = lastFireAt
        self.exercises = exercises
        self.armedAt = armedAt
    }

    /// Where the next slot is looked for from: the last fire, or a later arming (a schedule
    /// changed by a reload).
    var base: Date { max(lastFireAt ?? armedAt, armedAt) }
}

/// Measured restore throughput from past runs, for forecasts.
public struct ThroughputHistory: Sendable, Codable, Hashable {
    public var jobs: Int
    /// Archive (compressed) bytes restored.
    public var bytes: Int64
    /// Sum of job durations.
    public var seconds: Double

    public var bytesPerSecond: Double? { seconds > 0 ? Double(bytes) / seconds : nil }
    public var secondsPerJob: Double? { jobs > 0 ? seconds / Double(jobs) : nil }
}
