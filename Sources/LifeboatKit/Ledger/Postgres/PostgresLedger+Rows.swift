import Foundation
import NIOCore
import PostgresNIO

// How records map to rows. Every value travels as a bound parameter ($n) and the SQL text is
// constant: a statement of many rows binds each column as one array.

/// `$1, $2, …` from `first` on.
private func placeholders(_ count: Int, from first: Int = 1) -> String {
    (first..<(first + count)).map { "$\($0)" }.joined(separator: ", ")
}

private func int(_ cell: PostgresCell) throws -> Int { Int(try cell.decode(Int64.self)) }

/// A column of many rows as one array parameter, NULLs kept (PostgresNIO's arrays take no
/// optional elements). PostgreSQL's binary array: dimensions, has-NULLs flag, element type,
/// length and lower bound of the one dimension, then each element as length and bytes (-1: NULL).
struct PostgresColumn<Element: PostgresArrayEncodable & PostgresNonThrowingEncodable>: PostgresNonThrowingEncodable {
    var values: [Element?]

    static var psqlType: PostgresDataType { Element.psqlArrayType }
    static var psqlFormat: PostgresFormat { .binary }

    func encode<JSONEncoder: PostgresJSONEncoder>(into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        guard !values.isEmpty else {
            // No dimensions: the empty array.
            buffer.writeMultipleIntegers(Int32(0), Int32(0), Element.psqlType.rawValue)
            return
        }
        buffer.writeMultipleIntegers(Int32(1), Int32(values.contains { $0 == nil } ? 1 : 0), Element.psqlType.rawValue, Int32(values.count), Int32(1))
        for value in values {
            guard let value else {
                buffer.writeInteger(Int32(-1))
                continue
            }
            let lengthAt = buffer.writerIndex
            buffer.writeInteger(Int32(0))
            value.encode(into: &buffer, context: context)
            buffer.setInteger(Int32(buffer.writerIndex - lengthAt - 4), at: lengthAt)
        }
    }
}

extension PostgresBindings {
    /// `value` of each of `rows`, as one array parameter.
    mutating func appendColumn<Row, Element: PostgresArrayEncodable & PostgresNonThrowingEncodable>(_ rows: [Row], _ value: (Row) -> Element?) {
        append(PostgresColumn(values: rows.map(value)))
    }
}

enum RunRow {
    static let columns = ["id", "plan", "plan_path", "mode", "state", "declared_at", "incident_at", "as_of", "created_at",
                          "started_at", "finished_at", "started_by", "rto_objective_seconds", "rpo_objective_seconds",
                          "total_waves", "current_wave", "seed", "keep_sandbox", "note", "cleanup", "reason", "rehearse", "plan_version",
                          "paused_seconds", "paused_at"]
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
        b.append(run.planVersion)
        b.append(run.pausedSeconds)
        b.append(run.pausedAt)
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
        run.planVersion = try r[22].decode(String?.self)
        run.pausedSeconds = try r[23].decode(Double?.self)
        run.pausedAt = try r[24].decode(Date?.self)
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

    /// `jobs`' columns (all but `id`), each as one array parameter, in `columnTypes`' order:
    /// `unnest` of them gives the rows back, so a statement's text is the same for one row or
    /// ten thousand (prepared once per connection, planned once, no limit on parameters).
    static func appendColumns(of jobs: [JobRecord], to b: inout PostgresBindings) {
        b.appendColumn(jobs) { $0.runId }
        b.appendColumn(jobs) { $0.site }
        b.appendColumn(jobs) { $0.product }
        b.appendColumn(jobs) { $0.wave }
        b.appendColumn(jobs) { $0.priority }
        b.appendColumn(jobs) { $0.productOrder }
        b.appendColumn(jobs) { $0.state.rawValue }
        b.appendColumn(jobs) { $0.attempt }
        b.appendColumn(jobs) { $0.destination }
        b.appendColumn(jobs) { $0.snapshotPath }
        b.appendColumn(jobs) { $0.snapshotTakenAt }
        b.appendColumn(jobs) { $0.queuedAt }
        b.appendColumn(jobs) { $0.startedAt }
        b.appendColumn(jobs) { $0.finishedAt }
        b.appendColumn(jobs) { $0.bytes }
        b.appendColumn(jobs) { $0.entries }
        b.appendColumn(jobs) { $0.archiveBytes }
        b.appendColumn(jobs) { $0.skippedEntries }
        b.appendColumn(jobs) { $0.rpoSeconds }
        b.appendColumn(jobs) { $0.rtoSeconds }
        b.appendColumn(jobs) { $0.rpoMet }
        b.appendColumn(jobs) { $0.rtoMet }
        b.appendColumn(jobs) { $0.errorCode }
        b.appendColumn(jobs) { $0.error }
        b.appendColumn(jobs) { $0.stagingPath }
        b.appendColumn(jobs) { $0.commitIdentity }
        b.appendColumn(jobs) { $0.quarantinePath }
        b.appendColumn(jobs) { $0.hookOutput }
        b.appendColumn(jobs) { $0.treeDigest }
        b.appendColumn(jobs) { $0.host }
        b.appendColumn(jobs) { $0.source }
    }

    /// `unnest($1::type[], …) WITH ORDINALITY AS alias (name, …, n)` of `columns`: their
    /// rows, numbered in the arrays' order by `alias.n`.
    static func unnest(_ columns: [(String, String)], as alias: String) -> String {
        "unnest(" + columns.enumerated().map { "$\($0 + 1)::\($1.1)[]" }.joined(separator: ", ") + ") WITH ORDINALITY AS \(alias) ("
            + columns.map(\.0).joined(separator: ", ") + ", n)"
    }

