import Foundation
import GRDB

extension SQLiteLedger {
    /// Schema migrations, applied in order at open. Column names are meant to be read by an
    /// operator with `sqlite3` (times are UTC text, durations are seconds).
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "runs") { t in
                t.primaryKey("id", .text)
                t.column("plan", .text).notNull().indexed()
                t.column("plan_path", .text)
                t.column("mode", .text).notNull()
                t.column("state", .text).notNull().indexed()
                t.column("declared_at", .datetime).notNull()
                t.column("incident_at", .datetime).notNull()
                t.column("as_of", .datetime).notNull()
                t.column("created_at", .datetime).notNull()
                t.column("started_at", .datetime)
                t.column("finished_at", .datetime)
                t.column("started_by", .text).notNull()
                t.column("rto_objective_seconds", .double)
                t.column("rpo_objective_seconds", .double)
                t.column("total_waves", .integer).notNull()
                t.column("current_wave", .integer).notNull()
                t.column("seed", .integer)
                t.column("keep_sandbox", .boolean).notNull()
                t.column("note", .text)
            }
            try db.create(table: "jobs") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("run_id", .text).notNull().indexed().references("runs", onDelete: .cascade)
                t.column("site", .text).notNull()
                t.column("product", .text).notNull()
                t.column("wave", .integer).notNull()
                t.column("priority", .integer).notNull()
                t.column("product_order", .integer).notNull()
                t.column("state", .text).notNull()
                t.column("attempt", .integer).notNull()
                t.column("destination", .text).notNull()
                t.column("snapshot_path", .text)
                t.column("snapshot_taken_at", .datetime)
                t.column("queued_at", .datetime)
                t.column("started_at", .datetime)
                t.column("finished_at", .datetime)
                t.column("bytes", .integer).notNull()
                t.column("entries", .integer).notNull()
                t.column("archive_bytes", .integer).notNull()
                t.column("skipped_entries", .integer).notNull()
                t.column("rpo_seconds", .double)
                t.column("rto_seconds", .double)
                t.column("rpo_met", .boolean)
                t.column("rto_met", .boolean)
                t.column("error_code", .text)
                t.column("error", .text)
                t.column("staging_path", .text)
                t.column("commit_identity", .text)
                t.column("quarantine_path", .text)
                t.column("hook_output", .text)
                t.uniqueKey(["run_id", "site", "product"])
            }
            // Throughput over recent finishes (status, metrics) without scanning every job ever run.
            try db.create(index: "jobs_on_state_finished_at", on: "jobs", columns: ["state", "finished_at"])
            try db.create(table: "events") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("run_id", .text).notNull().indexed()
                t.column("job_id", .integer)
                t.column("at", .datetime).notNull()
                t.column("kind", .text).notNull()
                t.column("message", .text).notNull()
            }
            try db.create(table: "quarantine") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("run_id", .text).notNull().indexed()
                t.column("job_id", .integer)
                t.column("site", .text).notNull()
                t.column("product", .text).notNull()
                t.column("path", .text).notNull()
                t.column("original_path", .text).notNull()
                t.column("created_at", .datetime).notNull()
                t.column("retain_until", .datetime).notNull()
                t.column("purged_at", .datetime)
                t.column("reason", .text).notNull()
            }
            try db.create(table: "schedules") { t in
                t.primaryKey("plan", .text)
                t.column("last_fire_at", .datetime)
                t.column("exercises", .integer).notNull()
                t.column("armed_at", .datetime).notNull()
            }
            // The events table is append-only: the ledger is evidence.
            try db.execute(sql: """
                CREATE TRIGGER events_no_update BEFORE UPDATE ON events
                BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
                CREATE TRIGGER events_no_delete BEFORE DELETE ON events
                BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
                """)
        }
        migrator.registerMigration("v2") { db in
            // What a committed tree looked like (TreeDigest), so rollback can tell later writes.
            try db.alter(table: "jobs") { t in t.add(column: "tree_digest", .text) }
            // An exercise's sandbox cleanup: pending, done or failed (a restart resumes pending).
            try db.alter(table: "runs") { t in t.add(column: "cleanup", .text) }
        }
        migrator.registerMigration("v3") { db in
            // Why an operator started a run (`delete --reason`): who, when and why are evidence.
            try db.alter(table: "runs") { t in
                t.add(column: "reason", .text)
                // An exercise's rehearsal (`--rehearse delete`).
                t.add(column: "rehearse", .text)
            }
            // Where a restore job's data came from: snapshot, or quarantine (a soft delete's data).
            try db.alter(table: "jobs") { t in t.add(column: "source", .text) }
        }
        migrator.registerMigration("v4") { db in
            // The host that ran a job's attempt (one on SQLite; several share a PostgreSQL ledger).
            try db.alter(table: "jobs") { t in t.add(column: "host", .text) }
        }
        migrator.registerMigration("v5") { db in
            // What was moved into quarantine (`dev:ino`): a purge removes that and nothing else.
            try db.alter(table: "quarantine") { t in t.add(column: "identity", .text) }
        }
        migrator.registerMigration("v6") { db in
            // The version of the plan a run was started with: it is worked under that one only.
            try db.alter(table: "runs") { t in t.add(column: "plan_version", .text) }
        }
        migrator.registerMigration("v7") { db in
            // Where a run took its destinations (resolved paths), kept across a restart.
            try db.create(table: "holds") { t in
                t.column("path", .text).primaryKey()
                t.column("run_id", .text).notNull().indexed()
                t.column("job", .text).notNull()
                t.column("taken_at", .double).notNull()
            }
        }
        migrator.registerMigration("v8") { db in
            // Time a run spent paused (halted at gates, ended until a retry): not part of its pace.
            try db.alter(table: "runs") { t in
                t.add(column: "paused_seconds", .double)
                t.add(column: "paused_at", .datetime)
            }
        }
        return migrator
    }
}

