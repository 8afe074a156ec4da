import Foundation
import LifeboatTestSupport
import Testing

/// A CLI command left running with its standard output going to a file, as `> restore.log`,
/// `| tee` or a CI job's log would have it; the file is read while the command still runs.
final class BackgroundCLI: @unchecked Sendable {
    let process = Process()
    let output: String
    let errors: String

    convenience init(_ daemon: DaemonHarness, _ arguments: [String], output name: String = "follow.log") throws {
        try self.init(socket: daemon.socket, in: daemon.dir, arguments, output: name)
    }

    /// The command against the daemon listening on `socket`, its output in `dir`.
    init(socket: String, in dir: TempDir, _ arguments: [String], output name: String) throws {
        output = dir.file(name)
        errors = dir.file(name + ".err")
        for path in [output, errors] { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        process.executableURL = URL(fileURLWithPath: Binaries.lifeboat)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(["LIFEBOAT_SOCKET": socket]) { $1 }
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errors))
        try process.run()
    }

    /// What the command wrote to the file so far.
    var text: String { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }
    var errorText: String { (try? String(contentsOfFile: errors, encoding: .utf8)) ?? "" }

    /// Waits until the file contains `needle`; false after `timeout`.
    func waitFor(_ needle: String, timeout: TimeInterval) async throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if text.contains(needle) { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return text.contains(needle)
    }

    /// Waits for the command to end; its exit status, or nil after `timeout`.
    func waitForExit(timeout: TimeInterval = 60) async throws -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        guard !process.isRunning else { return nil }
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }
}

/// Following a run the way incident tooling does: output to a file, a canary that halts.
@Suite(.serialized, .ownThread) struct FollowTests {
    /// A daemon whose plan has a one-site canary wave that fails its gate: every `contacts`
    /// archive has a wrong checksum, so the canary's contacts fails and its jira is skipped.
    static func haltingCanary(sites: Int = 4, name: String = #function) throws -> DaemonHarness {
        let daemon = try DaemonHarness(sites: sites, planExtra: """
            waves:
              - { sites: 1, gate: { max_failures: 0 } }
              - { sites: rest }
            """, name: name)
        let store = daemon.dir.file("store")
        for site in try FileManager.default.contentsOfDirectory(atPath: store) {
            let folder = store + "/\(site)/contacts"
            for sidecar in try FileManager.default.contentsOfDirectory(atPath: folder) where sidecar.hasSuffix(".sha256") {
                try String(repeating: "0", count: 64).appending("  x\n").write(toFile: folder + "/" + sidecar, atomically: true, encoding: .utf8)
            }
        }
        return daemon
    }

