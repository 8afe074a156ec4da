import Foundation
import Testing
@testable import LifeboatKit

@Suite struct SQLiteLedgerTests {
    @Test func durabilitySettingsStick() throws {
        let dir = TestDirectory()
        let ledger = try SQLiteLedger(path: dir.file("ledger.sqlite"))
        #expect(try ledger.synchronousSetting() == 2)
        let mode = try runProcess("/usr/bin/env", ["python3", "-c", "import sqlite3;print(sqlite3.connect('\(dir.file("ledger.sqlite"))').execute('pragma journal_mode').fetchone()[0])"])
        #expect(mode.output.trimmingCharacters(in: .whitespacesAndNewlines) == "wal")
    }

    func sampleRun(_ id: String = "20261125-101132-0001") -> RunRecord {
        let t = Timestamp.parse("2026-11-25T10:00:00Z")!
        return RunRecord(id: id, plan: "p", planPath: nil, mode: .restore, declaredAt: t, incidentAt: t, asOf: t, createdAt: t,
                         startedBy: "test", rtoObjectiveSeconds: 3_600, rpoObjectiveSeconds: nil, totalWaves: 1)
    }

    /// Another process holding the ledger locked past the busy timeout (an operator's `sqlite3`
    /// with a transaction open): writes wait for it, posted ones too, and `problem` says why
    /// meanwhile; nothing is given up (a posted change given up left the record behind the jobs).
    @Test func writesWaitOutALockHeldByAnotherProcess() async throws {
        let dir = TestDirectory()
        let path = dir.file("ledger.sqlite")
        let ledger = try SQLiteLedger(path: path, busyTimeout: 0.3)
        var run = sampleRun()
        _ = try await ledger.createRun(run, jobs: [])
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        holder.arguments = ["python3", "-c", """
            import sqlite3, time, pathlib
            c = sqlite3.connect('\(path)', isolation_level=None)
            c.execute('BEGIN EXCLUSIVE')
            pathlib.Path('\(dir.file("locked"))').touch()
            # Held until the test has seen the writes wait (a fixed time ran out first on a loaded machine).
            deadline = time.monotonic() + 60
            while not pathlib.Path('\(dir.file("release"))').exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            c.execute('COMMIT')
            """]
        try holder.run()
        defer { holder.terminate() }
        try await waitUntil(timeout: .seconds(30)) { FileManager.default.fileExists(atPath: dir.file("locked")) }
        let at = Date(timeIntervalSince1970: 1_764_000_000)
        for n in 1...5 { ledger.postEvent(LedgerEvent(runId: run.id, at: at, kind: "test.posted", message: "\(n)")) }
        run.note = "written after the lock"
        let update = Task { [run] in try await ledger.updateRun(run) }
        try await waitUntil(timeout: .seconds(10)) { ledger.problem != nil }
        #expect(ledger.problem?.reason.contains("is locked by another process") == true, "\(ledger.problem.map(\.reason) ?? "")")
        dir.write("release", "")
        try await update.value
        try await ledger.flush()
        #expect(ledger.problem == nil)
        #expect(try await ledger.run(id: run.id)?.note == "written after the lock")
        let posted = try await ledger.events(runId: run.id, afterId: 0, limit: 100).filter { $0.kind == "test.posted" }
        #expect(posted.map(\.message) == ["1", "2", "3", "4", "5"])
    }

