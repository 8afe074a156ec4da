import Foundation
import Testing
@testable import LifeboatKit

/// The job state machine, without I/O: every event from every state, then what each transition
/// records and computes.
@Suite struct JobLifecycleTests {
    static let t0 = Timestamp.parse("2026-11-25T10:00:00Z")!
    static let timing = RunTiming(declaredAt: t0, rtoObjectiveSeconds: 60)

    /// One of each event, and where it goes from each state it may happen in (absent: illegal).
    static let table: [(event: JobEvent, to: [JobState: JobState])] = {
        let active: [JobState] = [.restoring, .verifying, .committing]
        let notFinal: [JobState] = [.pending, .waiting] + active
        func from(_ states: [JobState], to target: JobState) -> [JobState: JobState] {
            Dictionary(uniqueKeysWithValues: states.map { ($0, target) })
        }
        func same(_ states: [JobState]) -> [JobState: JobState] {
            Dictionary(uniqueKeysWithValues: states.map { ($0, $0) })
        }
        return [
            (.queued(at: t0), [.pending: .waiting]),
            (.started(at: t0, host: "h1"), from(notFinal, to: .restoring)),
            (.reserved(stagingPath: "/d/.lifeboat-staging/x"), [.restoring: .restoring]),
            (.staged(identity: "1:2"), same(active)),
            (.verifying, [.restoring: .verifying]),
            (.committing, from(active, to: .committing)),
            (.quarantined(path: "/d/.lifeboat-quarantine/x"), same(active)),
            (.finished(JobResult(bytes: 10, entries: 2), at: t0.addingTimeInterval(30), timing: timing), from(active, to: .succeeded)),
            (.attemptFailed(message: "EIO", backoff: "5s"), same(active)),
            (.failed(code: .io, message: "EIO", at: t0), from(notFinal, to: .failed)),
            (.cancelled(by: "uid 0", at: t0), from(notFinal, to: .cancelled)),
            // A committing job's commit may have happened: it is left for the next start to find out.
            (.interrupted(at: t0), from(notFinal.filter { $0 != .committing }, to: .pending).merging([.committing: .committing]) { $1 }),
            (.skipped(dependency: "contacts of acme failed", at: t0), from([.pending, .waiting], to: .skipped)),
            (.retried(Self.timing), from([.failed, .cancelled, .skipped], to: .pending)),
            (.recoveredCommitted(quarantinePath: nil, treeDigest: "d", measured: nil, at: t0, timing: timing), from(active, to: .succeeded)),
            (.recoveredRestart, from(active, to: .pending)),
        ]
    }()

    static func job(in state: JobState) -> JobRecord {
        var job = JobRecord(runId: "r", site: "acme", product: "jira", wave: 0, priority: 0, productOrder: 0, destination: "/d/acme/jira")
        job.id = 7
        job.state = state
        job.attempt = state == .pending || state == .waiting ? 0 : 1
        return job
    }

