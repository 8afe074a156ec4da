import Foundation
import LifeboatTestSupport
import Logging
import Testing
@testable import LifeboatKit

/// A write to the PostgreSQL ledger whose answer never arrives — the server did the work and
/// committed, then the connection was cut (a network, a failover) — is tried again, as a write
/// the server may not have seen must be: what it wrote is then not written twice.
@Suite(.ownThread, .enabled(if: LocalPostgres.available, "PostgreSQL ledger \(LocalPostgres.installHint)"))
struct LedgerAnswerLossTests {
    /// A ledger on a fresh database, reached through a proxy that can lose an answer.
    private func ledgerBehindProxy(host: String? = nil) async throws -> (PostgresLedger, FaultProxy) {
        let server = try await LocalPostgres.shared()
        let database = try server.createDatabase()
        let proxy = FaultProxy(upstreamPort: server.port, fault: nil)
        let url = server.url(database: database).replacingOccurrences(of: ":\(server.port)/", with: ":\(proxy.port)/")
        let settings = try PostgresLedgerSettings(url: url, passwordFile: server.passwordFile)
        return (try PostgresLedger(settings: settings, password: try settings.password(), host: host, logger: Logger(label: "test")), proxy)
    }

    /// `body`, tried again for up to 10 s while it fails.
    private static func once<T>(theLedgerAnswers body: () async throws -> T) async throws -> T {
        let deadline = Date().addingTimeInterval(10)
        while true {
            do { return try await body() } catch where Date() < deadline { try await Task.sleep(for: .milliseconds(200)) }
        }
    }

    private static let at = Timestamp.parse("2026-11-25T10:00:00Z")!

    private static func run(_ id: String) -> (RunRecord, [JobRecord]) {
        let run = RunRecord(id: id, plan: "p", planPath: nil, mode: .restore, declaredAt: at, incidentAt: at, asOf: at, createdAt: at,
                            startedBy: "test", rtoObjectiveSeconds: nil, rpoObjectiveSeconds: nil, totalWaves: 1)
        let jobs = ["acme", "globex"].map { JobRecord(runId: id, site: $0, product: "jira", wave: 0, priority: 0, productOrder: 0, destination: "/srv/\($0)/jira") }
        return (run, jobs)
    }

    /// The COMMIT of a run's recording reaches the server, its answer does not: the run is
    /// recorded, and the caller hears so (with its jobs' ids), not "it failed, ask again" while
    /// a host would take the run up as an orphan and run it beside the one asked again.
    @Test func aRunWhoseRecordingsAnswerIsLostIsFoundRecorded() async throws {
        let (ledger, proxy) = try await ledgerBehindProxy()
        defer { proxy.stop() }
        let (run, jobs) = Self.run("20261125-100000-c0c0")
        try await ledger.withRunning { ledger in
            try await ledger.flush()
            proxy.loseAnswer(toRequestContaining: "COMMIT", after: run.id)
            let created = try await ledger.createRun(run, jobs: jobs)
            #expect(proxy.faultsInjected == 1)
            let recorded = try await ledger.jobs(runId: run.id)
            #expect(recorded.map(\.name) == ["acme/jira", "globex/jira"])
            #expect(created.map(\.id) == recorded.map(\.id) && created.allSatisfy { $0.id != nil }, "\(created.map(\.id)) vs \(recorded.map(\.id))")
            #expect(try await ledger.run(id: run.id)?.state == .pending)
        }
    }

