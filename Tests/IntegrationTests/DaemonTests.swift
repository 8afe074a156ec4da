import Foundation
import LifeboatTestSupport
import Testing

/// The real `lifeboatd` driven by the real `lifeboat`, the way an operator would.
@Suite(.serialized, .ownThread) struct DaemonTests {


    /// The states of the runs in the ledger, newest first.
    func runStates(_ daemon: DaemonHarness) throws -> [String] {
        let runs = try daemon.cli(["runs", "--json"])
        let list = try JSONSerialization.jsonObject(with: Data(runs.stdout.utf8)) as? [[String: Any]] ?? []
        return list.compactMap { $0["state"] as? String }
    }

    @Test func restoreEndToEndThroughTheSocket() throws {
        let daemon = try DaemonHarness(sites: 5)
        try daemon.start()
        let result = try daemon.cli(["restore", "main", "--follow", "--incident-at", "2026-11-25T10:00:00Z"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("succeeded"))
        let sites = try FileManager.default.contentsOfDirectory(atPath: daemon.dir.file("store")).sorted()
        for site in sites {
            for product in ["contacts", "jira"] {
                try expectSameAsTar(try newestArchive(daemon.dir, site, product), daemon.dir.file("out/\(site)/\(product)"), in: daemon.dir)
            }
        }
        // Per-job RPO/RTO in the ledger, as `show --json` reports them.
        let runs = try daemon.cli(["runs", "--json"])
        let list = try #require(try JSONSerialization.jsonObject(with: Data(runs.stdout.utf8)) as? [[String: Any]])
        let runId = try #require(list.first?["id"] as? String)
        let show = try daemon.cli(["show", runId, "--json"])
        let detail = try #require(try JSONSerialization.jsonObject(with: Data(show.stdout.utf8)) as? [String: Any])
        let jobs = try #require(detail["jobs"] as? [[String: Any]])
        #expect(jobs.count == 10)
        for job in jobs {
            #expect(job["state"] as? String == "succeeded")
            #expect((job["rpo_seconds"] as? Double ?? -1) > 0)
            #expect((job["rto_seconds"] as? Double ?? -1) >= 0)
            #expect(job["rpo_met"] as? Bool == true && job["rto_met"] as? Bool == true)
        }
        #expect(daemon.stop() == 0)
    }

    /// A failure the daemon did not foresee (here the ledger lost a table under it) is answered
    /// with what failed, not by closing the connection ("is the daemon running?", exit 3).
    @Test func anUnexpectedLedgerErrorIsAnsweredNotAClosedConnection() throws {
        let daemon = try DaemonHarness(sites: 1)
        try daemon.start()
        let result = try daemon.cli(["restore", "main", "--follow"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let runId = try #require(try daemon.runs().first?["id"] as? String)
        let drop = try run("/usr/bin/env", ["python3", "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('DROP TABLE jobs'); c.commit()", daemon.ledger])
        #expect(drop.status == 0, "\(drop.stderr)")
        let show = try daemon.cli(["show", runId])
        #expect(show.status != 0 && show.status != 3, "exit \(show.status): \(show.stdout)\(show.stderr)")
        #expect(show.stderr.contains("run.show failed inside the daemon") && show.stderr.contains("no such table: jobs"), "\(show.stderr)")
        // On one connection, a read the ledger fails is answered and the connection serves on.
        // (status no longer serves as the failing read: it answers from memory, the run board.)
        let answers = try daemon.raw(Array(#"{"id":1,"command":"run.show","params":{"run":"\#(runId)"}}"#.utf8) + [10]
                                     + Array(#"{"id":2,"command":"plans"}"#.utf8) + [10])
        #expect(answers.contains(#""id":1,"ok":false"#) && answers.contains(#""code":"internal""#), "\(answers)")
        #expect(answers.contains(#""id":2,"ok":true"#), "\(answers)")
        // The daemon goes on serving.
        #expect(try daemon.cli(["plans"]).status == 0)
        #expect(daemon.stop() == 0)
    }

    @Test func garbageOversizedAndHalfWrittenRequestsThenStatusWorks() throws {
        let daemon = try DaemonHarness(sites: 1)
        try daemon.start()
        // Binary garbage, not JSON.
        let garbage = try daemon.raw([0xFF, 0x00, 0x13, 0x37, 0x0A])
        #expect(garbage.contains(#""ok":false"#) && garbage.contains("bad-request"))
        // Valid JSON, wrong shapes and types.
        #expect(try daemon.raw(Array("[1,2,3]\n".utf8)).contains("bad-request"))
        #expect(try daemon.raw(Array(#"{"id":7,"command":"no.such"}"#.utf8) + [10]).contains(#""id":7"#))
        #expect(try daemon.raw(Array(#"{"id":8,"command":"no.such"}"#.utf8) + [10]).contains("unknown-command"))
        #expect(try daemon.raw(Array(#"{"id":9,"command":"run.show","params":{"run":42}}"#.utf8) + [10]).contains("invalid-params"))
        // Over 64 KiB, then a good request on the same connection.
        let big = Array(#"{"id":1,"command":"status","id":""#.utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: 70_000) + Array(#""}"#.utf8) + [10]
        let answer = try daemon.raw(big + Array(#"{"id":2,"command":"status"}"#.utf8) + [10])
        #expect(answer.contains("too-large"))
        #expect(answer.contains(#""id":2,"ok":true"#))
        // Just under the cap is accepted (the id is echoed, however long).
        let under = Array(#"{"command":"status","id":"3"#.utf8)
        let filler = [UInt8](repeating: UInt8(ascii: "y"), count: 65_536 - under.count - 2)
        #expect(try daemon.raw(under + filler + Array(#""}"#.utf8) + [10]).contains(#""ok":true"#))
        // Half a request, then the client goes away.
        _ = try daemon.raw(Array(#"{"id":4,"comm"#.utf8), closeAfterSend: true, timeout: 1)
        let status = try daemon.cli(["status"])
        #expect(status.status == 0)
        #expect(status.stdout.contains("lifeboatd"))
        #expect(daemon.stop() == 0)
    }

    /// A request is read exactly as sent or refused, naming what is wrong, and nothing starts: a
    /// client that leaves out `mode` must not start a production restore, nor a misspelt `sites`
    /// a run of every site. A run that does not exist is not found (not "not active").
    @Test func aRequestNotReadExactlyStartsNothing() throws {
        let daemon = try DaemonHarness(sites: 2)
        try daemon.start()
        func ask(_ line: String) throws -> String { try daemon.raw(Array(line.utf8) + [10]) }
        let noMode = try ask(#"{"id":1,"command":"run.start","params":{"plan":"main"}}"#)
        #expect(noMode.contains(#""code":"invalid-params""#) && noMode.contains(#"\"mode\" is required"#), "\(noMode)")
        let typo = try ask(#"{"id":2,"command":"run.start","params":{"plan":"main","mode":"restore","site":["site-001"]}}"#)
        #expect(typo.contains(#""code":"invalid-params""#) && typo.contains(#"unknown parameter \"site\" for run.start (did you mean \"sites\"?)"#),
                "\(typo)")
        let topLevel = try ask(#"{"id":3,"command":"run.start","plan":"main","mode":"restore","sties":["site-001"]}"#)
        #expect(topLevel.contains(#"unknown parameter \"sties\""#), "\(topLevel)")
        let runs = try daemon.cli(["runs", "--json"])
        #expect(runs.status == 0 && (try? JSONSerialization.jsonObject(with: Data(runs.stdout.utf8)) as? [Any])?.isEmpty == true, "\(runs.stdout)")
        let twice = try ask(#"{"id":6,"command":"status","command":"reload"}"#)
        #expect(twice.contains(#""code":"bad-request""#) && twice.contains(#"the key \"command\" twice"#), "\(twice)")
        // A JSON-RPC client's envelope is read as one.
        #expect(try ask(#"{"jsonrpc":"2.0","id":4,"method":"status","params":{}}"#).contains(#""id":4,"ok":true"#))
        for verb in ["cancel", "resume"] {
            let missing = try daemon.cli([verb, "20260101-000000-dead"])
            #expect(missing.status == 2 && missing.stderr.contains("no run 20260101-000000-dead in the ledger"), "\(verb): \(missing.stderr)")
            #expect(try ask(#"{"id":5,"command":"run.\#(verb)","params":{"run":"nope"}}"#).contains(#""code":"not-found""#))
        }
        #expect(daemon.stop() == 0)
    }

    /// The daemon caps glibc's malloc arenas (its peak in a 10,000-job run fell by a sixth to a
    /// quarter); an operator's MALLOC_ARENA_MAX wins; the start-up line says which is in force.
    @Test func daemonCapsMallocArenasUnlessTheEnvironmentSetsThem() throws {
        let daemon = try DaemonHarness(sites: 1, size: "4KiB")
        try daemon.start(environment: ["MALLOC_ARENA_MAX": ""])
        #expect(daemon.daemonLog.contains("malloc_arenas=2"), "\(daemon.daemonLog)")
        #expect(daemon.stop() == 0)
        try daemon.start(environment: ["MALLOC_ARENA_MAX": "5"])
        #expect(daemon.daemonLog.contains("malloc_arenas=5"), "\(daemon.daemonLog)")
        #expect(try daemon.cli(["restore", "main", "--follow"]).status == 0)
        #expect(daemon.stop() == 0)
    }

    /// Restores are bulk work: every thread of the daemon runs at niceness 10 (`nice`), so that an
    /// operator's command on a host at full load comes first; a higher niceness it was started
    /// with (a unit's `Nice=`) stands.
    @Test func daemonThreadsRunAtTheConfiguredNicenessNeverLower() throws {
        /// The niceness of each of a process's threads (field 19 of /proc/PID/task/TID/stat); a
        /// thread that ended meanwhile is left out.
        func threadNiceness(_ pid: Int32) throws -> [Int] {
            try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task").compactMap { tid in
                guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/stat", encoding: .utf8),
                      let end = stat.range(of: ")", options: .backwards) else { return nil }
                let fields = stat[end.upperBound...].split(separator: " ")
                return fields.count > 16 ? Int(fields[16]) : nil
            }
        }
        let daemon = try DaemonHarness(sites: 2, size: "4KiB")
        try daemon.start()
        #expect(daemon.daemonLog.contains("niceness=10"), "\(daemon.daemonLog)")
        // After a run, so that the threads started for its jobs are counted too.
        #expect(try daemon.cli(["restore", "main", "--follow"]).status == 0)
        let pid = try #require(daemon.process?.processIdentifier)
        let defaults = try threadNiceness(pid)
        #expect(defaults.count > 4 && Set(defaults) == [10], "\(defaults)")
        #expect(daemon.stop() == 0)

        let config = try String(contentsOfFile: daemon.dir.file("lifeboatd.yaml"), encoding: .utf8)
        daemon.dir.write("lifeboatd.yaml", config + "\nnice: 3\n")
        try daemon.start(launcher: ["/usr/bin/nice", "-n", "15"])
        let started = try #require(daemon.process?.processIdentifier)
        let niced = try threadNiceness(started)
        #expect(Set(niced) == [15], "\(niced)")
        #expect(daemon.daemonLog.contains("niceness=15"), "\(daemon.daemonLog)")
        #expect(daemon.stop() == 0)
        try daemon.start()
        let configured = try #require(daemon.process?.processIdentifier)
        let configuredNiceness = try threadNiceness(configured)
        #expect(Set(configuredNiceness) == [3], "\(configuredNiceness)")
        #expect(daemon.stop() == 0)
    }

    @Test func nonAdminMayReadButNotRestore() throws {
        let daemon = try DaemonHarness(sites: 1)
        // The socket's directory must be reachable by the other user.
        chmod(daemon.dir.path, 0o755)
        try daemon.start()
        let status = try daemon.cli(["status"], as: "65534")
        #expect(status.status == 0, "\(status.stderr)")
        let restore = try daemon.cli(["restore", "main"], as: "65534")
        #expect(restore.status == 2)
        #expect(restore.stderr.contains("run.start needs an admin"))
        #expect(restore.stderr.contains("uid 65534"))
        #expect(!FileManager.default.fileExists(atPath: daemon.dir.file("out")))
        #expect(daemon.daemonLog.contains("mutating command refused"))
        // A user the socket's mode shuts out is told that, not to look whether the daemon runs.
        chmod(daemon.socket, 0o600)
        let denied = try daemon.cli(["status"], as: "65534")
        #expect(denied.status == 3 && denied.stderr.contains("Permission denied. The daemon runs, but this user may not use its socket"), "\(denied.stderr)")
        #expect(daemon.stop() == 0)
    }

    @Test func sighupWithABrokenPlanKeepsThePreviousVersion() throws {
        let daemon = try DaemonHarness(sites: 1)
        try daemon.start()
        daemon.dir.write("plans/main.yaml", "name: main\nsnapshots: ../store\ntarget: ../out/{site}/{product}\nproducts: [{name: contacts, after: [nope]}]\n")
        daemon.signal(SIGHUP)
        var status = ""
        for _ in 0..<100 {
            status = try daemon.cli(["status"]).stdout
            if status.contains("plan problem") { break }
            usleep(50_000)
        }
        #expect(status.contains("plan problem: \(daemon.dir.file("plans/main.yaml")) (serving the previous version of main)"))
        #expect(status.contains("main.yaml:4:"))
        // The previous version still restores.
        let restore = try daemon.cli(["restore", "main", "--follow"])
        #expect(restore.status == 0, "\(restore.stdout)\(restore.stderr)")
        #expect(daemon.stop() == 0)
    }

    @Test func sighupRereadsTheConfig() throws {
        let daemon = try DaemonHarness(sites: 1)
        chmod(daemon.dir.path, 0o755)
        try daemon.start()
        #expect(try daemon.cli(["restore", "main"], as: "65534").status == 2)
        // An invalid config is reported and the running one kept.
        let good = try String(contentsOfFile: daemon.dir.file("lifeboatd.yaml"), encoding: .utf8)
        daemon.dir.write("lifeboatd.yaml", good + "\nadmins: { uids: [nobody] }\n")
        daemon.signal(SIGHUP)
        var status = ""
        for _ in 0..<100 {
            status = try daemon.cli(["status"]).stdout
            if status.contains("(serving the previous version of the running config)") { break }
            usleep(50_000)
        }
        #expect(status.contains("lifeboatd.yaml:6:"), "\(status)")
        #expect(status.contains("admins.uids must list numeric user ids"))
        // A valid one applies its admins at once.
        daemon.dir.write("lifeboatd.yaml", good + "\nadmins: { uids: [65534] }\n")
        let reload = try daemon.cli(["reload"])
        #expect(reload.status == 0, "\(reload.stderr)")
        let restore = try daemon.cli(["restore", "main", "--follow"], as: "65534")
        #expect(restore.status == 0, "\(restore.stdout)\(restore.stderr)")
        // A key only a restart applies is named to whoever reloaded, and in status until then;
        // the daemon's log does not call it a plan's problem.
        daemon.dir.write("lifeboatd.yaml", good + "\nadmins: { uids: [65534] }\nnice: 5\n")
        let pending = try daemon.cli(["reload"])
        #expect(pending.status == 2 && pending.stderr.contains("nice changed: it takes effect at the next start of lifeboatd"), "\(pending.stderr)")
        #expect(try daemon.cli(["status"]).stdout.contains("nice changed: it takes effect at the next start"))
        #expect(!daemon.daemonLog.contains("invalid plan"), "\(daemon.daemonLog.suffix(2_000))")
        // The socket's mode too (a probe changed it, reloaded, and heard nothing).
        daemon.dir.write("lifeboatd.yaml", (good + "\nadmins: { uids: [65534] }\nnice: 5\n").replacingOccurrences(of: #"mode: "0666""#, with: #"mode: "0600""#))
        let mode = try daemon.cli(["reload"])
        #expect(mode.stderr.contains("socket.mode, nice changed: they take effect at the next start of lifeboatd"), "\(mode.stderr)")
        #expect(daemon.stop() == 0)
    }

    @Test func readinessAndStoppingOnNotifySocket() throws {
        let daemon = try DaemonHarness(sites: 1)
        // The hooks write their environment down.
        let plan = try String(contentsOfFile: daemon.dir.file("plans/main.yaml"), encoding: .utf8)
        daemon.dir.write("plans/main.yaml", plan + "\nverify: { command: [\"/bin/sh\", \"-c\", \"env > \\\"$0\\\"\", \"\(daemon.dir.file("env-{product}"))\"] }\n")
        let notify = FakeNotifySocket(path: daemon.dir.file("notify.sock"))
        try daemon.start(environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "2000000"], waitReady: false)
        let startup = notify.collect(until: { $0.contains("READY=1") })
        #expect(startup.contains { $0.contains("READY=1") }, "\(startup) \(daemon.daemonLog)")
        #expect(startup.contains { $0.contains("STATUS=0 run(s), 0/0 jobs, 0 B/s") }, "\(startup)")
        // The socket answers once READY was sent.
        #expect(try daemon.cli(["status"]).status == 0)
        let pings = notify.collect(until: { $0.contains("WATCHDOG=1") }, timeout: 5)
        #expect(pings.contains { $0.contains("WATCHDOG=1") })
        // Hooks do not inherit the daemon's notification socket or watchdog.
        #expect(try daemon.cli(["restore", "main", "--follow"]).status == 0)
        let hookEnvironment = ["contacts", "jira"].compactMap { try? String(contentsOfFile: daemon.dir.file("env-\($0)"), encoding: .utf8) }
        #expect(!hookEnvironment.isEmpty && hookEnvironment.allSatisfy { $0.contains("LIFEBOAT_RUN=") && !$0.contains("NOTIFY_SOCKET") && !$0.contains("WATCHDOG_") },
                "\(hookEnvironment)")
        daemon.signal(SIGTERM)
        let shutdown = notify.collect(until: { $0.contains("STOPPING=1") })
        #expect(shutdown.contains { $0.contains("STOPPING=1") })
        #expect(daemon.stop() == 0)
    }

    @Test func unreachableDaemonExitsThreeNamingTheSocket() throws {
        let dir = TempDir()
        let result = try run(Binaries.lifeboat, ["status", "--socket", dir.file("nope.sock")])
        #expect(result.status == 3)
        #expect(result.stderr.contains(dir.file("nope.sock")))
    }

    /// Something on the socket that is not lifeboatd, or a daemon that takes the connection and
    /// never answers (frozen): the CLI gives up, exit 3 ("cannot reach"), saying what it got.
    @Test(arguments: ["silent", "http", "shape"])
    func aSocketThatDoesNotAnswerLikeLifeboatdIsUnreachable(mode: String) throws {
        let dir = TempDir()
        let socket = dir.file("impostor.sock")
        // Python bytes literals.
        let payload = ["silent": "", "http": #"HTTP/1.0 200 OK\r\n\r\nhello\n"#, "shape": #"{\"id\":1,\"ok\":true,\"result\":{}}\n"#][mode]!
        let impostor = Process()
        impostor.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        impostor.arguments = ["python3", "-c", """
            import socket, time
            s = socket.socket(socket.AF_UNIX)
            s.bind('\(socket)')
            s.listen()
            c, _ = s.accept()
            c.recv(65536)
            c.sendall(b"\(payload)")
            time.sleep(60)
            """]
        try impostor.run()
        defer { impostor.terminate() }
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: socket) { usleep(50_000) }
        let asked = Date()
        let result = try run(Binaries.lifeboat, ["status", "--socket", socket])
        #expect(result.status == 3, "\(result.stdout)\(result.stderr)")
        #expect(Date().timeIntervalSince(asked) < 30)
        let said = ["silent": "no answer within 15 s: the daemon took the connection but does not answer",
                    "http": "the answer is not a JSON object (it begins \"HTTP/1.0 200 OK", "shape": "the answer does not read as lifeboatd's (no \"version\")"][mode]!
        #expect(result.stderr.contains(said) && result.stderr.contains(socket), "\(result.stderr)")
    }

    /// A socket in a directory others may write can be renamed away and replaced by theirs: said.
    @Test func aSocketDirectoryOthersCanWriteIsWarnedAbout() throws {
        let daemon = try DaemonHarness(sites: 1)
        chmod(daemon.dir.path, 0o777)
        try daemon.start()
        #expect(daemon.daemonLog.contains("the control socket's directory lets other users replace the socket")
                && daemon.daemonLog.contains("\(daemon.dir.path) is writable by every user (mode 777)"), "\(daemon.daemonLog)")
        #expect(daemon.stop() == 0)
    }

    @Test func secondDaemonOnTheSameStateDirectoryRefuses() throws {
        let daemon = try DaemonHarness(sites: 1)
        try daemon.start()
        let second = try run(Binaries.lifeboatd, ["--config", daemon.dir.file("lifeboatd.yaml")])
        #expect(second.status == 1)
        #expect(second.stderr.contains("another lifeboatd (pid \(daemon.process!.processIdentifier)) is using the state directory"))
        #expect(try daemon.cli(["status"]).status == 0)
        #expect(daemon.stop() == 0)
    }

    /// A daemon killed outright (no systemd to end its control group) leaves its hooks running;
    /// the next daemon on the state directory ends them before it takes their jobs up again, and
    /// leaves alone a process that merely has a recorded pid now.
    @Test func hooksOfAKilledDaemonAreEndedByTheNextOne() async throws {
        let daemon = try DaemonHarness(sites: 1, size: "64KiB")
        let pids = daemon.dir.file("hook-pids")
        let go = daemon.dir.file("go")
        // The verify command writes its pid, then (until `go` exists) ignores SIGTERM and sleeps.
        daemon.dir.write("plans/main.yaml", try String(contentsOfFile: daemon.dir.file("plans/main.yaml"), encoding: .utf8)
            + "verify: { command: [\"/bin/sh\", \"-c\", \"echo $$ >> \(pids); if test ! -e \(go); then trap '' TERM; sleep 300; fi\"] }\n")
        try daemon.start()
        let run = try daemon.startRestore()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, ((try? String(contentsOfFile: pids, encoding: .utf8)) ?? "").isEmpty { try await Task.sleep(for: .milliseconds(20)) }
        let hook = try #require(pid_t(try String(contentsOfFile: pids, encoding: .utf8).split(separator: "\n")[0]))
        // A record of a pid that is someone else's by now: this test's own process.
        daemon.dir.write("state/hooks/\(getpid())", "1\n/bin/false\n")
        daemon.kill9()
        #expect(kill(hook, 0) == 0, "the hook ended with the daemon; nothing to test")
        daemon.dir.write("go", "")
        try daemon.start()
        // Ended, despite ignoring SIGTERM (killed after the 5 s grace), before its job resumed.
        let gone = Date().addingTimeInterval(20)
        while Date() < gone, kill(hook, 0) == 0 { try await Task.sleep(for: .milliseconds(20)) }
        #expect(kill(hook, 0) != 0, "the hook \(hook) of the killed daemon still runs")
        #expect(daemon.daemonLog.contains("ending a hook the previous lifeboatd left running") && daemon.daemonLog.contains("pid=\(hook)"),
                "\(daemon.daemonLog.suffix(2_000))")
        #expect(daemon.daemonLog.contains("ignored SIGTERM"))
        #expect(try await daemon.waitForRun(run, timeout: 60) == "succeeded", "\(daemon.daemonLog.suffix(2_000))")
        // Records go once reaped: none left after the run.
        #expect(try FileManager.default.contentsOfDirectory(atPath: daemon.dir.file("state/hooks")).isEmpty)
        #expect(daemon.stop() == 0)
    }

    @Test func killedDaemonResumesTheRunWithNothingCommittedTwice() throws {
        let daemon = try DaemonHarness(sites: 12, size: "2MiB", planExtra: "concurrency: 1")
        for site in ["acme", "globex"] { daemon.dir.write("out/\(site)/contacts/precious.txt", "old \(site)") }
        try daemon.start()
        let start = try daemon.cli(["restore", "main", "--json"])
        #expect(start.status == 0, "\(start.stderr)")
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let sites = (try? FileManager.default.contentsOfDirectory(atPath: daemon.dir.file("out")))?.count ?? 0
            if sites >= 5 { break }
            usleep(20_000)
        }
        #expect(try runStates(daemon) == ["running"], "the run ended before the kill; make the fleet bigger")
        daemon.kill9()
        try daemon.start()
        // The resumed run finishes.
        var finished = false
        for _ in 0..<600 {
            let states = try runStates(daemon)
            if states == ["succeeded"] { finished = true; break }
            #expect(states != ["failed"])
            usleep(50_000)
        }
        #expect(finished, "\(daemon.daemonLog)")
        let sites = try FileManager.default.contentsOfDirectory(atPath: daemon.dir.file("store")).sorted()
        for site in sites {
            for product in ["contacts", "jira"] {
                try expectSameAsTar(try newestArchive(daemon.dir, site, product), daemon.dir.file("out/\(site)/\(product)"), in: daemon.dir)
            }
        }
        for site in ["acme", "globex"] {
            let q = try FileManager.default.contentsOfDirectory(atPath: daemon.dir.file("out/\(site)/.lifeboat-quarantine"))
            #expect(q.count == 1)
            #expect(try String(contentsOfFile: daemon.dir.file("out/\(site)/.lifeboat-quarantine/\(q[0])/precious.txt"), encoding: .utf8) == "old \(site)")
        }
        for site in sites where !["acme", "globex"].contains(site) {
            #expect(!FileManager.default.fileExists(atPath: daemon.dir.file("out/\(site)/.lifeboat-quarantine")), "\(site) committed twice")
        }
        #expect(try run("/usr/bin/find", [daemon.dir.file("out"), "-name", ".lifeboat-staging"]).stdout.isEmpty)
        #expect(daemon.stop() == 0)
    }
}

/// Prometheus metrics, scraped with curl the way a monitoring system would.
@Suite(.serialized, .ownThread) struct MetricsTests {
    @Test func metricsEndpointReportsJobsBytesAndObjectives() throws {
        let daemon = try DaemonHarness(sites: 2)
        let port = listenerTestPort(offset: 0)
        daemon.dir.write("lifeboatd.yaml", """
            plans_dir: plans
            state_dir: state
            socket: { path: lifeboatd.sock, mode: "0666" }
            metrics: { listen: "127.0.0.1:\(port)" }
            """)
        try daemon.start()
        let restore = try daemon.cli(["restore", "main", "--follow"])
        #expect(restore.status == 0, "\(restore.stderr)")
        var body = ""
        for _ in 0..<50 {
            let scrape = try run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(port)/metrics"])
            body = scrape.stdout
            if body.contains(#"lifeboat_jobs_total{state="succeeded",mode="restore"} 4"#) { break }
            usleep(100_000)
        }
        #expect(body.contains(#"lifeboat_jobs_total{state="succeeded",mode="restore"} 4"#), "\(body)")
        #expect(body.contains(#"lifeboat_jobs_total{state="failed",mode="restore"} 0"#))
        #expect(body.contains("lifeboat_restored_bytes_total"))
        #expect(body.contains(#"lifeboat_job_rto_seconds_count{mode="restore"} 4"#))
        #expect(body.contains(#"lifeboat_job_rpo_seconds_count{mode="restore"} 4"#))
        // The run ended: nothing is left to forecast, and its per-run series are gone.
        #expect(!body.contains("lifeboat_run_rto_objective_seconds{"), "\(body)")
        #expect(body.contains("lifeboat_runs_active 0"))
        #expect(body.contains("# TYPE lifeboat_job_rto_seconds histogram"))
        // An exercise's jobs (sub-second RTOs, declared at its own start) are series of their own:
        // the incident's figures stay as they were.
        let exercise = try daemon.cli(["exercise", "main", "--follow"])
        #expect(exercise.status == 0, "\(exercise.stdout)\(exercise.stderr)")
        for _ in 0..<50 {
            body = try run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(port)/metrics"]).stdout
            if body.contains(#"lifeboat_job_rto_seconds_count{mode="exercise"}"#) { break }
            usleep(100_000)
        }
        #expect(body.contains(#"lifeboat_job_rto_seconds_count{mode="exercise"}"#) && body.contains(#"lifeboat_restored_bytes_total{mode="exercise"}"#), "\(body)")
        #expect(body.contains(#"lifeboat_job_rto_seconds_count{mode="restore"} 4"#) && body.contains(#"lifeboat_jobs_total{state="succeeded",mode="restore"} 4"#))
        let notFound = try run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/other"])
        #expect(notFound.stdout == "404")
        #expect(daemon.stop() == 0)
    }
}