    @Test(arguments: JobState.allCases)
    func everyEventFromEveryState(_ state: JobState) throws {
        for (event, to) in Self.table {
            if let expected = to[state] {
                let transition = try JobLifecycle.apply(event, to: Self.job(in: state))
                #expect(transition.job.state == expected, "\(event.name) from \(state)")
                #expect(transition.previous == state, "\(event.name) from \(state)")
            } else {
                #expect(throws: IllegalJobTransition.self, "\(event.name) from \(state) must be refused") {
                    try JobLifecycle.apply(event, to: Self.job(in: state))
                }
            }
        }
    }

    @Test func theTableCoversEveryEvent() {
        let names = Set(Self.table.map(\.event.name))
        #expect(names.count == Self.table.count)
        #expect(names.count == 16)
    }

    /// What must be durable before the job goes on (DESIGN "One job": the staging directory
    /// before it is made, the commit record before the rename, every end) is never only queued.
    @Test func crashSafetyRecordsAreDurable() throws {
        let durable: [(JobEvent, JobState)] = [
            (.reserved(stagingPath: "/s"), .restoring), (.committing, .verifying), (.quarantined(path: "/q"), .committing),
            (.finished(JobResult(), at: Self.t0, timing: Self.timing), .committing), (.failed(code: .io, message: "x", at: Self.t0), .restoring),
            (.cancelled(by: "op", at: Self.t0), .waiting), (.interrupted(at: Self.t0), .restoring), (.retried(Self.timing), .failed),
            (.recoveredRestart, .committing),
        ]
        for (event, state) in durable {
            #expect(try JobLifecycle.apply(event, to: Self.job(in: state)).write == .durable, "\(event.name)")
        }
        #expect(try JobLifecycle.apply(.started(at: Self.t0, host: nil), to: Self.job(in: .waiting)).write == .queued)
        #expect(try JobLifecycle.apply(.attemptFailed(message: "x", backoff: "1s"), to: Self.job(in: .restoring)).write == .none)
        // Interrupting a job that never left pending changes nothing, so writes nothing.
        #expect(try JobLifecycle.apply(.interrupted(at: Self.t0), to: Self.job(in: .pending)).write == .none)
    }

    @Test func anAttemptStartsClean() throws {
        var failed = Self.job(in: .restoring)
        failed.error = "EIO"
        failed.errorCode = "io"
        failed.stagingPath = "/s"
        failed.commitIdentity = "1:2"
        failed.finishedAt = Self.t0
        let started = try JobLifecycle.apply(.started(at: Self.t0.addingTimeInterval(5), host: "h2"), to: failed).job
        #expect(started.attempt == 2 && started.host == "h2" && started.startedAt == Self.t0.addingTimeInterval(5))
        #expect(started.error == nil && started.errorCode == nil && started.stagingPath == nil && started.commitIdentity == nil && started.finishedAt == nil)
    }

    /// A job retried after its post_restore failed keeps what it committed (post_restore runs
    /// again on it); one that failed before its commit starts from nothing.
    @Test func aRetryKeepsTheCommitOfAJobThatCommitted() throws {
        var committed = Self.job(in: .failed)
        committed.commitIdentity = "1:2"
        committed.rtoSeconds = 60
        let again = try JobLifecycle.apply(.retried(Self.timing), to: committed).job
        #expect(again.commitIdentity == "1:2" && again.rtoSeconds == nil)
        #expect(try JobLifecycle.apply(.started(at: Self.t0, host: nil), to: again).job.commitIdentity == "1:2")
        var refused = Self.job(in: .failed)
        refused.commitIdentity = "1:3"  // staged, then failed its checks
        #expect(try JobLifecycle.apply(.retried(Self.timing), to: refused).job.commitIdentity == nil)
    }

    /// A job that ended without its snapshot restored recovered nothing: it misses the RPO
    /// objective whatever its snapshot's age, as the run's verdict says; a retry gives the
    /// snapshot's own verdict back, to hold once it is restored. One that failed after its
    /// commit (post_restore) restored its data: its RPO stands.
    @Test func aJobNotRestoredMissesTheRPOObjective() throws {
        let timing = RunTiming(declaredAt: Self.t0, rtoObjectiveSeconds: 60, rpoObjectiveSeconds: 86_400)
        var job = Self.job(in: .restoring)
        job.rpoSeconds = 3_600
        job.rpoMet = true
        let failed = try JobLifecycle.apply(.failed(code: .integrity, message: "bad", at: Self.t0), to: job).job
        #expect(failed.rpoMet == false && failed.rtoMet == nil)
        #expect(try JobLifecycle.apply(.retried(timing), to: failed).job.rpoMet == true)
        #expect(try JobLifecycle.apply(.cancelled(by: "uid 0", at: Self.t0), to: job).job.rpoMet == false)
        var waiting = Self.job(in: .waiting)
        waiting.rpoSeconds = 3_600
        waiting.rpoMet = true
        #expect(try JobLifecycle.apply(.skipped(dependency: "contacts of acme failed", at: Self.t0), to: waiting).job.rpoMet == false)
        // No RPO objective: no verdict either way.
        var free = job
        free.rpoMet = nil
        #expect(try JobLifecycle.apply(.failed(code: .io, message: "x", at: Self.t0), to: free).job.rpoMet == nil)
        // Failed after its commit: restored, measured; its RPO verdict stands.
        var committing = Self.job(in: .committing)
        committing.rpoSeconds = 3_600
        committing.rpoMet = true
        var result = JobResult(bytes: 1, entries: 1)
        result.postRestoreError = "reindex failed"
        let hookFailed = try JobLifecycle.apply(.finished(result, at: Self.t0.addingTimeInterval(30), timing: timing), to: committing).job
        #expect(hookFailed.state == .failed && hookFailed.rpoMet == true && hookFailed.rtoMet == true)
    }

    @Test func finishingMeasuresRTOAgainstTheDeclaration() throws {
        var result = JobResult(bytes: 1_000, entries: 3, archiveBytes: 400, skippedEntries: 1, hookOutput: "ok")
        result.treeDigest = "sha256:x"
        let committing = { () -> JobRecord in
            var job = Self.job(in: .committing)
            job.stagingPath = "/s"
            job.quarantinePath = "/q"
            return job
        }()
        let ok = try JobLifecycle.apply(.finished(result, at: Self.t0.addingTimeInterval(45), timing: Self.timing), to: committing)
        #expect(ok.job.state == .succeeded && ok.job.rtoSeconds == 45 && ok.job.rtoMet == true)
        #expect(ok.job.bytes == 1_000 && ok.job.entries == 3 && ok.job.archiveBytes == 400 && ok.job.skippedEntries == 1)
        #expect(ok.job.treeDigest == "sha256:x" && ok.job.hookOutput == "ok" && ok.job.stagingPath == nil && ok.job.quarantinePath == "/q")
        #expect(ok.event?.kind == "job.succeeded" && ok.event?.message.hasPrefix("acme/jira: succeeded") == true && ok.publish)
        let late = try JobLifecycle.apply(.finished(result, at: Self.t0.addingTimeInterval(61), timing: Self.timing), to: committing)
        #expect(late.job.rtoMet == false)
        let noObjective = try JobLifecycle.apply(.finished(result, at: Self.t0, timing: RunTiming(declaredAt: Self.t0, rtoObjectiveSeconds: nil)), to: committing)
        #expect(noObjective.job.rtoMet == nil && noObjective.job.rtoSeconds == 0)
        // post_restore failed after the commit: the job fails (code hook), the data stays.
        result.postRestoreError = "post_restore exited 3"
        let hook = try JobLifecycle.apply(.finished(result, at: Self.t0, timing: Self.timing), to: committing)
        #expect(hook.job.state == .failed && hook.job.errorCode == "hook" && hook.job.error == "post_restore exited 3")
        #expect(hook.event?.kind == "job.failed" && hook.log?.level == .error)
    }

    @Test func endsSayWhy() throws {
        let before = try JobLifecycle.apply(.cancelled(by: "uid 1000", at: Self.t0), to: Self.job(in: .waiting)).job
        #expect(before.error == "cancelled by uid 1000 before it started" && before.errorCode == "cancelled" && before.finishedAt == Self.t0)
        let during = try JobLifecycle.apply(.cancelled(by: "uid 1000", at: Self.t0), to: Self.job(in: .verifying)).job
        #expect(during.error == "cancelled by uid 1000")
        let interrupted = try JobLifecycle.apply(.interrupted(at: Self.t0), to: Self.job(in: .verifying))
        #expect(interrupted.job.error == "interrupted by shutdown" && interrupted.event?.kind == "job.pending")
        let committing = try JobLifecycle.apply(.interrupted(at: Self.t0), to: Self.job(in: .committing))
        #expect(committing.job.state == .committing && committing.write == .none && committing.event == nil)
        let requeued = try JobLifecycle.apply(.interrupted(at: Self.t0), to: Self.job(in: .waiting))
        #expect(requeued.job.error == nil && requeued.event == nil)
        let skipped = try JobLifecycle.apply(.skipped(dependency: "contacts of acme failed", at: Self.t0), to: Self.job(in: .waiting))
        #expect(skipped.job.error == "skipped: dependency contacts of acme failed" && skipped.job.errorCode == "dependency")
        #expect(skipped.event?.message == "acme/jira: skipped: dependency contacts of acme failed")
        let retry = try JobLifecycle.apply(.attemptFailed(message: "EIO", backoff: "5s"), to: Self.job(in: .restoring))
        #expect(retry.event?.kind == "job.retry" && retry.event?.message == "acme/jira attempt 1 failed (EIO); retrying in 5s")
    }

    @Test func recoveryKeepsWhatWasRecorded() throws {
        var found = Self.job(in: .committing)
        found.treeDigest = "recorded"
        found.quarantinePath = "/q/old"
        found.stagingPath = "/s"
        let committed = try JobLifecycle.apply(.recoveredCommitted(quarantinePath: nil, treeDigest: nil, measured: nil, at: Self.t0.addingTimeInterval(10), timing: Self.timing), to: found)
        #expect(committed.job.treeDigest == "recorded" && committed.job.quarantinePath == "/q/old" && committed.job.stagingPath == nil)
        // A digest measured now is what the runner decided to record (a delete's tree in quarantine,
        // in place of what its confirmation covered).
        let measured = try JobLifecycle.apply(.recoveredCommitted(quarantinePath: nil, treeDigest: "measured", measured: nil, at: Self.t0.addingTimeInterval(10), timing: Self.timing), to: found)
        #expect(measured.job.treeDigest == "measured")
        #expect(committed.job.rtoSeconds == 10 && committed.event?.kind == "job.recovered")
        let restart = try JobLifecycle.apply(.recoveredRestart, to: found)
        #expect(restart.job.stagingPath == nil && restart.job.commitIdentity == nil && restart.event?.kind == "job.restart")
        let retried = { () -> JobRecord in
            var job = Self.job(in: .failed)
            job.error = "EIO"
            job.errorCode = "io"
            job.finishedAt = Self.t0
            return job
        }()
        let again = try JobLifecycle.apply(.retried(Self.timing), to: retried).job
        #expect(again.state == .pending && again.error == nil && again.errorCode == nil && again.finishedAt == nil)
    }
}
