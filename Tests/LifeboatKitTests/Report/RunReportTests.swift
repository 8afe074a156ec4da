import Foundation
import Testing
@testable import LifeboatKit

/// What every format must say: per-job RPO/RTO with met/missed, the percentiles, the failures.
@Suite struct RunReportTests {
    /// Four jobs with known numbers: one on time, one late, one with a too-old snapshot, one failed.
    static func known() -> (RunRecord, [JobRecord]) {
        let run = ReportFixtures.run(rto: 3_600, rpo: 7_200, duration: 5_400)
        let jobs = [
            ReportFixtures.job(run, "acme", "jira", start: 120, end: 1_500, rpo: 600),
            ReportFixtures.job(run, "globex", "jira", start: 200, end: 5_000, rpo: 900),
            ReportFixtures.job(run, "hooli", "jira", start: 300, end: 2_000, rpo: 9_000),
            ReportFixtures.job(run, "initech", "jira", state: .failed, start: 400, end: 700, rpo: 1_200,
                               error: "checksum mismatch: sidecar says 41ab", code: "integrity"),
        ]
        return (run, jobs)
    }

    @Test(arguments: ReportFormat.allCases)
    func everyFormatShowsPerJobRPOAndRTOWithMetOrMissed(format: ReportFormat) throws {
        let (run, jobs) = Self.known()
        let text = try RunReport(run: run, jobs: jobs, events: [], generatedAt: run.finishedAt!).render(format)
        switch format {
        case .md:
            // Whole table rows, so each number is tied to its job.
            let lines = text.split(separator: "\n")
            func row(_ site: String) -> String { String(lines.first { $0.contains("| \(site) ") && $0.contains("jira") } ?? "") }
            #expect(row("acme").contains("10m met") && row("acme").contains("25m met"))
            #expect(row("globex").contains("1h24m MISSED"))   // RTO 5000 s > 1h (1h23m20s, rounded up)
            #expect(row("hooli").contains("2h30m MISSED"))    // RPO 9000 s > 2h
            #expect(row("initech").contains("FAILED") && row("initech").contains("20m met"))
        case .html:
            #expect(text.contains("10m <span class=\"y\">met</span>"))
            #expect(text.contains("1h24m <span class=\"no\">MISSED</span>"))
            #expect(text.contains("2h30m <span class=\"no\">MISSED</span>"))
        case .json:
            let doc = try RunReport.jsonDecoder.decode(ReportDocument.self, from: Data(text.utf8))
            let globex = try #require(doc.jobs.first { $0.site == "globex" })
            #expect(globex.rtoSeconds == 5_000 && globex.rtoMet == false && globex.rpoSeconds == 900 && globex.rpoMet == true)
            let hooli = try #require(doc.jobs.first { $0.site == "hooli" })
            #expect(hooli.rpoMet == false && hooli.rtoMet == true)
        }
    }

    @Test func percentilesAreNearestRankOverAKnownSet() throws {
        // RTOs of 1…20 minutes: nearest-rank p50 = 10m, p95 = 19m, max = 20m.
        let run = ReportFixtures.run(rto: 3_600, duration: 1_500)
        let jobs = (1...20).map { n in
            ReportFixtures.job(run, "site\(n)", "jira", wave: n > 10 ? 1 : 0, start: 10, end: Double(n) * 60, rpo: Double(n) * 3_600)
        }
        let report = RunReport(run: run, jobs: jobs.shuffled(), events: [], generatedAt: run.finishedAt!)
        let overall = report.document.overall
        #expect(overall.rto.p50 == 600 && overall.rto.p95 == 1_140 && overall.rto.max == 1_200 && overall.rto.count == 20)
        #expect(overall.rpo.p50 == 36_000 && overall.rpo.p95 == 68_400 && overall.rpo.max == 72_000)
        // Per wave: the first ten jobs (1…10 minutes) and the last ten (11…20).
        #expect(report.document.waves.map(\.rto.max) == [600, 1_200])
        #expect(report.document.waves.map(\.rto.p50) == [300, 900])
        let md = try report.render(.md)
        #expect(md.contains("10m / 19m / 20m"))
        #expect(md.contains("10h / 19h / 20h"))
        let html = try report.render(.html)
        #expect(html.contains("10m / 19m / 20m"))
    }

