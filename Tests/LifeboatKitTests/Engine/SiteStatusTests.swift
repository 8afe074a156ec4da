import Foundation
import Testing
@testable import LifeboatKit

/// Per-site status as support reads it: waiting, restoring, restored, failed; products done;
/// restored-at or an ETA from the run's pace.
@Suite struct SiteStatusTests {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    func run(state: RunState = .running) -> RunRecord {
        var run = RunRecord(id: "r1", plan: "p", planPath: nil, mode: .restore, state: state, declaredAt: t0, incidentAt: t0, asOf: t0,
                            createdAt: t0, startedBy: "test", rtoObjectiveSeconds: 3_600, rpoObjectiveSeconds: nil, totalWaves: 1)
        run.startedAt = t0
        return run
    }

    func job(_ id: Int64, _ site: String, _ product: String, _ state: JobState, order: Int, finished: Double? = nil, error: String? = nil) -> JobRecord {
        var job = JobRecord(runId: "r1", site: site, product: product, wave: 0, priority: 0, productOrder: order, destination: "/x/\(site)/\(product)")
        job.id = id
        job.state = state
        job.finishedAt = finished.map { t0.addingTimeInterval($0) }
        job.error = error
        return job
    }

    @Test func everyStateAndWhenWithProductsDone() throws {
        let jobs = [
            job(1, "acme", "contacts", .succeeded, order: 0, finished: 10), job(2, "acme", "jira", .succeeded, order: 1, finished: 20),
            job(3, "globex", "contacts", .succeeded, order: 0, finished: 15), job(4, "globex", "jira", .failed, order: 1, finished: 30, error: "verify.command rejected"),
            job(5, "initech", "contacts", .failed, order: 0, finished: 12, error: "no snapshot"), job(6, "initech", "jira", .skipped, order: 1, finished: 12),
            job(7, "hooli", "contacts", .succeeded, order: 0, finished: 25), job(8, "hooli", "jira", .restoring, order: 1),
            job(9, "stark", "contacts", .waiting, order: 0), job(10, "stark", "jira", .pending, order: 1),
        ]
        // 40 s in, 7 jobs ended: 5.7 s per job.
        let sites = Dictionary(uniqueKeysWithValues: SiteStatus.all(run: run(), jobs: jobs, now: t0.addingTimeInterval(40)).map { ($0.site, $0) })
        #expect(sites["acme"]?.state == .restored)
        #expect(sites["acme"]?.restoredAt == t0.addingTimeInterval(20))
        #expect(sites["acme"]?.productsDone == 2 && sites["acme"]?.productsTotal == 2)
        #expect(sites["globex"]?.state == .failed)
        #expect(sites["globex"]?.productsDone == 1 && sites["globex"]?.restoredAt == nil)
        #expect(sites["globex"]?.failures.map(\.product) == ["jira"])
        #expect(sites["globex"]?.failures.first?.error == "verify.command rejected")
        #expect(sites["initech"]?.state == .failed && sites["initech"]?.productsDone == 0)
        #expect(sites["initech"]?.failures.map(\.state) == [.failed, .skipped])
        #expect(sites["hooli"]?.state == .restoring && sites["hooli"]?.productsDone == 1)
        #expect(sites["stark"]?.state == .waiting)
        // ETAs follow the queue: hooli's jira is at work (1st), stark's jira is 3rd.
        let pace = 40.0 / 7
        let hooliETA = try #require(sites["hooli"]?.eta)
        let starkETA = try #require(sites["stark"]?.eta)
        #expect(abs(hooliETA.timeIntervalSince(t0) - (40 + pace)) < 0.01)
        #expect(abs(starkETA.timeIntervalSince(t0) - (40 + 3 * pace)) < 0.01)
        #expect(sites["acme"]?.eta == nil && sites["globex"]?.eta == nil)

        let report = SiteReport(run: run(), jobs: jobs, now: t0.addingTimeInterval(40))
        #expect(report.counts == ["waiting": 1, "restoring": 1, "restored": 1, "failed": 2])
    }

    @Test func noETABeforeAnyJobEndedOrWhileHalted() {
        let jobs = [job(1, "acme", "contacts", .restoring, order: 0), job(2, "acme", "jira", .waiting, order: 1)]
        #expect(SiteStatus.all(run: run(), jobs: jobs, now: t0.addingTimeInterval(5)).first?.eta == nil)
        let some = [job(1, "acme", "contacts", .succeeded, order: 0, finished: 3), job(2, "acme", "jira", .waiting, order: 1)]
        #expect(SiteStatus.all(run: run(state: .halted), jobs: some, now: t0.addingTimeInterval(5)).first?.eta == nil)
        #expect(SiteStatus.all(run: run(), jobs: some, now: t0.addingTimeInterval(5)).first?.eta != nil)
    }

    /// `site.restored` / `site.failed`: once per site, when its last product ends; a site that
    /// ended before this daemon started is not announced again at the run's end.
    @Test func notifierAnnouncesEachSiteOnceWhenItsLastProductEnds() async {
        var notifier = SiteNotifier(since: t0.addingTimeInterval(5))
        var ledger = [job(1, "acme", "contacts", .waiting, order: 0), job(2, "acme", "jira", .waiting, order: 1),
                      job(3, "globex", "contacts", .waiting, order: 0), job(4, "globex", "jira", .waiting, order: 1),
                      job(5, "old", "contacts", .succeeded, order: 0, finished: 1)]
        func event(_ job: JobRecord) -> RunEvent { RunEvent(kind: .job, runId: "r1", at: job.finishedAt ?? t0, job: job) }
        var names: [String] = []
        for update in [job(1, "acme", "contacts", .succeeded, order: 0, finished: 10), job(3, "globex", "contacts", .failed, order: 0, finished: 11),
                       job(2, "acme", "jira", .succeeded, order: 1, finished: 12), job(2, "acme", "jira", .succeeded, order: 1, finished: 12)] {
            let snapshot = ledger
            names += await notifier.observe(event(update), load: { _ in snapshot }).map { "\($0.name) \($0.site.site)" }
            ledger = ledger.map { $0.id == update.id ? update : $0 }
        }
        #expect(names == ["site.restored acme"])
        // globex's jira is skipped, and the bus dropped that event: the run's end finds it.
        ledger = ledger.map { $0.id == 4 ? job(4, "globex", "jira", .skipped, order: 1, finished: 11) : $0 }
        var finished = run(state: .failed)
        finished.finishedAt = t0.addingTimeInterval(13)
        let snapshot = ledger
        let atEnd = await notifier.observe(RunEvent(kind: .finished, runId: "r1", at: t0.addingTimeInterval(13), run: finished), load: { _ in snapshot })
        #expect(atEnd.map { "\($0.name) \($0.site.site)" } == ["site.failed globex"])
    }
}