    /// Polls `show --json` until the run is in `state`; the run id of the newest run.
    /// The deadline counts only once this task has looked a few times: with the whole suite in
    /// parallel, other tests' blocking waits can hold Swift Testing's few threads for longer than
    /// the timeout, and a wait that never got to look must not report a failure.
    static func waitForState(_ daemon: DaemonHarness, _ state: String, timeout: TimeInterval = 30) async throws -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        var looks = 0
        while Date() < deadline || looks < 20 {
            looks += 1
            if let run = try daemon.runs().first, run["state"] as? String == state { return run["id"] as? String }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    @Test func followToAFileWritesEachEventWhenItHappensAndSaysWhyTheRunHalted() async throws {
        let daemon = try Self.haltingCanary()
        try daemon.start()
        let follow = try BackgroundCLI(daemon, ["restore", "main", "--follow"])
        let halted = try await Self.waitForState(daemon, "halted")
        let runsNow = try daemon.cli(["runs", "--json"])
        let runId = try #require(halted, "the run never halted: runs → \(runsNow) follow → \(follow.text)\(follow.errorText) daemon → \(daemon.daemonLog)")
        // Within a second of the halt, the file has the canary's outcomes and the halt in words
        // (wave, gate, failures with their reasons, the two commands), while the command still
        // follows the halted, not ended, run.
        #expect(try await follow.waitFor("lifeboat cancel \(runId)", timeout: 1), "\(follow.text)")
        let log = follow.text
        #expect(log.contains("started restore run \(runId)"))
        #expect(log.contains("HALTED: run \(runId), wave 1 gate failed: 1 of 2 job(s) failed (max_failures 0)"), "\(log)")
        // Each reason once, not behind the job's name twice.
        #expect(log.contains("  failed    acme/contacts: /"), "\(log)")
        #expect(log.contains("the archive's SHA-256 is"))
        #expect(!log.contains("acme/contacts: acme/contacts"), "\(log)")
        #expect(log.contains("  skipped   acme/jira: skipped: dependency contacts of acme failed"), "\(log)")
        #expect(log.contains("to go on with wave 2:") && log.contains("lifeboat resume \(runId)"))
        #expect(follow.process.isRunning, "the command stopped following: \(log)\(follow.errorText)")
        // A colleague resumes from another terminal: the follow goes on to the end.
        #expect(try daemon.cli(["resume", runId]).status == 0)
        #expect(try await follow.waitForExit() == 1)
        #expect(follow.text.contains("resumed after wave 1 gate"), "\(follow.text)")
        #expect(follow.text.contains("run \(runId) failed"), "\(follow.text)")
        #expect(daemon.stop() == 0)
    }

    /// A follower of a run the daemon's stop interrupts hears where the run stands and what to
    /// do, not a bare connection error; the run resumes at the next start.
    @Test func aStopTellsTheFollowerTheRunResumesAtTheNextStart() async throws {
        let daemon = try DaemonHarness(sites: 2, size: "64KiB", planExtra: "verify: { command: [\"/bin/sleep\", \"2\"] }")
        try daemon.start()
        let follow = try BackgroundCLI(daemon, ["restore", "main", "--follow"])
        #expect(try await follow.waitFor("started restore run ", timeout: 20), "\(follow.text)\(follow.errorText)")
        let runId = try #require(try daemon.runs().first?["id"] as? String)
        #expect(daemon.stop() == 0)
        #expect(try await follow.waitForExit(timeout: 30) == 3)
        #expect(follow.errorText.contains("run \(runId) interrupted by lifeboatd's stop; it resumes at the daemon's next start: "
                                          + "follow it again then (lifeboat watch \(runId))"), "\(follow.errorText)")
        try daemon.start()
        #expect(try await daemon.waitForRun(runId, timeout: 60) == "succeeded", "\(daemon.daemonLog.suffix(2_000))")
        #expect(daemon.stop() == 0)
    }

    /// A drain is watched, not a closed socket: `status` says the daemon is stopping, a change is
    /// refused with why, and a follower hears the run being recorded interrupted.
    @Test func aDrainAnswersStatusRefusesChangesAndIsFollowed() async throws {
        // Until `go` exists, the verify command ignores SIGTERM: the drain waits out the hook's
        // kill grace (5 s), long enough to look at it.
        let daemon = try DaemonHarness(sites: 1, size: "64KiB", planExtra: "")
        let go = daemon.dir.file("go")
        daemon.dir.write("plans/main.yaml", try String(contentsOfFile: daemon.dir.file("plans/main.yaml"), encoding: .utf8)
            + "verify: { command: [\"/bin/sh\", \"-c\", \"if test ! -e \(go); then trap '' TERM; sleep 30; fi\"] }\n")
        try daemon.start()
        let follow = try BackgroundCLI(daemon, ["restore", "main", "--follow"])
        #expect(try await follow.waitFor("started restore run ", timeout: 20), "\(follow.text)\(follow.errorText)")
        let runId = try #require(try daemon.runs().first?["id"] as? String)
        let verifying = Date().addingTimeInterval(20)
        while try !daemon.jobs(runId).contains(where: { $0["state"] as? String == "verifying" }), Date() < verifying {
            try await Task.sleep(for: .milliseconds(50))
        }
        daemon.signal(SIGTERM)
        var status = try daemon.cli(["status"])
        let stopping = Date().addingTimeInterval(4)
        while !status.stdout.contains("STOPPING since"), Date() < stopping {
            try await Task.sleep(for: .milliseconds(50))
            status = try daemon.cli(["status"])
        }
        #expect(status.status == 0, "\(status.stderr)")
        #expect(status.stdout.contains("STOPPING since") && status.stdout.contains("its runs are recorded interrupted and resume at its next start"),
                "\(status.stdout)\(status.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(try daemon.cli(["status", "--json"]).stdout.utf8)) as? [String: Any]
        #expect(json?["stopping_since"] is String, "\(String(describing: json))")
        let refused = try daemon.cli(["restore", "main"])
        #expect(refused.status == 3)
        #expect(refused.stderr.contains("run.start refused: lifeboatd is stopping (since ") && refused.stderr.contains("ask again once it is back"),
                "\(refused.stdout)\(refused.stderr)")
        #expect(try await daemon.waitForExit(timeout: 30) == 0, "\(daemon.daemonLog.suffix(2_000))")
        #expect(try await follow.waitForExit(timeout: 30) == 3)
        #expect(follow.text.contains("run       interrupted by shutdown; resumes on the next start"), "\(follow.text)")
        // The refused start left no run behind; the interrupted one goes on at the next start.
        daemon.dir.write("go", "")
        try daemon.start()
        #expect(try daemon.runs().map { $0["id"] as? String } == [runId])
        #expect(try await daemon.waitForRun(runId, timeout: 60) == "succeeded", "\(daemon.daemonLog.suffix(2_000))")
        #expect(daemon.stop() == 0)
    }

    @Test func exitOnHaltEndsTheCommandWithItsOwnCode() async throws {
        let daemon = try Self.haltingCanary()
        try daemon.start()
        let restore = try daemon.cli(["restore", "main", "--exit-on-halt"])
        #expect(restore.status == 4, "\(restore.stdout)\(restore.stderr)")
        let runId = try #require(try daemon.runs().first?["id"] as? String)
        #expect(restore.stdout.contains("HALTED: run \(runId), wave 1 gate failed"), "\(restore.stdout)")
        #expect(restore.stdout.contains("lifeboat resume \(runId)") && restore.stdout.contains("lifeboat cancel \(runId)"))
        #expect(restore.stderr.contains("is halted at a wave gate (--exit-on-halt)"))
        // Watching a run that is already halted says so at once, too.
        let watch = try daemon.cli(["watch", runId, "--exit-on-halt"])
        #expect(watch.status == 4)
        #expect(watch.stdout.contains("HALTED: run \(runId)"))
        // With --json, the outcome is said as JSON on standard error, as every failure is.
        let jsonWatch = try daemon.cli(["watch", runId, "--exit-on-halt", "--json"])
        let halted = (jsonObject(jsonWatch.stderr) as? [String: Any])?["error"] as? [String: Any]
        #expect(jsonWatch.status == 4 && halted?["code"] as? String == "halted" && halted?["exit_code"] as? Int == 4
                && (halted?["message"] as? String)?.contains("is halted at a wave gate") == true, "\(jsonWatch.stderr)")
        // `show` says the same.
        #expect(try daemon.cli(["show", runId]).stdout.contains("lifeboat resume \(runId)"))
        // `status` forecasts no pace for a run that makes none: it waits for an operator.
        let status = try daemon.cli(["status"]).stdout
        #expect(status.contains("\(runId): no forecast while halted at a wave gate") && !status.contains("on track"), "\(status)")
        let forecast = ((jsonObject(try daemon.cli(["status", "--json"]).stdout) as? [String: Any])?["runs"] as? [[String: Any]])?.first?["forecast"] as? [String: Any]
        #expect(forecast?["halted"] as? Bool == true && forecast?["finish_at"] == nil, "\(String(describing: forecast))")
        #expect(try daemon.cli(["cancel", runId]).status == 0)
        #expect(try await daemon.waitForRun(runId) == "cancelled")
        let ended = try daemon.cli(["watch", runId, "--json"])
        let failed = (jsonObject(ended.stderr) as? [String: Any])?["error"] as? [String: Any]
        #expect(ended.status == 1 && failed?["code"] as? String == "failed" && failed?["message"] as? String == "run \(runId) cancelled", "\(ended.stderr)")
        #expect(daemon.stop() == 0)
    }
}