    /// `SET column = u.column, …` for every column but `id`.
    private static let setFromU = insertColumns.map { "\($0) = u.\($0)" }.joined(separator: ", ")

    /// Many jobs in one statement, in their order; returns `(id, site, product)` per row.
    struct Insert: PostgresPreparedStatement {
        static let sql = "INSERT INTO jobs (\(insertColumns.joined(separator: ", "))) SELECT \(insertColumns.joined(separator: ", "))"
            + " FROM " + unnest(columnTypes, as: "u") + " ORDER BY u.n RETURNING id, site, product"
        typealias Row = (Int64, String, String)
        var jobs: [JobRecord]

        func makeBindings() -> PostgresBindings {
            var b = PostgresBindings(capacity: columnTypes.count)
            appendColumns(of: jobs, to: &b)
            return b
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    /// A job's compare-and-set update (the row must still be in `previous`); with `host`, made
    /// only while that host coordinates the job's run with at least `margin` seconds of lease
    /// left (fencing: a host that lost the run writes nothing).
    struct Update: PostgresPreparedStatement {
        static let sql = "UPDATE jobs SET \(setFromU) FROM " + unnest([("id", "int8")] + columnTypes, as: "u")
            + " WHERE jobs.id = u.id AND jobs.state = $\(columnTypes.count + 2)"
            + " AND ($\(columnTypes.count + 3)::text IS NULL OR EXISTS (SELECT 1 FROM run_leases l WHERE l.run_id = jobs.run_id"
            + " AND l.host = $\(columnTypes.count + 3) AND l.expires_at > now() + make_interval(secs => $\(columnTypes.count + 4))))"
            + " RETURNING jobs.id"
        typealias Row = Int64
        var job: JobRecord
        var previous: JobState
        var host: String?
        var margin: Double

        func makeBindings() -> PostgresBindings {
            var b = PostgresBindings(capacity: columnTypes.count + 4)
            b.appendColumn([job]) { $0.id }
            appendColumns(of: [job], to: &b)
            b.append(previous.rawValue)
            b.append(host)
            b.append(margin)
            return b
        }

        func decodeRow(_ row: PostgresRow) throws -> Int64 { try row.decode(Int64.self) }
    }

    /// What fences a claimed job's record, after its columns.
    static let fenceTypes = [("previous", "text"), ("token", "int8"), ("claim_host", "text"), ("margin", "float8")]

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

    /// The columns an insert gives, `key` last.
    static let columnTypes = [("run_id", "text"), ("job_id", "int8"), ("at", "timestamptz"), ("kind", "text"), ("message", "text"),
                              ("key", "text")]

    /// `events`' columns, each as one array parameter.
    static func appendColumns(of events: [PostedEvent], to b: inout PostgresBindings) {
        b.appendColumn(events) { $0.event.runId }
        b.appendColumn(events) { $0.event.jobId }
        b.appendColumn(events) { $0.event.at }
        b.appendColumn(events) { $0.event.kind }
        b.appendColumn(events) { $0.event.message }
        b.appendColumn(events) { $0.key }
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
                                "purged_at", "reason", "identity"]
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
        b.append(record.identity)
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
                                          reason: try r[10].decode(String.self), identity: nil)
            record.id = try r[0].decode(Int64.self)
            record.identity = try r[11].decode(String?.self)
            record.purgedAt = try r[9].decode(Date?.self)
            records.append(record)
        }
        return records
    }
}

/// `lifeboat_record_and_claim` (schema version 11): prepared once per connection. Its rows are
/// the jobs claimed in the place of the claims given back.
extension RecordCall: PostgresPreparedStatement {
    private static let types = [("id", "int8")] + JobRow.columnTypes + JobRow.fenceTypes + EventRow.columnTypes
        + [("released_job_id", "int8"), ("released_token", "int8")]
    static let sql = "SELECT \(ClaimRequest.resultColumns) FROM lifeboat_record_and_claim("
        + (types.map { "\($0.1)[]" } + ClaimRequest.types).enumerated().map { "$\($0 + 1)::\($1)" }.joined(separator: ", ") + ") AS c"
    typealias Row = JobClaim

    func makeBindings() -> PostgresBindings {
        var b = PostgresBindings(capacity: Self.types.count + ClaimRequest.types.count)
        let records = jobs.map(\.job)
        b.appendColumn(records) { $0.id }
        JobRow.appendColumns(of: records, to: &b)
        b.appendColumn(jobs) { $0.previous.rawValue }
        b.appendColumn(jobs) { $0.claim.token }
        b.appendColumn(jobs) { $0.claim.host }
        b.appendColumn(jobs) { $0.minimumLease }
        EventRow.appendColumns(of: events, to: &b)
        b.appendColumn(releases) { $0.jobId }
        b.appendColumn(releases) { $0.token }
        // Nothing claimed without a refill (its other arguments are then not read).
        (refill ?? ClaimRequest(runId: "", host: "", rules: ClaimRules(runConcurrency: 0), max: 0, lease: 0)).appendArguments(to: &b)
        return b
    }

    func decodeRow(_ row: PostgresRow) throws -> JobClaim {
        guard let refill else { throw PostgresLedger.Failure(operation: "record", url: "", reason: "a claim was returned that was not asked for") }
        return try refill.claim(from: row)
    }
}
