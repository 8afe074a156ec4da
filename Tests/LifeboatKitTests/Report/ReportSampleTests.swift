import Foundation
import Testing
@testable import LifeboatKit

/// Writes sample reports for a person to look at (and screenshot) when
/// `LIFEBOAT_REPORT_SAMPLE_DIR` is set; otherwise does nothing.
@Suite struct ReportSampleTests {
    static let directory = ProcessInfo.processInfo.environment["LIFEBOAT_REPORT_SAMPLE_DIR"]

    @Test(.enabled(if: directory != nil))
    func writeSampleReports() throws {
        let dir = try #require(Self.directory)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let restore = ReportFixtures.sample()
        let exercise = ReportFixtures.sample(mode: .exercise)
        let reports = [
            ("report", RunReport(run: restore.run, jobs: restore.jobs, events: restore.events, generatedAt: restore.run.finishedAt!)),
            ("exercise", RunReport(run: exercise.run, jobs: exercise.jobs, events: exercise.events,
                                   previous: ReportFixtures.previousExercises(), generatedAt: exercise.run.finishedAt!)),
        ]
        let large = ReportFixtures.large(jobs: 10_000, concurrency: 8)
        try RunReport(run: large.0, jobs: large.1, events: [], generatedAt: large.0.finishedAt!).render(.html)
            .write(toFile: "\(dir)/large.html", atomically: true, encoding: .utf8)
        for (name, report) in reports {
            for format in ReportFormat.allCases {
                try report.render(format).write(toFile: "\(dir)/\(name).\(format.fileExtension)", atomically: true, encoding: .utf8)
            }
        }
    }
}
