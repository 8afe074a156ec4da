import Foundation

/// A run's report as data: what every format renders, and the JSON report's schema.
///
/// JSON schema `lifeboat.report/1` (written by ``RunReport/jsonEncoder``): keys are snake_case
/// and sorted, dates are ISO-8601 UTC (`2026-11-24T03:15:00Z`), durations are seconds (floating
/// point), sizes are bytes. Optional values are omitted when unknown. Wave indexes are 0-based, as
/// in the ledger (text formats show `wave 1` for index 0). Top-level keys:
///
/// | key | content |
/// |---|---|
/// | `schema` | `"lifeboat.report/1"`; a change that removes or renames a key bumps it |
/// | `generated_at` | when the report was rendered |
/// | `run` | ``Run``: id, plan, plan_path, mode, state, started_by, declared_at, incident_at, as_of, created_at, started_at, finished_at, total_waves, seed, keep_sandbox, note |
/// | `objectives` | ``Objectives``: rto_seconds, rpo_seconds |
/// | `verdict` | ``ReportVerdict``: status (`ok`, `attention`, `in-progress`), headline, rto and rpo (`met`, `missed`, `pending`, `none`), counts |
/// | `overall`, `products[]`, `waves[]` | ``Group``: name, product or wave, counts by outcome, rpo and rto ``Percentiles`` (count, p50, p95, max), rpo_missed, rto_missed, bytes, entries |
/// | `throughput` | ``Throughput``: wall_seconds, bytes_per_second, jobs_per_minute, bytes, entries, archive_bytes, finished_jobs |
/// | `jobs[]` | ``Job``: one per (site, product): state, snapshot_path, snapshot_taken_at, started_at, finished_at, duration_seconds, rpo_seconds, rpo_met, rto_seconds, rto_met, bytes, entries, error_code, error, … |
/// | `failures[]` | ``Failure``: every job not restored (failed first, then skipped and cancelled) with its reason |
/// | `trend[]` | ``TrendPoint``: this run first, then the plan's previous runs newest first; empty without previous runs |
/// | `events[]` | ``Event``: notable ledger events (run states, retries, restarts, gates, forecasts), oldest first; per-job final states are left out (they are in `jobs`) |
///
/// RTO percentiles cover succeeded jobs only (a job that was not restored has no recovery time);
/// RPO percentiles cover every job with a selected snapshot. Both come from ``RunSummary``.
public struct ReportDocument: Sendable, Codable, Hashable {
    public static let schemaVersion = "lifeboat.report/1"

    public var schema: String
    public var generatedAt: Date
    public var run: Run
    public var objectives: Objectives
    public var verdict: ReportVerdict
    public var overall: Group
    public var products: [Group]
    public var waves: [Group]
    public var throughput: Throughput
    public var jobs: [Job]
    public var failures: [Failure]
    public var trend: [TrendPoint]
    public var events: [Event]

    /// The run header.
    public struct Run: Sendable, Codable, Hashable {
        public var id: String
        public var plan: String
        public var planPath: String?
        public var mode: RunMode
        public var state: RunState
        public var startedBy: String
        public var declaredAt: Date
        public var incidentAt: Date
        public var asOf: Date
        public var createdAt: Date
        public var startedAt: Date?
        public var finishedAt: Date?
        public var totalWaves: Int
        public var seed: Int64?
        public var keepSandbox: Bool
        public var note: String?
        /// Why the operator started it (`delete --reason`).
        public var reason: String?
            enum CodingKeys: String, CodingKey {
            case id, plan, planPath = "plan_path", mode, state, startedBy = "started_by", declaredAt = "declared_at", incidentAt = "incident_at", asOf = "as_of", createdAt = "created_at", startedAt = "started_at", finishedAt = "finished_at", totalWaves = "total_waves", seed, keepSandbox = "keep_sandbox", note, reason
        }
}

    /// The plan's objectives at the time the run was created.
    public struct Objectives: Sendable, Codable, Hashable {
        public var rtoSeconds: Double?
        public var rpoSeconds: Double?
            enum CodingKeys: String, CodingKey {
            case rtoSeconds = "rto_seconds", rpoSeconds = "rpo_seconds"
        }
}

    /// Numbers for a set of jobs: the whole run, one product or one wave.
    public struct Group: Sendable, Codable, Hashable {
        /// `all`, the product name, or `wave 1`.
        public var name: String
        public var product: String?
        /// 0-based.
        public var wave: Int?
        public var jobs: Int
        public var succeeded: Int
        public var failed: Int
        public var skipped: Int
        public var cancelled: Int
        /// Jobs not in a final state yet.
        public var unfinished: Int
        public var rpo: Percentiles
        public var rto: Percentiles
        public var rpoMissed: Int
        public var rtoMissed: Int
        public var bytes: Int64
        public var entries: Int64
            enum CodingKeys: String, CodingKey {
            case name, product, wave, jobs, succeeded, failed, skipped, cancelled, unfinished, rpo, rto, rpoMissed = "rpo_missed", rtoMissed = "rto_missed", bytes, entries
        }
}

