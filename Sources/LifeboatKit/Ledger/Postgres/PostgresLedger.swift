import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// The ledger in PostgreSQL, shared by several hosts (DESIGN "Several hosts"): the same
/// `Ledger` contract as `SQLiteLedger` (the conformance suite pins it), over a connection pool
/// (`PostgresClient`), with parameterised statements only and the same group commit.
///
/// The pool works while `run()` runs: the daemon runs the ledger as the first service of its
/// group, so it is shut down last, after the runs have recorded their drain. The schema is
/// migrated on first use (once, by whichever host comes first, under an advisory lock).
public final class PostgresLedger: Ledger, Service {
    public let settings: PostgresLedgerSettings
    /// The connection pool (made anew after an outage: `ConnectionPoolSlot`).
    let pool: ConnectionPoolSlot
    var client: PostgresClient { get async { await pool.client } }
    let logger: Logger
    /// Whether the database answers this host's calls.
    let reachability = LedgerReachability()
    /// The schema as the last heartbeat found it, when a newer lifeboat migrated it since.
    let newerSchema = Mutex<SchemaMismatch?>(nil)
    /// The host this daemon is (`host.name`): it coordinates runs under leases, and its writes to
    /// a run are fenced by that run's lease. nil (tools, tests of the plain contract): unfenced.
    public let host: String?
    let commits: GroupCommit<PostgresWrite>
    /// The keys of the events posted here (`PostedEvent`).
    let eventKeys = EventKeys()
    /// Who takes the slots this host's claims give back (`refillSlots(with:)`).
    let slots = SlotRefill()
    private let schema = SchemaGate()

    /// Why the ledger could not do what was asked; names the database, never the password.
    public struct Failure: LifeboatError, LedgerNoAnswer {
        public var operation: String
        public var url: String
        public var reason: String
        /// The database did not answer the call (see `unanswered(_:)`).
        public var gotNoAnswer = false
        public var exitCode: CLIExit { .failed }
        public var description: String { "ledger \(url): \(operation) failed: \(reason)" }
    }

    /// A write got no answer (a run's recording or update, a schedule's fire; a job's record
    /// hears its own lost answer instead), and the ledger did not answer the question whether it
    /// was recorded either within 10 s (`settling`): a run may be going, to be taken up once it
    /// answers. Not "ask again": that may do it twice.
    public struct OutcomeUnknown: LifeboatError {
        /// What cannot be told: "run … was recorded".
        public var what: String
        /// What follows, and what to do.
        public var advice: String
        public var failure: Failure
        public var settling: any Error
        public var exitCode: CLIExit { .failed }
        public var description: String {
            "\(failure); whether \(what) cannot be told until the ledger answers (\(PostgresLedger.describe(settling))): \(advice)"
        }

        static func run(_ runId: String) -> String {
            "if it was, a host takes the run up then. Before asking again, see `lifeboat show \(runId)`, and `lifeboat cancel \(runId)` if you do not want it to go on"
        }
    }

    /// A write that matched no row (a job or quarantine entry that is not in the ledger).
    public struct RowNotFound: LifeboatError {
        public var table: String
        public var id: String
        public var exitCode: CLIExit { .failed }
        public var description: String { "no row \(id) in \(table)" }
    }

