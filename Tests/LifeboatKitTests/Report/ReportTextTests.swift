import Foundation
import Testing
@testable import LifeboatKit

/// Short names and human ticks.
@Suite struct ReportTextTests {
    private func job(_ site: String, _ path: String) -> ReportDocument.Job {
        let run = ReportFixtures.run()
        var job = ReportFixtures.job(run, site, "jira", start: 60, end: 600)
        job.snapshotPath = path
        return ReportDocument.Job(job)
    }

    @Test func snapshotRootIsTheStoreAboveSiteAndProduct() {
        #expect(ReportText.snapshotRoot([job("acme", "/s/acme/jira/x.tar.gz")]) == "/s")
        #expect(ReportText.snapshotRoot([job("acme", "/s/acme/jira/x.tar.gz"), job("b", "/s/b/jira/y.tar.gz")]) == "/s")
        #expect(ReportText.snapshotRoot([job("acme", "/a/b/acme/jira/x.tar.gz"), job("c", "/a/c.tar.gz")]) == "/a")
        #expect(ReportText.snapshotRoot([job("acme", "/a/acme/jira/x.tar.gz"), job("c", "/b/c/jira/y.tar.gz")]) == nil)
    }

    @Test func axisTicksAreHumanSteps() {
        #expect(TimelineAxis(span: 4.3 * 3_600).ticks == [0, 3_600, 7_200, 10_800, 14_400, 18_000])
        #expect(TimelineAxis(span: 100).ticks.map(TimelineAxis.label) == ["0", "15s", "30s", "45s", "1m", "1m15s", "1m30s", "1m45s"])
        #expect(TimelineAxis(span: 50 * 60).end == 3_000)
    }
}
