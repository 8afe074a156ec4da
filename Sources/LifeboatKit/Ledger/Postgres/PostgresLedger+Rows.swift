import Foundation
import PostgresNIO

// How records map to rows. Every value travels as a bound parameter ($n); the SQL text is
// constant (or, for multi-row inserts, made of placeholders only).

/// `$1, $2, …` from `first` on.
private func placeholders(_ count: Int, from first: Int = 1) -> String {
    (first..<(first + count)).map { "$\($0)" }.joined(separator: ", ")
}

private func int(_ cell: PostgresCell) throws -> Int { Int(try cell.decode(Int64.self)) }

enum RunRow {
    static let columns = ["id", "plan", "plan_path", "mode", "state", "declared_at", "incident_at", "as_of", "created_at",
                          "started_at", "finished_at", "started_by", "rto_objective_seconds", "rpo_objective_seconds",
                          "total_waves", "current_wave", "seed", "keep_sandbox", "note", "cleanup", "reason", "rehearse"]
    static let columnList = columns.joined(separator: ", ")
    static let insertSQL = "INSERT INTO runs (\(columnList)) VALUES (\(placeholders(columns.count)))"
    static let updateSQL = "UPDATE runs SET " + columns.enumerated().dropFirst().map { "\($1) = $\($0 + 1)" }.joined(separator: ", ")
        + " WHERE id = $1 RETURNING id"
    /// The update while the host after the columns' placeholders coordinates the run with the
    /// next one's seconds of lease left.
    static let fencedUpdateSQL = "UPDATE runs SET " + columns.enumerated().dropFirst().map { "\($1) = $\($0 + 1)" }.joined(separator: ", ")
        + " WHERE id = $1 AND EXISTS (SELECT 1 FROM run_leases l WHERE l.run_id = runs.id AND l.host = $\(columns.count + 1)"
        + " AND l.expires_at > now() + make_interval(secs => $\(columns.count + 2))) RETURNING id"

    static func bindings(_ run: RunRecord) -> PostgresBindings {
        var b = PostgresBindings(capacity: columns.count)
        b.append(run.id)
        b.append(run.plan)
        b.append(run.planPath)
        b.append(run.mode.rawValue)
        b.append(run.state.rawValue)
        b.append(run.declaredAt)
        b.append(run.incidentAt)
        b.append(run.asOf)
        b.append(run.createdAt)
        b.append(run.startedAt)
        b.append(run.finishedAt)
        b.append(run.startedBy)
        b.append(run.rtoObjectiveSeconds)
        b.append(run.rpoObjectiveSeconds)
        b.append(run.totalWaves)
        b.append(run.currentWave)
        b.append(run.seed)
        b.append(run.keepSandbox)
        b.append(run.note)
        b.append(run.cleanup)
        b.append(run.reason)
        b.append(run.rehearse)
        return b
    }

    static func decode(_ row: PostgresRow) throws -> RunRecord {
        let r = row.makeRandomAccess()
        guard let mode = RunMode(rawValue: try r[3].decode(String.self)) else { throw Unreadable(table: "runs", column: "mode") }
        var run = RunRecord(id: try r[0].decode(String.self), plan: try r[1].decode(String.self), planPath: try r[2].decode(String?.self),
                            mode: mode, state: RunState(rawValue: try r[4].decode(String.self)) ?? .failed,
                            declaredAt: try r[5].decode(Date.self), incidentAt: try r[6].decode(Date.self), asOf: try r[7].decode(Date.self),
                            createdAt: try r[8].decode(Date.self), startedBy: try r[11].decode(String.self),
                            rtoObjectiveSeconds: try r[12].decode(Double?.self), rpoObjectiveSeconds: try r[13].decode(Double?.self),
                            totalWaves: try int(r[14]), seed: try r[16].decode(Int64?.self), keepSandbox: try r[17].decode(Bool.self))
        run.startedAt = try r[9].decode(Date?.self)
        run.finishedAt = try r[10].decode(Date?.self)
        run.currentWave = try int(r[15])
        run.note = try r[18].decode(String?.self)
        run.cleanup = try r[19].decode(String?.self)
        run.reason = try r[20].decode(String?.self)
        run.rehearse = try r[21].decode(String?.self)
        return run
    }

    static func fetch(_ rows: PostgresRowSequence) async throws -> [RunRecord] {
        var runs: [RunRecord] = []
        for try await row in rows { runs.append(try decode(row)) }
        return runs
    }
}

/// A stored value this version cannot read (a state written by a newer version).
struct Unreadable: LifeboatError {
    var table: String
    var column: String
    var exitCode: CLIExit { .failed }
    var description: String { "the ledger's \(table).\(column) holds a value this lifeboat does not know; upgrade it" }
}

