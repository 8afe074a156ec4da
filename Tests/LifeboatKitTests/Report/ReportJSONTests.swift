import Foundation
import Testing
@testable import LifeboatKit

/// The JSON report: the documented schema, stable keys, ISO-8601 dates, and a lossless round trip.
@Suite struct ReportJSONTests {
    private func sample() throws -> (json: String, report: RunReport) {
        let sample = ReportFixtures.sample(mode: .exercise)
        let report = RunReport(run: sample.run, jobs: sample.jobs, events: sample.events,
                               previous: ReportFixtures.previousExercises(), generatedAt: sample.run.finishedAt!)
        return (try report.render(.json), report)
    }

    @Test func decodesBackToTheSameDocument() throws {
        let (json, report) = try sample()
        let decoded = try RunReport.jsonDecoder.decode(ReportDocument.self, from: Data(json.utf8))
        #expect(decoded == report.document)
    }

    /// The report's long arrays are encoded a chunk at a time (memory); the bytes are what
    /// encoding the whole document at once gives, whatever the chunk and the strings inside.
    @Test(arguments: [1, 7, 500])
    func jsonIsTheWholeDocumentsEncodingByteForByte(chunk: Int) throws {
        var (run, jobs) = ReportFixtures.large(jobs: 1_203, concurrency: 8)
        // Strings that JSON escapes, a newline above all (the splice relies on none being raw).
        for i in stride(from: 0, to: jobs.count, by: 97) {
            jobs[i].state = .failed
            jobs[i].errorCode = "io"
            jobs[i].error = "line one\nline \"two\" \\ / é 🚒 \u{1}\n  \"jobs\" : ["
        }
        run.note = "a note\n  \"failures\" : [ ]"
        for report in [RunReport(run: run, jobs: jobs, events: [], generatedAt: run.finishedAt!),
                       RunReport(run: run, jobs: [], events: [], generatedAt: run.finishedAt!),
                       RunReport(run: run, jobs: Array(jobs.prefix(1)), events: [], generatedAt: run.finishedAt!)] {
            var whole = try RunReport.jsonEncoder.encode(report.document)
            whole.append(0x0A)
            let chunked = try report.jsonData(chunk: chunk)
            #expect(chunked == whole, "jobs \(report.document.jobs.count), failures \(report.document.failures.count)")
            #expect(try RunReport.jsonDecoder.decode(ReportDocument.self, from: chunked) == report.document)
        }
    }

    @Test func hasTheDocumentedKeys() throws {
        let (json, _) = try sample()
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(Set(object.keys) == ["schema", "generated_at", "run", "objectives", "verdict", "overall", "products", "waves",
                                     "throughput", "jobs", "failures", "trend", "events"])
        #expect(object["schema"] as? String == "lifeboat.report/1")
        #expect(object["generated_at"] as? String == "2026-11-25T14:15:00Z")

        let run = try #require(object["run"] as? [String: Any])
        for key in ["id", "plan", "plan_path", "mode", "state", "started_by", "declared_at", "incident_at", "as_of", "created_at",
                    "started_at", "finished_at", "total_waves", "seed", "keep_sandbox", "note"] {
            #expect(run[key] != nil, "run.\(key)")
        }
        #expect(run["mode"] as? String == "exercise")
        #expect(run["declared_at"] as? String == "2026-11-25T10:00:00Z")
        #expect((object["objectives"] as? [String: Any])?["rto_seconds"] as? Double == 14_400)

        let verdict = try #require(object["verdict"] as? [String: Any])
        #expect(verdict["status"] as? String == "attention")
        #expect(verdict["rto"] as? String == "missed" && verdict["rpo"] as? String == "missed")

        let jobs = try #require(object["jobs"] as? [[String: Any]])
        #expect(jobs.count == 42)
        let first = try #require(jobs.first)
        for key in ["site", "product", "wave", "state", "attempt", "destination", "snapshot_path", "snapshot_taken_at", "started_at",
                    "finished_at", "duration_seconds", "rpo_seconds", "rpo_met", "rto_seconds", "rto_met", "bytes", "entries",
                    "archive_bytes", "skipped_entries"] {
            #expect(first[key] != nil, "jobs[0].\(key)")
        }
        let failure = try #require((object["failures"] as? [[String: Any]])?.first)
        #expect(Set(failure.keys).isSuperset(of: ["site", "product", "wave", "state", "attempt", "reason", "error_code"]))

        let overall = try #require(object["overall"] as? [String: Any])
        let rto = try #require(overall["rto"] as? [String: Any])
        #expect(Set(rto.keys) == ["count", "p50", "p95", "max"])
        #expect((object["products"] as? [[String: Any]])?.compactMap { $0["product"] as? String } == ["contacts", "jira", "confluence"])
        #expect((object["waves"] as? [[String: Any]])?.compactMap { $0["wave"] as? Int } == [0, 1, 2])

        let trend = try #require(object["trend"] as? [[String: Any]])
        #expect(trend.count == 4)
        #expect(trend.first?["current"] as? Bool == true)
        #expect(Set(trend[1].keys).isSuperset(of: ["run_id", "declared_at", "sites", "jobs", "success_rate", "rto_p95", "rpo_p95"]))
        #expect(Set(((object["throughput"] as? [String: Any]) ?? [:]).keys)
                    .isSuperset(of: ["wall_seconds", "bytes_per_second", "jobs_per_minute", "bytes", "entries", "archive_bytes"]))
    }

    @Test func keysAreSortedSoReportsDiffCleanly() throws {
        let (json, _) = try sample()
        let topLevel = json.split(separator: "\n").filter { $0.hasPrefix("  \"") }.map { $0.split(separator: "\"")[1] }
        #expect(topLevel == topLevel.sorted())
        // Rendering twice gives the same bytes.
        #expect(try sample().json == json)
    }
}
