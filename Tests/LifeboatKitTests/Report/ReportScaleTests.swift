import Foundation
import Testing
@testable import LifeboatKit

/// Thousands of jobs: every one still gets its bar, the chart's height follows concurrency, and
/// the page stays a reasonable size.
@Suite struct ReportScaleTests {
    @Test func tenThousandJobsStayUsable() throws {
        let run = ReportFixtures.run(rto: 4 * 3_600, waves: 2, duration: 3 * 3_600)
        // 8 jobs at a time, 1 s to 3 s each, in two waves.
        var jobs: [JobRecord] = []
        var lanes = [Double](repeating: 120, count: 8)
        for n in 0..<10_000 {
            let lane = n % 8
            let length = 1 + Double(n % 3)
            let state: JobState = n % 997 == 0 ? .failed : .succeeded
            jobs.append(ReportFixtures.job(run, "site\(n / 2)", n % 2 == 0 ? "jira" : "confluence", wave: n < 100 ? 0 : 1,
                                           order: n % 2, state: state, start: lanes[lane], end: lanes[lane] + length,
                                           bytes: 4 << 20, error: state == .failed ? "checksum mismatch" : nil))
            lanes[lane] += length
        }
        let clock = ContinuousClock()
        var html = ""
        let elapsed = try clock.measure { html = try RunReport(run: run, jobs: jobs, events: [], generatedAt: run.finishedAt!).render(.html) }
        #expect(html.occurrences(of: "<rect class=\"job ") == 10_000)
        let layout = TimelineLayout(RunReport(run: run, jobs: jobs, events: [], generatedAt: run.finishedAt!).document)
        #expect(!layout.rowPerJob)
        #expect(layout.waves.map(\.rows).allSatisfy { $0 <= 8 })
        let megabytes = Double(html.utf8.count) / 1_048_576
        #expect(megabytes < 8, "HTML is \(megabytes) MiB")
        #expect(elapsed < .seconds(20))
        for format in [ReportFormat.md, .json] {
            _ = try RunReport(run: run, jobs: jobs, events: [], generatedAt: run.finishedAt!).render(format)
        }
    }
}