    /// - Parameter password: as returned by `settings.password()` (read once, at start).
    public init(settings: PostgresLedgerSettings, password: String?, host: String? = nil, logger: Logger) throws {
        self.settings = settings
        self.logger = logger
        self.host = host
        var configuration: PostgresClient.Configuration
        if let directory = settings.socketDirectory {
            configuration = .init(unixSocketPath: directory + "/.s.PGSQL.\(settings.port)", username: settings.user,
                                  password: password, database: settings.database)
        } else {
            configuration = .init(host: settings.host, port: settings.port, username: settings.user, password: password,
                                  database: settings.database, tls: try Self.tls(settings))
        }
        configuration.options.maximumConnections = settings.maxConnections
        configuration.options.minimumConnections = 1
        configuration.options.connectTimeout = .seconds(10)
        // A host cut off (or frozen) in the middle of a transaction holds its locks — a claim's
        // lock on its run's row stops every host's claims — until the server gives up on it:
        // after a lease, as the host's claims do, not after TCP's minutes. (Not tcp_user_timeout
        // too: it has the server drop the connection without a word once the link is down, and
        // the host, reconnected, may then wait on it for ever.)
        let lease = "\(Int((settings.lease * 1_000).rounded(.up)))"
        configuration.options.additionalStartupParameters = [("application_name", "lifeboatd"),
                                                             ("idle_in_transaction_session_timeout", lease)]
        pool = ConnectionPoolSlot(settings: settings) { [configuration] in PostgresClient(configuration: configuration, backgroundLogger: logger) }
        let (pool, logger, slots, claimLease, reachability, schema) = (self.pool, self.logger, self.slots, settings.lease, self.reachability, self.schema)
        // Events held back are said at most once a minute. They are set aside while the batches
        // go on without them, and tried again after half a second, then after twice as long
        // each time they are held back again, up to 5 s: each try waits out the lock's timeout.
        let heldBack = Mutex<(said: ContinuousClock.Instant?, times: Int)>((nil, 0))
        @Sendable func setAside(_ left: [Int], _ error: EventsHeldBack) -> PartialCommit {
            let (sayIt, times) = heldBack.withLock { held in
                held.times += 1
                guard held.said.map({ .now - $0 >= .seconds(60) }) ?? true else { return (false, held.times) }
                held.said = .now
                return (true, held.times)
            }
            if sayIt { logger.warning("\(error)") }
            return PartialCommit(left: left, error: error, retryAfter: min(.milliseconds(500) * (1 << min(times - 1, 4)), .seconds(5)))
        }
        commits = GroupCommit(committer: { writes in
            // A change posted before anything awaited the migrations waits for them (written
            // without them, it would be refused and dropped).
            try await schema.ensure()
            let refiller = slots.refiller
            let sent = ContinuousClock.now
            let batch = PostgresBatch(writes, refill: { released in
                refiller?.refill(after: released).map { ClaimRequest(runId: released.runId, host: released.host, rules: $0, max: 1, lease: claimLease) }
            })
            let (claimed, held) = try await reachability.call { try await Self.write(batch, client: await pool.client, host: host, logger: logger) }
            if let refiller, !claimed.isEmpty { refiller.claimed(claimed, sent: sent) }
            if let held { throw setAside(batch.eventIndices, held) }
            if !batch.events.isEmpty {
                do {
                    try await reachability.call { try await Self.writeEvents(batch.events, client: await pool.client, logger: logger) }
                } catch let error as EventsHeldBack {
                    throw setAside(batch.eventIndices, error)
                } catch {
                    throw PartialCommit(left: batch.eventIndices, error: error)
                }
            }
            if !batch.eventIndices.isEmpty { heldBack.withLock { $0.times = 0 } }
        }, unanswered: Self.unanswered, deferrable: { write in
            if case .event = write { true } else { false }
        }, dropped: { count, why in
            logger.error("posted changes (job records, events or claims given back) could not be written; they are not in the ledger",
                         metadata: ["count": "\(count)", "error": "\(why)"])
        })
        schema.prepare { [weak self] in try await self?.migrate() }
    }

    private static func tls(_ settings: PostgresLedgerSettings) throws -> PostgresClient.Configuration.TLS {
        switch settings.sslMode {
        case .disable:
            return .disable
        case .prefer, .require:
            // libpq's require encrypts without checking the certificate (unless a root is given).
            var tls = TLSConfiguration.makeClientConfiguration()
            if let root = settings.sslRootCert {
                tls.trustRoots = .file(root)
            } else {
                tls.certificateVerification = .none
            }
            return settings.sslMode == .require ? .require(tls) : .prefer(tls)
        case .verifyFull:
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.certificateVerification = .fullVerification
            if let root = settings.sslRootCert { tls.trustRoots = .file(root) }
            return .require(tls)
        }
    }