enum JobRow {
    /// Every column but `id` with its type, in the order of `append(_:to:)`.
    static let columnTypes = [("run_id", "text"), ("site", "text"), ("product", "text"), ("wave", "int8"), ("priority", "int8"),
                              ("product_order", "int8"), ("state", "text"), ("attempt", "int8"), ("destination", "text"),
                              ("snapshot_path", "text"), ("snapshot_taken_at", "timestamptz"), ("queued_at", "timestamptz"),
                              ("started_at", "timestamptz"), ("finished_at", "timestamptz"), ("bytes", "int8"), ("entries", "int8"),
                              ("archive_bytes", "int8"), ("skipped_entries", "int8"), ("rpo_seconds", "float8"), ("rto_seconds", "float8"),
                              ("rpo_met", "bool"), ("rto_met", "bool"), ("error_code", "text"), ("error", "text"), ("staging_path", "text"),
                              ("commit_identity", "text"), ("quarantine_path", "text"), ("hook_output", "text"), ("tree_digest", "text"),
                              ("host", "text"), ("source", "text")]
    static let insertColumns = columnTypes.map(\.0)
    static let columnList = "id, " + insertColumns.joined(separator: ", ")

    /// `columnList` with each column taken from `source` (a join's alias, a composite value).
    static func columnList(of source: String) -> String {
        (["id"] + insertColumns).map { "\(source).\($0)" }.joined(separator: ", ")
    }

    static func append(_ job: JobRecord, to b: inout PostgresBindings) {
        b.append(job.runId)
        b.append(job.site)
        b.append(job.product)
        b.append(job.wave)
        b.append(job.priority)
        b.append(job.productOrder)
        b.append(job.state.rawValue)
        b.append(job.attempt)
        b.append(job.destination)
        b.append(job.snapshotPath)
        b.append(job.snapshotTakenAt)
        b.append(job.queuedAt)
        b.append(job.startedAt)
        b.append(job.finishedAt)
        b.append(job.bytes)
        b.append(job.entries)
        b.append(job.archiveBytes)
        b.append(job.skippedEntries)
        b.append(job.rpoSeconds)
        b.append(job.rtoSeconds)
        b.append(job.rpoMet)
        b.append(job.rtoMet)
        b.append(job.errorCode)
        b.append(job.error)
        b.append(job.stagingPath)
        b.append(job.commitIdentity)
        b.append(job.quarantinePath)
        b.append(job.hookOutput)
        b.append(job.treeDigest)
        b.append(job.host)
        b.append(job.source)
    }

    /// One statement for many jobs; returns `(id, site, product)` per row.
    static func insertQuery(_ jobs: [JobRecord]) -> PostgresQuery {
        var b = PostgresBindings(capacity: jobs.count * insertColumns.count)
        var values: [String] = []
        values.reserveCapacity(jobs.count)
        for (i, job) in jobs.enumerated() {
            append(job, to: &b)
            values.append("(" + placeholders(insertColumns.count, from: i * insertColumns.count + 1) + ")")
        }
        let sql = "INSERT INTO jobs (\(insertColumns.joined(separator: ", "))) VALUES " + values.joined(separator: ", ")
            + " RETURNING id, site, product"
        return PostgresQuery(unsafeSQL: sql, binds: b)
    }

    /// The hot path (each job is written several times): prepared once per connection.
    struct Update: PostgresPreparedStatement {
        static let sql = "UPDATE jobs SET " + insertColumns.enumerated().map { "\($1) = $\($0 + 2)" }.joined(separator: ", ")
            + " WHERE id = $1 AND state = $\(insertColumns.count + 2) RETURNING id"
        typealias Row = Int64
        var job: JobRecord
        /// The state the row must still have (compare-and-set).
        var previous: JobState

        func makeBindings() throws -> PostgresBindings {
            var b = PostgresBindings(capacity: insertColumns.count + 2)
            b.append(job.id)
            JobRow.append(job, to: &b)
            b.append(previous.rawValue)
            return b
        }

        func decodeRow(_ row: PostgresRow) throws -> Int64 { try row.decode(Int64.self) }
    }

    /// The update, made only while `host` coordinates the job's run with at least `margin`
    /// seconds of lease left (fencing: a host that lost the run writes nothing).
    struct FencedUpdate: PostgresPreparedStatement {
        static let sql = "UPDATE jobs SET " + insertColumns.enumerated().map { "\($1) = $\($0 + 2)" }.joined(separator: ", ")
            + " WHERE id = $1 AND EXISTS (SELECT 1 FROM run_leases l WHERE l.run_id = jobs.run_id AND l.host = $\(insertColumns.count + 2)"
            + " AND l.expires_at > now() + make_interval(secs => $\(insertColumns.count + 3)))"
            + " AND state = $\(insertColumns.count + 4) RETURNING id"
        typealias Row = Int64
        var job: JobRecord
        var previous: JobState
        var host: String
        var margin: Double

