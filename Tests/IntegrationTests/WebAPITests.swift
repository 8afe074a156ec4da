import Foundation
import LifeboatTestSupport
import Testing

/// `/api/v1/` serves what the CLI's `--json` prints, matches docs/openapi.yaml, and per-site
/// status and site events are right for every site of a run with failures.
@Suite(.serialized, .ownThread) struct WebAPITests {
    /// acme and umbrella come back; globex's jira fails its verification; initech's contacts
    /// fails, so its jira is skipped.
    func runWithFailures(_ daemon: DaemonHarness, offset: Int) throws -> (base: String, run: String, inbox: String) {
        let base = daemon.enableHTTP(offset: offset)
        let verify = daemon.writeVerifyScript(failing: ["globex/jira", "initech/contacts"], message: "checksum of \"customer\" data differs")
        let inbox = daemon.dir.file("inbox")
        try FileManager.default.createDirectory(atPath: inbox, withIntermediateDirectories: true)
        let notify = daemon.dir.write("notify.sh", "#!/bin/sh\ncat > \"$(mktemp \(inbox)/event.XXXXXX)\"\n")
        chmod(notify, 0o755)
        daemon.writeVerifiedPlan(verify: verify, extra: "notify: [\"\(notify)\"]")
        try daemon.start()
        let run = try daemon.startRestore()
        return (base, run, inbox)
    }

    @Test func sitesOfARunWithFailuresAreRightEverywhere() async throws {
        let daemon = try DaemonHarness(sites: 4)
        let (base, run, inbox) = try runWithFailures(daemon, offset: 111)
        #expect(try await daemon.waitForRun(run) == "failed")

        let expected: [String: (state: String, done: Int)] = ["acme": ("restored", 2), "globex": ("failed", 1), "initech": ("failed", 0), "umbrella": ("restored", 2)]
        // The CLI's JSON, and the API's: the same, and right for every site.
        let cli = try daemon.cli(["sites", run, "--json"])
        #expect(cli.status == 0, "\(cli.stderr)")
        let api = try httpGet(base + "/api/v1/runs/\(run)/sites")
        #expect(api.status == 200)
        let cliJSON = try #require(jsonObject(cli.stdout) as? NSDictionary)
        let apiJSON = try #require(jsonObject(api.body) as? NSDictionary)
        #expect(cliJSON == apiJSON)
        let sites = try #require(apiJSON["sites"] as? [[String: Any]])
        #expect(sites.count == 4)
        for site in sites {
            let name = try #require(site["site"] as? String)
            #expect(site["state"] as? String == expected[name]?.state, "\(site)")
            #expect(site["products_done"] as? Int == expected[name]?.done, "\(site)")
            #expect(site["products_total"] as? Int == 2)
            #expect((site["restored_at"] != nil) == (expected[name]?.state == "restored"), "\(site)")
        }
        let globex = try #require(sites.first { $0["site"] as? String == "globex" }?["failures"] as? [[String: Any]])
        #expect(globex.count == 1 && globex[0]["product"] as? String == "jira")
        #expect((globex[0]["error"] as? String)?.contains(#"checksum of "customer" data differs"#) == true, "\(globex)")
        let initech = try #require(sites.first { $0["site"] as? String == "initech" }?["failures"] as? [[String: Any]])
        #expect(initech.map { $0["state"] as? String } == ["failed", "skipped"])

        // CSV for a spreadsheet: a header, one line per site, quotes doubled.
        let csv = try daemon.cli(["sites", run, "--csv"])
        let lines = csv.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "site,state,products_done,products_total,restored_at,eta,failed_products,reason")
        #expect(lines.count == 5)
        #expect(lines.contains { $0.hasPrefix("globex,failed,1,2,,,jira,\"globex/jira: verify.command") && $0.contains(#"checksum of ""customer"" data differs"#) }, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("initech,failed,0,2,,,contacts jira,") })
        #expect(lines.contains { $0.hasPrefix("acme,restored,2,2,20") })
        let human = try daemon.cli(["sites", run])
        #expect(human.stdout.contains("4 site(s): 0 waiting, 0 restoring, 2 restored, 2 failed"), "\(human.stdout)")

        // Notifications: exactly one site event per site, with the run and the site id.
        var siteEvents: [String] = []
        for _ in 0..<100 {
            siteEvents = ((try? FileManager.default.contentsOfDirectory(atPath: inbox)) ?? []).compactMap { file -> String? in
                guard let text = try? String(contentsOfFile: inbox + "/" + file, encoding: .utf8),
                      let object = jsonObject(text) as? [String: Any], let event = object["event"] as? String, event.hasPrefix("site."),
                      (object["run"] as? [String: Any])?["id"] as? String == run,
                      let site = (object["site"] as? [String: Any])?["site"] as? String else { return nil }
                return "\(event) \(site)"
            }.sorted()
            if siteEvents.count >= 4 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(siteEvents == ["site.failed globex", "site.failed initech", "site.restored acme", "site.restored umbrella"])
        #expect(daemon.stop() == 0)
    }

