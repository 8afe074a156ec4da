import Foundation
import LifeboatTestSupport
import Testing

/// What a new operator meets following the README section by section, checked on the binaries.
@Suite(.serialized, .ownThread) struct OperatorPathTests {
    @Test func dryRunIsForReadersAndFailsWhenJobsHaveNoSnapshot() throws {
        let daemon = try DaemonHarness(sites: 2)
        chmod(daemon.dir.path, 0o755)
        try daemon.start()
        // It writes nothing, so anyone who may read may ask for one.
        let reader = try daemon.cli(["dry-run", "main"], as: "65534")
        #expect(reader.status == 0, "\(reader.stdout)\(reader.stderr)")
        #expect(reader.stdout.contains("4 job(s)"), "\(reader.stdout)")
        #expect(try daemon.runs().isEmpty)
        // Before every snapshot: every row NONE is a failure to report, not "within the objective".
        let none = try daemon.cli(["dry-run", "main", "--as-of", "2000-01-01T00:00:00Z"])
        #expect(none.status == 1, "\(none.stdout)\(none.stderr)")
        #expect(none.stdout.contains("forecast: none, no job has a snapshot to restore"))
        #expect(!none.stdout.contains("within the RTO objective"))
        #expect(none.stderr.contains("dry run: 4 of 4 job(s) have no snapshot taken at or before 2000-01-01T00:00:00Z and would fail"), "\(none.stderr)")
        #expect(try daemon.cli(["dry-run", "main", "--as-of", "2000-01-01T00:00:00Z", "--json"]).status == 1)
        // With a past run to forecast from: within the 1h objective when declared now, missed
        // when the incident was declared two hours ago (RTO counts from the declaration).
        #expect(try daemon.cli(["restore", "main", "--follow"]).status == 0)
        let now = try daemon.cli(["dry-run", "main"])
        #expect(now.stdout.contains("; within the RTO objective 1h"), "\(now.stdout)")
        let iso = ISO8601DateFormatter()
        let late = try daemon.cli(["dry-run", "main", "--incident-at", iso.string(from: Date().addingTimeInterval(-3 * 3_600)),
                                   "--declared-at", iso.string(from: Date().addingTimeInterval(-2 * 3_600))])
        #expect(late.stdout.contains("since the incident was declared; MISSES the RTO objective 1h"), "\(late.stdout)")
        let json = jsonObject(try daemon.cli(["dry-run", "main", "--declared-at", iso.string(from: Date().addingTimeInterval(-2 * 3_600)),
                                              "--incident-at", iso.string(from: Date().addingTimeInterval(-3 * 3_600)), "--json"]).stdout) as? [String: Any]
        #expect(((json?["forecast_rto_seconds"] as? Double) ?? 0) >= 7_200, "\(String(describing: json))")
        #expect(daemon.stop() == 0)
    }