    @Test func runsJobsAndEventsRoundTrip() async throws {
        let dir = TestDirectory()
        let ledger = try SQLiteLedger(path: dir.file("ledger.sqlite"))
        let run = sampleRun()
        let jobs = try await ledger.createRun(run, jobs: [
            JobRecord(runId: run.id, site: "acme", product: "jira", wave: 0, priority: 0, productOrder: 0, destination: "/d/acme/jira"),
            JobRecord(runId: run.id, site: "acme", product: "wiki", wave: 0, priority: 0, productOrder: 1, destination: "/d/acme/wiki"),
        ])
        #expect(jobs.map(\.id) == [1, 2])
        var job = jobs[0]
        job.state = .succeeded
        job.rpoSeconds = 3_600
        job.rtoMet = true
        try await ledger.updateJob(job, from: .pending)
        let at = Date(timeIntervalSince1970: 1_764_000_000)
        let events = [LedgerEvent(runId: run.id, jobId: 1, at: at, kind: "job.succeeded", message: "ok"),
                      LedgerEvent(runId: run.id, at: at.addingTimeInterval(1), kind: "run.succeeded", message: "1 succeeded, 1 pending")]
        for event in events { ledger.postEvent(event) }
        try await ledger.flush()
        let back = try await ledger.jobs(runId: run.id)
        #expect(back[0] == job)
        #expect(try await ledger.run(id: run.id) == run)
        // Every field of an event comes back, a job's and the run's own (no job).
        let read = try await ledger.events(runId: run.id, afterId: 0, limit: 10)
        #expect(read.map(\.id) == [1, 2])
        #expect(read.map { var event = $0; event.id = nil; return event } == events)
    }

    @Test func eventsAreAppendOnly() async throws {
        let dir = TestDirectory()
        let ledger = try SQLiteLedger(path: dir.file("ledger.sqlite"))
        _ = try await ledger.createRun(sampleRun(), jobs: [])
        ledger.postEvent(LedgerEvent(runId: sampleRun().id, at: Date(), kind: "x", message: "y"))
        try await ledger.flush()
        #expect(throws: (any Error).self) {
            try ledger.queue.write { try $0.execute(sql: "UPDATE events SET message = 'changed'") }
        }
        #expect(throws: (any Error).self) {
            try ledger.queue.write { try $0.execute(sql: "DELETE FROM events") }
        }
    }

    @Test func concurrentWritesAreGroupCommitted() async throws {
        let dir = TestDirectory()
        let ledger = try SQLiteLedger(path: dir.file("ledger.sqlite"))
        let run = sampleRun()
        let jobs = try await ledger.createRun(run, jobs: (0..<200).map {
            JobRecord(runId: run.id, site: "s\($0)", product: "p", wave: 0, priority: 0, productOrder: 0, destination: "/d/\($0)")
        })
        try await withThrowingTaskGroup(of: Void.self) { group in
            for var job in jobs {
                group.addTask {
                    job.state = .succeeded
                    try await ledger.updateJob(job, from: .pending)
                }
            }
            try await group.waitForAll()
        }
        // Reopening sees every awaited write.
        let reopened = try SQLiteLedger(path: dir.file("ledger.sqlite"))
        #expect(try await reopened.jobs(runId: run.id).allSatisfy { $0.state == .succeeded })
    }

    @Test func oneBadWriteDoesNotSinkItsBatch() async throws {
        let dir = TestDirectory()
        let ledger = try SQLiteLedger(path: dir.file("ledger.sqlite"))
        let run = sampleRun()
        let jobs = try await ledger.createRun(run, jobs: [
            JobRecord(runId: run.id, site: "a", product: "p", wave: 0, priority: 0, productOrder: 0, destination: "/d/a")])
        var ghost = jobs[0]
        ghost.id = 999 // no such row: update fails
        var goodJob = jobs[0]
        goodJob.state = .succeeded
        let good = goodJob
        let badJob = ghost
        let results = await withTaskGroup(of: (String, Bool).self) { group in
            group.addTask { (try? await ledger.updateJob(badJob, from: .pending)) == nil ? ("ghost", false) : ("ghost", true) }
            group.addTask { (try? await ledger.updateJob(good, from: .pending)) == nil ? ("good", false) : ("good", true) }
            var results: [String: Bool] = [:]
            for await (name, ok) in group { results[name] = ok }
            return results
        }
        #expect(results == ["ghost": false, "good": true])
        #expect(try await ledger.jobs(runId: run.id)[0].state == .succeeded)
    }
}
