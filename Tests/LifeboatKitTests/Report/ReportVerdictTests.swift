import Foundation
import Testing
@testable import LifeboatKit

/// The first thing the page says must be right.
@Suite struct ReportVerdictTests {
    @Test func everythingRestoredInTimeIsOK() {
        let run = ReportFixtures.run()
        let jobs = [ReportFixtures.job(run, "acme", "jira", start: 60, end: 600)]
        let verdict = ReportVerdict(run: run, jobs: jobs, now: run.finishedAt!)
        #expect(verdict.status == .ok && verdict.rto == .met && verdict.rpo == .met)
        #expect(verdict.title == "RECOVERED: OBJECTIVES MET")
        #expect(verdict.headline == "all 1 jobs restored · RTO 4h met · RPO 1d met")
    }

    /// A site not restored was recovered neither within the RTO nor with a bounded data loss:
    /// both objectives are missed, said with that cause, even when every chosen snapshot was recent.
    @Test func aFailedJobMeansBothObjectivesWereMissedForThatSite() {
        let run = ReportFixtures.run(state: .failed)
        let jobs = [ReportFixtures.job(run, "acme", "jira", start: 60, end: 600),
                    ReportFixtures.job(run, "globex", "jira", state: .failed, start: 60, end: 90, error: "boom")]
        let verdict = ReportVerdict(run: run, jobs: jobs, now: run.finishedAt!)
        #expect(verdict.status == .attention && verdict.rto == .missed && verdict.rpo == .missed && verdict.notRestored == 1)
        #expect(verdict.headline == "1 of 2 jobs not restored · RTO 4h missed · RPO 1d missed")
        #expect(verdict.rpoText == "MISSED (1 not restored)" && verdict.rpoMissed == 0)
        // Its snapshot's RPO is not one of the run's figures: nothing of it was recovered.
        #expect(RunSummary(run: run, jobs: jobs).overall.rpo.count == 1)
    }

    @Test func aRunStillGoingIsPendingUntilItsDeadlinePasses() {
        let run = ReportFixtures.run(state: .running, rto: 3_600)
        let jobs = [ReportFixtures.job(run, "acme", "jira", state: .restoring, start: 60, end: nil)]
        #expect(ReportVerdict(run: run, jobs: jobs, now: run.declaredAt.addingTimeInterval(600)).rto == .pending)
        let late = ReportVerdict(run: run, jobs: jobs, now: run.declaredAt.addingTimeInterval(4_000))
        #expect(late.rto == .missed && late.status == .inProgress)
    }

    @Test func aHaltedRunAsksForAttention() {
        let run = ReportFixtures.run(state: .halted)
        let verdict = ReportVerdict(run: run, jobs: [], now: run.declaredAt)
        #expect(verdict.status == .attention && verdict.title == "HALTED AT A WAVE GATE")
    }

    @Test func noObjectivesMeansNone() {
        let run = ReportFixtures.run(rto: nil, rpo: nil)
        let verdict = ReportVerdict(run: run, jobs: [ReportFixtures.job(run, "acme", "jira", start: 60, end: 600)], now: run.finishedAt!)
        #expect(verdict.rto == .none && verdict.rpo == .none && verdict.status == .ok)
        #expect(verdict.headline == "all 1 jobs restored")
    }
}
