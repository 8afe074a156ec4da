import Foundation
import LifeboatTestSupport
import Testing

/// The alerting and dashboard files that ship in config/ work against what lifeboatd exports.
/// Under CI (`CI=true`) a missing promtool fails instead of skipping.
@Suite(.serialized, .ownThread) struct AlertingConfigTests {
    static let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static let available = promtool != nil || ProcessInfo.processInfo.environment["CI"] == "true"

    @Test(.enabled(if: available, "needs promtool (apt-get install -y prometheus)"))
    func promtoolAcceptsTheRulesAndTheirTestsFire() throws {
        let promtool = try #require(Self.promtool, "promtool is not installed: apt-get install -y prometheus")
        let config = Binaries.packageRoot + "/config"
        let check = try run(promtool, ["check", "rules", config + "/prometheus-alerts.yaml"])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect(check.stdout.contains("SUCCESS: 5 rules found"), "\(check.stdout)")
        // Each alert fires (and stays quiet) when it should, with the annotations operators read.
        let test = try run(promtool, ["test", "rules", "prometheus-alerts.test.yaml"], cwd: config)
        #expect(test.status == 0, "\(test.stdout)\(test.stderr)")
    }

    /// Every metric the alerts and the dashboard query is one a real daemon exports, including
    /// lifeboat_run_halted while a run waits at a gate.
    @Test func alertsAndDashboardQueryExportedMetrics() async throws {
        // A canary wave of two sites whose every job spends 2 s in its verify command: once
        // the damaged job has failed, the other site's jobs go on for seconds with a pace to
        // forecast from, and then the gate halts the run (a halted run has no forecast series).
        let daemon = try DaemonHarness(sites: 3, planExtra: """
            verify: { command: ["/bin/sleep", "2"] }
            waves:
              - { sites: 2, gate: { max_failures: 0 } }
              - { sites: rest }
            """)
        let base = daemon.enableHTTP(offset: 131)
        try daemon.start()
        // A restore that succeeds: the byte, entry and RTO families appear with the first success.
        let good = try daemon.cli(["restore", "main", "--sites", "globex", "--follow"])
        #expect(good.status == 0, "\(good.stderr)")
        // The canary's contacts archive is damaged: its job fails and the gate halts the run.
        let archive = try newestArchive(daemon.dir, "acme", "contacts")
        try Data("0000000000000000000000000000000000000000000000000000000000000000  x\n".utf8)
            .write(to: URL(fileURLWithPath: archive + ".sha256"))
        let run = try daemon.startRestore()
        // The names exported along the run: its forecast while it goes, then its halt.
        var scrape = ""
        var exported = Set<String>()
        for _ in 0..<300 {
            scrape = try httpGet(base + "/metrics").body
            exported.formUnion(scrape.split(separator: "\n").filter { !$0.hasPrefix("#") }
                .compactMap { $0.split(whereSeparator: { $0 == "{" || $0 == " " }).first.map(String.init) })
            if scrape.contains("lifeboat_run_halted{run=\"\(run)\",plan=\"main\"} 1"),
               exported.contains("lifeboat_run_forecast_rto_seconds"),
               !scrape.contains("lifeboat_run_forecast_rto_seconds{run=\"\(run)\"") { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(scrape.contains("lifeboat_run_halted{run=\"\(run)\",plan=\"main\"} 1"), "\(scrape)")
        #expect(scrape.contains("lifeboat_jobs_total{state=\"failed\",mode=\"restore\"} 1"))
        // Halted: no pace to forecast from, so its forecast series went.
        #expect(!scrape.contains("lifeboat_run_forecast_rto_seconds{run=\"\(run)\""), "\(scrape)")

        let rules = try String(contentsOfFile: Binaries.packageRoot + "/config/prometheus-alerts.yaml", encoding: .utf8)
        let dashboardData = try Data(contentsOf: URL(fileURLWithPath: Binaries.packageRoot + "/config/grafana-dashboard.json"))
        let dashboard = try #require(try JSONSerialization.jsonObject(with: dashboardData) as? [String: Any])
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        #expect(panels.count >= 8)
        var queries = [rules]
        for panel in panels {
            let targets = try #require(panel["targets"] as? [[String: Any]], "panel \(panel["title"] ?? "?") has no queries")
            #expect(!targets.isEmpty)
            queries += targets.compactMap { $0["expr"] as? String }
        }
        let referenced = Set(queries.flatMap { text in
            text.matches(of: /lifeboat_[a-z_]+/).map { String($0.output) }
        })
        #expect(referenced.count >= 10)
        for name in referenced {
            #expect(exported.contains(name), "\(name) is queried but lifeboatd does not export it")
        }
        #expect(try daemon.cli(["cancel", run]).status == 0)
        #expect(daemon.stop() == 0)
    }
}