    @Test func apiServesTheCLIsJSONAndMatchesTheOpenAPIFile() async throws {
        let daemon = try DaemonHarness(sites: 4)
        let (base, run, _) = try runWithFailures(daemon, offset: 112)
        #expect(try await daemon.waitForRun(run) == "failed")

        // `lifeboat show RUN --json` and GET /api/v1/runs/RUN: one builder, the same data.
        let show = try #require(jsonObject(try daemon.cli(["show", run, "--json"]).stdout) as? NSDictionary)
        let detail = try httpGet(base + "/api/v1/runs/\(run)")
        #expect(detail.status == 200)
        #expect(show == (jsonObject(detail.body) as? NSDictionary))
        let runs = try #require(jsonObject(try daemon.cli(["runs", "--json"]).stdout) as? NSArray)
        #expect(runs == (jsonObject(try httpGet(base + "/api/v1/runs?limit=20").body) as? NSArray))

        // Jobs page by page, with the total; a state filter.
        let page = try #require(jsonObject(try httpGet(base + "/api/v1/runs/\(run)/jobs?offset=2&limit=3").body) as? [String: Any])
        #expect(page["total"] as? Int == 8 && page["offset"] as? Int == 2 && (page["jobs"] as? [Any])?.count == 3)
        let failed = try #require(jsonObject(try httpGet(base + "/api/v1/runs/\(run)/jobs?state=failed").body) as? [String: Any])
        #expect(failed["total"] as? Int == 2)
        // Events after an id: the next page starts where the last ended.
        let first = try #require(jsonObject(try httpGet(base + "/api/v1/runs/\(run)/events?after=0&limit=5").body) as? [String: Any])
        let next = try #require(first["next"] as? Int)
        let second = try #require(jsonObject(try httpGet(base + "/api/v1/runs/\(run)/events?after=\(next)&limit=5").body) as? [String: Any])
        let firstIds = (first["events"] as? [[String: Any]])?.compactMap { $0["id"] as? Int } ?? []
        let secondIds = (second["events"] as? [[String: Any]])?.compactMap { $0["id"] as? Int } ?? []
        #expect(firstIds.count == 5 && !secondIds.isEmpty && secondIds.min()! > firstIds.max()!)

        // The timeline opened on its own runs no script and fetches nothing.
        let svg = try IntegrationTests.run("/usr/bin/curl", ["-s", "-D", "-", "-o", "/dev/null", "--max-time", "20", base + "/api/v1/runs/\(run)/timeline.svg"]).stdout
        #expect(svg.contains("image/svg+xml") && svg.lowercased().contains("content-security-policy: default-src 'none'"), "\(svg)")

        // Bad input is a 400 or 404 with a message that says what to do.
        let badState = try httpGet(base + "/api/v1/runs/\(run)/jobs?state=lost")
        #expect(badState.status == 400 && badState.body.contains("state must be one of"))
        let badRun = try httpGet(base + "/api/v1/runs/nope")
        #expect(badRun.status == 404 && badRun.body.contains("see `lifeboat runs`"))
        let badOffset = try httpGet(base + "/api/v1/runs/\(run)/jobs?offset=-1")
        #expect(badOffset.status == 400)
        let noLimit = try httpGet(base + "/api/v1/runs?limit=0")
        #expect(noLimit.status == 400 && noLimit.body.contains("limit must be a whole number ≥ 1"), "\(noLimit)")

        // The OpenAPI file is valid, and real answers match it.
        let check = try IntegrationTests.run("/usr/bin/env", ["python3", Binaries.packageRoot + "/scripts/check-openapi", Binaries.packageRoot + "/docs/openapi.yaml", base,
                                             "/api/v1/status=Status", "/api/v1/runs=array:Run", "/api/v1/runs/\(run)=RunDetail",
                                             "/api/v1/runs/\(run)/overview=RunOverview", "/api/v1/runs/\(run)/jobs?offset=1&limit=4=JobPage",
                                             "/api/v1/runs/\(run)/events?after=0=EventPage", "/api/v1/runs/\(run)/sites=SiteReport",
                                             "/api/v1/runs/nope=Error"])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect(check.stdout.contains("valid OpenAPI 3.1.0"))
        #expect(daemon.stop() == 0)
    }

