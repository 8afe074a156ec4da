import Foundation
import Logging
import Testing
import LifeboatTestSupport
import Synchronization
@testable import LifeboatKit

/// `ledger.url` and `ledger.password_file`: what an operator writes, what is refused and why.
@Suite struct PostgresLedgerSettingsTests {
    @Test func urlPartsAndDefaults() throws {
        let s = try PostgresLedgerSettings(url: "postgres://lifeboat@db.example/lifeboat")
        #expect(s.host == "db.example" && s.port == 5432 && s.user == "lifeboat" && s.database == "lifeboat")
        #expect(s.sslMode == .prefer && s.lease == 30)
        let t = try PostgresLedgerSettings(url: "postgresql://lb@10.0.0.5:6543/dr?sslmode=verify-full&sslrootcert=/etc/ssl/db.pem")
        #expect(t.port == 6543 && t.sslMode == .verifyFull && t.sslRootCert == "/etc/ssl/db.pem")
        let u = try PostgresLedgerSettings(url: "postgres://lb@/dr?host=/run/postgresql")
        #expect(u.socketDirectory == "/run/postgresql")
    }

    @Test(arguments: [
        ("postgres://lb:secret@db/dr", "must not carry a password"),
        ("mysql://lb@db/dr", "must be a postgres://"),
        ("postgres://db/dr", "names no user"),
        ("postgres://lb@db/", "names no database"),
        ("postgres://lb@db/dr?sslmode=maybe", "sslmode must be"),
        ("postgres://lb@db/dr?application_name=x", "unknown parameter"),
    ])
    func refusedURLs(_ url: String, _ expected: String) {
        #expect {
            try PostgresLedgerSettings(url: url)
        } throws: { error in
            "\(error)".contains(expected) && !"\(error)".contains("secret")
        }
    }

    @Test func passwordFromFileOrEnvironment() throws {
        let dir = TestDirectory()
        let file = dir.write("pw", "s3cret\nignored\n")
        chmod(file, 0o600)
        var s = try PostgresLedgerSettings(url: "postgres://lb@db/dr", passwordFile: file)
        #expect(try s.password(environment: ["PGPASSWORD": "other"]) == "s3cret")
        chmod(file, 0o644)
        #expect(throws: PostgresLedgerSettings.Invalid.self) { try s.password(environment: [:]) }
        s.passwordFile = nil
        #expect(try s.password(environment: ["PGPASSWORD": "env"]) == "env")
        #expect(try s.password(environment: [:]) == nil)
    }

    @Test func daemonConfigLedgerAndHost() throws {
        let dir = TestDirectory()
        let file = dir.write("lifeboatd.yaml", """
            ledger:
              url: postgres://lifeboat@db.example:5432/lifeboat
              password_file: secrets/pw
              lease: 45s
            host:
              name: recovery-2
              max_jobs: 6
            """)
        let config = try DaemonConfig.load(path: file)
        #expect(config.hostMaxJobs == 6)
        #expect(config.sharedLedger?.passwordFile == dir.file("secrets/pw"))
        #expect(config.sharedLedger?.lease == 45)
        #expect(config.hostName == "recovery-2")
        #expect(config.ledgerDescription == "postgres://lifeboat@db.example:5432/lifeboat")
        // Without it: SQLite in the state directory, as before.
        let plain = try DaemonConfig.load(path: dir.write("plain.yaml", "state_dir: s\n"))
        #expect(plain.sharedLedger == nil && plain.ledgerDescription == dir.file("s/ledger.sqlite"))
        #expect(plain.hostMaxJobs == 4 * ProcessInfo.processInfo.activeProcessorCount)
        let none = dir.write("none.yaml", "host:\n  max_jobs: 0\n")
        #expect { try DaemonConfig.load(path: none) } throws: { "\($0)".contains("none.yaml:2:13") && "\($0)".contains("max_jobs") }
        let bad = dir.write("bad.yaml", "ledger:\n  url: postgres://lb:pw@db/dr\n")
        #expect { try DaemonConfig.load(path: bad) } throws: { "\($0)".contains("bad.yaml:2:8") && "\($0)".contains("must not carry a password") }
    }
}

/// What only the PostgreSQL ledger does: shared schema, hosts, claims with leases and fencing.
/// Two `PostgresLedger`s on one database stand for two hosts.
@Suite(.ownThread, .enabled(if: LocalPostgres.available, "PostgreSQL ledger \(LocalPostgres.installHint)"))
struct PostgresLedgerTests {
    /// Two ledgers on one fresh database; `named`: opened as hosts "a" and "b" (runs coordinated
    /// under leases, writes fenced by them).
    func withHosts(lease: TimeInterval = 30, named: Bool = false,
                   _ body: @Sendable (PostgresLedger, PostgresLedger, String) async throws -> Void) async throws {
        let server = try await LocalPostgres.shared()
        let database = try server.createDatabase()
        func open(_ host: String) throws -> PostgresLedger {
            let settings = try PostgresLedgerSettings(url: server.url(database: database), passwordFile: server.passwordFile, lease: lease)
            return try PostgresLedger(settings: settings, password: try settings.password(), host: named ? host : nil, logger: Logger(label: "test"))
        }
        let (a, b) = (try open("a"), try open("b"))
        try await a.withRunning { a in try await b.withRunning { b in try await body(a, b, database) } }
    }

    static let t0 = Timestamp.parse("2026-11-25T10:00:00Z")!