    /// How fast the run restored.
    public struct Throughput: Sendable, Codable, Hashable {
        /// From the run's start to its end (or to its last finished job).
        public var wallSeconds: Double?
        /// Restored (uncompressed) bytes per second of the time the run worked (its pauses —
        /// halted at gates, ended until a retry — left out); jobs per minute likewise.
        public var bytesPerSecond: Double?
        public var jobsPerMinute: Double?
        public var bytes: Int64
        public var entries: Int64
        /// Compressed archive bytes read.
        public var archiveBytes: Int64
        public var finishedJobs: Int
            enum CodingKeys: String, CodingKey {
            case wallSeconds = "wall_seconds", bytesPerSecond = "bytes_per_second", jobsPerMinute = "jobs_per_minute", bytes, entries, archiveBytes = "archive_bytes", finishedJobs = "finished_jobs"
        }
}

    /// One (site, product) job.
    public struct Job: Sendable, Codable, Hashable {
        public var id: Int64?
        public var site: String
        public var product: String
        /// 0-based.
        public var wave: Int
        public var state: JobState
        public var attempt: Int
        public var destination: String
        public var snapshotPath: String?
        public var snapshotTakenAt: Date?
        public var startedAt: Date?
        public var finishedAt: Date?
        public var durationSeconds: Double?
        public var rpoSeconds: Double?
        public var rpoMet: Bool?
        public var rtoSeconds: Double?
        public var rtoMet: Bool?
        public var bytes: Int64
        public var entries: Int64
        public var archiveBytes: Int64
        public var skippedEntries: Int
        public var errorCode: String?
        public var error: String?
        public var quarantinePath: String?
        /// `snapshot` or `quarantine` (a soft delete's data renamed back).
        public var source: String?
            enum CodingKeys: String, CodingKey {
            case id, site, product, wave, state, attempt, destination, snapshotPath = "snapshot_path", snapshotTakenAt = "snapshot_taken_at", startedAt = "started_at", finishedAt = "finished_at", durationSeconds = "duration_seconds", rpoSeconds = "rpo_seconds", rpoMet = "rpo_met", rtoSeconds = "rto_seconds", rtoMet = "rto_met", bytes, entries, archiveBytes = "archive_bytes", skippedEntries = "skipped_entries", errorCode = "error_code", error, quarantinePath = "quarantine_path", source
        }
}

    /// A job that was not restored, and why.
    public struct Failure: Sendable, Codable, Hashable {
        public var site: String
        public var product: String
        /// 0-based.
        public var wave: Int
        public var state: JobState
        public var attempt: Int
        public var errorCode: String?
        /// The recorded reason; `no reason recorded` when the ledger has none.
        public var reason: String
        public var snapshotPath: String?
        public var finishedAt: Date?
            enum CodingKeys: String, CodingKey {
            case site, product, wave, state, attempt, errorCode = "error_code", reason, snapshotPath = "snapshot_path", finishedAt = "finished_at"
        }
}

    /// One run of the plan in the trend table.
    public struct TrendPoint: Sendable, Codable, Hashable {
        public var runId: String
        /// True for the reported run.
        public var current: Bool
        public var mode: RunMode
        public var state: RunState
        public var declaredAt: Date
        public var sites: Int?
        public var jobs: Int
        public var succeeded: Int
        /// succeeded / jobs, 0…1; absent for a run without jobs.
        public var successRate: Double?
        public var rtoP95: Double?
        public var rpoP95: Double?
        public var rtoMissed: Int
        public var rpoMissed: Int
            enum CodingKeys: String, CodingKey {
            case runId = "run_id", current, mode, state, declaredAt = "declared_at", sites, jobs, succeeded, successRate = "success_rate", rtoP95 = "rto_p95", rpoP95 = "rpo_p95", rtoMissed = "rto_missed", rpoMissed = "rpo_missed"
        }
}

    /// A notable ledger event.
    public struct Event: Sendable, Codable, Hashable {
        public var at: Date
        public var kind: String
        public var message: String
        public var jobId: Int64?
            enum CodingKeys: String, CodingKey {
            case at, kind, message, jobId = "job_id"
        }
}
    enum CodingKeys: String, CodingKey {
        case schema, generatedAt = "generated_at", run, objectives, verdict, overall, products, waves, throughput, jobs, failures, trend, events
    }
}