private let snake = (DatabaseColumnDecodingStrategy.convertFromSnakeCase, DatabaseColumnEncodingStrategy.convertToSnakeCase)

extension RunRecord: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "runs"
    public static var databaseColumnDecodingStrategy: DatabaseColumnDecodingStrategy { snake.0 }
    public static var databaseColumnEncodingStrategy: DatabaseColumnEncodingStrategy { snake.1 }
}

/// Jobs are written several times each, thousands per run: their columns are bound by hand
/// rather than through Codable, which profiling showed as a fifth of a tiny job's CPU.
extension JobRecord: FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "jobs"

    public init(row: Row) {
        self.init(runId: row["run_id"], site: row["site"], product: row["product"], wave: row["wave"],
                  priority: row["priority"], productOrder: row["product_order"], destination: row["destination"])
        id = row["id"]
        state = JobState(rawValue: row["state"]) ?? .failed
        attempt = row["attempt"]
        snapshotPath = row["snapshot_path"]
        snapshotTakenAt = row["snapshot_taken_at"]
        queuedAt = row["queued_at"]
        startedAt = row["started_at"]
        finishedAt = row["finished_at"]
        bytes = row["bytes"]
        entries = row["entries"]
        archiveBytes = row["archive_bytes"]
        skippedEntries = row["skipped_entries"]
        rpoSeconds = row["rpo_seconds"]
        rtoSeconds = row["rto_seconds"]
        rpoMet = row["rpo_met"]
        rtoMet = row["rto_met"]
        errorCode = row["error_code"]
        error = row["error"]
        stagingPath = row["staging_path"]
        commitIdentity = row["commit_identity"]
        quarantinePath = row["quarantine_path"]
        hookOutput = row["hook_output"]
        treeDigest = row["tree_digest"]
        source = row["source"]
        host = row["host"]
    }

    /// The columns besides `id`, in the order of `columnValues`.
    static let updatedColumns = [
        "run_id", "site", "product", "wave", "priority", "product_order", "state", "attempt", "destination",
        "snapshot_path", "snapshot_taken_at", "queued_at", "started_at", "finished_at", "bytes", "entries",
        "archive_bytes", "skipped_entries", "rpo_seconds", "rto_seconds", "rpo_met", "rto_met", "error_code",
        "error", "staging_path", "commit_identity", "quarantine_path", "hook_output", "tree_digest", "source", "host",
    ]

    /// A new job: every column but `id`, which the database assigns.
    static let insertSQL = "INSERT INTO jobs (" + updatedColumns.joined(separator: ", ") + ") VALUES ("
        + updatedColumns.map { _ in "?" }.joined(separator: ", ") + ")"

    /// Every column but `id`, written only while the row's state is still the expected one.
    static let compareAndSetSQL = "UPDATE jobs SET " + updatedColumns.map { "\($0) = ?" }.joined(separator: ", ")
        + " WHERE id = ? AND state = ?"

    /// The values of `updatedColumns`, in order, dates stored as `date` gives them (GRDB's
    /// text by default).
    func columnValues(date: (Date) -> DatabaseValue = \.databaseValue) -> [(any DatabaseValueConvertible)?] {
        [runId, site, product, wave, priority, productOrder, state.rawValue, attempt, destination,
         snapshotPath, snapshotTakenAt.map(date), queuedAt.map(date), startedAt.map(date), finishedAt.map(date), bytes, entries,
         archiveBytes, skippedEntries, rpoSeconds, rtoSeconds, rpoMet, rtoMet, errorCode,
         error, stagingPath, commitIdentity, quarantinePath, hookOutput, treeDigest, source, host]
    }

    /// The arguments of `compareAndSetSQL`.
    func compareAndSetArguments(previous: JobState, date: (Date) -> DatabaseValue) -> StatementArguments {
        StatementArguments(columnValues(date: date) + [id, previous.rawValue])
    }

    public func encode(to container: inout PersistenceContainer) {
        container["id"] = id
        for (column, value) in zip(Self.updatedColumns, columnValues()) { container[column] = value }
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// Events are read as records, a run's thousands at a time (reports, watchers): by hand, not
/// through Codable, like jobs. They are written by one prepared statement (`postEvent`).
extension LedgerEvent: FetchableRecord, TableRecord {
    public static let databaseTableName = "events"

    public init(row: Row) {
        self.init(runId: row["run_id"], jobId: row["job_id"], at: row["at"], kind: row["kind"], message: row["message"])
        id = row["id"]
    }
}

extension QuarantineRecord: FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "quarantine"
    public static var databaseColumnDecodingStrategy: DatabaseColumnDecodingStrategy { snake.0 }
    public static var databaseColumnEncodingStrategy: DatabaseColumnEncodingStrategy { snake.1 }
    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

extension ScheduleRecord: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "schedules"
    public static var databaseColumnDecodingStrategy: DatabaseColumnDecodingStrategy { snake.0 }
    public static var databaseColumnEncodingStrategy: DatabaseColumnEncodingStrategy { snake.1 }
}