    /// Whether a batch failed for want of the database (refused, dropped, no connection, the pool
    /// replaced): its posted changes wait for an answer. Not an answer, nor a failure of this
    /// client's own making (a message it could not decode, too many parameters), which trying
    /// again would only repeat.
    static func unanswered(_ error: any Error) -> Bool {
        if error is CancellationError { return false }
        if let error = error as? PSQLError {
            let connection: [PSQLError.Code] = [.clientClosedConnection, .serverClosedConnection, .connectionError, .uncleanShutdown, .poolClosed]
            return connection.contains(error.code) || LedgerReachability.goingAway(error)
        }
        return !LedgerReachability.answered(error)
    }

    /// Runs the connection pool until graceful shutdown (or cancellation).
    public func run() async throws {
        await pool.run(reachability: reachability, logger: logger)
        commits.stopRetrying()
    }

    /// Runs `body` with the pool running (tools and tests outside a service group).
    public func withRunning<T: Sendable>(_ body: @Sendable (PostgresLedger) async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { await self.pool.run(reachability: self.reachability, logger: self.logger); return nil }
            defer { group.cancelAll() }
            defer { commits.stopRetrying() }
            let value = try await body(self)
            group.cancelAll()
            return value
        }
    }

    // MARK: Plumbing

    var url: String { settings.redactedURL }

    func failure(_ operation: String, _ error: any Error) -> any Error {
        // Raised where the database's name is not at hand (decoding a row): it is named here.
        if var failure = error as? Failure, failure.url.isEmpty {
            failure.url = url
            return failure
        }
        if error is Failure || error is RowNotFound || error is SchemaMismatch || error is CancellationError
            || error is JobConflict || error is RunLeaseLost || error is LeaseLost || error is HostNameInUse || error is SafetyRefusal { return error }
        return Failure(operation: operation, url: url, reason: Self.describe(error), gotNoAnswer: Self.unanswered(error))
    }

    /// What went wrong, in words: the server's message and SQLSTATE, or the client's error code.
    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                return message + (error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? "")
            }
            return "\(error.code)" + (error.underlying.map { ": \($0)" } ?? "")
        }
        if let error = error as? PostgresDecodingError {
            return "cannot decode column \(error.columnName) (\(error.postgresType)) as \(error.targetType)"
        }
        // The pool's own states (its module is not public API), in words.
        let text = "\(error)"
        if text.contains("connectionCreationCircuitBreakerTripped") {
            return "no connection to the database could be made for a while (the pool fails calls at once until one can)"
        }
        if text.contains("poolShutdown") { return "the connection pool was shut down" }
        return text
    }

    /// One transaction on one pooled connection: committed when `body` returns, rolled back when
    /// it throws (the body's own error is rethrown, not a wrapper).
    static func transaction<T: Sendable>(_ client: PostgresClient, logger: Logger,
                                         _ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await client.withLiveConnection { connection in
            try await connection.query("BEGIN", logger: logger)
            do {
                let value = try await body(connection)
                try await connection.query("COMMIT", logger: logger)
                return value
            } catch {
                // A connection whose rollback failed is closed by the pool; the error that matters is
                // the first. A connection that is gone is rolled back by the server: nothing is sent
                // on it (PostgresNIO can leave a query written to a closing channel unanswered for
                // ever, and with it every later write of this host).
                if !unanswered(error) { _ = try? await connection.query("ROLLBACK", logger: logger) }
                throw error
            }
        }
    }

    /// A read (or a write that is not batched), after the schema is in place.
    func withConnection<T: Sendable>(_ operation: String, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        do {
            try await ensureSchema()
            return try await reachability.call { try await client.withLiveConnection { connection in try await body(connection) } }
        } catch {
            throw failure(operation, error)
        }
    }

    /// A transaction outside the group commit (destination holds: all or none, answered at once).
    func inTransaction<T: Sendable>(_ operation: String, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        do {
            try await ensureSchema()
            return try await reachability.call { try await Self.transaction(client, logger: logger) { connection in try await body(connection) } }
        } catch {
            throw failure(operation, error)
        }
    }

    /// A batched write, durable when it returns; `posted` go right after it, in its batch.
    func write(_ operation: String, _ change: PostgresWrite, thenPost posted: [PostgresWrite] = []) async throws {
        do {
            try await ensureSchema()
            try await commits.write(change, thenPost: posted)
        } catch {
            throw failure(operation, error)
        }
    }

    /// Batched statements, durable when it returns.
    func write(_ operation: String, _ change: @escaping PostgresStatements) async throws {
        try await write(operation, .statements(change))
    }

    /// Batched statements that return a value, durable when it returns.
    func write<T: Sendable>(_ operation: String, _ change: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let result = Mutex<T?>(nil)
        try await write(operation) { connection in
            let value = try await change(connection)
            result.withLock { $0 = value }
        }
        guard let value = result.withLock({ $0 }) else { throw Failure(operation: operation, url: url, reason: "the write produced no result") }
        return value
    }

    /// Makes sure the schema is migrated before the first statement; a failed attempt (the
    /// database was down) is tried again by the next caller.
    func ensureSchema() async throws {
        try await schema.ensure()
    }

    // MARK: Writes

    public func createRun(_ run: RunRecord, jobs: [JobRecord]) async throws -> [JobRecord] {
        do {
            return try await recordRun(run, jobs: jobs)
        } catch let failure as Failure where failure.gotNoAnswer {
            // The transaction may have committed before its answer was lost: a host would then
            // take the run up as an orphan and run it while the operator, told it failed, asks
            // again. Whether it did is found out before anything is answered.
            guard try await settleCreation(of: run, failure) else { throw failure }
            logger.notice("the answer to recording a run was lost; the run is recorded", metadata: ["run.id": "\(run.id)"])
            let ids = Dictionary(try await self.jobs(runId: run.id).map { ($0.name, $0.id) }, uniquingKeysWith: { first, _ in first })
            var created = jobs
            for i in created.indices { created[i].id = ids[created[i].name] ?? nil }
            return created
        }
    }

    private func recordRun(_ run: RunRecord, jobs: [JobRecord]) async throws -> [JobRecord] {
        let (host, lease) = (self.host, settings.lease)
        return try await write("createRun") { connection in
            try await connection.query(PostgresQuery(unsafeSQL: RunRow.insertSQL, binds: RunRow.bindings(run)), logger: self.logger)
            // The creating host coordinates the run from its first instant: no other host adopts it.
            if let host {
                try await connection.query("""
                    INSERT INTO run_leases (run_id, host, expires_at) VALUES (\(run.id), \(host), now() + make_interval(secs => \(lease)))
                    """, logger: self.logger)
            }
            var ids: [String: Int64] = [:]
            ids.reserveCapacity(jobs.count)
            for try await (id, site, product) in try await connection.execute(JobRow.Insert(jobs: jobs), logger: self.logger) {
                ids[site + "/" + product] = id
            }
            var created = jobs
            for i in created.indices { created[i].id = ids[created[i].name] }
            return created
        }
    }

    /// Whether a run whose recording got no answer is recorded, for certain. A row of its id is
    /// inserted in a transaction of its own: while the server still has the first transaction
    /// open (its COMMIT in flight, or never coming until `idle_in_transaction_session_timeout`),
    /// the insert waits for it to end; then it finds the run's row (committed) or puts one in
    /// (the first was rolled back, and can commit no more), which it deletes again.
    private func settleCreation(of run: RunRecord, _ failure: Failure) async throws -> Bool {
        try await settling(failure, what: "run \(run.id) was recorded", advice: OutcomeUnknown.run(run.id)) { connection in
            let inserted = try await connection.query(PostgresQuery(unsafeSQL: RunRow.insertSQL + " ON CONFLICT (id) DO NOTHING RETURNING id",
                                                                    binds: RunRow.bindings(run)), logger: self.logger).collect()
            guard !inserted.isEmpty else { return true }
            try await connection.query("DELETE FROM runs WHERE id = \(run.id)", logger: self.logger)
            return false
        }
    }

    /// Whether a run's update that got no answer is recorded, for certain: its row is read `FOR
    /// UPDATE`, which waits for a transaction still holding it (the update's, its COMMIT in flight)
    /// to end. Recorded when the row is as the update left it: state, end, wave, cleanup and note
    /// (a retry's or a halt's says what it did). Job transitions written with it went with it.
    private func settleUpdate(of run: RunRecord, _ failure: Failure) async throws -> Bool {
        let found = try await settling(failure, what: "run \(run.id)'s update (to \(run.state.rawValue)) was recorded",
                                       advice: OutcomeUnknown.run(run.id)) { connection in
            try await RunRow.fetch(connection.query("SELECT \(unescaped: RunRow.columnList) FROM runs WHERE id = \(run.id) FOR UPDATE",
                                                    logger: self.logger)).first
        }
        guard let found else { return false }
        return found.state == run.state && (found.finishedAt == nil) == (run.finishedAt == nil) && found.currentWave == run.currentWave
            && found.cleanup == run.cleanup && found.note == run.note
    }

    /// Asks the ledger in a transaction of its own what became of a write whose answer was lost,
    /// for 10 s while it does not answer; then it is `OutcomeUnknown`.
    func settling<T: Sendable>(_ failure: Failure, what: String, advice: String,
                               _ body: (PostgresConnection) async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            do {
                return try await inTransaction(failure.operation) { connection in try await body(connection) }
            } catch let again as Failure where again.gotNoAnswer && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(500))
            } catch {
                throw OutcomeUnknown(what: what, advice: advice, failure: failure, settling: error)
            }
        }
    }

    /// Lease a fenced write needs left: a third of the lease, which renewals (every third) keep
    /// above it while the host is well; what is left covers a commit's rename after its record.
    var fenceMargin: Double { settings.lease / 3 }

    public func updateRun(_ run: RunRecord, jobs: [(job: JobRecord, from: JobState)]) async throws {
        let (host, margin) = (self.host, fenceMargin)
        let jobWrites = jobs.map { updating($0.job, from: $0.from) }
        do {
            try await write("updateRun") { connection in
                var binds = RunRow.bindings(run)
                if let host {
                    binds.append(host)
                    binds.append(margin)
                }
                let rows = try await connection.query(PostgresQuery(unsafeSQL: host == nil ? RunRow.updateSQL : RunRow.fencedUpdateSQL, binds: binds),
                                                      logger: self.logger)
                guard try await rows.collect().count == 1 else { throw try await self.missingRun(run.id, connection) }
                for write in jobWrites { try await write(connection) }
            }
        } catch let failure as Failure where failure.gotNoAnswer {
            // Committed before its answer was lost, or not: the caller hears which (a retry told
            // it failed would otherwise go on, taken up as an orphan).
            guard try await settleUpdate(of: run, failure) else { throw failure }
            logger.notice("the answer to a run's update was lost; the update is recorded", metadata: ["run.id": "\(run.id)", "state": "\(run.state.rawValue)"])
        }
    }

    public func updateJob(_ job: JobRecord, from previous: JobState) async throws {
        try await write("updateJob", updating(job, from: previous))
    }

    public func postJob(_ job: JobRecord, from previous: JobState) {
        commits.post(.statements(updating(job, from: previous)))
    }

    /// A job's compare-and-set update; fenced by its run's lease when this ledger is a host's.
    func updating(_ job: JobRecord, from previous: JobState) -> PostgresStatements {
        let (logger, host, margin) = (self.logger, self.host, fenceMargin)
        return { connection in
            var count = 0
            for try await _ in try await connection.execute(JobRow.Update(job: job, previous: previous, host: host, margin: margin), logger: logger) { count += 1 }
            guard count == 1 else { throw try await Self.missingJob(job, expected: previous, host: host, connection, logger: logger) }
        }
    }

    /// Why an update matched no row: the row is not there, or (fenced) this host lost the run.
    private func missingRun(_ id: String, _ connection: PostgresConnection) async throws -> any Error {
        let exists = try await connection.query("SELECT 1 FROM runs WHERE id = \(id)", logger: logger).collect()
        guard let host, !exists.isEmpty else { return RowNotFound(table: "runs", id: id) }
        return RunLeaseLost(runId: id, host: host)
    }

    /// Why a job update matched no row: the row is not there, its state is not the one expected
    /// (another writer changed it), or (fenced) this host lost the run.
    static func missingJob(_ job: JobRecord, expected: JobState, host: String?, _ connection: PostgresConnection,
                           logger: Logger) async throws -> any Error {
        var found: String?
        for try await state in try await connection.query("SELECT state FROM jobs WHERE id = \(job.id)", logger: logger).decode(String.self) { found = state }
        guard let found else { return RowNotFound(table: "jobs", id: job.id.map { "\($0)" } ?? "nil") }
        guard found == expected.rawValue else {
            return JobConflict(jobId: job.id, job: job.name, expected: expected, found: JobState(rawValue: found))
        }
        return RunLeaseLost(runId: job.runId, host: host ?? "?")
    }

    public func postEvent(_ event: LedgerEvent) {
        commits.post(.event(PostedEvent(event: event, key: eventKeys.next())))
    }

    public func holdsBackEvents(runId: String) -> Bool {
        commits.setsAside { write in
            if case .event(let posted) = write { posted.event.runId == runId } else { false }
        }
    }

    public func flush() async throws {
        do {
            try await ensureSchema()
            try await commits.flush()
        } catch {
            throw failure("flush", error)
        }
    }

    /// Writes queued with `post…` that could not be written.
    public var droppedPosts: Int { commits.droppedPosts.load(ordering: .relaxed) }

    // MARK: Reads

    public func run(id: String) async throws -> RunRecord? {
        try await withConnection("run") { connection in
            try await RunRow.fetch(connection.query("SELECT \(unescaped: RunRow.columnList) FROM runs WHERE id = \(id)", logger: logger)).first
        }
    }

    public func runs(limit: Int) async throws -> [RunRecord] {
        try await withConnection("runs") { connection in
            try await RunRow.fetch(connection.query("SELECT \(unescaped: RunRow.columnList) FROM runs ORDER BY created_at DESC, id DESC LIMIT \(limit)", logger: logger))
        }
    }

    public func runs(plan: String, mode: RunMode, limit: Int) async throws -> [RunRecord] {
        try await withConnection("runs") { connection in
            try await RunRow.fetch(connection.query("""
                SELECT \(unescaped: RunRow.columnList) FROM runs WHERE plan = \(plan) AND mode = \(mode.rawValue)
                ORDER BY created_at DESC, id DESC LIMIT \(limit)
                """, logger: logger))
        }
    }

    public func jobs(runId: String) async throws -> [JobRecord] {
        try await withConnection("jobs") { connection in
            try await JobRow.fetch(connection.query("SELECT \(unescaped: JobRow.columnList) FROM jobs WHERE run_id = \(runId) ORDER BY id", logger: logger))
        }
    }

    /// The run's jobs changed since `cursor` (all of them without one), and the cursor for the
    /// next look. A job's row names the transaction that last changed it. The cursor, taken
    /// before the read, is what had not committed when this look began: the transactions not
    /// yet begun (`pg_snapshot_xmax`) and those still going (`pg_snapshot_xip`). A change
    /// committed after the read was made by one of them, so the next look finds it; what had
    /// committed was read. A change may be seen twice, never missed, and a write transaction left
    /// open (an operator's psql) makes no look read again what it read before.
    public func jobChanges(runId: String, since cursor: JobChangeCursor?) async throws -> ([JobRecord], JobChangeCursor) {
        try await withConnection("job changes") { connection in
            var next = cursor ?? JobChangeCursor(from: "0", going: [])
            for try await (xmax, going) in try await connection.query("""
                SELECT pg_snapshot_xmax(s)::text, ARRAY(SELECT pg_snapshot_xip(s)::text) FROM pg_current_snapshot() s
                """, logger: logger).decode((String, [String]).self) { next = JobChangeCursor(from: xmax, going: going) }
            let (from, going) = (cursor?.from ?? "0", cursor?.going ?? [])
            // Two index ranges, as two reads: an OR of them may be planned as a scan of the run.
            // The second only when some transaction was going: `changed = ANY('{}')` is false,
            // and the planner, proving anything from false, then read it from the partial index
            // of claimable jobs, filtering out every one of them (5 ms a look, a quarter of the
            // server's time in a 10,000-job run).
            let jobs = try await JobRow.fetch(connection.query(going.isEmpty ? """
                SELECT \(unescaped: JobRow.columnList) FROM jobs WHERE run_id = \(runId) AND changed >= \(from)::xid8
                ORDER BY id
                """ : """
                SELECT \(unescaped: JobRow.columnList) FROM jobs WHERE run_id = \(runId) AND changed >= \(from)::xid8
                UNION ALL
                SELECT \(unescaped: JobRow.columnList) FROM jobs WHERE run_id = \(runId) AND changed = ANY(\(going)::xid8[]) AND changed < \(from)::xid8
                ORDER BY id
                """, logger: logger))
            return (jobs, next)
        }
    }

    public func events(runId: String, afterId: Int64, limit: Int) async throws -> [LedgerEvent] {
        try await withConnection("events") { connection in
            try await EventRow.fetch(connection.query("""
                SELECT \(unescaped: EventRow.columnList) FROM events WHERE run_id = \(runId) AND id > \(afterId) ORDER BY id LIMIT \(limit)
                """, logger: logger))
        }
    }

    public func unfinishedRuns() async throws -> [RunRecord] {
        let states = [RunState.pending, .running, .halted, .interrupted].map(\.rawValue)
        return try await withConnection("unfinishedRuns") { connection in
            try await RunRow.fetch(connection.query("""
                SELECT \(unescaped: RunRow.columnList) FROM runs
                WHERE state = ANY(\(states)) OR (state = 'cancelled' AND finished_at IS NULL) ORDER BY created_at, id
                """, logger: logger))
        }
    }

    public func runsOwingCleanup() async throws -> [RunRecord] {
        try await withConnection("runsOwingCleanup") { connection in
            try await RunRow.fetch(connection.query("""
                SELECT \(unescaped: RunRow.columnList) FROM runs WHERE cleanup = \(RunRecord.cleanupPending) OR cleanup LIKE 'failed%'
                ORDER BY created_at, id
                """, logger: logger))
        }
    }

    public func throughput(plan: String?) async throws -> ThroughputHistory {
        try await withConnection("throughput") { connection in
            let rows = try await connection.query("""
                SELECT COUNT(*)::bigint, COALESCE(SUM(j.archive_bytes), 0)::bigint,
                       COALESCE(SUM(EXTRACT(EPOCH FROM (j.finished_at - j.started_at))), 0)::float8
                FROM jobs j JOIN runs r ON r.id = j.run_id
                WHERE j.state = 'succeeded' AND j.started_at IS NOT NULL AND j.finished_at IS NOT NULL
                  AND r.mode IN ('restore', 'exercise') AND (j.source IS NULL OR j.source = 'snapshot')
                  AND (\(plan)::text IS NULL OR r.plan = \(plan))
                """, logger: logger)
            for try await (jobs, bytes, seconds) in rows.decode((Int64, Int64, Double).self) {
                return ThroughputHistory(jobs: Int(jobs), bytes: bytes, seconds: seconds)
            }
            return ThroughputHistory(jobs: 0, bytes: 0, seconds: 0)
        }
    }

    public func jobCounts(runId: String) async throws -> [JobState: Int] {
        try await withConnection("jobCounts") { connection in
            var counts: [JobState: Int] = [:]
            let rows = try await connection.query("SELECT state, COUNT(*)::bigint FROM jobs WHERE run_id = \(runId) GROUP BY state", logger: logger)
            for try await (state, count) in rows.decode((String, Int64).self) {
                if let state = JobState(rawValue: state) { counts[state] = Int(count) }
            }
            return counts
        }
    }

    public func bytesRestored(since date: Date) async throws -> Int64 {
        try await withConnection("bytesRestored") { connection in
            let rows = try await connection.query("""
                SELECT COALESCE(SUM(bytes), 0)::bigint FROM jobs WHERE state = 'succeeded' AND finished_at >= \(date)
                  AND run_id NOT IN (SELECT id FROM runs WHERE mode = 'delete')
                """, logger: logger)
            for try await total in rows.decode(Int64.self) { return total }
            return 0
        }
    }

    public func schedule(plan: String) async throws -> ScheduleRecord? {
        try await withConnection("schedule") { connection in
            let rows = try await connection.query("SELECT plan, last_fire_at, exercises, armed_at FROM schedules WHERE plan = \(plan)", logger: logger)
            for try await (plan, last, exercises, armed) in rows.decode((String, Date?, Int64, Date).self) {
                return ScheduleRecord(plan: plan, lastFireAt: last, exercises: Int(exercises), armedAt: armed)
            }
            return nil
        }
    }

    public func saveSchedule(_ record: ScheduleRecord) async throws {
        try await write("saveSchedule") { connection in
            _ = try await connection.query("""
                INSERT INTO schedules (plan, last_fire_at, exercises, armed_at)
                VALUES (\(record.plan), \(record.lastFireAt), \(record.exercises), \(record.armedAt))
                ON CONFLICT (plan) DO UPDATE SET last_fire_at = EXCLUDED.last_fire_at, exercises = EXCLUDED.exercises,
                                                 armed_at = EXCLUDED.armed_at
                """, logger: self.logger)
        }
    }

    public func addQuarantine(_ record: QuarantineRecord, updating job: JobRecord?) async throws -> QuarantineRecord {
        let update = job.map { updating($0, from: $0.state) }
        return try await write("addQuarantine") { connection in
            let added = try await self.insertQuarantine(record, connection)
            try await update?(connection)
            return added
        }
    }

    /// Inserts a quarantine entry; returns it with its id.
    func insertQuarantine(_ record: QuarantineRecord, _ connection: PostgresConnection) async throws -> QuarantineRecord {
        var record = record
        let rows = try await connection.query(PostgresQuery(unsafeSQL: QuarantineRow.insertSQL, binds: QuarantineRow.bindings(record, withId: false)),
                                              logger: logger)
        for try await id in rows.decode(Int64.self) { record.id = id }
        return record
    }

    public func updateQuarantine(_ record: QuarantineRecord) async throws {
        try await write("updateQuarantine") { connection in
            let rows = try await connection.query(PostgresQuery(unsafeSQL: QuarantineRow.updateSQL, binds: QuarantineRow.bindings(record, withId: true)),
                                                  logger: self.logger)
            guard try await rows.collect().count == 1 else { throw RowNotFound(table: "quarantine", id: record.id.map { "\($0)" } ?? "nil") }
        }
    }

    public func quarantine(includePurged: Bool) async throws -> [QuarantineRecord] {
        try await withConnection("quarantine") { connection in
            try await QuarantineRow.fetch(connection.query("""
                SELECT \(unescaped: QuarantineRow.columnList) FROM quarantine WHERE \(includePurged) OR purged_at IS NULL ORDER BY created_at, id
                """, logger: logger))
        }
    }
}