    /// Hosts talk to the database over a network: `sslmode=require` encrypts, `verify-full`
    /// also checks the server's certificate against `sslrootcert` — and refuses a server whose
    /// certificate another CA signed.
    @Test func tlsEncryptsAndVerifyFullChecksTheServer() async throws {
        let server = try await LocalPostgres.shared()
        let ca = try #require(server.tlsRootCertificate, "the test server has no certificate (needs openssl)")
        let database = try server.createDatabase()
        let plain = server.url(database: database).replacingOccurrences(of: "?sslmode=disable", with: "")
        for query in ["sslmode=require", "sslmode=verify-full&sslrootcert=\(ca)"] {
            let settings = try PostgresLedgerSettings(url: plain + "?" + query, passwordFile: server.passwordFile)
            let ledger = try PostgresLedger(settings: settings, password: try settings.password(), logger: Logger(label: "test"))
            // The ledger works over it, and the server sees its connections encrypted.
            let run = RunRecord(id: "20261125-101132-0001", plan: "p", planPath: nil, mode: .restore, declaredAt: Self.t0, incidentAt: Self.t0,
                                asOf: Self.t0, createdAt: Self.t0, startedBy: "test", rtoObjectiveSeconds: nil, rpoObjectiveSeconds: nil, totalWaves: 1)
            try await ledger.withRunning { ledger in
                if query.hasPrefix("sslmode=require") { _ = try await ledger.createRun(run, jobs: []) }
                #expect(try await ledger.run(id: run.id)?.id == run.id)
                let ssl = try server.psql("postgres", """
                    SELECT string_agg(s.ssl::text, ',') FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                    WHERE a.application_name = 'lifeboatd' AND a.datname = '\(database)'
                    """).trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(!ssl.isEmpty && !ssl.contains("false"), "\(query): connections' ssl: \(ssl)")
            }
        }
        // A root that did not sign the server's certificate: refused, saying so.
        let other = TestDirectory()
        let otherCA = other.file("other-ca.pem")
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", other.file("k"), "-out", otherCA, "-days", "1",
                             "-subj", "/CN=someone else"]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        #expect(openssl.terminationStatus == 0)
        let settings = try PostgresLedgerSettings(url: plain + "?sslmode=verify-full&sslrootcert=\(otherCA)", passwordFile: server.passwordFile)
        let ledger = try PostgresLedger(settings: settings, password: try settings.password(), logger: Logger(label: "test"))
        await #expect { try await ledger.withRunning { ledger in _ = try await ledger.runs(limit: 1) } } throws: { error in
            "\(error)".contains("ledger postgres://lifeboat@127.0.0.1") && !"\(error)".contains(server.password)
        }
    }

    /// A running run of `sites` × products, created through `ledger`.
    func makeRun(_ ledger: PostgresLedger, sites: Int, products: [String] = ["contacts", "jira"], id: String = "20261125-101132-0001",
                 mode: RunMode = .restore) async throws -> (RunRecord, [JobRecord]) {
        var run = RunRecord(id: id, plan: "p", planPath: nil, mode: mode, declaredAt: Self.t0, incidentAt: Self.t0,
                            asOf: Self.t0, createdAt: Self.t0, startedBy: "test", rtoObjectiveSeconds: nil, rpoObjectiveSeconds: nil, totalWaves: 1)
        run.state = .running
        var jobs: [JobRecord] = []
        for site in 0..<sites {
            for (order, product) in products.enumerated() {
                jobs.append(JobRecord(runId: run.id, site: String(format: "s%03d", site), product: product, wave: 0, priority: order,
                                      productOrder: order, destination: "/d/\(site)/\(product)"))
            }
        }
        return (run, try await ledger.createRun(run, jobs: jobs))
    }

    /// A change posted on a fresh database before anything awaited the migrations (a daemon's
    /// first event) waits for them; written without them it was refused, and dropped.
    @Test func aChangePostedBeforeTheSchemaIsInPlaceIsWritten() async throws {
        try await withHosts { a, _, _ in
            a.postEvent(LedgerEvent(runId: "20261125-101132-0001", at: Self.t0, kind: "host.started", message: "first words"))
            // Longer than the 250 ms a posted change lingers before it is written on its own.
            try await Task.sleep(for: .milliseconds(600))
            try await a.flush()
            #expect(try await a.events(runId: "20261125-101132-0001", afterId: 0, limit: 10).map(\.message) == ["first words"])
        }
    }

    @Test func eventsAreAppendOnly() async throws {
        try await withHosts { a, _, database in
            _ = try await makeRun(a, sites: 1)
            a.postEvent(LedgerEvent(runId: "20261125-101132-0001", at: Self.t0, kind: "x", message: "y"))
            try await a.flush()
            let server = try await LocalPostgres.shared()
            #expect(throws: (any Error).self) { try server.psql(database, "UPDATE events SET message = 'changed'") }
            #expect(throws: (any Error).self) { try server.psql(database, "DELETE FROM events") }
            #expect(throws: (any Error).self) { try server.psql(database, "TRUNCATE events") }
            #expect(try server.psql(database, "SELECT message FROM events").trimmingCharacters(in: .whitespacesAndNewlines) == "y")
        }
    }

    /// A follower pages a run's events by id (the web view, the API). An event inserted by a
    /// transaction still open when a later one commits must not be skipped: the later one waits
    /// for it, so ids come in commit order, and a follower that goes on from where it stopped
    /// sees every event once, in order.
    @Test func aFollowerMissesNoEventOfATransactionThatCommitsLate() async throws {
        try await withHosts { a, _, database in
            let (run, _) = try await makeRun(a, sites: 1)
            let server = try await LocalPostgres.shared()
            let open = try await openTransaction(
                "INSERT INTO events (run_id, at, kind, message) VALUES ('\(run.id)', now(), 'test.open', 'first in')", in: database, on: server)
            a.postEvent(LedgerEvent(runId: run.id, at: Self.t0, kind: "test.later", message: "second in"))
            let later = Task { try await a.flush() }
            // The later insert has drawn its id and committed, or waits for the open transaction.
            let deadline = ContinuousClock.now + .seconds(20)
            while try server.psql(database, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory' AND datname = current_database()")
                .trimmingCharacters(in: .whitespacesAndNewlines) != "1" {
                if try server.psql(database, "SELECT count(*) FROM events WHERE kind = 'test.later'").trimmingCharacters(in: .whitespacesAndNewlines) == "1" { break }
                try #require(ContinuousClock.now < deadline, "the later event was neither written nor waiting within 20 s")
                try await Task.sleep(for: .milliseconds(20))
            }
            var seen: [String] = []
            var after: Int64 = 0
            func follow() async throws {
                let page = try await a.events(runId: run.id, afterId: after, limit: 100)
                seen += page.map(\.kind).filter { $0.hasPrefix("test.") }
                after = page.last?.id ?? after
            }
            try await follow()
            try await open.commit()
            try await later.value
            try await follow()
            #expect(seen == ["test.open", "test.later"])
        }
    }

    /// A session that inserted events and keeps its transaction open (an operator's psql) holds
    /// the lock that orders events. A host's records do not wait on it: they are written
    /// without their events within a second, the events held back; once that transaction
    /// ends, the events are written too.
    @Test func aSessionHoldingTheEventsLockHoldsBackEventsNotRecords() async throws {
        try await withHosts { a, _, database in
            let (run, _) = try await makeRun(a, sites: 1)
            let claim = try #require(try await a.claimJobs(runId: run.id, host: "a", rules: ClaimRules(runConcurrency: 1), max: 1).first)
            let server = try await LocalPostgres.shared()
            let open = try await openTransaction(
                "INSERT INTO events (run_id, at, kind, message) VALUES ('\(run.id)', now(), 'test.open', 'holds the lock')", in: database, on: server)
            a.postEvent(LedgerEvent(runId: run.id, jobId: claim.jobId, at: Self.t0, kind: "test.held", message: "waits for it"))
            var restoring = claim.job
            restoring.state = .restoring
            let started = ContinuousClock.now
            try await a.updateJob(restoring, from: claim.job.state, fencedBy: claim)
            #expect(ContinuousClock.now - started < .seconds(5))
            let count = { (kind: String) in try server.psql(database, "SELECT count(*) FROM events WHERE kind = '\(kind)'").trimmingCharacters(in: .whitespacesAndNewlines) }
            #expect(try server.psql(database, "SELECT state FROM jobs WHERE id = \(claim.jobId)").trimmingCharacters(in: .whitespacesAndNewlines) == "restoring")
            #expect(try count("test.held") == "0")
            try await open.commit()
            let deadline = ContinuousClock.now + .seconds(20)
            while try count("test.held") != "1" {
                try #require(ContinuousClock.now < deadline, "the held-back event was not written within 20 s of the lock's release")
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(a.droppedPosts == 0)
            let kinds = try await a.events(runId: run.id, afterId: 0, limit: 100).map(\.kind)
            #expect(kinds.filter { $0.hasPrefix("test.") } == ["test.open", "test.held"])
        }
    }

    /// A run that ends while another session holds the events' lock has its report written
    /// without the events held back; it is written again once they are in the ledger.
    @Test func aReportWrittenWhileEventsAreHeldBackIsWrittenAgainWithThem() async throws {
        try await withHosts { a, _, database in
            let (run, _) = try await makeRun(a, sites: 1)
            let server = try await LocalPostgres.shared()
            let open = try await openTransaction(
                "INSERT INTO events (run_id, at, kind, message) VALUES ('other', now(), 'test.open', 'holds the lock')", in: database, on: server)
            a.postEvent(LedgerEvent(runId: run.id, at: Self.t0, kind: "run.note", message: "said at the run's end"))
            try await a.flush()
            #expect(a.holdsBackEvents(runId: run.id) && !a.holdsBackEvents(runId: "other"))
            let dir = TestDirectory()
            _ = await RunFinisher(ledger: a, reportsDirectory: dir.path, logger: Logger(label: "test")).finished(run, plan: nil)
            let report = dir.file("\(run.id).json")
            let first = try String(contentsOfFile: report, encoding: .utf8)
            #expect(first.contains("\"id\"") && !first.contains("said at the run's end"))
            try await open.commit()
            let deadline = ContinuousClock.now + .seconds(30)
            while !(try String(contentsOfFile: report, encoding: .utf8)).contains("said at the run's end") {
                try #require(ContinuousClock.now < deadline, "the report was not written again within 30 s of the lock's release")
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(!a.holdsBackEvents(runId: run.id))
            #expect(try String(contentsOfFile: dir.file("\(run.id).html"), encoding: .utf8).contains("said at the run"))
        }
    }

    /// A claim renewal that the server ends as a deadlock's victim (SQLSTATE 40P01: a batch of
    /// this host's records locks some of the same claims in another order) is made again: the
    /// host keeps its claims, and does not take the deadlock for a ledger that does not answer.
    @Test func aClaimRenewalEndedByADeadlockIsMadeAgain() async throws {
        try await withHosts { a, _, database in
            let (run, _) = try await makeRun(a, sites: 1)
            let claims = try await a.claimJobs(runId: run.id, host: "a", rules: ClaimRules(runConcurrency: 2), max: 2).sorted { $0.jobId < $1.jobId }
            try #require(claims.count == 2)
            let server = try await LocalPostgres.shared()
            let deadlocks = { try server.psql(database, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()").trimmingCharacters(in: .whitespacesAndNewlines) }
            let before = try deadlocks()
            // The session locks the second claim, waits until the renewal waits for it (holding
            // the first), then asks for the first: a cycle, which the server breaks by ending the
            // session that looks for it first: the renewal (the session waits 30 s before it looks).
            let open = try await openTransaction("""
                SET LOCAL deadlock_timeout = '30s';
                SELECT 1 FROM claims WHERE job_id = \(claims[1].jobId) FOR UPDATE;
                DO $w$ BEGIN WHILE NOT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'lifeboatd' AND wait_event_type = 'Lock'
                  AND datname = current_database()) LOOP PERFORM pg_sleep(0.01); END LOOP; END $w$;
                SELECT 1 FROM claims WHERE job_id = \(claims[0].jobId) FOR UPDATE
                """, in: database, on: server)
            let renewal = Task { try await a.renewClaims(claims) }
            let deadline = ContinuousClock.now + .seconds(20)
            while try deadlocks() == before {
                try #require(ContinuousClock.now < deadline, "no deadlock within 20 s")
                try await Task.sleep(for: .milliseconds(50))
            }
            try await open.commit()
            #expect(try await renewal.value == Set(claims.map(\.jobId)))
        }
    }

    /// A fenced write whose session the server ends (a restart, an administrator's
    /// pg_terminate_backend: SQLSTATE 57P01) got no answer: its caller hears so
    /// (`LedgerNoAnswer`), and a job goes back to the queue rather than failing.
    @Test func aWriteWhoseSessionTheServerEndsGotNoAnswer() async throws {
        try await withHosts { a, _, database in
            let (run, _) = try await makeRun(a, sites: 1)
            let claim = try #require(try await a.claimJobs(runId: run.id, host: "a", rules: ClaimRules(runConcurrency: 1), max: 1).first)
            let server = try await LocalPostgres.shared()
            // The claim's row locked elsewhere: the write waits on it, in flight.
            let open = try await openTransaction("SELECT 1 FROM claims WHERE job_id = \(claim.jobId) FOR UPDATE", in: database, on: server)
            var restoring = claim.job
            restoring.state = .restoring
            let write = Task { try await a.updateJob(restoring, from: claim.job.state, fencedBy: claim) }
            let waiting = "SELECT pid FROM pg_stat_activity WHERE application_name = 'lifeboatd' AND wait_event_type = 'Lock' AND datname = current_database()"
            let deadline = ContinuousClock.now + .seconds(20)
            var pid = ""
            while pid.isEmpty {
                try #require(ContinuousClock.now < deadline, "the write did not wait on the claim's row within 20 s")
                try await Task.sleep(for: .milliseconds(20))
                pid = try server.psql(database, waiting).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            _ = try server.psql(database, "SELECT pg_terminate_backend(\(pid))")
            do {
                try await write.value
                Issue.record("the write succeeded although its session was ended")
            } catch {
                #expect((error as? any LedgerNoAnswer)?.gotNoAnswer == true, "\(error)")
            }
            try await open.commit()
            // A refusal is an answer.
            var stale = restoring
            stale.state = .verifying
            await #expect { try await a.updateJob(stale, from: .committing, fencedBy: claim) } throws: { error in
                (error as? any LedgerNoAnswer)?.gotNoAnswer != true
            }
        }
    }

    @Test func schemaIsMigratedOnceAndANewerOneIsRefused() async throws {
        try await withHosts { a, b, database in
            // Both hosts start at once: one migrates, the other finds it done.
            async let x = a.recordedSchemaVersion()
            async let y = b.recordedSchemaVersion()
            #expect(try await [x, y] == [PostgresLedger.schemaVersion, PostgresLedger.schemaVersion])
            let server = try await LocalPostgres.shared()
            #expect(try server.psql(database, "SELECT COUNT(*) FROM lifeboat_schema").trimmingCharacters(in: .whitespacesAndNewlines)
                    == "\(PostgresLedger.schemaVersion)")
            // A newer lifeboat migrated it further: this one refuses to use it, saying why.
            try server.psql(database, "INSERT INTO lifeboat_schema (version, name) VALUES (99, 'future')")
            let settings = a.settings
            let old = try PostgresLedger(settings: settings, password: try settings.password(), logger: Logger(label: "test"))
            _ = try await old.withRunning { old in
                await #expect { _ = try await old.runs(limit: 1) } throws: { error in
                    (error as? SchemaMismatch)?.found == 99 && "\(error)".contains("upgrade lifeboat on this host")
                }
            }
        }
    }

    @Test func hostsRegisterHeartbeatAndStop() async throws {
        try await withHosts { a, b, _ in
            let one = HostRegistration(name: "recovery-1", startedAt: Self.t0)
            let two = HostRegistration(name: "recovery-2", startedAt: Self.t0)
            try await a.register(one)
            try await b.register(two)
            try await a.heartbeat(one)
            var hosts = try await b.hosts()
            #expect(hosts.map(\.name) == ["recovery-1", "recovery-2"])
            #expect(hosts.allSatisfy { $0.state == "alive" && $0.heartbeatAgeSeconds < 10 && $0.pid == Int(getpid()) })
            #expect(try await a.liveHostCount() == 2)
            // A second daemon under a live host's name is refused, naming the holder.
            let impostor = HostRegistration(name: "recovery-1", startedAt: Self.t0)
            await #expect(throws: HostNameInUse.self) { try await b.register(impostor) }
            // After a goodbye the name is free at once; the old instance's heartbeat then fails.
            try await a.deregister(one)
            hosts = try await b.hosts()
            #expect(hosts.first?.state == "stopped")
            #expect(try await b.liveHostCount() == 1)
            try await b.register(impostor)
            await #expect(throws: HostNameInUse.self) { try await a.heartbeat(one) }
        }
    }

    /// A host's throughput is what its jobs restored over the last minute: a delete's moved
    /// bytes are not restored bytes, as they are not in the fleet's (`bytesRestored`).
    @Test func aHostsThroughputIsWhatItsJobsRestored() async throws {
        try await withHosts { a, b, database in
            try await a.register(HostRegistration(name: "recovery-1", startedAt: Self.t0))
            try await b.register(HostRegistration(name: "recovery-2", startedAt: Self.t0))
            _ = try await makeRun(a, sites: 1)
            _ = try await makeRun(a, sites: 1, id: "20261125-101132-0002", mode: .delete)
            let server = try await LocalPostgres.shared()
            _ = try server.psql(database, "UPDATE jobs SET state = 'succeeded', host = 'recovery-1', finished_at = now(), bytes = 600")
            let hosts = Dictionary(uniqueKeysWithValues: try await b.hosts().map { ($0.name, $0.bytesPerSecond) })
            #expect(hosts == ["recovery-1": 2 * 600 / 60, "recovery-2": 0])
            #expect(try await b.bytesRestored(since: Date().addingTimeInterval(-60)) == 2 * 600)
        }
    }

    @Test func aHostWithoutHeartbeatIsLostAfterItsLease() async throws {
        try await withHosts(lease: 1) { a, b, _ in
            try await a.register(HostRegistration(name: "frozen", startedAt: Self.t0))
            try await Task.sleep(for: .milliseconds(1_500))
            #expect(try await b.hosts().first?.state == "lost")
            #expect(try await b.liveHostCount() == 0)
            // Its name may be taken over once the lease is gone.
            try await b.register(HostRegistration(name: "frozen", startedAt: Self.t0))
        }
    }

    @Test func claimsFollowPriorityAndFleetWideLimits() async throws {
        try await withHosts { a, b, _ in
            let (run, _) = try await makeRun(a, sites: 10)
            let rules = ClaimRules(runConcurrency: 5, productConcurrency: ["contacts": 3])
            let first = try await a.claimJobs(runId: run.id, host: "a", rules: rules, max: 4)
            // contacts first (priority 0) but at most 3 at once; then jira.
            #expect(first.map(\.job.product) == ["contacts", "contacts", "contacts", "jira"])
            #expect(first.allSatisfy { $0.token == 1 && !$0.isTakeover && $0.job.host == "a" })
            // The run's limit is for both hosts together.
            let second = try await b.claimJobs(runId: run.id, host: "b", rules: rules, max: 10)
            #expect(second.map(\.job.product) == ["jira"])
            #expect(try await b.claimJobs(runId: run.id, host: "b", rules: rules, max: 10).isEmpty)
            // A released claim frees a slot.
            a.releaseClaim(first[0])
            try await a.flush()
            #expect(try await b.claimJobs(runId: run.id, host: "b", rules: rules, max: 10).map(\.job.product) == ["contacts"])
            #expect(Set(try await a.liveClaims(runId: run.id).map(\.jobId)).count == 5)
        }
    }

    @Test func dependenciesAndRunStateGateClaims() async throws {
        try await withHosts { a, _, _ in
            var (run, jobs) = try await makeRun(a, sites: 2)
            let rules = ClaimRules(runConcurrency: 10, after: ["jira": ["contacts"]])
            // Not running (halted): nothing is claimable.
            run.state = .halted
            try await a.updateRun(run)
            #expect(try await a.claimJobs(runId: run.id, host: "a", rules: rules, max: 10).isEmpty)
            run.state = .running
            try await a.updateRun(run)
            let claims = try await a.claimJobs(runId: run.id, host: "a", rules: rules, max: 10)
            #expect(claims.map(\.job.product) == ["contacts", "contacts"])
            // s000's contacts succeeded: its jira becomes ready; s001's does not.
            var done = jobs[0]
            done.state = .succeeded
            try await a.updateJob(done, from: .pending, fencedBy: claims[0])
            a.releaseClaim(claims[0])
            try await a.flush()
            jobs = try await a.jobs(runId: run.id)
            #expect(try await a.claimJobs(runId: run.id, host: "a", rules: rules, max: 10).map(\.job.name) == ["s000/jira"])
        }
    }

    @Test func concurrentClaimersNeverShareAJobNorExceedTheLimit() async throws {
        try await withHosts { a, b, _ in
            let (run, jobs) = try await makeRun(a, sites: 50, products: ["p"])
            let rules = ClaimRules(runConcurrency: 20)
            async let fromA = a.claimJobs(runId: run.id, host: "a", rules: rules, max: 15)
            async let fromB = b.claimJobs(runId: run.id, host: "b", rules: rules, max: 15)
            let (x, y) = try await (fromA, fromB)
            #expect(x.count + y.count == 20)
            #expect(Set(x.map(\.jobId)).isDisjoint(with: y.map(\.jobId)))
            // Highest priority first across the fleet: the first 20 jobs.
            #expect(Set(x.map(\.jobId) + y.map(\.jobId)) == Set(jobs.prefix(20).compactMap(\.id)))
        }
    }

    /// A job that ends leaves its slot to the next ready job of its run, claimed in the
    /// transaction that gives its claim back — within the limits of the whole fleet, and only
    /// while the run runs.
    @Test func aSlotGivenBackIsClaimedAgainInTheSameTransaction() async throws {
        try await withHosts { a, b, _ in
            let (run, _) = try await makeRun(a, sites: 4, products: ["p"])
            let refiller = RecordingRefiller(rules: ClaimRules(runConcurrency: 2))
            a.refillSlots(with: refiller)
            let rules = ClaimRules(runConcurrency: 2)
            let first = try #require(try await a.claimJobs(runId: run.id, host: "a", rules: rules, max: 1).first)
            let second = try #require(try await b.claimJobs(runId: run.id, host: "b", rules: rules, max: 1).first)
            @Sendable func finish(_ claim: JobClaim) async throws {
                var job = claim.job
                job.state = .succeeded
                try await a.finishJob(job, from: .pending, fencedBy: claim)
            }
            // a's job ends: the run's next job is a's by the time the record returns.
            let before = ContinuousClock.now
            try await finish(first)
            let refilled = try #require(refiller.claims.first)
            #expect(refiller.claims.count == 1 && refiller.sent.map { $0 >= before } == true)
            #expect(refilled.host == "a" && refilled.job.host == "a" && refilled.token == 1 && !refilled.isTakeover)
            #expect(refilled.job.site == "s002")
            let live = try await a.liveClaims(runId: run.id)
            #expect(live.map(\.jobId).sorted() == [second.jobId, refilled.jobId].sorted())
            // The run's limit holds for the fleet: with b's job still held, a refill under a limit of 1 claims nothing.
            refiller.rules = ClaimRules(runConcurrency: 1)
            try await finish(refilled)
            #expect(refiller.claims.count == 1)
            #expect(try await a.liveClaims(runId: run.id).map(\.jobId) == [second.jobId])
            // A run that does not run (halted) gives out no job.
            refiller.rules = ClaimRules(runConcurrency: 2)
            let last = try #require(try await a.claimJobs(runId: run.id, host: "a", rules: rules, max: 1).first)
            var halted = run
            halted.state = .halted
            try await a.updateRun(halted)
            try await finish(last)
            #expect(refiller.claims.count == 1)
            #expect(try await a.liveClaims(runId: run.id).map(\.jobId) == [second.jobId])
            #expect(try await a.jobs(runId: run.id).map(\.state) == [.succeeded, .pending, .succeeded, .succeeded])
        }
    }

    @Test func anExpiredLeaseIsTakenOverAndTheLateHostIsFenced() async throws {
        try await withHosts(lease: 3) { a, b, _ in
            let (run, _) = try await makeRun(a, sites: 1, products: ["p"])
            let rules = ClaimRules(runConcurrency: 1)
            let mine = try #require(try await a.claimJobs(runId: run.id, host: "a", rules: rules, max: 1).first)
            var job = mine.job
            job.state = .committing
            job.commitIdentity = "2049:77"
            job.stagingPath = "/d/.lifeboat-staging/a"
            // Before a commit, a fenced write needs lease to spare: 3 s lease, 10 s asked.
            await #expect(throws: LeaseLost.self) { try await a.updateJob(job, from: .pending, fencedBy: mine, minimumLease: 10) }
            try await a.updateJob(job, from: .pending, fencedBy: mine)
            // While the lease lives, nobody else gets the job.
            #expect(try await b.claimJobs(runId: run.id, host: "b", rules: rules, max: 1).isEmpty)
            // Host a freezes past its lease: b takes over, sees the recorded commit identity.
            try await Task.sleep(for: .milliseconds(3_300))
            #expect(try await a.renewClaims([mine]).isEmpty)
            let taken = try #require(try await b.claimJobs(runId: run.id, host: "b", rules: rules, max: 1).first)
            #expect(taken.jobId == mine.jobId && taken.token == mine.token + 1 && taken.isTakeover)
            #expect(taken.job.state == .committing && taken.job.commitIdentity == "2049:77")
            // a wakes up: every write it tries about the job is refused, its last record too,
            // and giving its claim back with it does not give back b's.
            var late = job
            late.state = .succeeded
            await #expect(throws: LeaseLost.self) { try await a.updateJob(late, from: .committing, fencedBy: mine) }
            await #expect(throws: LeaseLost.self) { try await a.finishJob(late, from: .committing, fencedBy: mine) }
            #expect(try await a.jobs(runId: run.id)[0].state == .committing)
            #expect(try await a.liveClaims(runId: run.id).map(\.token) == [taken.token])
            // b finishes it, once, and its claim is given back in the same commit.
            var finished = taken.job
            finished.state = .succeeded
            try await b.finishJob(finished, from: .committing, fencedBy: taken)
            #expect(try await a.liveClaims(runId: run.id).isEmpty)
            #expect(try await a.jobs(runId: run.id).map(\.state) == [.succeeded])
            #expect(try await a.jobs(runId: run.id).map(\.host) == ["b"])
            #expect(try await b.claimJobs(runId: run.id, host: "b", rules: rules, max: 1).isEmpty)
        }
    }

    /// A coordinator looks at the jobs changed since its last look: nothing when nothing
    /// changed, each change once it is committed — also one committed by a transaction that began
    /// before a look and ended after it (a sequence number would miss that one). A transaction
    /// left open meanwhile makes no look read again what an earlier one read.
    ///
    /// A look may show a change again while a transaction that began before it and changed jobs
    /// is open anywhere on the server (other tests share it): "nothing" is what looks show once
    /// those ended.
    @Test func jobChangesAreEachSeenAndNoneMissed() async throws {
        try await withHosts { a, _, database in
            let (run, jobs) = try await makeRun(a, sites: 2)
            let (all, first) = try await a.jobChanges(runId: run.id, since: nil)
            #expect(all.map(\.id) == jobs.map(\.id))
            var (none, second) = try await a.jobChanges(runId: run.id, since: first)
            for _ in 0..<100 where !none.isEmpty {
                try await Task.sleep(for: .milliseconds(100))
                (none, second) = try await a.jobChanges(runId: run.id, since: second)
            }
            #expect(none.isEmpty)
            var changed = jobs[1]
            changed.state = .waiting
            try await a.updateJob(changed, from: .pending)
            let (one, third) = try await a.jobChanges(runId: run.id, since: second)
            #expect(one.contains(changed))
            #expect(one.allSatisfy { $0.id == changed.id } || one.count == jobs.count, "a change seen again is seen with all the others")
            // A change in a transaction that is still open while the ledger is looked at.
            let server = try await LocalPostgres.shared()
            let id = try #require(jobs[2].id)
            let late = try await openTransaction("UPDATE jobs SET error = 'late' WHERE id = \(id)", in: database, on: server)
            let (during, fourth) = try await a.jobChanges(runId: run.id, since: third)
            #expect(!during.contains { $0.error == "late" })
            // Changes committed while it stays open are seen once, not at every look.
            var meanwhile = jobs[0]
            meanwhile.state = .waiting
            try await a.updateJob(meanwhile, from: .pending)
            let (seen, fifth) = try await a.jobChanges(runId: run.id, since: fourth)
            #expect(seen.contains(meanwhile))
            let (again, sixth) = try await a.jobChanges(runId: run.id, since: fifth)
            #expect(!again.contains { $0.id == meanwhile.id }, "\(again)")
            try await late.commit()
            let (after, _) = try await a.jobChanges(runId: run.id, since: sixth)
            #expect(after.contains { $0.id == id && $0.error == "late" }, "\(after)")
            #expect(!after.contains { $0.id == jobs[0].id })
        }
    }

    /// A batch of claimed jobs' records, made the way the engine makes them (queued records
    /// posted, durable ones awaited by several jobs at once): each gets its own outcome — the one
    /// whose claim was taken over is refused (`LeaseLost`), the one from a stale state conflicts,
    /// the others are written.
    @Test func aBatchOfClaimedRecordsGivesEachItsOwnOutcome() async throws {
        try await withHosts { a, b, _ in
            let (run, created) = try await makeRun(a, sites: 2)
            let rules = ClaimRules(runConcurrency: 10)
            let claims = try await a.claimJobs(runId: run.id, host: "a", rules: rules, max: 4)
            try #require(claims.count == 4)
            // b takes job 1 over (a's claim was given back, as by a host presumed gone).
            a.releaseClaim(claims[1])
            try await a.flush()
            let taken = try #require(try await b.claimJobs(runId: run.id, host: "b", rules: rules, max: 1).first)
            #expect(taken.jobId == claims[1].jobId && taken.token == 2)
            @Sendable func moved(_ claim: JobClaim, to state: JobState) -> JobRecord {
                var job = claim.job
                job.state = state
                job.host = claim.host
                job.stagingPath = "/d/.lifeboat-staging/\(claim.jobId)"
                return job
            }
            let dropped = a.droppedPosts
            // Queued: fine, and fenced out; events, written with the records, around them.
            a.postEvent(LedgerEvent(runId: run.id, jobId: claims[0].jobId, at: Self.t0, kind: "test.first", message: "before the records"))
            a.postJob(moved(claims[0], to: .restoring), from: .pending, fencedBy: claims[0])
            a.postJob(moved(claims[1], to: .restoring), from: .pending, fencedBy: claims[1])
            a.postEvent(LedgerEvent(runId: run.id, jobId: nil, at: Self.t0, kind: "test.second", message: "after them"))
            // Awaited at once: job 0 goes on from its queued record; job 1's claim is lost; job 2
            // is written from a state it is not in; job 3 is fine.
            let awaited: [(JobClaim, JobState, JobState, TimeInterval)] = [
                (claims[0], .restoring, .verifying, 0), (claims[1], .restoring, .verifying, 0),
                (claims[2], .restoring, .verifying, 0), (claims[3], .pending, .committing, 10),
            ]
            let errors = await withTaskGroup(of: (Int, (any Error)?).self) { group in
                for (i, (claim, previous, state, lease)) in awaited.enumerated() {
                    group.addTask {
                        do {
                            try await a.updateJob(moved(claim, to: state), from: previous, fencedBy: claim, minimumLease: lease)
                            return (i, nil)
                        } catch {
                            return (i, error)
                        }
                    }
                }
                var errors: [(any Error)?] = Array(repeating: nil, count: awaited.count)
                for await (i, error) in group { errors[i] = error }
                return errors
            }
            #expect(errors.map { $0 == nil } == [true, false, false, true])
            let lost = try #require(errors[1] as? LeaseLost)
            #expect(lost.token == 1 && "\(lost)".contains("host a lost its lease on job \(claims[1].jobId)"))
            let conflict = try #require(errors[2] as? JobConflict)
            #expect(conflict.expected == .restoring && conflict.found == .pending)
            #expect(a.droppedPosts == dropped + 1)
            let jobs = Dictionary(uniqueKeysWithValues: try await a.jobs(runId: run.id).map { ($0.id ?? 0, $0) })
            #expect(jobs[claims[0].jobId] == moved(claims[0], to: .verifying))
            // b holds job 1; its row is b's from b's first record on.
            #expect(jobs[claims[1].jobId]?.state == .pending && taken.job.host == "b")
            #expect(try await a.liveClaims(runId: run.id).first { $0.jobId == claims[1].jobId }?.host == "b")
            #expect(jobs[claims[2].jobId] == created.first { $0.id == claims[2].jobId })
            #expect(jobs[claims[3].jobId] == moved(claims[3], to: .committing))
            // The batch failed and was written again one by one: each event once, in its order.
            #expect(try await a.events(runId: run.id, afterId: 0, limit: 100).map(\.kind).filter { $0.hasPrefix("test.") } == ["test.first", "test.second"])
        }
    }

    /// A transaction of another session, open until `commit()`: however slow the machine, the
    /// test decides how long it stays open, not a sleep's length.
    struct OpenTransaction {
        let server: LocalPostgres
        let database: String
        let session: Task<String, any Error>

        func commit() async throws {
            try server.psql(database, "INSERT INTO test_release VALUES (1)")
            _ = try await session.value
        }
    }

    /// Runs `statements` in a transaction of a `psql` session of its own and returns once they
    /// are done (the session sleeps in the loop after them); the transaction then waits, open,
    /// until `commit()`.
    private func openTransaction(_ statements: String, in database: String, on server: LocalPostgres) async throws -> OpenTransaction {
        try server.psql(database, "CREATE TABLE test_release (x int)")
        // Each statement of the loop sees rows committed since (read committed). The session's
        // psql is waited for on a thread of its own: two tests each holding one of Swift's shared
        // threads for it (as many as cores) would stall everything else, the ledger included.
        let session = Task {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<String, any Error>) in
                Thread.detachNewThread {
                    continuation.resume(with: Result {
                        try server.psql(database, "BEGIN; \(statements); DO $$ BEGIN WHILE NOT EXISTS (SELECT FROM test_release) LOOP PERFORM pg_sleep(0.01); END LOOP; END $$; COMMIT;")
                    })
                }
            }
        }
        let deadline = ContinuousClock.now + .seconds(20)
        while try server.psql(database, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'BEGIN;%test_release%' AND wait_event = 'PgSleep' AND datname = current_database()")
            .trimmingCharacters(in: .whitespacesAndNewlines) != "1" {
            try #require(ContinuousClock.now < deadline, "no session of \(database) began its transaction within 20 s")
            try await Task.sleep(for: .milliseconds(20))
        }
        return OpenTransaction(server: server, database: database, session: session)
    }

    /// A host that runs a job of a run another host coordinates checks the job's destination
    /// against where the run took it, as the ledger holds it: a link on its path changed since
    /// (to another tenant's tree) leaves both untouched.
    @Test func aJobRunByAnotherHostChecksTheDestinationItsRunHolds() async throws {
        try await withHosts { a, b, _ in
            let fixture = try EngineFixture(sites: ["s01"], products: "  - name: contacts")
            for site in ["s01", "umbrella"] { try FileSystem.createDirectories(fixture.dir.file("real/\(site)")) }
            try FileSystem.createDirectories(fixture.dir.file("out"))
            try FileManager.default.createSymbolicLink(atPath: fixture.dir.file("out/s01"), withDestinationPath: fixture.dir.file("real/s01"))
            // Host a records the run and takes its destination, as its coordinator does.
            let coordinator = Engine(environment: RunEnvironment(ledger: a, executor: FakeExecutor()))
            let created = try await coordinator.create(RunRequest(plan: fixture.plan, mode: .restore))
            let job = try #require(created.jobs.first)
            try await a.takeHolds(runId: created.run.id, [(ResolvedPath.of(job.destination), job.name)])
            // The link is pointed at another tenant's tree; host b runs the job.
            unlink(fixture.dir.file("out/s01"))
            try FileManager.default.createSymbolicLink(atPath: fixture.dir.file("out/s01"), withDestinationPath: fixture.dir.file("real/umbrella"))
            let executor = FakeExecutor()
            let worker = RunEnvironment(ledger: b, executor: executor)
            let runner = JobRunner(run: created.run, plan: fixture.plan, env: worker, recorder: JobRecorder(worker),
                                   protected: worker.guardrails.protectedTrees(for: fixture.plan, mode: .restore))
            let outcome = await runner.execute(job, control: RunControl())
            #expect(outcome.state == .failed && outcome.errorCode == "sandbox", "\(outcome)")
            #expect(outcome.error?.contains("resolved to \(fixture.dir.file("real/s01/contacts")) when run") == true, "\(outcome.error ?? "")")
            #expect(outcome.error?.contains("resolves to \(fixture.dir.file("real/umbrella/contacts")) now") == true, "\(outcome.error ?? "")")
            #expect(executor.attempts(job.name) == 0)

            // A host taking the run over holds where the run took the destination, not where
            // it resolves now: its coordinator refuses the job as well.
            var again = outcome
            again.state = .pending
            again.errorCode = nil
            again.error = nil
            try await b.updateJob(again, from: .failed)
            let takeover = Engine(environment: RunEnvironment(ledger: b, executor: executor))
            let run = try await takeover.execute(runId: created.run.id, plan: fixture.plan)
            let after = try #require(try await b.jobs(runId: run.id).first)
            #expect(after.state == .failed && after.errorCode == "sandbox" && after.error?.contains("resolved to \(fixture.dir.file("real/s01/contacts")) when run") == true,
                    "\(after)")
            #expect(executor.attempts(job.name) == 0)
        }
    }

    /// How long this host's records wait on the batch under way is known (a worker stops
    /// renewing its claims past a lease of it): here another session holds the job's row.
    @Test func aStalledBatchIsMeasuredUntilItEnds() async throws {
        try await withHosts { a, _, database in
            let (run, _) = try await makeRun(a, sites: 1, products: ["p"])
            let claim = try #require(try await a.claimJobs(runId: run.id, host: "a", rules: ClaimRules(runConcurrency: 1), max: 1).first)
            #expect(a.writesStalled == .zero)
            let server = try await LocalPostgres.shared()
            // The row is locked once the holder waits; the write begins only then.
            let holder = try await openTransaction("SELECT id FROM jobs WHERE id = \(claim.jobId) FOR UPDATE", in: database, on: server)
            var job = claim.job
            job.state = .restoring
            let write = Task { try await a.updateJob(job, from: .pending, fencedBy: claim, minimumLease: 0) }
            // The stall grows for as long as the row stays locked; the holder lets go only once
            // the stall was seen past 900 ms, however slow the machine.
            let stalling = ContinuousClock.now + .seconds(20)
            while a.writesStalled <= .milliseconds(900), ContinuousClock.now < stalling { try await Task.sleep(for: .milliseconds(20)) }
            #expect(a.writesStalled > .milliseconds(900))
            try await holder.commit()
            try await write.value
            #expect(a.writesStalled == .zero)
            #expect(try await a.jobs(runId: run.id).map(\.state) == [.restoring])
        }
    }

    /// Queued records fold into the durable one after them; when that one is refused (a commit
    /// record without the lease it needs to spare), the queued one is still written.
    @Test func aRefusedCommitRecordDoesNotTakeTheQueuedOnesWithIt() async throws {
        try await withHosts(lease: 3) { a, _, _ in
            let (run, _) = try await makeRun(a, sites: 1, products: ["p"])
            let claim = try #require(try await a.claimJobs(runId: run.id, host: "a", rules: ClaimRules(runConcurrency: 1), max: 1).first)
            var job = claim.job
            job.state = .restoring
            job.attempt = 1
            a.postJob(job, from: .pending, fencedBy: claim)
            var committing = job
            committing.state = .committing
            committing.commitIdentity = "2049:77"
            await #expect(throws: LeaseLost.self) { try await a.updateJob(committing, from: .restoring, fencedBy: claim, minimumLease: 10) }
            #expect(try await a.jobs(runId: run.id) == [job])
            try await a.updateJob(committing, from: .restoring, fencedBy: claim, minimumLease: 0.5)
            #expect(try await a.jobs(runId: run.id) == [committing])
        }
    }

    /// Every column travels through the batched, fenced record as through the plain one (two
    /// jobs in one batch: one queued, one awaited), and back to nothing.
    @Test func everyJobColumnRoundTripsThroughAFencedBatch() async throws {
        try await withHosts { a, _, _ in
            let (run, _) = try await makeRun(a, sites: 1)
            let claims = try await a.claimJobs(runId: run.id, host: "a", rules: ClaimRules(runConcurrency: 2), max: 2)
            try #require(claims.count == 2)
            var full: [JobRecord] = []
            for claim in claims {
                var job = claim.job
                job.state = .committing
                job.attempt = 4
                job.snapshotPath = "/s/acme/jira/20261124T000000Z.tar.gz"
                job.snapshotTakenAt = Self.t0.addingTimeInterval(-3_600.000_001)
                job.queuedAt = Self.t0
                job.startedAt = Self.t0.addingTimeInterval(1.5)
                job.finishedAt = Self.t0.addingTimeInterval(2)
                job.bytes = 1 << 40
                job.entries = 123_456
                job.archiveBytes = 987
                job.skippedEntries = 3
                job.rpoSeconds = 3_600.123_456_789
                job.rtoSeconds = 2.25
                job.rpoMet = false
                job.rtoMet = true
                job.errorCode = "io"
                job.error = "boom: 'quoted' \"and\" \\ backslashed; DROP TABLE jobs"
                job.stagingPath = "/d/acme/.lifeboat-staging/x"
                job.commitIdentity = "64769:1234"
                job.quarantinePath = "/d/acme/.lifeboat-quarantine/q"
                job.hookOutput = "ok\nline two ✓"
                job.treeDigest = "sha256:abc"
                job.host = "recovery-2.example"
                job.source = JobRecord.sourceQuarantine
                full.append(job)
            }
            a.postJob(full[0], from: .pending, fencedBy: claims[0])
            try await a.updateJob(full[1], from: .pending, fencedBy: claims[1], minimumLease: 0)
            #expect(try await a.jobs(runId: run.id) == full)
            // And back to nothing: optional columns clear.
            let bare = claims.map { claim in
                var job = JobRecord(runId: run.id, site: claim.job.site, product: claim.job.product, wave: 0, priority: claim.job.priority,
                                    productOrder: claim.job.productOrder, destination: claim.job.destination)
                job.id = claim.jobId
                return job
            }
            a.postJob(bare[0], from: .committing, fencedBy: claims[0])
            try await a.updateJob(bare[1], from: .committing, fencedBy: claims[1], minimumLease: 0)
            #expect(try await a.jobs(runId: run.id) == bare)
        }
    }

    @Test func renewalKeepsAClaim() async throws {
        try await withHosts(lease: 5) { a, b, _ in
            let (run, _) = try await makeRun(a, sites: 1, products: ["p"])
            let rules = ClaimRules(runConcurrency: 1)
            let mine = try #require(try await a.claimJobs(runId: run.id, host: "a", rules: rules, max: 1).first)
            for _ in 0..<3 {
                try await Task.sleep(for: .milliseconds(1_000))
                #expect(try await a.renewClaims([mine]) == [mine.jobId])
            }
            #expect(try await b.claimJobs(runId: run.id, host: "b", rules: rules, max: 1).isEmpty)
        }
    }

    @Test func aRunIsCoordinatedByOneHostAndTheOneThatLostItIsFenced() async throws {
        try await withHosts(lease: 6, named: true) { a, b, _ in
            let (run, jobs) = try await makeRun(a, sites: 1, products: ["p"])
            // The creating host coordinates it; the other's writes are refused.
            #expect(try await b.coordinate(runId: run.id) == "a")
            var job = jobs[0]
            job.state = .restoring
            await #expect(throws: RunLeaseLost.self) { try await b.updateJob(job, from: .pending) }
            await #expect(throws: RunLeaseLost.self) { try await b.updateRun(run) }
            #expect(try await a.renewCoordination(of: [run.id, "another"]) == [run.id])
            try await a.updateJob(job, from: .pending)
            // a stops renewing (frozen, cut off): past its lease b takes the run over, and a's
            // late writes are refused.
            try await Task.sleep(for: .milliseconds(6_300))
            job.state = .committing
            await #expect(throws: RunLeaseLost.self) { try await a.updateJob(job, from: .restoring) }
            #expect(try await b.coordinate(runId: run.id) == "b")
            #expect(try await a.renewCoordination(of: [run.id]).isEmpty)
            #expect(try await a.coordinate(runId: run.id) == "b")
            job.state = .succeeded
            try await b.updateJob(job, from: .restoring)
            #expect(try await a.jobs(runId: run.id).map(\.state) == [.succeeded])
            // A write to a job that is not there is still "not found", not a lost lease.
            var ghost = job
            ghost.id = 999_999
            await #expect(throws: PostgresLedger.RowNotFound.self) { try await b.updateJob(ghost, from: .succeeded) }
            // Released (a clean stop), the run is anyone's at once.
            try await b.releaseCoordination(runId: nil)
            #expect(try await a.coordinate(runId: run.id) == "a")
        }
    }

    @Test func aScheduledFireIsRecordedByOneHostOnly() async throws {
        try await withHosts(named: true) { a, b, _ in
            let armed = ScheduleRecord(plan: "quarterly", lastFireAt: nil, exercises: 0, armedAt: Self.t0)
            try await a.saveSchedule(armed)
            var fired = armed
            fired.lastFireAt = Self.t0.addingTimeInterval(60)
            fired.exercises = 1
            let record = fired
            async let x = a.recordFire(record, replacing: armed)
            async let y = b.recordFire(record, replacing: armed)
            #expect(try await [x, y].filter { $0 }.count == 1)
            #expect(try await a.schedule(plan: "quarterly") == fired)
        }
    }

    @Test func destinationsAreHeldFleetWideWhileTheirRunGoes() async throws {
        try await withHosts { a, b, _ in
            var (x, _) = try await makeRun(a, sites: 1)
            var y = x
            y.id = "20261125-101132-0002"
            _ = try await b.createRun(y, jobs: [])
            try await a.takeHolds(runId: x.id, [("/srv/sites/acme/jira", "acme/jira"), ("/srv/sites/acme/wiki", "acme/wiki")])
            // Taking them again for the same run is fine.
            try await a.takeHolds(runId: x.id, [("/srv/sites/acme/jira", "acme/jira")])
            // Another run, on another host: the same path, one inside, one around are refused, naming the holder.
            for path in ["/srv/sites/acme/jira", "/srv/sites/acme/jira/data", "/srv/sites/acme"] {
                await #expect { try await b.takeHolds(runId: y.id, [(path, "y-job")]) } throws: { error in
                    (error as? SafetyRefusal)?.message.contains("held by job acme/") == true && "\(error)".contains(x.id)
                }
            }
            // A sibling is free; all or none: a refused take holds nothing.
            await #expect(throws: SafetyRefusal.self) {
                try await b.takeHolds(runId: y.id, [("/srv/sites/globex/jira", "g"), ("/srv/sites/acme/wiki", "w")])
            }
            try await b.takeHolds(runId: y.id, [("/srv/sites/globex/jira", "globex/jira")])
            // One released, or the run ended: free for the other run.
            try await a.releaseHolds(runId: x.id, paths: ["/srv/sites/acme/jira"])
            try await b.takeHolds(runId: y.id, [("/srv/sites/acme/jira", "acme/jira")])
            x.state = .succeeded
            try await a.updateRun(x)
            try await b.takeHolds(runId: y.id, [("/srv/sites/acme/wiki", "acme/wiki")])
        }
    }

    /// A rollback holds its ended run (the run's coordination) while it moves data back: the run's
    /// holds count for the other hosts' runs until it gives the run back.
    @Test func anEndedRunsHoldsCountWhileAHostHoldsIt() async throws {
        try await withHosts(named: true) { a, b, _ in
            var (x, _) = try await makeRun(a, sites: 1)
            x.state = .succeeded
            try await a.updateRun(x)
            var y = x
            y.id = "20261125-101132-0002"
            y.state = .running
            _ = try await b.createRun(y, jobs: [])
            #expect(try await a.coordinate(runId: x.id) == "a")
            try await a.takeHolds(runId: x.id, [("/srv/sites/acme/jira", "acme/jira")])
            await #expect { try await b.takeHolds(runId: y.id, [("/srv/sites/acme/jira", "y-job")]) } throws: { error in
                (error as? SafetyRefusal)?.message.contains("of run \(x.id), which a host sharing the ledger is rolling back now") == true
            }
            try await a.releaseCoordination(runId: x.id)
            try await b.takeHolds(runId: y.id, [("/srv/sites/acme/jira", "acme/jira")])
            // A cancelling run (its hosts still stopping its jobs) holds them too, held by a host or not.
            #expect(try await a.coordinate(runId: y.id) == "b")
            y.beginCancelling(by: "test")
            try await b.updateRun(y)
            try await b.releaseCoordination(runId: y.id)
            await #expect { try await a.takeHolds(runId: x.id, [("/srv/sites/acme/jira", "x-job")]) } throws: { error in
                (error as? SafetyRefusal)?.message.contains("of run \(y.id), which is still going") == true
            }
        }
    }
}

/// Refills slots under the rules a test sets, and records the claims it is given.
final class RecordingRefiller: SlotRefiller {
    private struct State {
        var rules: ClaimRules
        var claims: [JobClaim] = []
        var sent: ContinuousClock.Instant?
    }

    private let state: Mutex<State>

    init(rules: ClaimRules) { state = Mutex(State(rules: rules)) }

    var rules: ClaimRules {
        get { state.withLock { $0.rules } }
        set { state.withLock { $0.rules = newValue } }
    }

    var claims: [JobClaim] { state.withLock { $0.claims } }
    var sent: ContinuousClock.Instant? { state.withLock { $0.sent } }

    func refill(after released: JobClaim) -> ClaimRules? { state.withLock { $0.rules } }

    func claimed(_ claims: [JobClaim], sent: ContinuousClock.Instant) {
        state.withLock {
            $0.claims += claims
            $0.sent = sent
        }
    }
}
