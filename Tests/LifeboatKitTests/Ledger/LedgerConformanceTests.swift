import Foundation
import Testing
import LifeboatTestSupport
@testable import LifeboatKit

/// The `Ledger` contract, one test per promise, run against every implementation: what the
/// engine, the daemon and the control queries rely on, whichever database is behind it.
@Suite struct SQLiteLedgerConformanceTests {
    @Test(arguments: LedgerContract.allCases)
    func conforms(_ promise: LedgerContract) async throws {
        try await promise.check(SQLiteFixture())
    }
}

@Suite(.ownThread, .enabled(if: LocalPostgres.available, "PostgreSQL ledger conformance \(LocalPostgres.installHint)"))
struct PostgresLedgerConformanceTests {
    @Test(arguments: LedgerContract.allCases)
    func conforms(_ promise: LedgerContract) async throws {
        try await promise.check(PostgresFixture())
    }
}

enum LedgerContract: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case runsJobsAndEventsRoundTrip
    case everyRunColumnRoundTrips
    case everyJobColumnRoundTrips
    case createRunAssignsIdsInOrder
    case duplicateRunOrJobIsRefused
    case updatingAMissingJobFails
    case oneBadWriteDoesNotSinkItsBatch
    case concurrentWritesAreDurable
    case postedWritesAreDurableAfterFlushInOrder
    case eventsPageInOrder
    case runListsAreNewestFirst
    case unfinishedRunsAreTheGoingOnes
    case runsOwingCleanup
    case countsBytesAndThroughput
    case schedulesUpsert
    case quarantineWithItsJobUpdate
    case aJobWriteFromAStaleStateIsRefused
    case aRunAndItsJobsAreUpdatedTogetherOrNotAtAll
    case holdsAreRememberedUntilGivenBack

    var testDescription: String { rawValue }

    func check(_ fixture: some LedgerFixture) async throws {
        switch self {
        case .runsJobsAndEventsRoundTrip: try await Self.runsJobsAndEventsRoundTrip(fixture)
        case .everyRunColumnRoundTrips: try await Self.everyRunColumnRoundTrips(fixture)
        case .everyJobColumnRoundTrips: try await Self.everyJobColumnRoundTrips(fixture)
        case .createRunAssignsIdsInOrder: try await Self.createRunAssignsIdsInOrder(fixture)
        case .duplicateRunOrJobIsRefused: try await Self.duplicateRunOrJobIsRefused(fixture)
        case .updatingAMissingJobFails: try await Self.updatingAMissingJobFails(fixture)
        case .oneBadWriteDoesNotSinkItsBatch: try await Self.oneBadWriteDoesNotSinkItsBatch(fixture)
        case .concurrentWritesAreDurable: try await Self.concurrentWritesAreDurable(fixture)
        case .postedWritesAreDurableAfterFlushInOrder: try await Self.postedWritesAreDurableAfterFlushInOrder(fixture)
        case .eventsPageInOrder: try await Self.eventsPageInOrder(fixture)
        case .runListsAreNewestFirst: try await Self.runListsAreNewestFirst(fixture)
        case .unfinishedRunsAreTheGoingOnes: try await Self.unfinishedRunsAreTheGoingOnes(fixture)
        case .runsOwingCleanup: try await Self.runsOwingCleanup(fixture)
        case .countsBytesAndThroughput: try await Self.countsBytesAndThroughput(fixture)
        case .schedulesUpsert: try await Self.schedulesUpsert(fixture)
        case .holdsAreRememberedUntilGivenBack: try await Self.holdsAreRememberedUntilGivenBack(fixture)
        case .quarantineWithItsJobUpdate: try await Self.quarantineWithItsJobUpdate(fixture)
        case .aJobWriteFromAStaleStateIsRefused: try await Self.aJobWriteFromAStaleStateIsRefused(fixture)
        case .aRunAndItsJobsAreUpdatedTogetherOrNotAtAll: try await Self.aRunAndItsJobsAreUpdatedTogetherOrNotAtAll(fixture)
        }
    }

    // MARK: Fixtures

    static let t0 = Timestamp.parse("2026-11-25T10:00:00Z")!

    static func run(_ id: String = "20261125-101132-0001", plan: String = "p", mode: RunMode = .restore,
                    state: RunState = .pending, createdAt: Date = t0) -> RunRecord {
        RunRecord(id: id, plan: plan, planPath: nil, mode: mode, state: state, declaredAt: t0, incidentAt: t0, asOf: t0,
                  createdAt: createdAt, startedBy: "test", rtoObjectiveSeconds: 3_600, rpoObjectiveSeconds: nil, totalWaves: 1)
    }

    static func job(_ run: RunRecord, _ site: String, _ product: String = "jira", order: Int = 0) -> JobRecord {
        JobRecord(runId: run.id, site: site, product: product, wave: 0, priority: 0, productOrder: order, destination: "/d/\(site)/\(product)")
    }

    // MARK: Promises

    static func runsJobsAndEventsRoundTrip(_ fixture: some LedgerFixture) async throws {
        try await fixture.withFreshLedger { ledger in
            let run = Self.run()
            let jobs = try await ledger.createRun(run, jobs: [Self.job(run, "acme"), Self.job(run, "acme", "wiki", order: 1)])
            #expect(jobs.allSatisfy { $0.id != nil })
            var job = jobs[0]
            job.state = .succeeded
            job.rpoSeconds = 3_600
            job.rtoMet = true
            try await ledger.updateJob(job, from: .pending)
            ledger.postEvent(LedgerEvent(runId: run.id, jobId: job.id, at: t0, kind: "job.succeeded", message: "ok"))
            try await ledger.flush()
            let back = try await ledger.jobs(runId: run.id)
            #expect(back == [job, jobs[1]])
            #expect(try await ledger.run(id: run.id) == run)
            #expect(try await ledger.run(id: "no-such-run") == nil)
            let events = try await ledger.events(runId: run.id, afterId: 0, limit: 10)
            #expect(events.map(\.kind) == ["job.succeeded"])
            #expect(events.first?.jobId == job.id)
            #expect(events.first?.at == t0)
        }
    }

    /// Where a run took its destinations, per job, until they are given back (one by one, or all
    /// when the run ends); each run's own.
    static func holdsAreRememberedUntilGivenBack(_ fixture: some LedgerFixture) async throws {
        try await fixture.withFreshLedger { ledger in
            let (first, second) = (run(), run("20261125-101132-0002"))
            _ = try await ledger.createRun(first, jobs: [])
            _ = try await ledger.createRun(second, jobs: [])
            try await ledger.takeHolds(runId: first.id, [(path: "/real/a/jira", job: "a/jira"), (path: "/real/b/jira", job: "b/jira")])
            try await ledger.takeHolds(runId: second.id, [(path: "/real/c/jira", job: "c/jira")])
            #expect(try await ledger.holds(runId: first.id, job: nil).map { "\($0.job)=\($0.path)" } == ["a/jira=/real/a/jira", "b/jira=/real/b/jira"])
            #expect(try await ledger.holds(runId: first.id, job: "b/jira").map(\.path) == ["/real/b/jira"])
            try await ledger.releaseHolds(runId: first.id, paths: ["/real/a/jira", "/real/c/jira"])
            #expect(try await ledger.holds(runId: first.id, job: nil).map(\.job) == ["b/jira"])
            #expect(try await ledger.holds(runId: second.id, job: nil).map(\.path) == ["/real/c/jira"])
            try await ledger.releaseHolds(runId: first.id, paths: nil)
            #expect(try await ledger.holds(runId: first.id, job: nil).isEmpty)
            #expect(try await ledger.holds(runId: second.id, job: nil).count == 1)
        }
    }

    static func everyRunColumnRoundTrips(_ fixture: some LedgerFixture) async throws {
        try await fixture.withFreshLedger { ledger in
            var run = RunRecord(id: "20261125-101132-00ff", plan: "mass-restore", planPath: "/etc/lifeboat/plans/m.yaml",
                                planVersion: "sha256:" + String(repeating: "0123456789abcdef", count: 4), mode: .exercise,
                                state: .pending, declaredAt: t0, incidentAt: t0.addingTimeInterval(-60), asOf: t0.addingTimeInterval(-120),
                                createdAt: t0.addingTimeInterval(1), startedBy: "uid 1000 (pid 4242)", rtoObjectiveSeconds: 14_400.5,
                                rpoObjectiveSeconds: 86_400, totalWaves: 3, seed: -77, keepSandbox: true)
            _ = try await ledger.createRun(run, jobs: [])
            #expect(try await ledger.run(id: run.id) == run)
            run.state = .halted
            run.startedAt = t0.addingTimeInterval(2)
            run.finishedAt = t0.addingTimeInterval(3)
            run.currentWave = 2
            run.note = "wave 2 gate failed"
            run.cleanup = "failed: EACCES"
            run.reason = "ticket OPS-1234: tenants asked to leave"
            run.rehearse = "delete"
            run.planVersion = nil
            run.pausedSeconds = 70.25
            run.pausedAt = t0.addingTimeInterval(2.5)
            try await ledger.updateRun(run)
            #expect(try await ledger.run(id: run.id) == run)
        }
    }

    static func everyJobColumnRoundTrips(_ fixture: some LedgerFixture) async throws {
        try await fixture.withFreshLedger { ledger in
            let run = Self.run()
            var job = try await ledger.createRun(run, jobs: [
                JobRecord(runId: run.id, site: "acme", product: "jira", wave: 2, priority: -3, productOrder: 1, destination: "/d/acme/jira"),
            ])[0]
            job.state = .committing
            job.attempt = 4
            job.snapshotPath = "/s/acme/jira/20261124T000000Z.tar.gz"
            job.snapshotTakenAt = t0.addingTimeInterval(-3_600)
            job.queuedAt = t0
            job.startedAt = t0.addingTimeInterval(1)
            job.finishedAt = t0.addingTimeInterval(2)
            job.bytes = 1 << 40
            job.entries = 123_456
            job.archiveBytes = 987
            job.skippedEntries = 3
            job.rpoSeconds = 3_600.5
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
            try await ledger.updateJob(job, from: .pending)
            #expect(try await ledger.jobs(runId: run.id) == [job])
            // And back to nothing: optional columns clear.
            let id = job.id
            job = JobRecord(runId: run.id, site: "acme", product: "jira", wave: 2, priority: -3, productOrder: 1, destination: "/d/acme/jira")
            job.id = id
            try await ledger.updateJob(job, from: .committing)
            #expect(try await ledger.jobs(runId: run.id) == [job])
        }
    }

    static func createRunAssignsIdsInOrder(_ fixture: some LedgerFixture) async throws {
        try await fixture.withFreshLedger { ledger in
            let run = Self.run()
            // More jobs than one multi-row statement may carry.
            let jobs = (0..<2_500).map { Self.job(run, String(format: "s%04d", $0)) }
            let created = try await ledger.createRun(run, jobs: jobs)
            #expect(created.map(\.site) == jobs.map(\.site))
            let ids = created.compactMap(\.id)
            #expect(ids.count == jobs.count)
            #expect(ids == ids.sorted() && Set(ids).count == ids.count)
            let back = try await ledger.jobs(runId: run.id)
            #expect(back == created)
        }
    }

    static func duplicateRunOrJobIsRefused(_ fixture: some LedgerFixture) async throws {
        try await fixture.withFreshLedger { ledger in
            let run = Self.run()
            _ = try await ledger.createRun(run, jobs: [Self.job(run, "a")])
            await #expect(throws: (any Error).self) { _ = try await ledger.createRun(run, jobs: []) }
            let other = Self.run("20261125-101132-0002")
            await #expect(throws: (any Error).self) { _ = try await ledger.createRun(other, jobs: [Self.job(other, "a"), Self.job(other, "a")]) }
            // A refused run leaves nothing behind.
            #expect(try await ledger.run(id: other.id) == nil)
            #expect(try await ledger.jobs(runId: other.id).isEmpty)
            #expect(try await ledger.jobs(runId: run.id).count == 1)
        }
    }

    static func updatingAMissingJobFails(_ fixture: some LedgerFixture) async throws {
        try await fixture.withFreshLedger { ledger in
            let run = Self.run()
            var ghost = try await ledger.createRun(run, jobs: [Self.job(run, "a")])[0]
            ghost.id = 999_999
            await #expect(throws: (any Error).self) { try await ledger.updateJob(ghost, from: .pending) }
            await #expect(throws: (any Error).self) { try await ledger.updateRun(Self.run("no-such-run")) }
        }
    }

    static func oneBadWriteDoesNotSinkItsBatch(_ fixture: some LedgerFixture) async throws {
        try await fixture.withFreshLedger { ledger in
            let run = Self.run()
            let jobs = try await ledger.createRun(run, jobs: [Self.job(run, "a")])
            var ghost = jobs[0]
            ghost.id = 999_999
            var good = jobs[0]
            good.state = .succeeded
            let (bad, fine) = (ghost, good)
            let results = await withTaskGroup(of: (String, Bool).self) { group in
                group.addTask { ("ghost", (try? await ledger.updateJob(bad, from: .pending)) != nil) }
                group.addTask { ("good", (try? await ledger.updateJob(fine, from: .pending)) != nil) }
                var results: [String: Bool] = [:]
                for await (name, ok) in group { results[name] = ok }
                return results
            }
            #expect(results == ["ghost": false, "good": true])
            #expect(try await ledger.jobs(runId: run.id)[0].state == .succeeded)
        }
    }

    static func concurrentWritesAreDurable(_ fixture: some LedgerFixture) async throws {
        let store = try await fixture.makeStore()
        let run = Self.run()
        try await fixture.withLedger(store) { ledger in
            let jobs = try await ledger.createRun(run, jobs: (0..<200).map { Self.job(run, "s\($0)") })
            try await withThrowingTaskGroup(of: Void.self) { group in
                for var job in jobs {
                    group.addTask {
                        job.state = .succeeded
                        try await ledger.updateJob(job, from: .pending)
                    }
                }
                try await group.waitForAll()
            }
        }
        // Another handle on the same store sees every awaited write.
        try await fixture.withLedger(store) { reopened in
            let jobs = try await reopened.jobs(runId: run.id)
            #expect(jobs.count == 200)
            #expect(jobs.allSatisfy { $0.state == .succeeded })
        }
    }

    static func postedWritesAreDurableAfterFlushInOrder(_ fixture: some LedgerFixture) async throws {
        let store = try await fixture.makeStore()
        let run = Self.run()
        try await fixture.withLedger(store) { ledger in
            var job = try await ledger.createRun(run, jobs: [Self.job(run, "a")])[0]
            for state in [JobState.waiting, .restoring, .verifying] {
                let previous = job.state
                job.state = state
                ledger.postJob(job, from: previous)
                ledger.postEvent(LedgerEvent(runId: run.id, jobId: job.id, at: t0, kind: "job.\(state.rawValue)", message: state.rawValue))
            }
            // An awaited write after posted ones: they are durable with it, in order.
            job.state = .committing
            try await ledger.updateJob(job, from: .verifying)
            job.state = .succeeded
            ledger.postJob(job, from: .committing)
            try await ledger.flush()
        }
        try await fixture.withLedger(store) { (reopened: any Ledger) async throws in
            #expect(try await reopened.jobs(runId: run.id).map(\.state) == [.succeeded])
            #expect(try await reopened.events(runId: run.id, afterId: 0, limit: 10).map(\.kind) == ["job.waiting", "job.restoring", "job.verifying"])
        }
    }

    static func eventsPageInOrder(_ fixture: some LedgerFixture) async throws {
        try await fixture.withFreshLedger { ledger in
            let run = Self.run()
            let other = Self.run("20261125-101132-0002")
            _ = try await ledger.createRun(run, jobs: [])
            _ = try await ledger.createRun(other, jobs: [])
            for i in 0..<25 {
                ledger.postEvent(LedgerEvent(runId: run.id, at: t0.addingTimeInterval(Double(i)), kind: "k", message: "\(i)"))
                ledger.postEvent(LedgerEvent(runId: other.id, at: t0, kind: "k", message: "other \(i)"))
            }
            try await ledger.flush()
            let first = try await ledger.events(runId: run.id, afterId: 0, limit: 10)
            #expect(first.map(\.message) == (0..<10).map { "\($0)" })
            let rest = try await ledger.events(runId: run.id, afterId: first.last!.id!, limit: 100)
            #expect(rest.map(\.message) == (10..<25).map { "\($0)" })
            #expect(try await ledger.events(runId: run.id, afterId: rest.last!.id!, limit: 10).isEmpty)
        }
    }

    static func runListsAreNewestFirst(_ fixture: some LedgerFixture) async throws {
        try await fixture.withFreshLedger { ledger in
            let a = Self.run("20261125-100000-0001", plan: "p", mode: .exercise, createdAt: t0)
            let b = Self.run("20261125-110000-0001", plan: "p", mode: .restore, createdAt: t0.addingTimeInterval(3_600))
            let c = Self.run("20261125-120000-0001", plan: "p", mode: .exercise, createdAt: t0.addingTimeInterval(7_200))
            let d = Self.run("20261125-130000-0001", plan: "q", mode: .exercise, createdAt: t0.addingTimeInterval(9_000))
            for run in [b, d, a, c] { _ = try await ledger.createRun(run, jobs: []) }
            #expect(try await ledger.runs(limit: 10).map(\.id) == [d, c, b, a].map(\.id))
            #expect(try await ledger.runs(limit: 2).map(\.id) == [d, c].map(\.id))
            #expect(try await ledger.runs(plan: "p", mode: .exercise, limit: 10).map(\.id) == [c, a].map(\.id))
            #expect(try await ledger.runs(plan: "p", mode: .exercise, limit: 1).map(\.id) == [c.id])
            #expect(try await ledger.runs(plan: "none", mode: .restore, limit: 10).isEmpty)
        }
    }

    static func unfinishedRunsAreTheGoingOnes(_ fixture: some LedgerFixture) async throws {
        try await fixture.withFreshLedger { ledger in
            var going: [String] = []
            for (i, state) in RunState.allCases.enumerated() {
                var run = Self.run(String(format: "20261125-1000%02d-0001", i), state: state, createdAt: t0.addingTimeInterval(Double(i)))
                if state.isFinal { run.finishedAt = t0.addingTimeInterval(60) }
                _ = try await ledger.createRun(run, jobs: [])
                if !state.isFinal { going.append(run.id) }
            }
            // Cancelled while hosts still stop its jobs: not finished yet.
            let cancelling = Self.run("20261125-100099-0001", state: .cancelled, createdAt: t0.addingTimeInterval(99))
            _ = try await ledger.createRun(cancelling, jobs: [])
            #expect(cancelling.isCancelling)
            #expect(try await ledger.unfinishedRuns().map(\.id) == going + [cancelling.id])
        }
    }

    static func runsOwingCleanup(_ fixture: some LedgerFixture) async throws {
        try await fixture.withFreshLedger { ledger in
            let cleanups: [String?] = [nil, RunRecord.cleanupPending, RunRecord.cleanupDone, "failed: EBUSY"]
            for (i, cleanup) in cleanups.enumerated() {
                var run = Self.run(String(format: "20261125-1000%02d-0001", i), mode: .exercise, state: .succeeded,
                                   createdAt: t0.addingTimeInterval(Double(i)))
                run.cleanup = cleanup
                _ = try await ledger.createRun(run, jobs: [])
            }
            #expect(try await ledger.runsOwingCleanup().map(\.cleanup) == [RunRecord.cleanupPending, "failed: EBUSY"])
        }
    }

    static func countsBytesAndThroughput(_ fixture: some LedgerFixture) async throws {
        try await fixture.withFreshLedger { ledger in
            let p = Self.run("20261125-100000-0001", plan: "p")
            let q = Self.run("20261125-100000-0002", plan: "q")
            var jobs = try await ledger.createRun(p, jobs: (0..<4).map { Self.job(p, "s\($0)") })
            jobs += try await ledger.createRun(q, jobs: [Self.job(q, "s0")])
            // p: two succeeded (10 s and 30 s, 100 and 300 archive bytes), one failed, one waiting; q: one succeeded.
            let plan: [(JobState, TimeInterval, Int64)] = [(.succeeded, 10, 100), (.succeeded, 30, 300), (.failed, 5, 7), (.waiting, 0, 0), (.succeeded, 20, 50)]
            for (i, (state, seconds, archive)) in plan.enumerated() {
                var job = jobs[i]
                job.state = state
                if state.isFinal {
                    job.startedAt = t0
                    job.finishedAt = t0.addingTimeInterval(seconds)
                    job.archiveBytes = archive
                    job.bytes = archive * 10
                }
                try await ledger.updateJob(job, from: .pending)
            }
            #expect(try await ledger.jobCounts(runId: p.id) == [.succeeded: 2, .failed: 1, .waiting: 1])
            #expect(try await ledger.jobCounts(runId: "none").isEmpty)
            let pOnly = try await ledger.throughput(plan: "p")
            #expect(pOnly.jobs == 2 && pOnly.bytes == 400 && abs(pOnly.seconds - 40) < 0.001)
            let all = try await ledger.throughput(plan: nil)
            #expect(all.jobs == 3 && all.bytes == 450 && abs(all.seconds - 60) < 0.001)
            #expect(try await ledger.throughput(plan: "none").jobs == 0)
            // Succeeded jobs finished at or after the time: 10 s (1000 B), 30 s (3000 B), 20 s (500 B).
            #expect(try await ledger.bytesRestored(since: t0.addingTimeInterval(15)) == 3_500)
            #expect(try await ledger.bytesRestored(since: t0.addingTimeInterval(60)) == 0)
        }
    }

    static func schedulesUpsert(_ fixture: some LedgerFixture) async throws {
        try await fixture.withFreshLedger { ledger in
            #expect(try await ledger.schedule(plan: "p") == nil)
            var record = ScheduleRecord(plan: "p", lastFireAt: nil, exercises: 0, armedAt: t0)
            try await ledger.saveSchedule(record)
            #expect(try await ledger.schedule(plan: "p") == record)
            record.lastFireAt = t0.addingTimeInterval(86_400)
            record.exercises = 3
            try await ledger.saveSchedule(record)
            #expect(try await ledger.schedule(plan: "p") == record)
            #expect(try await ledger.schedule(plan: "q") == nil)
        }
    }

    static func quarantineWithItsJobUpdate(_ fixture: some LedgerFixture) async throws {
        try await fixture.withFreshLedger { ledger in
            let run = Self.run()
            var job = try await ledger.createRun(run, jobs: [Self.job(run, "acme")])[0]
            job.quarantinePath = "/d/acme/.lifeboat-quarantine/1"
            let entry = QuarantineRecord(runId: run.id, jobId: job.id, site: "acme", product: "jira", path: job.quarantinePath!,
                                         originalPath: job.destination, createdAt: t0, retainUntil: t0.addingTimeInterval(30 * 86_400),
                                         reason: "restore", identity: FileIdentity(device: 2049, inode: 1_234_567))
            var added = try await ledger.addQuarantine(entry, updating: job)
            #expect(added.id != nil)
            #expect(added.identity == "2049:1234567")
            #expect(try await ledger.jobs(runId: run.id)[0].quarantinePath == job.quarantinePath)
            #expect(try await ledger.quarantine(includePurged: false) == [added])
            // With a job that is not there, neither is recorded.
            var ghost = job
            ghost.id = 999_999
            ghost.quarantinePath = "/elsewhere"
            await #expect(throws: (any Error).self) { _ = try await ledger.addQuarantine(entry, updating: ghost) }
            #expect(try await ledger.quarantine(includePurged: true).count == 1)
            added.purgedAt = t0.addingTimeInterval(40 * 86_400)
            try await ledger.updateQuarantine(added)
            #expect(try await ledger.quarantine(includePurged: false).isEmpty)
            #expect(try await ledger.quarantine(includePurged: true) == [added])
        }
    }

    /// Job writes are compare-and-set on the state they replace: a writer that expects a state
    /// the row no longer has (another writer moved the job on) is refused and overwrites nothing,
    /// awaited or posted, alone or with a quarantine entry.
    static func aJobWriteFromAStaleStateIsRefused(_ fixture: some LedgerFixture) async throws {
        try await fixture.withFreshLedger { ledger in
            let run = Self.run()
            let created = try await ledger.createRun(run, jobs: [Self.job(run, "acme")])[0]
            var mine = created
            mine.state = .restoring
            mine.attempt = 1
            try await ledger.updateJob(mine, from: .pending)
            // A second writer still believes the job pending: refused, naming both states.
            var stale = created
            stale.state = .cancelled
            stale.error = "cancelled by a stale writer"
            let conflict = await #expect(throws: JobConflict.self) { try await ledger.updateJob(stale, from: .pending) }
            #expect(conflict?.expected == .pending && conflict?.found == .restoring && conflict?.jobId == created.id)
            #expect(try await ledger.jobs(runId: run.id) == [mine])
            // Posted, the stale write is dropped; the writer that holds the job goes on.
            ledger.postJob(stale, from: .pending)
            mine.state = .committing
            try await ledger.updateJob(mine, from: .restoring)
            try await ledger.flush()
            #expect(try await ledger.jobs(runId: run.id) == [mine])
            // With a quarantine entry, neither is recorded.
            var moved = stale
            moved.quarantinePath = "/d/acme/.lifeboat-quarantine/1"
            let entry = QuarantineRecord(runId: run.id, jobId: created.id, site: "acme", product: "jira", path: moved.quarantinePath!,
                                         originalPath: created.destination, createdAt: t0, retainUntil: t0.addingTimeInterval(86_400),
                                         reason: "restore", identity: nil)
            await #expect(throws: JobConflict.self) { _ = try await ledger.addQuarantine(entry, updating: moved) }
            #expect(try await ledger.quarantine(includePurged: true).isEmpty)
            #expect(try await ledger.jobs(runId: run.id) == [mine])
        }
    }

    /// A retry's write: the run set going again with its jobs put back to pending, all or none.
    static func aRunAndItsJobsAreUpdatedTogetherOrNotAtAll(_ fixture: some LedgerFixture) async throws {
        try await fixture.withFreshLedger { ledger in
            var ended = Self.run(state: .failed)
            ended.finishedAt = t0
            var jobs = try await ledger.createRun(ended, jobs: [Self.job(ended, "acme"), Self.job(ended, "globex")])
            for i in jobs.indices {
                jobs[i].state = i == 0 ? .failed : .succeeded
                try await ledger.updateJob(jobs[i], from: .pending)
            }
            var going = ended
            going.state = .pending
            going.finishedAt = nil
            going.note = "retrying acme/jira"
            var retried = jobs[0]
            retried.state = .pending
            // One job's expected state no longer holds: neither the run nor the other job changes.
            var stale = jobs[1]
            stale.state = .pending
            await #expect(throws: JobConflict.self) {
                try await ledger.updateRun(going, jobs: [(retried, .failed), (stale, .failed)])
            }
            #expect(try await ledger.run(id: ended.id) == ended)
            #expect(try await ledger.jobs(runId: ended.id) == jobs)
            // Both hold: both are written.
            try await ledger.updateRun(going, jobs: [(retried, .failed)])
            #expect(try await ledger.run(id: ended.id) == going)
            #expect(try await ledger.jobs(runId: ended.id) == [retried, jobs[1]])
        }
    }
}