/// Runs an async setup (the migrations, given once the ledger exists) once; concurrent callers
/// wait for the one attempt (a cancelled caller stops waiting at once, e.g. a daemon stopping
/// while the database is unreachable); a failed attempt is retried by the next caller.
final class SchemaGate: Sendable {
    private enum Phase { case idle, running, done }

    private struct State {
        var phase = Phase.idle
        /// Callers waiting for the attempt under way; answered true when it ends.
        var waiters = WaitQueue<Bool>()
    }

    private let state = Mutex(State())
    private let setup = Mutex<(@Sendable () async throws -> Void)?>(nil)

    /// What `ensure()` runs.
    func prepare(_ work: @escaping @Sendable () async throws -> Void) {
        setup.withLock { $0 = work }
    }

    /// Returns once the setup has run (at once after the first success).
    func ensure() async throws {
        guard let work = setup.withLock({ $0 }) else { return }
        while true {
            let phase = state.withLock { s -> Phase in
                let found = s.phase
                if found == .idle { s.phase = .running }
                return found
            }
            switch phase {
            case .done:
                return
            case .running:
                // The attempt under way may fail: look again once it ended.
                let ended = await state.wait(in: \.waiters, cancelled: false) { $0.phase == .running ? nil : true }
                guard ended else { throw CancellationError() }
            case .idle:
                var outcome: Error?
                do { try await work() } catch { outcome = error }
                let waiters = state.withLock { s in
                    s.phase = outcome == nil ? .done : .idle
                    return s.waiters.takeAll()
                }
                for waiter in waiters { waiter.resume(returning: true) }
                if let outcome { throw outcome }
                return
            }
        }
    }
}
