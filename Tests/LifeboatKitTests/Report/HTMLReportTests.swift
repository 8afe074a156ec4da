import Foundation
import Testing
@testable import LifeboatKit

/// The HTML page: well-formed, self-contained, one timeline bar per started job, hostile text escaped.
@Suite struct HTMLReportTests {
    private func sampleHTML(mode: RunMode = .restore, previous: [PreviousRun] = []) throws -> (String, ReportDocument) {
        let sample = ReportFixtures.sample(mode: mode)
        let report = RunReport(run: sample.run, jobs: sample.jobs, events: sample.events, previous: previous,
                               generatedAt: sample.run.finishedAt!.addingTimeInterval(120))
        return (try report.render(.html), report.document)
    }

    @Test(.enabled(if: HTMLCheck.hasPython))
    func pageIsWellFormedAndSelfContained() throws {
        let dir = TestDirectory()
        let (html, _) = try sampleHTML(mode: .exercise, previous: ReportFixtures.previousExercises())
        let path = dir.write("report.html", html)
        #expect(try HTMLCheck.problems(inFile: path) == [])
        #expect(!html.contains("<script"))
        #expect(!html.contains("<link"))
        #expect(!html.contains("url(http"))
    }

    @Test(.enabled(if: HTMLCheck.hasXmllint))
    func inlineSVGIsWellFormedXML() throws {
        let dir = TestDirectory()
        let (html, _) = try sampleHTML()
        #expect(try HTMLCheck.svgProblems(html, dir: dir) == nil)
    }

    @Test func timelineHasExactlyOneBarPerStartedJob() throws {
        let (html, doc) = try sampleHTML()
        let started = doc.jobs.filter { $0.startedAt != nil }
        #expect(started.count == 39) // 42 jobs, of which cyberdyne's 3 never started
        #expect(html.occurrences(of: "<rect class=\"job ") == started.count)
        #expect(html.occurrences(of: "<rect class=\"job failed\"") == 2)
        // Jobs that never started have no bar but are listed under the chart.
        #expect(html.contains("3 jobs never started</b> (no bar): cyberdyne/contacts (failed), cyberdyne/jira (skipped), cyberdyne/confluence (skipped)"))
    }

