import Foundation
import GRDB
import Logging
import Synchronization

/// The ledger in SQLite (GRDB over the system library): WAL, `synchronous=FULL` on the writer,
/// a busy timeout, group commit. One writer process per state directory (the daemon holds a lock).
/// A pool: readers (status, reports) never wait behind the writer's fsyncs.
public final class SQLiteLedger: Ledger {
    let queue: DatabasePool
    private let commits: GroupCommit<SQLiteWrite>
    private let dates = DateValues()
    public let path: String

    public struct OpenError: LifeboatError {
        public var path: String
        public var reason: String
        public var exitCode: CLIExit { .failed }
        public var description: String { "cannot open the ledger \(path): \(reason)" }
    }

    /// Opens (creating and migrating as needed) the ledger at `path`.
    /// - Parameters:
    ///   - logger: told when writes wait (the database locked by another process, its disk full).
    ///   - busyTimeout: how long one attempt waits for another process's lock (then retried).
    public init(path: String, logger: Logger? = nil, busyTimeout: TimeInterval = 10) throws {
        self.path = path
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        configuration.label = "lifeboat.ledger"
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA foreign_keys = ON")
        }
        do {
            queue = try DatabasePool(path: path, configuration: configuration)
            // The pool puts the database in WAL mode and then sets `synchronous = NORMAL` on its
            // writer; FULL is set afterwards on that one persistent writer connection, where it
            // sticks, and checked.
            let synchronous = try queue.writeWithoutTransaction { db -> Int? in
                try db.execute(sql: "PRAGMA synchronous = FULL")
                return try Int.fetchOne(db, sql: "PRAGMA synchronous")
            }
            try Self.migrator.migrate(queue)
            guard synchronous == 2 else {
                throw OpenError(path: path, reason: "PRAGMA synchronous is \(synchronous ?? -1), expected 2 (FULL)")
            }
        } catch let error as OpenError {
            throw error
        } catch {
            throw OpenError(path: path, reason: "\(error)")
        }
        let stall = WriteStall()
        self.stall = stall
        commits = GroupCommit(writer: queue) { waited, error in
            let seconds = "\(Int(waited.components.seconds))"
            guard let error else {
                stall.problem.withLock { $0 = nil }
                logger?.notice("the ledger takes writes again", metadata: ["ledger": "\(path)", "waited_seconds": "\(seconds)"])
                return
            }
            let why = Self.describeWait(error, path: path)
            stall.problem.withLock { $0 = $0 ?? LedgerProblem(since: Date().addingTimeInterval(-Double(waited.components.seconds)), reason: why) }
            logger?.warning("ledger writes wait: \(why); every write waits, and the jobs with them; nothing is given up",
                            metadata: ["ledger": "\(path)", "waited_seconds": "\(seconds)"])
        }
    }

    /// Set while writes wait for the database (locked by another process, its filesystem full…).
    private let stall: WriteStall

    private final class WriteStall: Sendable {
        let problem = Mutex<LedgerProblem?>(nil)
    }

    /// Why writes wait, if they do: `status` shows it.
    public var problem: LedgerProblem? { stall.problem.withLock { $0 } }

    static func describeWait(_ error: DatabaseError, path: String) -> String {
        let directory = (path as NSString).deletingLastPathComponent
        switch error.resultCode {
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return "\(path) is locked by another process (an sqlite3 session with a transaction open? a backup?): end that transaction"
        case .SQLITE_FULL:
            return "the filesystem of \(directory) is full: free space there"
        case .SQLITE_READONLY:
            return "\(path) cannot be written (read-only file or filesystem): make it writable"
        default:
            return "writing \(path) fails (\(error.message ?? "\(error.resultCode)")): check the disk under \(directory)"
        }
    }

    /// The `synchronous` setting of the writer connection (2 = FULL).
    public func synchronousSetting() throws -> Int {
        try queue.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA synchronous") ?? -1 }
    }

    // MARK: Writes

    public func createRun(_ run: RunRecord, jobs: [JobRecord]) async throws -> [JobRecord] {
        let dates = dates
        return try await commits.write { db in
            try run.insert(db)
            // One prepared statement, columns bound by hand (a run may have 10,000 jobs: through
            // the record's container and a date formatter each, this was a fifth of starting it).
            let insert = try db.makeStatement(sql: JobRecord.insertSQL)
            return try jobs.map { job in
                var job = job
                try insert.execute(arguments: StatementArguments(job.columnValues(date: dates.value)))
                job.id = db.lastInsertedRowID
                return job
            }
        }
    }

    public func updateRun(_ run: RunRecord, jobs: [(job: JobRecord, from: JobState)]) async throws {
        let dates = dates
        try await commits.write { db in
            try run.update(db)
            for (job, previous) in jobs { try Self.update(job, from: previous, in: db, dates: dates) }
        }
    }

    public func updateJob(_ job: JobRecord, from previous: JobState) async throws {
        let dates = dates
        try await commits.write { db in try Self.update(job, from: previous, in: db, dates: dates) }
    }

    public func postJob(_ job: JobRecord, from previous: JobState) {
        let dates = dates
        commits.post { db in try Self.update(job, from: previous, in: db, dates: dates) }
    }

    /// The compare-and-set job write, inside the batch's transaction: one prepared statement
    /// (kept by the connection), the expected state in its `WHERE`. Only when it matches no row
    /// is the row read, to say why: missing (record not found) or changed (`JobConflict`).
    private static func update(_ job: JobRecord, from previous: JobState, in db: Database, dates: DateValues) throws {
        let statement = try db.cachedStatement(sql: JobRecord.compareAndSetSQL)
        try statement.execute(arguments: job.compareAndSetArguments(previous: previous, date: dates.value))
        guard db.changesCount == 0 else { return }
        guard let found = try String.fetchOne(db, sql: "SELECT state FROM jobs WHERE id = ?", arguments: [job.id]) else {
            throw RecordError.recordNotFound(databaseTableName: JobRecord.databaseTableName, key: ["id": job.id.databaseValue])
        }
        throw JobConflict(jobId: job.id, job: job.name, expected: previous, found: JobState(rawValue: found))
    }

    public func postEvent(_ event: LedgerEvent) {
        commits.post { db in
            // A prepared statement kept by the connection: the Codable insert cost a third of a
            // millisecond per event, paid at least once per job.
            let statement = try db.cachedStatement(sql: "INSERT INTO events (id, run_id, job_id, at, kind, message) VALUES (?, ?, ?, ?, ?, ?)")
            try statement.execute(arguments: [event.id, event.runId, event.jobId, event.at, event.kind, event.message])
        }
    }

    public func flush() async throws { try await commits.flush() }

    public func takeHolds(runId: String, _ destinations: [(path: String, job: String)]) async throws {
        guard !destinations.isEmpty else { return }
        let now = Date().timeIntervalSince1970
        try await commits.write { db in
            let insert = try db.makeStatement(sql: "INSERT INTO holds (path, run_id, job, taken_at) VALUES (?, ?, ?, ?) "
                                              + "ON CONFLICT (path) DO UPDATE SET run_id = excluded.run_id, job = excluded.job, taken_at = excluded.taken_at")
            for (path, job) in destinations { try insert.execute(arguments: [path, runId, job, now]) }
        }
    }

    public func releaseHolds(runId: String, paths: [String]?) async throws {
        try await commits.write { db in
            if let paths {
                let delete = try db.makeStatement(sql: "DELETE FROM holds WHERE path = ? AND run_id = ?")
                for path in paths { try delete.execute(arguments: [path, runId]) }
            } else {
                try db.execute(sql: "DELETE FROM holds WHERE run_id = ?", arguments: [runId])
            }
        }
    }

    // MARK: Reads

    public func holds(runId: String, job: String?) async throws -> [(job: String, path: String)] {
        try await queue.read { db in
            try Row.fetchAll(db, sql: "SELECT job, path FROM holds WHERE run_id = ? AND (? IS NULL OR job = ?) ORDER BY taken_at, path",
                             arguments: [runId, job, job]).map { (job: $0["job"], path: $0["path"]) }
        }
    }

    public func run(id: String) async throws -> RunRecord? {
        try await queue.read { db in try RunRecord.fetchOne(db, key: id) }
    }

    public func runs(limit: Int) async throws -> [RunRecord] {
        try await queue.read { db in
            try RunRecord.order(Column("created_at").desc).limit(limit).fetchAll(db)
        }
    }

    public func runs(plan: String, mode: RunMode, limit: Int) async throws -> [RunRecord] {
        try await queue.read { db in
            try RunRecord.filter(Column("plan") == plan && Column("mode") == mode.rawValue)
                .order(Column("created_at").desc).limit(limit).fetchAll(db)
        }
    }

    public func jobs(runId: String) async throws -> [JobRecord] {
        try await queue.read { db in
            try JobRecord.filter(Column("run_id") == runId).order(Column("id")).fetchAll(db)
        }
    }

    public func events(runId: String, afterId: Int64, limit: Int) async throws -> [LedgerEvent] {
        try await queue.read { db in
            try LedgerEvent.filter(Column("run_id") == runId && Column("id") > afterId)
                .order(Column("id")).limit(limit).fetchAll(db)
        }
    }

    public func unfinishedRuns() async throws -> [RunRecord] {
        try await queue.read { db in
            try RunRecord.filter([RunState.pending.rawValue, RunState.running.rawValue, RunState.halted.rawValue, RunState.interrupted.rawValue]
                .contains(Column("state")) || (Column("state") == RunState.cancelled.rawValue && Column("finished_at") == nil))
                .order(Column("created_at")).fetchAll(db)
        }
    }

    public func runsOwingCleanup() async throws -> [RunRecord] {
        try await queue.read { db in
            try RunRecord.filter(Column("cleanup") == RunRecord.cleanupPending || Column("cleanup").like("failed%"))
                .order(Column("created_at")).fetchAll(db)
        }
    }

    public func throughput(plan: String?) async throws -> ThroughputHistory {
        try await queue.read { db in
            var sql = """
                SELECT COUNT(*), COALESCE(SUM(j.archive_bytes), 0),
                       COALESCE(SUM((julianday(j.finished_at) - julianday(j.started_at)) * 86400.0), 0)
                FROM jobs j JOIN runs r ON r.id = j.run_id
                WHERE j.state = 'succeeded' AND j.started_at IS NOT NULL AND j.finished_at IS NOT NULL
                  AND r.mode IN ('restore', 'exercise') AND (j.source IS NULL OR j.source = 'snapshot')
                """
            var arguments: StatementArguments = []
            if let plan {
                sql += " AND r.plan = ?"
                arguments = [plan]
            }
            let row = try Row.fetchOne(db, sql: sql, arguments: arguments)
            return ThroughputHistory(jobs: row?[0] ?? 0, bytes: row?[1] ?? 0, seconds: row?[2] ?? 0)
        }
    }

    public func jobCounts(runId: String) async throws -> [JobState: Int] {
        try await queue.read { db in
            var counts: [JobState: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) FROM jobs WHERE run_id = ? GROUP BY state", arguments: [runId]) {
                if let state = JobState(rawValue: row[0]) { counts[state] = row[1] }
            }
            return counts
        }
    }

    public func bytesRestored(since date: Date) async throws -> Int64 {
        try await queue.read { db in
            // A delete's moved bytes are not restored bytes.
            try Int64.fetchOne(db, sql: "SELECT COALESCE(SUM(bytes), 0) FROM jobs WHERE state = 'succeeded' AND finished_at >= ? "
                               + "AND run_id NOT IN (SELECT id FROM runs WHERE mode = 'delete')",
                               arguments: [date]) ?? 0
        }
    }

    public func schedule(plan: String) async throws -> ScheduleRecord? {
        try await queue.read { db in try ScheduleRecord.fetchOne(db, key: plan) }
    }

    public func saveSchedule(_ record: ScheduleRecord) async throws {
        try await commits.write { db in try record.save(db) }
    }

    public func addQuarantine(_ record: QuarantineRecord, updating job: JobRecord?) async throws -> QuarantineRecord {
        let dates = dates
        return try await commits.write { db in
            var record = record
            try record.insert(db)
            if let job { try Self.update(job, from: job.state, in: db, dates: dates) }
            return record
        }
    }

    public func updateQuarantine(_ record: QuarantineRecord) async throws {
        try await commits.write { db in try record.update(db) }
    }

    public func quarantine(includePurged: Bool) async throws -> [QuarantineRecord] {
        try await queue.read { db in
            var request = QuarantineRecord.order(Column("created_at"))
            if !includePurged { request = request.filter(Column("purged_at") == nil) }
            return try request.fetchAll(db)
        }
    }
}

/// GRDB's stored text of dates, remembered: a job is written about six times with the same
/// snapshot, queued and started times, and formatting a date (Foundation's DateFormatter) cost
/// about as much as the rest of the update. The text is GRDB's own (`Date.databaseValue`);
/// only the repetition is saved.
final class DateValues: Sendable {
    private let known = Mutex<[Date: DatabaseValue]>([:])
    /// Plenty for every date of the jobs going at once; cleared when full.
    private static let capacity = 4096

    func value(_ date: Date) -> DatabaseValue {
        if let value = known.withLock({ $0[date] }) { return value }
        let value = date.databaseValue
        known.withLock { known in
            if known.count >= Self.capacity { known.removeAll(keepingCapacity: true) }
            known[date] = value
        }
        return value
    }
}
