import Foundation
import Testing
@testable import LifeboatKit

/// How a group-commit batch of the PostgreSQL ledger is written (no database: the plan only).
/// A run of many jobs waits for round trips on the one commit lane, so the hot writes are
/// gathered — but only where that gives the outcome of writing them one by one.
@Suite struct PostgresBatchTests {
    static let t0 = Timestamp.parse("2026-11-25T10:00:00Z")!

    static func claim(_ id: Int64, token: Int64 = 1) -> JobClaim {
        var job = JobRecord(runId: "r", site: "s\(id)", product: "p", wave: 0, priority: 0, productOrder: 0, destination: "/d/\(id)")
        job.id = id
        return JobClaim(jobId: id, runId: "r", host: "a", token: token, expiresAt: t0, job: job)
    }

    /// A claimed job's record from `previous` to `state`.
    static func record(_ id: Int64, _ previous: JobState, _ state: JobState, lease: TimeInterval = 0, token: Int64 = 1) -> PostgresWrite {
        let claim = claim(id, token: token)
        var job = claim.job
        job.state = state
        return .job(FencedJobWrite(job: job, previous: previous, claim: claim, minimumLease: lease))
    }

    static func event(_ kind: String) -> PostgresWrite {
        .event(PostedEvent(event: LedgerEvent(runId: "r", at: t0, kind: kind, message: ""), key: kind))
    }

    /// The steps in words: `record[1:pending>verifying+10, 2:…]` (`+events[a,b]` and
    /// `+releases[1]` when they go in the same call), `statements`; then `events[a,b]@2,4` when
    /// the events are written after the steps, in a call of their own (with their places).
    static func plan(_ writes: [PostgresWrite], refill: (JobClaim) -> ClaimRequest? = { _ in nil }) -> [String] {
        let batch = PostgresBatch(writes, refill: refill)
        let after = batch.events.isEmpty ? [] : ["events[" + batch.events.map(\.event.kind).joined(separator: ",") + "]@"
                                                 + batch.eventIndices.map(String.init).joined(separator: ",")]
        return batch.steps.map { step in
            switch step {
            case .record(let call):
                "record[" + call.jobs.map { "\($0.claim.jobId):\($0.previous.rawValue)>\($0.job.state.rawValue)+\(Int($0.minimumLease))" }
                    .joined(separator: ", ") + "]"
                    + (call.events.isEmpty ? "" : "+events[" + call.events.map(\.event.kind).joined(separator: ",") + "]")
                    + (call.releases.isEmpty ? "" : "+releases[" + call.releases.map { "\($0.jobId)" }.joined(separator: ", ") + "]")
                    + (call.refill.map { "+claim[\($0.runId)×\($0.max)]" } ?? "")
            case .statements: "statements"
            }
        } + after
    }

    @Test func theEnginesBatchIsOneCall() {
        // Several jobs at different points of their lives, as the commit lane sees them.
        #expect(Self.plan([
            Self.record(1, .pending, .restoring),
            Self.record(2, .restoring, .restoring),
            Self.event("job.succeeded"),
            Self.record(1, .restoring, .verifying),
            .release(Self.claim(3)),
            Self.record(4, .committing, .succeeded),
            Self.event("job.failed"),
        ]) == ["record[1:pending>verifying+0, 2:restoring>restoring+0, 4:committing>succeeded+0]+events[job.succeeded,job.failed]+releases[3]"])
    }

    @Test func aJobsRecordsFoldIntoOneWithTheLargestMargin() {
        // Queued records followed by the commit record, which needs lease to spare.
        #expect(Self.plan([
            Self.record(1, .restoring, .restoring),
            Self.record(1, .restoring, .verifying),
            Self.record(1, .verifying, .committing, lease: 10),
            Self.record(1, .committing, .succeeded),
        ]) == ["record[1:restoring>succeeded+10]"])
    }

    @Test func recordsThatDoNotContinueEachOtherAreNotFolded() {
        // From a state the record before did not leave it in: it would be refused after it.
        #expect(Self.plan([Self.record(1, .pending, .restoring), Self.record(1, .pending, .verifying)])
                == ["record[1:pending>restoring+0]", "record[1:pending>verifying+0]"])
        // Under another claim (a takeover's token).
        #expect(Self.plan([Self.record(1, .pending, .restoring), Self.record(1, .restoring, .verifying, token: 2)])
                == ["record[1:pending>restoring+0]", "record[1:restoring>verifying+0]"])
    }

    @Test func aClaimGivenBackGoesAfterItsRecordsAndBeforeLaterOnes() {
        #expect(Self.plan([
            Self.record(1, .committing, .succeeded),
            .release(Self.claim(1)),
            Self.record(2, .pending, .restoring),
            Self.record(1, .succeeded, .succeeded),
        ]) == ["record[1:committing>succeeded+0, 2:pending>restoring+0]+releases[1]", "record[1:succeeded>succeeded+0]"])
    }

    /// The slots that claims given back free are claimed again in the same call: of one run, as
    /// one claim for all of them; a slot of another run (or under other rules) is left to the
    /// worker, and so is one the worker does not want refilled.
    @Test func slotsGivenBackAreClaimedAgainInTheirCall() {
        func claim(_ id: Int64, run: String) -> JobClaim {
            var claim = Self.claim(id)
            claim.runId = run
            return claim
        }
        let rules = ClaimRules(runConcurrency: 8)
        func refill(_ released: JobClaim) -> ClaimRequest? {
            guard released.jobId != 4 else { return nil }
            return ClaimRequest(runId: released.runId, host: released.host,
                                rules: released.jobId == 5 ? ClaimRules(runConcurrency: 2) : rules, max: 1, lease: 30)
        }
        #expect(Self.plan([
            Self.record(1, .committing, .succeeded),
            .release(claim(1, run: "r")),
            .release(claim(2, run: "other")),
            .release(claim(3, run: "r")),
            .release(claim(4, run: "r")),
            .release(claim(5, run: "r")),
        ], refill: refill) == ["record[1:committing>succeeded+0]+releases[1, 2, 3, 4, 5]+claim[r×2]"])
        // A call split by a closure claims in each part.
        #expect(Self.plan([.release(claim(1, run: "r")), .statements { _ in }, .release(claim(2, run: "r"))], refill: refill)
                == ["record[]+releases[1]+claim[r×1]", "statements", "record[]+releases[2]+claim[r×1]"])
        #expect(Self.plan([.release(claim(1, run: "r"))]) == ["record[]+releases[1]"])
    }

    @Test func aClosureIsWrittenInItsTurn() {
        #expect(Self.plan([
            Self.record(1, .pending, .restoring),
            Self.event("before"),
            .statements { _ in },
            Self.record(1, .restoring, .verifying),
            Self.event("after"),
        ]) == ["record[1:pending>restoring+0]", "statements", "record[1:restoring>verifying+0]", "events[before,after]@1,4"])
        // Events are written after the transaction of several steps, in a call of their own; in
        // the one call of a batch of one, or alone.
        #expect(Self.plan([Self.record(1, .pending, .restoring), Self.event("only"), .statements { _ in }])
                == ["record[1:pending>restoring+0]", "statements", "events[only]@1"])
        #expect(Self.plan([Self.event("a"), .statements { _ in }, Self.event("b")]) == ["statements", "events[a,b]@0,2"])
        #expect(Self.plan([Self.event("a"), Self.record(1, .pending, .restoring)]) == ["record[1:pending>restoring+0]+events[a]"])
        #expect(Self.plan([Self.event("a"), Self.event("b")]) == ["record[]+events[a,b]"])
    }
}