    @Test func timelineIsGroupedByWaveWithALegendAndTheRTOObjectiveLine() throws {
        let (html, _) = try sampleHTML()
        for wave in 1...3 { #expect(html.contains(">Wave \(wave)</text>")) }
        #expect(html.occurrences(of: "<rect class=\"band") == 3)
        #expect(html.contains("<line class=\"rto\""))
        #expect(html.contains(">RTO objective 4h</text>"))
        for word in ["succeeded (35)", "succeeded after the RTO objective (2)", "failed (2)"] { #expect(html.contains(word)) }
        // Human ticks: the axis of a 4h15m run steps by the hour.
        for tick in [">0</text>", ">1h</text>", ">2h</text>", ">4h</text>"] { #expect(html.contains(tick)) }
    }

    @Test func farAwayObjectiveIsNamedInsteadOfSquashingTheBars() throws {
        let run = ReportFixtures.run(rto: 7 * 86_400, duration: 900)
        let jobs = [ReportFixtures.job(run, "acme", "jira", start: 60, end: 600)]
        let html = try RunReport(run: run, jobs: jobs, events: [], generatedAt: run.finishedAt!).render(.html)
        #expect(!html.contains("<line class=\"rto\""))
        #expect(html.contains("RTO objective 7d → far beyond the last job (10m)"))
    }

    @Test func verdictComesFirstInWordsAndColour() throws {
        let (html, _) = try sampleHTML()
        let body = try #require(html.range(of: "<main>"))
        let verdict = try #require(html.range(of: "<header class=\"verdict attention\">"))
        #expect(verdict.lowerBound > body.lowerBound)
        #expect(html[body.upperBound..<verdict.lowerBound].trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        #expect(html.contains("✖ OBJECTIVES MISSED"))
        #expect(html.contains("5 of 42 jobs not restored · RTO 4h missed · RPO 1d missed"))
    }

    @Test func hostileTextIsEscapedEverywhere() throws {
        let hostile = "<script>alert('x')</script>\"&<img src=x onerror=alert(1)>"
        var run = ReportFixtures.run(state: .failed)
        run.note = hostile
        run.startedBy = hostile
        run.planPath = "/plans/\(hostile).yaml"
        var job = ReportFixtures.job(run, "acme", "jira", state: .failed, start: 60, end: 120, error: hostile, code: hostile)
        job.snapshotPath = "/store/\(hostile)/x.tar.gz"
        let event = LedgerEvent(runId: run.id, at: run.declaredAt, kind: hostile, message: hostile)
        let report = RunReport(run: run, jobs: [job], events: [event], generatedAt: run.finishedAt!)

        let html = try report.render(.html)
        #expect(!html.contains("<script"))
        #expect(!html.contains("<img"))
        #expect(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;&lt;img src=x onerror=alert(1)&gt;"))
        if HTMLCheck.hasPython {
            let dir = TestDirectory()
            #expect(try HTMLCheck.problems(inFile: dir.write("hostile.html", html)) == [])
        }

        let md = try report.render(.md)
        // Every `<` is backslash-escaped, so Markdown renders it as text, never as a tag.
        #expect(md.contains("\\<script\\>"))
        #expect(md.occurrences(of: "<") == md.occurrences(of: "\\<"))
        // One job, one table row: a newline in an error cannot break the table.
        job.error = "line one\n| injected | row |"
        let table = try RunReport(run: run, jobs: [job], events: [], generatedAt: run.finishedAt!).render(.md)
        #expect(table.contains("line one \\| injected \\| row \\|"))
    }

    @Test func snapshotUsedIsShownPerJob() throws {
        let run = ReportFixtures.run()
        var legacy = ReportFixtures.job(run, "hooli", "jira", start: 60, end: 600)
        legacy.snapshotPath = "/mnt/legacy/hooli-jira.tar.gz"
        let jobs = [ReportFixtures.job(run, "acme", "jira", start: 60, end: 600, rpo: 7_200), legacy]
        let report = RunReport(run: run, jobs: jobs, events: [], generatedAt: run.finishedAt!)
        let html = try report.render(.html)
        let md = try report.render(.md)
        for text in [ReportText.time(jobs[0].snapshotTakenAt), ReportText.time(legacy.snapshotTakenAt), jobs[0].snapshotPath!, legacy.snapshotPath!] {
            #expect(html.contains(text) && md.contains(text), "missing \(text)")
        }
        // In the store's layout, the taken-at time says it all: the path is not repeated.
        let store = ReportFixtures.job(run, "acme", "jira", start: 60, end: 600)
        let short = try RunReport(run: run, jobs: [store], events: [], generatedAt: run.finishedAt!).render(.html)
        #expect(short.contains("Snapshots are read from /var/lib/lifeboat/snapshots/<i>site</i>/"))
        #expect(!short.contains(store.snapshotPath! + "<"))
    }

    @Test func controlCharactersCannotBreakThePage() throws {
        let run = ReportFixtures.run(state: .failed)
        let job = ReportFixtures.job(run, "acme", "jira", state: .failed, start: 60, end: 120, error: "bad\u{0}name\u{1B}[31m")
        let html = try RunReport(run: run, jobs: [job], events: [], generatedAt: run.finishedAt!).render(.html)
        #expect(!html.contains("\u{0}") && !html.contains("\u{1B}"))
        #expect(html.contains("bad\u{FFFD}name\u{FFFD}[31m"))
    }

    @Test func aRunStillGoingDrawsOpenBarsToTheReportTime() throws {
        let run = ReportFixtures.run(state: .running)
        var going = ReportFixtures.job(run, "acme", "jira", state: .restoring, start: 60, end: nil)
        going.rtoSeconds = nil
        let jobs = [going, ReportFixtures.job(run, "globex", "jira", start: 60, end: 600),
                    ReportFixtures.job(run, "hooli", "jira", state: .waiting, start: nil, end: nil)]
        let report = RunReport(run: run, jobs: jobs, events: [], generatedAt: run.declaredAt.addingTimeInterval(1_200))
        let html = try report.render(.html)
        #expect(report.document.verdict.status == .inProgress)
        #expect(html.contains("<header class=\"verdict in-progress\">"))
        #expect(html.occurrences(of: "<rect class=\"job ") == 2)
        #expect(html.contains("<rect class=\"job open\""))
        #expect(html.contains(">report time</text>"))
        #expect(html.contains("hooli/jira (waiting)"))
    }
}