    /// The answer to a statement before the COMMIT is lost: the server rolls the run back, and
    /// the caller hears it failed — for certain, so asking again records it once.
    @Test func aRunCutOffBeforeItsCommitIsNotRecordedAndCanBeAskedAgain() async throws {
        let (ledger, proxy) = try await ledgerBehindProxy()
        defer { proxy.stop() }
        let (run, jobs) = Self.run("20261125-100000-d0d0")
        try await ledger.withRunning { ledger in
            try await ledger.flush()
            proxy.loseAnswer(toRequestContaining: run.id)
            await #expect { _ = try await ledger.createRun(run, jobs: jobs) } throws: { error in
                (error as? PostgresLedger.Failure)?.gotNoAnswer == true
            }
            #expect(proxy.faultsInjected == 1)
            #expect(try await ledger.run(id: run.id) == nil)
            #expect(try await ledger.jobs(runId: run.id).isEmpty)
            let created = try await ledger.createRun(run, jobs: jobs)
            #expect(created.allSatisfy { $0.id != nil })
            #expect(try await ledger.jobs(runId: run.id).count == 2)
        }
    }

    /// A retry's write (the ended run going again, its failed job pending) reaches the server,
    /// its answer does not: the caller hears it is recorded — not that it failed while a host
    /// would take the run up and run it.
    @Test func aRetryWhoseAnswerIsLostIsFoundRecorded() async throws {
        let (ledger, proxy) = try await ledgerBehindProxy()
        defer { proxy.stop() }
        var (run, asked) = Self.run("20261125-100000-f0f0")
        run.state = .failed
        run.finishedAt = Self.at
        try await ledger.withRunning { [run, asked] ledger in
            try await ledger.flush()
            var jobs = try await ledger.createRun(run, jobs: asked)
            jobs[0].state = .failed
            try await ledger.updateJob(jobs[0], from: .pending)
            var going = run
            going.state = .pending
            going.finishedAt = nil
            going.note = "retrying acme/jira"
            var retried = jobs[0]
            retried.state = .pending
            proxy.loseAnswer(toRequestContaining: "COMMIT", after: "retrying acme/jira")
            try await ledger.updateRun(going, jobs: [(retried, .failed)])
            #expect(proxy.faultsInjected == 1)
            #expect(try await ledger.run(id: run.id)?.state == .pending)
            #expect(try await ledger.jobs(runId: run.id).map(\.state) == [.pending, .pending])
            // Cut before its COMMIT, it is not recorded, and the caller hears it failed.
            var other = going
            other.note = "retrying again"
            other.state = .failed
            proxy.loseAnswer(toRequestContaining: "retrying again")
            await #expect { try await ledger.updateRun(other) } throws: { error in (error as? PostgresLedger.Failure)?.gotNoAnswer == true }
            #expect(proxy.faultsInjected == 2)
            #expect(try await ledger.run(id: run.id)?.note == "retrying acme/jira")
        }
    }

    /// A scheduled exercise's fire whose record lost its answer: the host hears it is its fire
    /// (to start the exercise), not an error that would leave the slot recorded fired and no
    /// exercise started by any host. A record cut off unmade is said unmade.
    @Test func aScheduledFireWhoseAnswerIsLostIsFoundThisHostsFire() async throws {
        let (ledger, proxy) = try await ledgerBehindProxy(host: "h1")
        defer { proxy.stop() }
        try await ledger.withRunning { ledger in
            try await ledger.flush()
            let armed = ScheduleRecord(plan: "quarterly", lastFireAt: nil, exercises: 0, armedAt: Self.at)
            try await ledger.saveSchedule(armed)
            var fired = armed
            fired.lastFireAt = Date()
            fired.exercises = 1
            proxy.loseAnswer(toRequestContaining: "UPDATE schedules")
            #expect(try await ledger.recordFire(fired, replacing: armed))
            #expect(proxy.faultsInjected == 1)
            let stored = try #require(try await ledger.schedule(plan: "quarterly"))
            #expect(stored.exercises == 1 && abs(stored.lastFireAt!.timeIntervalSince(fired.lastFireAt!)) < 0.000_002)
            // Another host's fire, recorded before this host's look: not this host's.
            var theirs = stored
            theirs.lastFireAt = Date().addingTimeInterval(1)
            theirs.exercises = 2
            #expect(try await ledger.recordFire(theirs, replacing: stored))
            var mine = stored
            mine.lastFireAt = Date().addingTimeInterval(2)
            mine.exercises = 2
            proxy.loseAnswer(toRequestContaining: "UPDATE schedules")
            #expect(try await ledger.recordFire(mine, replacing: stored) == false)
            #expect(proxy.faultsInjected == 2)
        }
    }

    /// A claimed job's records whose answers were lost — its start, then its end — are found
    /// made: the job goes on and ends (announced), instead of going back to the queue to be
    /// found done, with its end's event missing and errors about another writer.
    @Test func aJobRecordWhoseAnswerIsLostIsFoundMade() async throws {
        let (ledger, proxy) = try await ledgerBehindProxy(host: "h1")
        defer { proxy.stop() }
        var (run, jobs) = Self.run("20261125-100000-a1a1")
        run.state = .running
        try await ledger.withRunning { [run, jobs] ledger in
            try await ledger.register(HostRegistration(name: "h1", startedAt: Self.at))
            _ = try await ledger.createRun(run, jobs: jobs)
            let claim = try #require(try await ledger.claimJobs(runId: run.id, host: "h1", rules: ClaimRules(runConcurrency: 1), max: 1).first)
            var restoring = claim.job
            restoring.state = .restoring
            restoring.attempt += 1
            restoring.stagingPath = "/srv/.lifeboat-staging/answer-lost-start"
            proxy.loseAnswer(toRequestContaining: "answer-lost-start")
            try await ledger.updateJob(restoring, from: .pending, fencedBy: claim)
            #expect(proxy.faultsInjected == 1)
            var done = restoring
            done.state = .succeeded
            done.stagingPath = nil
            done.finishedAt = Self.at
            done.treeDigest = "answer-lost-end"
            proxy.loseAnswer(toRequestContaining: "answer-lost-end")
            try await ledger.finishJob(done, from: .restoring, fencedBy: claim)
            #expect(proxy.faultsInjected == 2)
            let recorded = try #require(try await ledger.jobs(runId: run.id).first { $0.id == claim.jobId })
            #expect(recorded.state == .succeeded && recorded.attempt == restoring.attempt)
        }
    }

    /// A cancel forwarded to the run's coordinator, whose reading lost its answer, is read again
    /// (it used to be marked taken by the read itself, and was never applied), until the host
    /// marks it applied.
    @Test func aForwardedCommandWhoseReadingLostItsAnswerIsReadAgain() async throws {
        let (ledger, proxy) = try await ledgerBehindProxy(host: "h1")
        defer { proxy.stop() }
        let (run, jobs) = Self.run("20261125-100000-e0e0")
        try await ledger.withRunning { ledger in
            try await ledger.register(HostRegistration(name: "h1", startedAt: Self.at))
            _ = try await ledger.createRun(run, jobs: jobs)
            try await ledger.forward(ForwardedCommand(runId: run.id, kind: .cancel, by: "uid 0 (pid 1) on host h2"))
            proxy.loseAnswer(toRequestContaining: "FROM forwarded_commands")
            await #expect(throws: (any Error).self) { _ = try await ledger.forwardedCommands(runIds: [run.id]) }
            #expect(proxy.faultsInjected == 1)
            // (The pool may hand out the cut connection once more before it sees it closed.)
            let again = try await Self.once(theLedgerAnswers: { try await ledger.forwardedCommands(runIds: [run.id]) })
            #expect(again.map(\.kind) == [.cancel] && again.map(\.by) == ["uid 0 (pid 1) on host h2"])
            try await ledger.markApplied(again)
            #expect(try await ledger.forwardedCommands(runIds: [run.id]).isEmpty)
        }
    }

    @Test func anEventWhoseAnswerIsLostIsWrittenOnce() async throws {
        let (ledger, proxy) = try await ledgerBehindProxy()
        defer { proxy.stop() }
        let at = Self.at
        try await ledger.withRunning { ledger in
            // The schema first, so that no migration's request meets the marker.
            try await ledger.flush()
            ledger.postEvent(LedgerEvent(runId: "r1", at: at, kind: "job.succeeded", message: "before the cut"))
            try await ledger.flush()

            proxy.loseAnswer(toRequestContaining: "answer lost")
            ledger.postEvent(LedgerEvent(runId: "r1", jobId: 7, at: at, kind: "job.succeeded", message: "answer lost"))
            ledger.postEvent(LedgerEvent(runId: "r1", at: at, kind: "run.succeeded", message: "answer lost too"))
            // The flush that waits for them hears that the database did not answer; the events
            // are kept and written again on a new connection.
            await #expect(throws: (any Error).self) { try await ledger.flush() }
            #expect(proxy.faultsInjected == 1)
            let deadline = Date().addingTimeInterval(30)
            var flushed = false
            while !flushed, Date() < deadline {
                do {
                    try await ledger.flush()
                    flushed = true
                } catch {
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
            #expect(flushed)
            ledger.postEvent(LedgerEvent(runId: "r1", at: at, kind: "run.note", message: "after the cut"))
            try await ledger.flush()

            let events = try await ledger.allEvents(runId: "r1")
            #expect(events.map(\.message) == ["before the cut", "answer lost", "answer lost too", "after the cut"], "\(events.map(\.message))")
            #expect(events.map(\.jobId) == [nil, 7, nil, nil])
        }
    }
}
