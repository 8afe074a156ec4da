import Foundation
import Testing
@testable import LifeboatKit

/// Thousands of jobs: every one still gets its bar, the chart's height follows concurrency, and
/// the page stays a reasonable size.
@Suite struct ReportScaleTests {
    @Test func tenThousandJobsStayUsable() throws {
        let (run, jobs) = ReportFixtures.large(jobs: 10_000, concurrency: 8)
        let clock = ContinuousClock()
        var html = ""
        let elapsed = try clock.measure { html = try RunReport(run: run, jobs: jobs, events: [], generatedAt: run.finishedAt!).render(.html) }
        #expect(html.occurrences(of: "<rect class=\"job ") == 10_000)
        let layout = TimelineLayout(RunReport(run: run, jobs: jobs, events: [], generatedAt: run.finishedAt!).document)
        #expect(!layout.rowPerJob)
        #expect(layout.waves.map(\.rows).allSatisfy { $0 <= 8 })
        let megabytes = Double(html.utf8.count) / 1_048_576
        #expect(megabytes < 3, "HTML is \(megabytes) MiB")
        // Above the limit the job table keeps the jobs that need attention (the 11 failures).
        #expect(html.contains("listed here are the 11 that were not restored or missed an objective"))
        #expect(elapsed < .seconds(60), "rendering 10,000 jobs took \(elapsed): something grew worse than linear")
        for format in [ReportFormat.md, .json] {
            _ = try RunReport(run: run, jobs: jobs, events: [], generatedAt: run.finishedAt!).render(format)
        }
    }
}