/// `max_concurrent_runs` as an operator meets it: queued runs say what they wait behind, a halted
/// run holds no slot, `watch` finds the run to follow.
@Suite(.serialized, .ownThread) struct QueueTests {
    @Test func aQueuedRunSaysWhatItWaitsBehindAndAHaltedRunHoldsNoSlot() async throws {
        let daemon = try FollowTests.haltingCanary(sites: 6)
        // `urgent` restores jira only (intact archives); `slow`'s verify command holds its job.
        daemon.dir.write("plans/urgent.yaml", """
            name: urgent
            snapshots: ../store
            target: ../urgent/{site}/{product}
            products: [{name: jira}]
            """)
        daemon.dir.write("plans/slow.yaml", """
            name: slow
            snapshots: ../store
            target: ../slow/{site}/{product}
            products: [{name: jira}]
            verify: { command: ["/bin/sleep", "120"] }
            """)
        let config = { (limit: Int) -> Void in
            daemon.dir.write("lifeboatd.yaml", """
                plans_dir: plans
                state_dir: state
                socket: { path: lifeboatd.sock, mode: "0666" }
                max_concurrent_runs: \(limit)
                """)
        }
        config(1)
        try daemon.start()
        // A canary halts run A; with the only slot given up, an unrelated urgent restore runs.
        #expect(try daemon.cli(["restore", "main", "--sites", "acme,globex", "--exit-on-halt"]).status == 4)
        let halted = try #require(try daemon.runs().first?["id"] as? String)
        let urgent = try daemon.cli(["restore", "urgent", "--sites", "initech", "--follow"])
        #expect(urgent.status == 0, "\(urgent.stdout)\(urgent.stderr)")
        #expect(try daemon.runs().first { $0["id"] as? String == halted }?["state"] as? String == "halted")
        // `watch` without a run id follows the newest run going; --plan the newest of that plan.
        let watchNewest = try daemon.cli(["watch", "--exit-on-halt"])
        #expect(watchNewest.status == 4 && watchNewest.stdout.contains("watching run \(halted)"), "\(watchNewest.stdout)\(watchNewest.stderr)")
        let none = try daemon.cli(["watch", "--plan", "urgent"])
        #expect(none.status == 1 && none.stderr.contains("no run is going of plan urgent"), "\(none.stderr)")

        // A slow run takes the slot; the next run waits, and says behind which run and why.
        let slow = try daemon.startRestore(plan: "slow", ["--sites", "hooli"])
        #expect(try await FollowTests.waitForState(daemon, "running") == slow)
        // Started, it says at once that it is queued: it must not look as if it were going.
        let start = try daemon.cli(["restore", "urgent", "--sites", "umbrella"])
        let queued = try #require(start.stdout.split(separator: "\n").first { $0.hasPrefix("started restore run ") }.map { String($0.split(separator: " ")[3]) })
        #expect(start.status == 0 && start.stdout.contains("queued: max_concurrent_runs is 1 and run(s) \(slow) hold the slot(s)"), "\(start.stdout)")
        let show = try daemon.cli(["show", queued, "--json"])
        let detail = try #require(try JSONSerialization.jsonObject(with: Data(show.stdout.utf8)) as? [String: Any])
        let waiting = try #require(detail["waiting"] as? [String: Any], "\(show.stdout)")
        #expect(waiting["holders"] as? [String] == [slow])
        #expect(waiting["limit"] as? Int == 1)
        let text = try daemon.cli(["show", queued]).stdout
        #expect(text.contains("queued: max_concurrent_runs is 1 and run(s) \(slow) hold the slot(s)"), "\(text)")
        #expect(text.contains("raise max_concurrent_runs in the daemon config and `lifeboat reload`"))
        #expect(try daemon.cli(["status"]).stdout.contains("\(queued): queued: max_concurrent_runs is 1"))
        let statusJSON = try daemon.cli(["status", "--json"]).stdout
        #expect(statusJSON.contains("\"holders\""), "\(statusJSON)")
        let watch = try BackgroundCLI(daemon, ["watch", "--plan", "urgent"], output: "watch.log")
        #expect(try await watch.waitFor("waiting   queued: max_concurrent_runs is 1 and run(s) \(slow)", timeout: 5), "\(watch.text)\(watch.errorText)")
        #expect(watch.text.contains("watching run \(queued)"))
        // A run queued behind it says so; cancelled while queued, it ends at once.
        let dropped = try daemon.startRestore(plan: "urgent", ["--sites", "stark"])
        let droppedWait = try daemon.cli(["show", dropped, "--json"]).stdout
        #expect(droppedWait.contains("\"ahead\" : [\n      \"\(queued)\""), "\(droppedWait)")
        #expect(try daemon.cli(["cancel", dropped]).status == 0)
        #expect(try await daemon.waitForRun(dropped, timeout: 5) == "cancelled")
        #expect(try daemon.jobs(dropped).allSatisfy { $0["state"] as? String == "cancelled" })
        // Raising the limit with a reload starts it at once.
        config(2)
        #expect(try daemon.cli(["reload"]).status == 0)
        #expect(try await watch.waitForExit(timeout: 30) == 0, "\(watch.text)\(watch.errorText)")
        #expect(try await daemon.waitForRun(queued) == "succeeded")
        for run in [slow, halted] { #expect(try daemon.cli(["cancel", run]).status == 0) }
        #expect(try await daemon.waitForRun(slow) == "cancelled")
        #expect(try await daemon.waitForRun(halted) == "cancelled")
        #expect(daemon.stop() == 0)
    }
}