    /// A busy daemon as the incident room sees it: two runs at work and a third queued behind
    /// them. The API's answers then (a queued run's `waiting`, forecasts) match the OpenAPI file,
    /// and the host's gauges count every run's jobs, and go back to idle when the runs end.
    @Test func aBusyDaemonsAnswersMatchTheOpenAPIFileAndItsGaugesFollowItsRuns() async throws {
        let daemon = try DaemonHarness(sites: 2)
        let base = daemon.enableHTTP(offset: 151, extra: "max_concurrent_runs: 2")
        let go = daemon.dir.file("go")
        let verify = daemon.writeVerifyScript(failing: [], waitingFor: go)
        let plans = ["main", "second", "third"]
        for plan in plans { daemon.writeVerifiedPlan(plan, target: "../out-\(plan)/{site}/{product}", verify: verify) }
        try daemon.start()
        let runs = try plans.map { try daemon.startRestore(plan: $0) }
        func gauge(_ name: String) throws -> Double? {
            let body = try httpGet(base + "/metrics").body
            return body.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.dropFirst(name.count + 1)) }
        }
        // Each running run has its two sites' contacts verifying.
        var deadline = Date().addingTimeInterval(30)
        while try gauge("lifeboat_jobs_running") != 4, Date() < deadline { try await Task.sleep(for: .milliseconds(200)) }
        let scrape = try httpGet(base + "/metrics").body
        #expect(try gauge("lifeboat_jobs_running") == 4, "\(scrape)")
        let queued = try #require(jsonObject(try httpGet(base + "/api/v1/runs/\(runs[2])").body) as? [String: Any])
        #expect((queued["waiting"] as? [String: Any])?["limit"] as? Int == 2, "\(queued)")
        let check = try IntegrationTests.run("/usr/bin/env", ["python3", Binaries.packageRoot + "/scripts/check-openapi", Binaries.packageRoot + "/docs/openapi.yaml", base,
                                             "/api/v1/status=Status", "/api/v1/runs=array:Run", "/api/v1/runs/\(runs[0])=RunDetail",
                                             "/api/v1/runs/\(runs[2])=RunDetail", "/api/v1/runs/\(runs[0])/overview=RunOverview",
                                             "/api/v1/runs/\(runs[0])/sites=SiteReport"])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")

        daemon.dir.write("go", "")
        for run in runs { #expect(try await daemon.waitForRun(run) == "succeeded", "\(daemon.daemonLog.suffix(2_000))") }
        // Idle: no job at work, and the throughput is status's (bytes of the last minute).
        func statusThroughput() throws -> Double? {
            (jsonObject(try daemon.cli(["status", "--json"]).stdout) as? [String: Any])?["bytes_per_second"] as? Double
        }
        deadline = Date().addingTimeInterval(10)
        while try gauge("lifeboat_jobs_running") != 0 || (try gauge("lifeboat_restore_throughput_bytes_per_second")) != (try statusThroughput()), Date() < deadline {
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(try gauge("lifeboat_jobs_running") == 0)
        let throughput = try #require(try gauge("lifeboat_restore_throughput_bytes_per_second"))
        let reported = try statusThroughput()
        #expect(throughput > 0 && throughput == reported, "metrics \(throughput), status \(String(describing: reported))")
        #expect(daemon.stop() == 0)
    }

    /// A run that missed its RTO objective is one run however often its jobs are retried.
    @Test func aRetriedRunCountsOnceAmongTheRunsThatMissedTheirRTO() async throws {
        let daemon = try DaemonHarness(sites: 4)
        let (base, run, _) = try runWithFailures(daemon, offset: 161)
        #expect(try await daemon.waitForRun(run) == "failed")
        func missed() throws -> String? {
            try httpGet(base + "/metrics").body.split(separator: "\n").first { $0.hasPrefix("lifeboat_runs_rto_missed_total ") }.map(String.init)
        }
        var deadline = Date().addingTimeInterval(10)
        while try missed() != "lifeboat_runs_rto_missed_total 1", Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(try missed() == "lifeboat_runs_rto_missed_total 1")
        let failed = try #require(try daemon.jobs(run).first { $0["state"] as? String == "failed" }?["id"] as? Int)
        for _ in 0..<2 {
            #expect(try daemon.cli(["retry", run, "\(failed)"]).status == 0)
            #expect(try await daemon.waitForRun(run) == "failed")
        }
        deadline = Date().addingTimeInterval(3)
        while Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(try missed() == "lifeboat_runs_rto_missed_total 1")
        #expect(daemon.stop() == 0)
    }
}