    @Test(arguments: ReportFormat.allCases)
    func failuresAreListedWithTheirReasons(format: ReportFormat) throws {
        let sample = ReportFixtures.sample()
        let text = try RunReport(run: sample.run, jobs: sample.jobs, events: sample.events, generatedAt: sample.run.finishedAt!).render(format)
        for reason in ["checksum mismatch: umbrella/jira", "no snapshot of cyberdyne/contacts", "skipped: dependency contacts of cyberdyne failed"] {
            #expect(text.contains(reason), "\(format) lacks \(reason)")
        }
        switch format {
        case .md:
            #expect(text.contains("## Not restored: 5 jobs"))
            // Failures come before the numbers: a reader sees them first.
            #expect(text.range(of: "## Not restored")!.lowerBound < text.range(of: "## Recovery objectives")!.lowerBound)
        case .html:
            #expect(text.contains("✖ 5 jobs not restored"))
            #expect(text.range(of: "id=\"failures\"")!.lowerBound < text.range(of: "id=\"timeline\"")!.lowerBound)
        case .json:
            let doc = try RunReport.jsonDecoder.decode(ReportDocument.self, from: Data(text.utf8))
            #expect(doc.failures.map(\.state) == [.failed, .failed, .failed, .skipped, .skipped])
            #expect(doc.failures.first { $0.site == "oscorp" }?.reason.contains("name escapes the root") == true)
        }
    }

    @Test func headerNamesThePlanModeStateStarterTimesAndObjectives() throws {
        let sample = ReportFixtures.sample()
        let md = try RunReport(run: sample.run, jobs: sample.jobs, events: sample.events, generatedAt: sample.run.finishedAt!).render(.md)
        for text in ["mass-restore", "plans/mass-restore.yaml", "**mode** restore", "**state** failed", "uid 1000 (pid 4242)",
                     "**Declared** 2026-11-25T10:00:00Z", "**incident** 2026-11-25T09:30:00Z", "**snapshots as of** 2026-11-25T09:30:00Z",
                     "RTO 4h (MISSED)", "RPO 1d (MISSED)"] {
            #expect(md.contains(text), "missing \(text)")
        }
        #expect(md.hasPrefix("# Lifeboat restore report: mass-restore, run 20261125-100000-a3f9\n\n> **ATTENTION: OBJECTIVES MISSED**"))
    }

    @Test func exerciseTrendAppearsWhenPreviousRunsAreGiven() throws {
        let sample = ReportFixtures.sample(mode: .exercise)
        var previous = ReportFixtures.previousExercises()
        // Another plan's run and the run itself are not part of the trend.
        previous.append(PreviousRun(run: ReportFixtures.run(id: "other", plan: "other-plan", mode: .exercise), jobs: []))
        previous.append(PreviousRun(run: sample.run, jobs: sample.jobs))
        // Nor is a later exercise: the trend looks back.
        previous.append(PreviousRun(run: ReportFixtures.run(id: "later", mode: .exercise,
                                                            declaredAt: sample.run.declaredAt.addingTimeInterval(86_400)), jobs: []))
        let report = RunReport(run: sample.run, jobs: sample.jobs, events: [], previous: previous, generatedAt: sample.run.finishedAt!)
        #expect(report.document.trend.map(\.runId) == [sample.run.id] + ReportFixtures.previousExercises().map(\.run.id))
        #expect(report.document.trend.map(\.sites) == [14, 8, 4, 2])
        #expect(report.document.trend[2].successRate == 0.75)

        let md = try report.render(.md)
        #expect(md.contains("## Trend against previous exercises of mass-restore"))
        #expect(md.contains("\(sample.run.id) (this run)"))
        #expect(!md.contains("other-plan"))
        let html = try report.render(.html)
        #expect(html.contains("Trend against previous exercises"))
        #expect(html.contains("success rate 100% → 88.1%"))
        #expect(html.contains("RTO p95 52m → ")) // the newest previous exercise's p95 (3120 s), then this run's

        let without = RunReport(run: sample.run, jobs: sample.jobs, events: [], generatedAt: sample.run.finishedAt!)
        #expect(without.document.trend.isEmpty)
        #expect(try !without.render(.md).contains("Trend"))
        #expect(try !without.render(.html).contains("id=\"trend\""))
    }

    @Test func notableEventsAreKeptAndPerJobOutcomesLeftToTheJobTable() throws {
        let sample = ReportFixtures.sample()
        let doc = RunReport(run: sample.run, jobs: sample.jobs, events: sample.events, generatedAt: sample.run.finishedAt!).document
        #expect(doc.events.map(\.kind).contains("job.retry"))
        #expect(doc.events.map(\.kind).contains("gate.passed"))
        #expect(!doc.events.map(\.kind).contains("job.failed"))
        #expect(doc.events.map(\.at) == doc.events.map(\.at).sorted())
    }

    @Test func throughputComesFromTheRunSummary() throws {
        let (run, jobs) = Self.known()
        let doc = RunReport(run: run, jobs: jobs, events: [], generatedAt: run.finishedAt!).document
        let summary = RunSummary(run: run, jobs: jobs)
        #expect(doc.throughput.bytesPerSecond == summary.bytesPerSecond)
        #expect(doc.throughput.wallSeconds == 5_340)
        #expect(doc.throughput.bytes == 3 * (10 << 20))
        #expect(doc.throughput.finishedJobs == 4)
    }
}