        func makeBindings() throws -> PostgresBindings {
            var b = PostgresBindings(capacity: insertColumns.count + 4)
            b.append(job.id)
            JobRow.append(job, to: &b)
            b.append(host)
            b.append(margin)
            b.append(previous.rawValue)
            return b
        }

        func decodeRow(_ row: PostgresRow) throws -> Int64 { try row.decode(Int64.self) }
    }

    /// A fenced record's row of values: the job's id and columns, then the fence.
    private static let fencedTypes = [("id", "int8")] + columnTypes
        + [("previous", "text"), ("token", "int8"), ("claim_host", "text"), ("margin", "float8")]
    /// Parameters one statement may bind.
    static let maxBindings = 65_535
    /// Fenced records one statement may bind.
    static let fencedPerStatement = maxBindings / fencedTypes.count
    /// Parameters `count` fenced records bind.
    static func fencedBindings(_ count: Int) -> Int { count * fencedTypes.count }

    /// Claimed jobs' records (of distinct jobs) in one statement: a row is updated only while its
    /// state is the one expected and its claim is live with `minimumLease` seconds to spare; the
    /// claim's row is locked with it, so no takeover slips in before commit. `events` are
    /// inserted by the same statement. Returns the ids written.
    static func claimFencedUpdate(_ writes: ArraySlice<FencedJobWrite>, events: ArraySlice<LedgerEvent> = []) -> PostgresQuery {
        var b = PostgresBindings(capacity: fencedBindings(writes.count) + EventRow.bindings(events.count))
        var rows: [String] = []
        rows.reserveCapacity(writes.count)
        for (i, write) in writes.enumerated() {
            b.append(write.job.id)
            append(write.job, to: &b)
            b.append(write.previous.rawValue)
            b.append(write.claim.token)
            b.append(write.claim.host)
            b.append(write.minimumLease)
            // Typed placeholders: a NULL bind carries no type of its own.
            rows.append("(" + fencedTypes.enumerated().map { "$\(i * fencedTypes.count + $0 + 1)::\($1.1)" }.joined(separator: ", ") + ")")
        }
        let logged = events.isEmpty ? "" : "WITH logged AS (" + EventRow.insert(events, into: &b) + ") "
        let sql = logged + "UPDATE jobs SET " + insertColumns.map { "\($0) = u.\($0)" }.joined(separator: ", ")
            + " FROM (VALUES " + rows.joined(separator: ", ") + ") AS u (" + fencedTypes.map(\.0).joined(separator: ", ") + ")"
            + " WHERE jobs.id = u.id AND jobs.state = u.previous AND EXISTS (SELECT 1 FROM claims c WHERE c.job_id = u.id"
            + " AND c.token = u.token AND c.host = u.claim_host AND c.released_at IS NULL"
            + " AND c.expires_at > now() + make_interval(secs => u.margin) FOR UPDATE) RETURNING jobs.id"
        return PostgresQuery(unsafeSQL: sql, binds: b)
    }

    /// From the row's columns `offset…` (the job's columns after others of a join).
    static func decode(_ row: PostgresRow, offset o: Int = 0) throws -> JobRecord {
        let r = row.makeRandomAccess()
        var job = JobRecord(runId: try r[o + 1].decode(String.self), site: try r[o + 2].decode(String.self), product: try r[o + 3].decode(String.self),
                            wave: try int(r[o + 4]), priority: try int(r[o + 5]), productOrder: try int(r[o + 6]), destination: try r[o + 9].decode(String.self))
        job.id = try r[o].decode(Int64.self)
        job.state = JobState(rawValue: try r[o + 7].decode(String.self)) ?? .failed
        job.attempt = try int(r[o + 8])
        job.snapshotPath = try r[o + 10].decode(String?.self)
        job.snapshotTakenAt = try r[o + 11].decode(Date?.self)
        job.queuedAt = try r[o + 12].decode(Date?.self)
        job.startedAt = try r[o + 13].decode(Date?.self)
        job.finishedAt = try r[o + 14].decode(Date?.self)
        job.bytes = try r[o + 15].decode(Int64.self)
        job.entries = try r[o + 16].decode(Int64.self)
        job.archiveBytes = try r[o + 17].decode(Int64.self)
        job.skippedEntries = try int(r[o + 18])
        job.rpoSeconds = try r[o + 19].decode(Double?.self)
        job.rtoSeconds = try r[o + 20].decode(Double?.self)
        job.rpoMet = try r[o + 21].decode(Bool?.self)
        job.rtoMet = try r[o + 22].decode(Bool?.self)
        job.errorCode = try r[o + 23].decode(String?.self)
        job.error = try r[o + 24].decode(String?.self)
        job.stagingPath = try r[o + 25].decode(String?.self)
        job.commitIdentity = try r[o + 26].decode(String?.self)
        job.quarantinePath = try r[o + 27].decode(String?.self)
        job.hookOutput = try r[o + 28].decode(String?.self)
        job.treeDigest = try r[o + 29].decode(String?.self)
        job.host = try r[o + 30].decode(String?.self)
        job.source = try r[o + 31].decode(String?.self)
        return job
    }