    /// Times that would make RPO or RTO a fiction are refused, saying what to give instead:
    /// snapshots from after the incident (negative RPO, perhaps the damage itself), an incident
    /// or a declaration in the future (negative RTO).
    @Test func timesThatMakeRPOOrRTOAFictionAreRefused() throws {
        let daemon = try DaemonHarness(sites: 1)
        try daemon.start()
        let iso = ISO8601DateFormatter()
        let future = iso.string(from: Date().addingTimeInterval(3_600))
        let refusals: [([String], String)] = [
            (["--incident-at", "2026-11-25T00:00:00Z", "--as-of", "2026-11-25T10:00:00Z"],
             "--as-of 2026-11-25T10:00:00Z is after the incident (2026-11-25T00:00:00Z): a snapshot taken after the data was lost may hold the damage"),
            (["--as-of", future], "is after the incident ("),
            (["--incident-at", future], "is in the future"),
            (["--declared-at", future], "--declared-at \(future) is in the future"),
            // A declaration before the data was lost: RTO would count time that was not recovery.
            (["--incident-at", "2026-11-25T10:00:00Z", "--declared-at", "2026-11-25T00:00:00Z"],
             "--declared-at 2026-11-25T00:00:00Z is before the incident (2026-11-25T10:00:00Z)"),
            (["--declared-at", iso.string(from: Date().addingTimeInterval(-3_600))], ", the default: now): an incident is declared once its data is lost"),
        ]
        for (flags, words) in refusals {
            for command in ["restore", "dry-run"] {
                let answer = try daemon.cli([command, "main"] + flags)
                #expect(answer.status == 2, "\(command) \(flags): \(answer.stdout)\(answer.stderr)")
                #expect(answer.stderr.contains(words), "\(command) \(flags): \(answer.stderr)")
            }
        }
        #expect(try daemon.runs().isEmpty, "a refused request recorded a run")
        // With --json the refusal is JSON too, for the scripts that asked for it.
        let json = try daemon.cli(["restore", "main", "--incident-at", future, "--json"])
        let error = (jsonObject(json.stderr) as? [String: Any])?["error"] as? [String: Any]
        #expect(json.status == 2 && error?["code"] as? String == "rejected" && error?["exit_code"] as? Int == 2
                && (error?["message"] as? String)?.contains("is in the future") == true, "\(json.stderr)")
        // So is a command line that does not parse.
        let usage = try daemon.cli(["restore", "main", "--incident-at", "2026-11-25T00:00:00Z", "--no-such-flag", "--json"])
        let usageError = (jsonObject(usage.stderr) as? [String: Any])?["error"] as? [String: Any]
        #expect(usage.status == 2 && usageError?["code"] as? String == "usage" && usageError?["exit_code"] as? Int == 2
                && (usageError?["message"] as? String)?.contains("--no-such-flag") == true, "\(usage.stderr)")
        #expect(try daemon.cli(["restore", "main", "--no-such-flag"]).stderr.hasPrefix("Error: Unknown option '--no-such-flag'"))
        // The incident and snapshots at the same instant, and a declaration before the run, are fine.
        let restore = try daemon.cli(["restore", "main", "--incident-at", "2026-11-25T10:00:00Z", "--as-of", "2026-11-25T10:00:00Z",
                                      "--declared-at", iso.string(from: Date().addingTimeInterval(-600)), "--follow"])
        #expect(restore.status == 0, "\(restore.stdout)\(restore.stderr)")
        // A declaration a little ahead of the daemon's clock (typed to the next minute) is taken
        // as now: no RTO below zero.
        let ahead = try daemon.cli(["restore", "main", "--incident-at", "2026-11-25T10:00:00Z",
                                    "--declared-at", iso.string(from: Date().addingTimeInterval(30)), "--follow"])
        #expect(ahead.status == 0, "\(ahead.stdout)\(ahead.stderr)")
        let latest = try #require(try daemon.runs().first?["id"] as? String)
        let rtos = try daemon.jobs(latest).compactMap { $0["rto_seconds"] as? Double }
        #expect(rtos.count == 2 && rtos.allSatisfy { $0 >= 0 }, "\(rtos)")
        #expect(daemon.stop() == 0)
    }

    /// "The archive is damaged; restore from another snapshot", done the way an operator reads
    /// it: the damaged product alone, again from an older snapshot, its site's other product left
    /// as restored; the job named by SITE/PRODUCT; the report as JSON.
    @Test func oneDamagedProductAgainFromAnOlderSnapshot() async throws {
        let daemon = try DaemonHarness(sites: 1)
        try FileManager.default.removeItem(atPath: daemon.dir.file("store"))
        let gen = try run(Binaries.lifeboat, ["fleet", "generate", daemon.dir.file("store"), "--sites", "1", "--products", "contacts,jira",
                                             "--size", "64KiB", "--snapshots", "2", "--now", "2026-11-25T10:00:00Z"])
        #expect(gen.status == 0, "\(gen.stderr)")
        let newest = daemon.dir.file("store/acme/jira/20261124T193000Z.tar.gz")
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: newest))
        try handle.seek(toOffset: 200)
        try handle.write(contentsOf: Data(repeating: 0xA5, count: 64))
        try handle.close()
        try daemon.start()
        let first = try daemon.cli(["restore", "main", "--incident-at", "2026-11-25T10:00:00Z", "--follow"])
        #expect(first.status == 1, "\(first.stdout)\(first.stderr)")
        let runId = try #require(try daemon.runs().first?["id"] as? String)
        // What to do, said at the end: a retry would read the same damaged archive.
        #expect(first.stdout.contains("acme/jira: its archive cannot be restored; restore it from the snapshot before: `lifeboat restore main --sites acme "
                                      + "--products jira --as-of 2026-11-24T19:29:59Z --incident-at 2026-11-25T10:00:00Z --declared-at "), "\(first.stdout)")
        let contacts = try FileManager.default.attributesOfItem(atPath: daemon.dir.file("out/acme/contacts"))[.systemFileNumber] as? Int

        // Jobs by name: ids are numbered across runs.
        let retried = try daemon.cli(["retry", runId, "acme/jira"])
        #expect(retried.status == 0 && retried.stdout.contains("retrying acme/jira"), "\(retried.stdout)\(retried.stderr)")
        #expect(try await daemon.waitForRun(runId) == "failed")
        let unknown = try daemon.cli(["retry", runId, "acme/nothing"])
        #expect(unknown.status == 2 && unknown.stderr.contains("run \(runId) has no job acme/nothing"), "\(unknown.stderr)")
        let wrongId = try daemon.cli(["retry", runId, "999999"])
        #expect(wrongId.status == 2 && wrongId.stderr.contains("job ids are numbered across runs"), "\(wrongId.stderr)")

        // The damaged product alone, from the snapshot before it.
        let again = try daemon.cli(["restore", "main", "--products", "jira", "--incident-at", "2026-11-25T10:00:00Z",
                                    "--as-of", "2026-11-24T12:00:00Z", "--follow"])
        #expect(again.status == 0, "\(again.stdout)\(again.stderr)")
        let againId = try #require(try daemon.runs().first?["id"] as? String)
        let jobs = try daemon.jobs(againId)
        #expect(jobs.map { $0["product"] as? String } == ["jira"])
        #expect((jobs.first?["snapshot_path"] as? String)?.hasSuffix("20261123T191400Z.tar.gz") == true, "\(jobs)")
        #expect(try FileManager.default.attributesOfItem(atPath: daemon.dir.file("out/acme/contacts"))[.systemFileNumber] as? Int == contacts,
                "acme/contacts was restored again")
        #expect(try daemon.cli(["restore", "main", "--products", "wiki"]).stderr.contains("plan main has no product wiki; its products: contacts, jira"))

        // A dry run says which targets hold data a restore would move aside.
        let dry = try daemon.cli(["dry-run", "main", "--incident-at", "2026-11-25T10:00:00Z"])
        #expect(dry.stdout.contains("data (moved to quarantine)")
                && dry.stdout.contains("2 target(s) of 1 site(s) hold data now (acme): the restore moves it to quarantine"), "\(dry.stdout)")
        let dryJobs = (jsonObject(try daemon.cli(["dry-run", "main", "--incident-at", "2026-11-25T10:00:00Z", "--json"]).stdout) as? [String: Any])?["jobs"] as? [[String: Any]]
        #expect(dryJobs?.compactMap { $0["destination_holds_data"] as? Bool } == [true, true], "\(String(describing: dryJobs))")

        // The report as JSON with --json, as every other command.
        let report = jsonObject(try daemon.cli(["report", againId, "--json"]).stdout) as? [String: Any]
        // (The older snapshot is 1d14h before the incident: past the plan's 24h RPO, and said so.)
        let headline = (report?["verdict"] as? [String: Any])?["headline"] as? String
        #expect(headline == "all 1 jobs restored · RTO 1h met · RPO 1d missed", "\(String(describing: report))")
        #expect(daemon.stop() == 0)
    }

    /// A `post_restore` that failed (a reindex, say) is retried by running it again on the data
    /// its job left committed: no second restore of the archive, nothing moved to quarantine.
    @Test func aFailedPostRestoreIsRetriedOnTheCommittedData() async throws {
        let daemon = try DaemonHarness(sites: 1, size: "64KiB")
        let marker = daemon.dir.file("reindexed-once")
        let hook = daemon.dir.write("reindex.sh", "#!/bin/sh\nif [ ! -e '\(marker)' ]; then touch '\(marker)'; echo \"reindex failed for $1\"; exit 1; fi\necho reindexed\n")
        chmod(hook, 0o755)
        daemon.dir.write("plans/main.yaml", """
            name: main
            snapshots: ../store
            target: ../out/{site}/{product}
            products:
              - name: contacts
                post_restore: ["\(hook)", "{site}"]
              - name: jira
                after: [contacts]
            """)
        try daemon.start()
        let first = try daemon.cli(["restore", "main", "--incident-at", "2026-11-25T10:00:00Z", "--follow"])
        #expect(first.status == 1, "\(first.stdout)\(first.stderr)")
        let runId = try #require(try daemon.runs().first?["id"] as? String)
        let failed = try #require(try daemon.jobs(runId).first { $0["product"] as? String == "contacts" })
        let error = failed["error"] as? String ?? ""
        #expect(failed["state"] as? String == "failed" && error.contains("its output: reindex failed for acme; the restored data is committed and kept"), "\(error)")
        let inode = { try FileManager.default.attributesOfItem(atPath: daemon.dir.file("out/acme/contacts"))[.systemFileNumber] as? Int }
        let committed = try inode()

        let retry = try daemon.cli(["retry", runId, "acme/contacts"])
        #expect(retry.status == 0, "\(retry.stdout)\(retry.stderr)")
        #expect(try await daemon.waitForRun(runId) == "succeeded", "\(daemon.daemonLog.suffix(2_000))")
        #expect(try inode() == committed, "the archive was restored a second time")
        let again = try #require(try daemon.jobs(runId).first { $0["product"] as? String == "contacts" })
        #expect((again["hook_output"] as? String)?.contains("post_restore (run again on the data committed before): exit status 0") == true, "\(again)")
        let quarantine = jsonObject(try daemon.cli(["quarantine", "list", "--json"]).stdout) as? [Any]
        #expect(quarantine?.isEmpty == true, "\(String(describing: quarantine))")
        #expect(FileManager.default.fileExists(atPath: daemon.dir.file("out/acme/jira")), "the job skipped after it ran")
        #expect(daemon.stop() == 0)
    }

    @Test func exerciseOnlyFlagsAreRefusedForRestores() throws {
        let daemon = try DaemonHarness(sites: 1)
        try daemon.start()
        for flags in [["--scale", "3"], ["--seed", "7"], ["--keep"]] {
            let restore = try daemon.cli(["restore", "main"] + flags)
            #expect(restore.status == 2, "\(flags): \(restore.stdout)\(restore.stderr)")
            #expect(restore.stderr.contains("Unknown option '\(flags[0])'"), "\(restore.stderr)")
        }
        #expect(try daemon.cli(["dry-run", "main", "--keep"]).status == 2)
        #expect(try daemon.runs().isEmpty, "a refused request recorded a run")
        // The socket refuses them too, and exercises still take them.
        let raw = try daemon.raw(Array(#"{"id":1,"command":"run.start","params":{"plan":"main","mode":"restore","keep":true}}"#.utf8) + [10])
        #expect(raw.contains("invalid-params") && raw.contains("apply to exercises only"), "\(raw)")
        let exercise = try daemon.cli(["exercise", "main", "--scale", "1", "--seed", "7", "--follow"])
        #expect(exercise.status == 0, "\(exercise.stdout)\(exercise.stderr)")
        let offline = try run(Binaries.lifeboat, ["run", daemon.dir.file("plans/main.yaml"), "--ledger", daemon.dir.file("other/ledger.sqlite"), "--seed", "1"])
        #expect(offline.status == 2 && offline.stderr.contains("--seed apply to exercises only"), "\(offline.stderr)")
        #expect(daemon.stop() == 0)
    }

    @Test func aRunResumedAfterAShutdownNoLongerSaysItWasInterrupted() async throws {
        let daemon = try DaemonHarness(sites: 12, size: "2MiB", planExtra: "concurrency: 1")
        try daemon.start()
        let runId = try daemon.startRestore()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, try daemon.jobs(runId).filter({ $0["state"] as? String == "succeeded" }).count < 2 { usleep(20_000) }
        #expect(daemon.stop() == 0)
        let state = try run("/usr/bin/env", ["python3", "-c", "import sqlite3; print(sqlite3.connect('\(daemon.ledger)').execute(\"select state, note from runs\").fetchone())"])
        #expect(state.stdout.contains("'interrupted', 'interrupted by shutdown"), "the run ended before the shutdown; make the fleet bigger: \(state.stdout)\(state.stderr)")
        try daemon.start()
        let final = try await daemon.waitForRun(runId)
        let shown = try daemon.cli(["show", runId]).stdout
        #expect(final == "succeeded", "\(shown)\(daemon.daemonLog.suffix(3000))")
        for text in [try daemon.cli(["runs"]).stdout, try daemon.cli(["show", runId]).stdout] {
            #expect(!text.contains("interrupted by shutdown"), "\(text)")
        }
        // The report's history keeps the interruption (recorded before the daemon stopped);
        // nothing above it says the run is interrupted.
        let report = try daemon.cli(["report", runId]).stdout
        let history = try #require(report.range(of: "## Events"), "\(report)")
        #expect(!report[..<history.lowerBound].contains("interrupted by shutdown"), "\(report)")
        #expect(report[history.lowerBound...].contains("**run.interrupted** interrupted by shutdown; resumes on the next start"), "\(report)")
        #expect(daemon.stop() == 0)
    }

    @Test func showAndTheReportGiveOneVerdictForACancelledRun() async throws {
        let daemon = try FollowTests.haltingCanary()
        try daemon.start()
        #expect(try daemon.cli(["restore", "main", "--exit-on-halt"]).status == 4)
        let runId = try #require(try daemon.runs().first?["id"] as? String)
        #expect(try daemon.cli(["cancel", runId]).status == 0)
        #expect(try await daemon.waitForRun(runId) == "cancelled")
        // No job was late, but 8 were not restored: the RTO objective was missed, in both.
        let show = try daemon.cli(["show", runId]).stdout
        #expect(show.contains("RTO objective 1h: MISSED (8 not restored)"), "\(show)")
        #expect(!show.contains("RTO objective 1h: met"))
        let report = try daemon.cli(["report", runId]).stdout
        #expect(report.contains("RTO 1h missed"), "\(report)")
        #expect(daemon.stop() == 0)
    }

    @Test func metricsForgetEndedRunsAndCountMissedObjectives() async throws {
        let daemon = try FollowTests.haltingCanary()
        let port = listenerTestPort(offset: 7)
        daemon.dir.write("lifeboatd.yaml", """
            plans_dir: plans
            state_dir: state
            socket: { path: lifeboatd.sock, mode: "0666" }
            metrics: { listen: "127.0.0.1:\(port)" }
            """)
        try daemon.start()
        func scrape(until: (String) -> Bool) async throws -> String {
            var body = ""
            for _ in 0..<100 {
                body = try run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(port)/metrics"]).stdout
                if until(body) { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            return body
        }
        // Lost and declared a day ago: the 1h RTO objective has passed while the canary holds the run.
        #expect(try daemon.cli(["restore", "main", "--exit-on-halt", "--incident-at", "2026-11-24T10:00:00Z",
                                "--declared-at", "2026-11-24T10:00:00Z"]).status == 4)
        let runId = try #require(try daemon.runs().first?["id"] as? String)
        let series = #"lifeboat_run_forecast_miss{run="\#(runId)",plan="main"}"#
        let halted = try await scrape { $0.contains(series + " 1") && $0.contains("lifeboat_runs_active 1") }
        #expect(halted.contains(series + " 1"), "\(halted)")
        #expect(halted.contains("lifeboat_runs_active 1"))
        #expect(try daemon.cli(["cancel", runId]).status == 0)
        #expect(try await daemon.waitForRun(runId) == "cancelled")
        let ended = try await scrape { $0.contains("lifeboat_runs_rto_missed_total 1") && $0.contains("lifeboat_runs_active 0") }
        #expect(ended.contains("lifeboat_runs_active 0"), "\(ended)")
        #expect(ended.contains("lifeboat_runs_rto_missed_total 1"), "\(ended)")
        #expect(!ended.contains(runId), "an ended run's series stayed: \(ended)")
        #expect(daemon.stop() == 0)
    }

    @Test(.enabled(if: geteuid() == 0, "runs the CLI as another user"))
    func anOperatorWithDefaultsFindsTheSystemDaemonAndIsToldWhatWasTried() throws {
        let home = TempDir()
        chmod(home.path, 0o777)
        let asOperator = { (arguments: [String]) throws -> ProcessResult in
            try run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/env", "LIFEBOAT_SOCKET=",
                                         "XDG_RUNTIME_DIR=\(home.path)", Binaries.lifeboat] + arguments)
        }
        // No daemon anywhere: both sockets are named.
        if !FileManager.default.fileExists(atPath: "/run/lifeboat/lifeboatd.sock") {
            let none = try asOperator(["status"])
            #expect(none.status == 3)
            #expect(none.stderr.contains("tried \(home.path)/lifeboat/lifeboatd.sock (") && none.stderr.contains(", /run/lifeboat/lifeboatd.sock ("), "\(none.stderr)")
        }
        // The system daemon (root's default socket): found without --socket.
        guard !FileManager.default.fileExists(atPath: "/run/lifeboat/lifeboatd.sock") else { return }
        let daemon = try DaemonHarness(sites: 1)
        chmod(daemon.dir.path, 0o755)
        daemon.dir.write("lifeboatd.yaml", """
            plans_dir: plans
            state_dir: state
            socket: { path: /run/lifeboat/lifeboatd.sock, mode: "0666" }
            """)
        try daemon.start(waitReady: false)
        defer { daemon.stop() }
        var status = ProcessResult(status: -1, stdout: "", stderr: "")
        for _ in 0..<200 {
            status = try asOperator(["status"])
            if status.status == 0 { break }
            usleep(50_000)
        }
        #expect(status.status == 0, "\(status.stderr)\(daemon.daemonLog)")
        #expect(status.stdout.contains("socket /run/lifeboat/lifeboatd.sock"), "\(status.stdout)")
    }

    /// Four sites, two in a gated first wave; every contacts sidecar is wrong, so each restore's
    /// canary fails and its gate halts the run.
    static func canaryWithBadChecksums(name: String = #function) throws -> DaemonHarness {
        let daemon = try DaemonHarness(sites: 4, planExtra: """
            waves:
              - { sites: 2, gate: { max_failures: 0 } }
              - { sites: rest }
            """, name: name)
        for site in try FileManager.default.contentsOfDirectory(atPath: daemon.dir.file("store")) {
            for sidecar in try contactsSidecars(daemon, site) {
                try (String(repeating: "0", count: 64) + "  x\n").write(toFile: sidecar, atomically: true, encoding: .utf8)
            }
        }
        return daemon
    }

    static func contactsSidecars(_ daemon: DaemonHarness, _ site: String) throws -> [String] {
        let folder = daemon.dir.file("store/\(site)/contacts")
        return try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".sha256") }.map { "\(folder)/\($0)" }
    }

    @Test func retryRunsFailedDependenciesFirstAndNeverHalts() async throws {
        // Two sites in the first wave, both with a bad contacts checksum: the gate halts.
        let daemon = try Self.canaryWithBadChecksums()
        try daemon.start()
        #expect(try daemon.cli(["restore", "main", "--exit-on-halt"]).status == 4)
        let runId = try #require(try daemon.runs().first?["id"] as? String)
        #expect(try daemon.cli(["resume", runId]).status == 0)
        #expect(try await daemon.waitForRun(runId) == "failed")
        // Mend one canary site's archives, and retry its skipped jira: its failed contacts runs first.
        let jobs = try daemon.jobs(runId)
        let jira = try #require(jobs.first { $0["wave"] as? Int == 0 && $0["product"] as? String == "jira" })
        let site = try #require(jira["site"] as? String)
        for sidecar in try Self.contactsSidecars(daemon, site) {
            let sum = try run("/usr/bin/sha256sum", [String(sidecar.dropLast(".sha256".count))])
            try sum.stdout.write(toFile: sidecar, atomically: true, encoding: .utf8)
        }
        let retry = try daemon.cli(["retry", runId, "\(try #require(jira["id"] as? Int))"])
        #expect(retry.status == 0, "\(retry.stderr)")
        #expect(retry.stdout.contains("retrying \(site)/contacts, \(site)/jira: the run goes on for these job(s) only"), "\(retry.stdout)")
        // The other canary site still failed its gate, but there is nothing left for it to hold
        // back: the run ends (failed: other jobs still failed), it does not halt again.
        let final = try await daemon.waitForRun(runId, timeout: 30)
        let shown = try daemon.cli(["show", runId]).stdout
        #expect(final == "failed", "\(shown)")
        let after = try daemon.jobs(runId).filter { $0["site"] as? String == site }
        #expect(after.allSatisfy { $0["state"] as? String == "succeeded" }, "\(after)")
        #expect(daemon.stop() == 0)
    }

    /// A run is worked under the version of its plan it was started with. Restarted with the
    /// plan changed, the daemon leaves the run as it is and says why (in its log, and to a
    /// `resume`) until the file is put back; a reload that changes the plan again does not
    /// change the run's rules: its later waves still check their checksums.
    @Test func aRunKeepsThePlanVersionItWasStartedWith() async throws {
        let daemon = try Self.canaryWithBadChecksums()
        let file = daemon.dir.file("plans/main.yaml")
        let strict = try String(contentsOfFile: file, encoding: .utf8)
        let loose = strict + "\nverify: { checksum: \"off\" }\n"
        try daemon.start()
        #expect(try daemon.cli(["restore", "main", "--exit-on-halt"]).status == 4)
        let runId = try #require(try daemon.runs().first?["id"] as? String)

        #expect(daemon.stop() == 0)
        try loose.write(toFile: file, atomically: true, encoding: .utf8)
        try daemon.start()
        let said = daemon.daemonLog.split(separator: "\n").filter { $0.contains("cannot resume run: run \(runId) was started under version sha256:") }
        #expect(said.count == 1 && said[0].contains("of plan main, and this host has version sha256:") && said[0].contains(file), "\(daemon.daemonLog)")
        let refused = try daemon.cli(["resume", runId])
        #expect(refused.status != 0 && refused.stderr.contains("run \(runId) is left as it is: run \(runId) was started under version sha256:"), "\(refused.stderr)")
        #expect(refused.stderr.contains("put the plan file the run was started with back on this host and reload"), "\(refused.stderr)")
        // As the drain left it: interrupted, to be resumed at its gate; its note and status say
        // why it is not going (not "resumes on the next start", not "no runs going").
        let left = try #require(try daemon.runs().first)
        #expect(left["state"] as? String == "interrupted" && (left["note"] as? String)?.hasPrefix("not resumed: run \(runId) was started under version") == true, "\(left)")
        let status = try daemon.cli(["status"]).stdout
        #expect(status.contains(runId) && status.contains("not resumed: run") && !status.contains("no runs going"), "\(status)")

        // The file put back, a reload takes the run up again at its gate.
        try strict.write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try daemon.cli(["reload"]).status == 0)
        try loose.write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try daemon.cli(["reload"]).status == 0)
        var resumed = try daemon.cli(["resume", runId])
        let deadline = Date().addingTimeInterval(20)
        while resumed.status != 0, Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
            resumed = try daemon.cli(["resume", runId])
        }
        #expect(resumed.status == 0, "\(resumed.stderr)\(daemon.daemonLog.suffix(2_000))")
        #expect(try await daemon.waitForRun(runId) == "failed")
        // The second wave ran under the run's own version: checksums required, and wrong.
        let second = try daemon.jobs(runId).filter { $0["wave"] as? Int == 1 && $0["product"] as? String == "contacts" }
        #expect(second.count == 2 && second.allSatisfy { ($0["error"] as? String)?.contains("but its sidecar says 0000") == true }, "\(second)")

        // A run whose plan is not coming back is cancelled without it: what did not start is
        // recorded cancelled, and its destinations are free for a run under the new plan.
        try strict.write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try daemon.cli(["reload"]).status == 0)
        #expect(try daemon.cli(["restore", "main", "--exit-on-halt"]).status == 4)
        let leftId = try #require(try daemon.runs().first?["id"] as? String)
        #expect(daemon.stop() == 0)
        try loose.write(toFile: file, atomically: true, encoding: .utf8)
        try daemon.start()
        let cancel = try daemon.cli(["cancel", leftId])
        #expect(cancel.status == 0, "\(cancel.stdout)\(cancel.stderr)")
        #expect(try daemon.runs().first { $0["id"] as? String == leftId }?["state"] as? String == "cancelled")
        let unstarted = try daemon.jobs(leftId).filter { $0["wave"] as? Int == 1 }
        #expect(unstarted.count == 4 && unstarted.allSatisfy { $0["state"] as? String == "cancelled"
            && ($0["error"] as? String)?.contains("no host has the version of plan main the run was started with") == true }, "\(unstarted)")
        let fresh = try daemon.cli(["restore", "main", "--follow"])
        #expect(fresh.status == 0, "\(fresh.stdout)\(fresh.stderr)")
        #expect(daemon.stop() == 0)
    }

    /// `lifeboat schedules` shows each schedule's next fire and the scale of its next exercise,
    /// capped at the sites the plan selects in its store (2 here, for a scale of 3).
    @Test func schedulesShowTheNextFireAndAtMostHowManySites() throws {
        let daemon = try DaemonHarness(sites: 2, planExtra: "schedule: { exercise: \"0 0 1 1 *\", scale: { start: 3, factor: 2 } }")
        try daemon.start()
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let nextYear = calendar.component(.year, from: Date()) + 1
        let table = try daemon.cli(["schedules"])
        #expect(table.status == 0, "\(table.stderr)")
        let row = table.stdout.split(separator: "\n").first { $0.hasPrefix("main ") }.map(String.init) ?? ""
        #expect(row.contains("0 0 1 1 *") && row.contains("\(nextYear)-01-01T00:00:00Z") && row.hasSuffix("up to 2 site(s)"), "\(table.stdout)")
        let listed = try #require(try JSONSerialization.jsonObject(with: Data(daemon.cli(["schedules", "--json"]).stdout.utf8)) as? [[String: Any]])
        #expect(listed.first?["next_scale"] as? Int == 2 && listed.first?["exercises"] as? Int == 0, "\(listed)")
        #expect(daemon.stop() == 0)
    }

    @Test func snapshotVerifyChecksLikeAPlanAndPlanDefaultsAreShown() throws {
        let daemon = try DaemonHarness(sites: 1)
        let archive = try newestArchive(daemon.dir, "acme", "jira")
        try FileManager.default.removeItem(atPath: archive + ".sha256")
        // Offline as in a restore: a plan requires the sidecar by default, and so does verify.
        let strict = try run(Binaries.lifeboat, ["snapshot", "verify", archive])
        #expect(strict.status == 2, "\(strict.stdout)\(strict.stderr)")
        #expect(strict.stderr.contains("does not exist (verify.checksum: required)"), "\(strict.stderr)")
        #expect(try run(Binaries.lifeboat, ["snapshot", "verify", archive, "--checksum", "if-present"]).status == 0)
        // The defaults in effect, offline and from the daemon.
        let check = try run(Binaries.lifeboat, ["plan", "check", daemon.dir.file("plans/main.yaml"), "--json"])
        let results = try #require(try JSONSerialization.jsonObject(with: Data(check.stdout.utf8)) as? [[String: Any]])
        let settings = try #require(results.first?["settings"] as? [String: Any], "\(check.stdout)")
        #expect((settings["retry"] as? [String: Any])?["attempts"] as? Int == 3)
        #expect((settings["retry"] as? [String: Any])?["backoff_seconds"] as? Int == 10)
        #expect((settings["verify"] as? [String: Any])?["checksum"] as? String == "required")
        #expect((settings["limits"] as? [String: Any])?["max_entries"] as? Int == 10_000_000)
        #expect(try run(Binaries.lifeboat, ["plan", "check", daemon.dir.file("plans/main.yaml")]).stdout
            .contains("in effect: concurrency 8, retry 3 × 10s, checksum required, limits 500 GiB / 10000000 entries"))
        try daemon.start()
        let plans = try daemon.cli(["plans", "--json"]).stdout
        let served = try #require(try JSONSerialization.jsonObject(with: Data(plans.utf8)) as? [String: Any])
        let plan = try #require((served["plans"] as? [[String: Any]])?.first)
        #expect(((plan["settings"] as? [String: Any])?["retry"] as? [String: Any])?["attempts"] as? Int == 3, "\(plans)")
        #expect(daemon.stop() == 0)
    }

    @Test func purgeSaysWhyEachEntryIsKept() async throws {
        let daemon = try DaemonHarness(sites: 1, planExtra: "quarantine: { retention: 1s }")
        daemon.dir.write("out/acme/contacts/old.txt", "displaced")
        try daemon.start()
        #expect(try daemon.cli(["restore", "main", "--follow"]).status == 0)
        try await Task.sleep(for: .milliseconds(1_500))
        let purge = try daemon.cli(["quarantine", "purge", "--older-than", "1h", "--dry-run"])
        #expect(purge.status == 0, "\(purge.stderr)")
        #expect(purge.stdout.contains("0 would be purged, 1 kept (1 past retention but younger than --older-than 1h)"), "\(purge.stdout)")
        #expect(!purge.stdout.contains("inside retention"))
        #expect(daemon.stop() == 0)
    }

    @Test func aDuplicatePlanNameIsBlamedOnBothFilesWithLines() throws {
        let daemon = try DaemonHarness(sites: 1)
        let main = try String(contentsOfFile: daemon.dir.file("plans/main.yaml"), encoding: .utf8)
        daemon.dir.write("plans/copy.yaml", "# a copy left behind\n" + main)
        let (first, second) = (daemon.dir.file("plans/copy.yaml"), daemon.dir.file("plans/main.yaml"))
        let check = try run(Binaries.lifeboat, ["plan", "check", second, first])
        #expect(check.status == 2)
        #expect(check.stderr.contains("\(second):1:1: plan name \"main\" is also used by \(first):2:1"), "\(check.stderr)")
        #expect(check.stderr.contains("\(first):2:1: plan name \"main\" is also used by \(second):1:1"), "\(check.stderr)")
        // The daemon serves neither (a run names its plan) and says so for both files.
        try daemon.start()
        let status = try daemon.cli(["status"]).stdout
        #expect(status.contains("plan problem: \(first)") && status.contains("plan problem: \(second)"), "\(status)")
        #expect(status.contains("\(second):1:1: plan name \"main\" is also used by \(first):2:1"), "\(status)")
        let restore = try daemon.cli(["restore", "main"])
        #expect(restore.status == 2 && restore.stderr.contains("no plan named \"main\" is loaded"), "\(restore.stderr)")
        #expect(daemon.stop() == 0)
    }

    @Test func aWrongReportFormatShowsReportsUsage() throws {
        let report = try run(Binaries.lifeboat, ["report", "some-run", "--format", "pdf"])
        #expect(report.status == 2)
        #expect(report.stderr.contains("'pdf' is invalid for '--format <format>'"), "\(report.stderr)")
        #expect(report.stderr.contains("Usage: lifeboat report <run>"), "\(report.stderr)")
        #expect(!report.stderr.contains("lifeboat <subcommand>"))
    }
}
