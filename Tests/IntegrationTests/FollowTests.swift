import Foundation
import Testing

/// A CLI command left running with its standard output going to a file, as `> restore.log`,
/// `| tee` or a CI job's log would have it; the file is read while the command still runs.
final class BackgroundCLI: @unchecked Sendable {
    let process = Process()
    let output: String
    let errors: String

    init(_ daemon: DaemonHarness, _ arguments: [String], output name: String = "follow.log") throws {
        output = daemon.dir.file(name)
        errors = daemon.dir.file(name + ".err")
        for path in [output, errors] { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        process.executableURL = URL(fileURLWithPath: Binaries.lifeboat)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(["LIFEBOAT_SOCKET": daemon.socket]) { $1 }
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
@Suite(.serialized) struct FollowTests {
    /// A daemon whose plan has a one-site canary wave that fails its gate: every `contacts`
    /// archive has a wrong checksum, so the canary's contacts fails and its jira is skipped.
    static func haltingCanary(name: String = #function) throws -> DaemonHarness {
        let daemon = try DaemonHarness(sites: 4, planExtra: """
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
    static func waitForState(_ daemon: DaemonHarness, _ state: String, timeout: TimeInterval = 30) async throws -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let run = try daemon.runs().first, run["state"] as? String == state { return run["id"] as? String }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    @Test func followToAFileWritesEachEventWhenItHappensAndSaysWhyTheRunHalted() async throws {
        let daemon = try Self.haltingCanary()
        try daemon.start()
        let follow = try BackgroundCLI(daemon, ["restore", "main", "--follow"])
        let runId = try #require(try await Self.waitForState(daemon, "halted"), "the run never halted: \(daemon.daemonLog)")
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
        // `show` says the same.
        #expect(try daemon.cli(["show", runId]).stdout.contains("lifeboat resume \(runId)"))
        #expect(try daemon.cli(["cancel", runId]).status == 0)
        #expect(try await daemon.waitForRun(runId) == "cancelled")
        #expect(daemon.stop() == 0)
    }
}