    static func fetch(_ rows: PostgresRowSequence) async throws -> [JobRecord] {
        var jobs: [JobRecord] = []
        for try await row in rows { jobs.append(try decode(row)) }
        return jobs
    }
}

enum EventRow {
    static let columnList = "id, run_id, job_id, at, kind, message"

    /// Events one statement may bind.
    static let perStatement = JobRow.maxBindings / 5
    /// Parameters `count` events bind.
    static func bindings(_ count: Int) -> Int { count * 5 }

    /// Events in one statement, in their order.
    static func insertQuery(_ events: ArraySlice<LedgerEvent>) -> PostgresQuery {
        var b = PostgresBindings(capacity: bindings(events.count))
        let sql = insert(events, into: &b)
        return PostgresQuery(unsafeSQL: sql, binds: b)
    }

    /// The insert of `events`, in their order, their values appended to `b` (numbered after
    /// those already there).
    static func insert(_ events: ArraySlice<LedgerEvent>, into b: inout PostgresBindings) -> String {
        var rows: [String] = []
        rows.reserveCapacity(events.count)
        for event in events {
            let n = b.count
            b.append(event.runId)
            b.append(event.jobId)
            b.append(event.at)
            b.append(event.kind)
            b.append(event.message)
            rows.append("($\(n + 1)::text, $\(n + 2)::int8, $\(n + 3)::timestamptz, $\(n + 4)::text, $\(n + 5)::text)")
        }
        return "INSERT INTO events (run_id, job_id, at, kind, message) VALUES " + rows.joined(separator: ", ")
    }

    static func fetch(_ rows: PostgresRowSequence) async throws -> [LedgerEvent] {
        var events: [LedgerEvent] = []
        for try await (id, runId, jobId, at, kind, message) in rows.decode((Int64, String, Int64?, Date, String, String).self) {
            var event = LedgerEvent(runId: runId, jobId: jobId, at: at, kind: kind, message: message)
            event.id = id
            events.append(event)
        }
        return events
    }
}

enum QuarantineRow {
    static let insertColumns = ["run_id", "job_id", "site", "product", "path", "original_path", "created_at", "retain_until",
                                "purged_at", "reason"]
    static let columnList = "id, " + insertColumns.joined(separator: ", ")
    static let insertSQL = "INSERT INTO quarantine (\(insertColumns.joined(separator: ", "))) VALUES (\(placeholders(insertColumns.count))) RETURNING id"
    static let updateSQL = "UPDATE quarantine SET " + insertColumns.enumerated().map { "\($1) = $\($0 + 2)" }.joined(separator: ", ")
        + " WHERE id = $1 RETURNING id"

    /// With `id` first for the update; without it for the insert (the database chooses).
    static func bindings(_ record: QuarantineRecord, withId: Bool) -> PostgresBindings {
        var b = PostgresBindings(capacity: insertColumns.count + 1)
        if withId { b.append(record.id) }
        b.append(record.runId)
        b.append(record.jobId)
        b.append(record.site)
        b.append(record.product)
        b.append(record.path)
        b.append(record.originalPath)
        b.append(record.createdAt)
        b.append(record.retainUntil)
        b.append(record.purgedAt)
        b.append(record.reason)
        return b
    }

    static func fetch(_ rows: PostgresRowSequence) async throws -> [QuarantineRecord] {
        var records: [QuarantineRecord] = []
        for try await row in rows {
            let r = row.makeRandomAccess()
            var record = QuarantineRecord(runId: try r[1].decode(String.self), jobId: try r[2].decode(Int64?.self),
                                          site: try r[3].decode(String.self), product: try r[4].decode(String.self),
                                          path: try r[5].decode(String.self), originalPath: try r[6].decode(String.self),
                                          createdAt: try r[7].decode(Date.self), retainUntil: try r[8].decode(Date.self),
                                          reason: try r[10].decode(String.self))
            record.id = try r[0].decode(Int64.self)
            record.purgedAt = try r[9].decode(Date?.self)
            records.append(record)
        }
        return records
    }
}
