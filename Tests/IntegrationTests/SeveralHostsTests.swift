import Foundation
import Testing
import LifeboatTestSupport

/// Several real `lifeboatd` processes sharing one real PostgreSQL ledger (started by the test
/// harness) and one snapshot store, plans and target tree, as recovery hosts do.
@Suite(.serialized, .ownThread, .enabled(if: LocalPostgres.available, "several hosts \(LocalPostgres.installHint)"))
struct SeveralHostsTests {
    /// One `lifeboatd` of the fleet: its own state directory, socket and host name.
    final class Host: @unchecked Sendable {
        let name: String
        let dir: TempDir
        /// The network namespace the host runs in (nil: this one).
        let namespace: NetworkNamespace?
        var process: Process?
        var socket: String { dir.file("\(name).sock") }
        var log: String { dir.file("\(name).log") }

        /// `ledgerPort`: where the host finds the database (default: the server's own port); in
        /// a `namespace`, the server is reached on its side of the namespace's link.
        init(name: String, dir: TempDir, database: String, server: LocalPostgres, ledgerPort: Int? = nil, namespace: NetworkNamespace? = nil) {
            self.name = name
            self.dir = dir
            self.namespace = namespace
            let url = server.url(database: database, host: namespace?.outside).replacingOccurrences(of: ":\(server.port)/", with: ":\(ledgerPort ?? server.port)/")
            dir.write("\(name).yaml", """
                plans_dir: plans
                state_dir: state-\(name)
                socket: { path: \(name).sock, mode: "0666" }
                log: { level: debug }
                ledger:
                  url: \(url)
                  password_file: \(server.passwordFile)
                  lease: 5s
                host:
                  name: \(name)
                """)
        }

        func start(waitReady: Bool = true) throws {
            let process = Process()
            let command = [Binaries.lifeboatd, "--config", dir.file("\(name).yaml")]
            let (executable, arguments) = namespace?.command(command) ?? (command[0], Array(command.dropFirst()))
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            self.process = process
            guard waitReady else { return }
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline, process.isRunning {
                if try cli(["status"]).status == 0 { return }
                usleep(100_000)
            }
            Issue.record("\(name) did not become ready: \(daemonLog)")
        }

        var daemonLog: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

        @discardableResult
        func cli(_ arguments: [String]) throws -> ProcessResult {
            try run(Binaries.lifeboat, arguments, environment: ["LIFEBOAT_SOCKET": socket])
        }

        func json(_ arguments: [String]) throws -> Any? {
            try JSONSerialization.jsonObject(with: Data(try cli(arguments + ["--json"]).stdout.utf8))
        }

        /// Freezes the process (SIGSTOP) and thaws it (SIGCONT), as a VM paused past its lease.
        func freeze() { if let process, process.isRunning { kill(process.processIdentifier, SIGSTOP) } }
        func thaw() { if let process, process.isRunning { kill(process.processIdentifier, SIGCONT) } }

        func kill9() {
            guard let process, process.isRunning else { return }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }

        @discardableResult
        func stop() -> Int32 {
            guard let process else { return -1 }
            if process.isRunning { kill(process.processIdentifier, SIGTERM) }
            process.waitUntilExit()
            return process.terminationStatus
        }

        /// SIGTERM, then SIGKILL after `grace` seconds, as systemd's stop does (`TimeoutStopSec`);
        /// whether the host stopped by itself.
        @discardableResult
        func stop(grace: TimeInterval) -> Bool {
            guard let process, process.isRunning else { return true }
            kill(process.processIdentifier, SIGTERM)
            let deadline = Date().addingTimeInterval(grace)
            while process.isRunning, Date() < deadline { usleep(50_000) }
            guard process.isRunning else { return true }
            kill9()
            return false
        }

        deinit {
            thaw()
            kill9()
        }
    }

    /// A store of `sites` × contacts,jira, a plan whose jobs each take a while (a verify command
    /// that sleeps), and hosts sharing a fresh database.
    func fleet(sites: Int, hosts: [String], verifySleep: String = "0.4", concurrency: Int = 2) async throws -> (TempDir, [Host], String, LocalPostgres) {
        let server = try await LocalPostgres.shared()
        let database = try server.createDatabase()
        let dir = TempDir()
        try DaemonHarness.writeFleet(in: dir, sites: sites, size: "64KiB", planExtra: """
            concurrency: \(concurrency)
            verify: { checksum: if-present, command: ["/bin/sleep", "\(verifySleep)"] }
            """)
        return (dir, hosts.map { Host(name: $0, dir: dir, database: database, server: server) }, database, server)
    }

    /// Two hosts and a store of 3 sites whose every job fails its verify command: the one-site
    /// canary wave's gate halts each run.
    func haltingFleet() async throws -> (TempDir, [Host]) {
        let server = try await LocalPostgres.shared()
        let database = try server.createDatabase()
        let dir = TempDir()
        try DaemonHarness.writeFleet(in: dir, sites: 3, size: "8KiB", planExtra: """
            verify: { checksum: if-present, command: ["/bin/false"] }
            waves:
              - { sites: 1, gate: { max_failures: 0 } }
              - { sites: rest }
            """)
        return (dir, ["recovery-1", "recovery-2"].map { Host(name: $0, dir: dir, database: database, server: server) })
    }

    /// A verify command (`check SITE PRODUCT`) that fails a job the first time only while its
    /// marker `fail-once/SITE-PRODUCT` is there (a flaky check an operator mends), and takes
    /// `sleep` seconds otherwise.
    func failOnceCheck(in dir: TempDir, sleep: String) -> String {
        let check = dir.write("check", """
            #!/bin/sh
            marker="\(dir.file("fail-once"))/$1-$2"
            if [ -e "$marker" ]; then rm -f "$marker"; echo "$1/$2: check failed" >&2; exit 1; fi
            sleep \(sleep)
            """)
        chmod(check, 0o755)
        return check
    }

    /// Starts a restore of the fleet's plan through `host`'s socket; returns the run's id.
    func startRestore(on host: Host) throws -> String {
        let start = try host.cli(["restore", "main", "--json"])
        #expect(start.status == 0, "\(start.stdout)\(start.stderr)")
        return try #require((try JSONSerialization.jsonObject(with: Data(start.stdout.utf8)) as? [String: Any])?["id"] as? String)
    }

    /// A query of the fleet's database, its answer trimmed.
    func sql(_ server: LocalPostgres, _ database: String, _ query: String) throws -> String {
        try server.psql(database, query).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func runState(_ host: Host, _ id: String) throws -> String? {
        (try host.json(["runs"]) as? [[String: Any]])?.first { $0["id"] as? String == id }?["state"] as? String
    }

    @Test func hostsSeeEachOtherAndOneLedger() async throws {
        let (dir, hosts, _, _) = try await fleet(sites: 3, hosts: ["recovery-1", "recovery-2"], verifySleep: "0")
        for host in hosts { try host.start() }
        defer { for host in hosts { host.stop() } }
        let status = try #require(try hosts[1].json(["status"]) as? [String: Any])
        #expect(status["host"] as? String == "recovery-2")
        let listed = try #require(status["hosts"] as? [[String: Any]])
        #expect(listed.map { $0["name"] as? String } == ["recovery-1", "recovery-2"])
        #expect(listed.allSatisfy { $0["state"] as? String == "alive" && ($0["heartbeat_age_seconds"] as? Double ?? 99) < 10 })
        #expect(try hosts[0].cli(["status"]).stdout.contains("2 of 2 host(s) alive"))
        // A run started on one host is in the one ledger: the other shows it, and its jobs say
        // which host ran them (both claim them).
        let start = try hosts[0].cli(["restore", "main", "--follow"])
        #expect(start.status == 0, "\(start.stdout)\(start.stderr)")
        let runs = try #require(try hosts[1].json(["runs"]) as? [[String: Any]])
        let id = try #require(runs.first?["id"] as? String)
        #expect(runs.first?["state"] as? String == "succeeded")
        let show = try #require(try hosts[1].json(["show", id]) as? [String: Any])
        let jobs = try #require(show["jobs"] as? [[String: Any]])
        #expect(jobs.count == 6 && jobs.allSatisfy { ["recovery-1", "recovery-2"].contains($0["host"] as? String) && $0["state"] as? String == "succeeded" })
        // A clean stop says goodbye: the other host sees it stopped at once.
        #expect(hosts[0].stop() == 0)
        let after = try #require(try hosts[1].json(["status"]) as? [String: Any])
        #expect((after["hosts"] as? [[String: Any]])?.first?["state"] as? String == "stopped")
        // Nothing along the way worth a warning: a host's start used to warn of a connection
        // asked for before its pool ran.
        for host in hosts {
            let warnings = host.daemonLog.split(separator: "\n").filter { $0.contains(" WARNING ") || $0.contains(" ERROR ") }
            #expect(warnings.isEmpty, "\(host.name): \(warnings.joined(separator: "\n"))")
        }
        _ = dir
    }

    /// A second daemon started under a live host's name (cloned machines share a host name, the
    /// default) claims, coordinates and serves nothing until the name is free: it used to serve
    /// its socket, coordinate runs and commit jobs recorded under the other process.
    @Test func aSecondDaemonUnderALiveHostsNameWaitsForTheName() async throws {
        let (dir, hosts, _, _) = try await fleet(sites: 2, hosts: ["twin-a", "twin-b"], verifySleep: "0")
        let config = dir.file("twin-b.yaml")
        let http = "127.0.0.1:\(listenerTestPort(offset: 126))"
        try (String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(of: "  name: twin-b", with: "  name: twin-a")
             + "\nhttp: { listen: \"\(http)\" }\n").write(toFile: config, atomically: true, encoding: .utf8)
        try hosts[0].start()
        defer { for host in hosts { host.stop() } }
        try hosts[1].start(waitReady: false)
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, !hosts[1].daemonLog.contains("host name in use") { usleep(100_000) }
        #expect(hosts[1].daemonLog.contains("host name in use"), "\(hosts[1].daemonLog.suffix(2000))")
        #expect(try hosts[1].cli(["status"]).status == 3, "its socket does not answer")
        // Nor its web view and metrics: a scrape would count it as the live host of that name.
        #expect(try httpGet("http://\(http)/metrics").status == 0, "its HTTP listener answers")
        let restore = try hosts[0].cli(["restore", "main", "--follow"])
        #expect(restore.status == 0, "\(restore.stdout)\(restore.stderr)")
        #expect(!hosts[1].daemonLog.contains("job committed") && !hosts[1].daemonLog.contains("run started"), "\(hosts[1].daemonLog.suffix(2000))")
        // A clean stop frees the name: the second registers and serves.
        #expect(hosts[0].stop() == 0)
        let freed = Date().addingTimeInterval(30)
        while Date() < freed, try hosts[1].cli(["status"]).status != 0 { usleep(200_000) }
        #expect(try hosts[1].cli(["status"]).status == 0, "\(hosts[1].daemonLog.suffix(2000))")
        #expect(try httpGet("http://\(http)/metrics").body.contains("lifeboat_ledger_up{host=\"twin-a\"} 1"))
    }

    /// Each host's `/metrics` say what it is at: the jobs it runs now, then what its own jobs
    /// restored over the last minute, as `status` lists the host.
    @Test func eachHostsMetricsCountItsOwnWork() async throws {
        let (dir, hosts, _, _) = try await fleet(sites: 4, hosts: ["recovery-1", "recovery-2"], verifySleep: "5", concurrency: 4)
        var listeners: [String: String] = [:]
        for (index, host) in hosts.enumerated() {
            let listen = "127.0.0.1:\(listenerTestPort(offset: 127 + index))"
            let config = dir.file("\(host.name).yaml")
            try (String(contentsOfFile: config, encoding: .utf8) + "\nhttp: { listen: \"\(listen)\" }\n").write(toFile: config, atomically: true, encoding: .utf8)
            listeners[host.name] = listen
        }
        for host in hosts { try host.start() }
        defer { for host in hosts { host.stop() } }
        func gauge(_ name: String, of host: Host) throws -> Double? {
            let line = "\(name){host=\"\(host.name)\"} "
            return try httpGet("http://\(listeners[host.name]!)/metrics").body.split(separator: "\n")
                .first { $0.hasPrefix(line) }.flatMap { Double($0.dropFirst(line.count)) }
        }
        func running() throws -> Double { try hosts.reduce(0) { $0 + (try gauge("lifeboat_jobs_running", of: $1) ?? 0) } }
        let id = try startRestore(on: hosts[0])
        // The four sites' contacts verify (5 s) at once, wherever each was claimed (each host's
        // gauges are refreshed every 2 s).
        var deadline = Date().addingTimeInterval(30)
        while Date() < deadline, try running() != 4 { try await Task.sleep(for: .milliseconds(200)) }
        let during = try hosts.map { try gauge("lifeboat_jobs_running", of: $0) }
        #expect(during.reduce(0) { $0 + ($1 ?? 0) } == 4, "\(during)")
        #expect(try await waitForState(hosts[0], id, in: ["succeeded", "failed", "cancelled"]) == "succeeded")
        // Idle: each host's throughput is its own, as the ledger's rows of its jobs give it.
        func listed() throws -> [String: Double] {
            let status = try #require(try hosts[0].json(["status"]) as? [String: Any])
            let rows = try #require(status["hosts"] as? [[String: Any]])
            return Dictionary(uniqueKeysWithValues: rows.compactMap { row in
                (row["name"] as? String).flatMap { name in (row["bytes_per_second"] as? Double).map { (name, $0) } }
            })
        }
        func measured() throws -> [String: Double] {
            Dictionary(uniqueKeysWithValues: try hosts.map { ($0.name, try gauge("lifeboat_restore_throughput_bytes_per_second", of: $0) ?? -1) })
        }
        deadline = Date().addingTimeInterval(15)
        while Date() < deadline, try running() != 0 || measured() != listed() { try await Task.sleep(for: .milliseconds(200)) }
        #expect(try running() == 0)
        let (metrics, status) = (try measured(), try listed())
        #expect(metrics == status && metrics.values.reduce(0, +) > 0, "metrics \(metrics), status \(status)")
    }

    @Test func aKilledHostsRunIsTakenOverAndEveryJobCommittedOnce() async throws {
        let (dir, hosts, database, server) = try await fleet(sites: 10, hosts: ["recovery-1", "recovery-2"])
        let (first, second) = (hosts[0], hosts[1])
        for host in hosts { try host.start() }
        defer { for host in hosts { host.stop() } }
        let id = try startRestore(on: first)
        // Mid-run: some jobs done, others going.
        let deadline = Date().addingTimeInterval(120)
        func succeeded() throws -> Int {
            Int(try server.psql(database, "SELECT COUNT(*) FROM jobs WHERE state = 'succeeded'").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }
        while Date() < deadline, try succeeded() < 4 { try await Task.sleep(for: .milliseconds(100)) }
        first.kill9()
        let doneByFirst = try succeeded()
        #expect(doneByFirst < 20, "the run ended before the kill; nothing to take over")
        // The other host takes the run over once the lease runs out, and finishes it.
        var state: String?
        while Date() < deadline.addingTimeInterval(60) {
            state = try runState(second, id)
            if let state, ["succeeded", "failed", "cancelled"].contains(state) { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(state == "succeeded", "\(second.daemonLog.suffix(4_000))")
        #expect(second.daemonLog.contains("resuming run"))
        // Every job committed exactly once. The destinations were empty: a second commit of a job
        // would have moved the first one's tree into quarantine. No job succeeded twice in the
        // events (a killed host's last posted events may be lost, so at most once), every job
        // succeeded, every destination equals tar's extraction, no staging is left.
        let sql = { (query: String) in try self.sql(server, database, query) }
        #expect(try sql("SELECT COUNT(*) FROM quarantine") == "0")
        #expect(try sql("SELECT COUNT(*) FROM jobs WHERE state <> 'succeeded'") == "0")
        #expect(try sql("""
            SELECT COUNT(*) FROM jobs j WHERE (SELECT COUNT(*) FROM events e WHERE e.job_id = j.id
                                               AND e.kind IN ('job.succeeded', 'job.recovered')) > 1
            """) == "0")
        let quarantined = try run("/usr/bin/find", [dir.file("out"), "-path", "*/.lifeboat-quarantine/*"]).stdout
        #expect(quarantined.isEmpty, "a job was committed twice: \(quarantined)")
        let hostsOfJobs = try server.psql(database, "SELECT DISTINCT host FROM jobs ORDER BY host").split(separator: "\n").map(String.init)
        #expect(hostsOfJobs == ["recovery-1", "recovery-2"])
        let scene = try FaultScene(dir: dir, displaced: [])
        for site in scene.sites {
            for product in ["contacts", "jira"] { try scene.expectSameAsTar(site, product) }
        }
        let leftovers = try scene.stagingLeftovers()
        #expect(leftovers.isEmpty, "staging left: \(leftovers)")
        // The killed host is lost to the others.
        let status = try #require(try second.json(["status"]) as? [String: Any])
        #expect((status["hosts"] as? [[String: Any]])?.first { $0["name"] as? String == "recovery-1" }?["state"] as? String == "lost")
    }

    /// The incident room's page shows the fleet: each host with its heartbeat and jobs, and a host
    /// killed mid-run as lost, said at the top of the page.
    @Test(.enabled(if: WebViewBrowserTests.available, "needs chromium (apt-get install -y chromium)"))
    func theWebViewShowsTheFleetAndAHostLost() async throws {
        let (dir, hosts, _, _) = try await fleet(sites: 6, hosts: ["recovery-1", "recovery-2"], verifySleep: "1")
        let (first, second) = (hosts[0], hosts[1])
        let port = listenerTestPort(offset: 124)
        dir.write("recovery-1.yaml", try String(contentsOfFile: dir.file("recovery-1.yaml"), encoding: .utf8) + "\nhttp: { listen: \"127.0.0.1:\(port)\" }\n")
        for host in hosts { try host.start() }
        defer { for host in hosts { host.stop() } }
        _ = try startRestore(on: first)
        let ready = dir.file("page-ready")
        async let page = WebViewBrowserTests().probe("http://127.0.0.1:\(port)/", screenshot: dir.file("fleet.png"), seconds: 25, ready: ready)
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, !FileManager.default.fileExists(atPath: ready) { try await Task.sleep(for: .milliseconds(50)) }
        try await Task.sleep(for: .seconds(3))
        second.kill9()
        let samples = try await page.samples
        func row(_ sample: WebViewBrowserTests.Probe.Sample, _ host: String) -> [String]? { sample.hosts?.first { $0.first?.hasPrefix(host) == true } }
        // Both alive at first, this host marked; the killed one lost in the end, and said so.
        let both = samples.first { s in ["recovery-1", "recovery-2"].allSatisfy { row(s, $0)?.dropFirst().first == "alive" } }
        #expect(both.flatMap { row($0, "recovery-1")?.first } == "recovery-1 (this)", "\(samples)")
        #expect(both?.daemonLine?.contains("lifeboatd ") == true && both?.daemonLine?.contains(" on recovery-1") == true
                && both?.daemonLine?.contains("2 of 2 hosts alive") == true, "\(String(describing: both))")
        let last = try #require(samples.last)
        #expect(row(last, "recovery-2")?.dropFirst().first == "lost", "\(last)")
        #expect(row(last, "recovery-1")?.dropFirst().first == "alive", "\(last)")
        #expect(last.daemonLine?.contains("1 of 2 hosts alive") == true, "\(last)")
        #expect(last.alerts?.contains { $0.hasPrefix("HOST recovery-2 LOST: no heartbeat for ") && $0.contains("taken over by the hosts alive") } == true, "\(last)")
    }

    /// Three hosts share one run's jobs: each claims and runs some, the run's concurrency holds for
    /// the fleet (never more jobs running at once, whichever host runs them), and every job is
    /// committed once, equal to tar's extraction of its snapshot. The incident room's view of
    /// the run's events, paged from one host while all three write them, misses none.
    @Test func threeHostsShareARunsJobsWithinItsFleetWideLimit() async throws {
        let (dir, hosts, database, server) = try await fleet(sites: 24, hosts: ["recovery-1", "recovery-2", "recovery-3"],
                                                             verifySleep: "0.3", concurrency: 6)
        let api = "http://127.0.0.1:\(listenerTestPort(offset: 125))/api/v1/runs"
        dir.write("recovery-1.yaml", try String(contentsOfFile: dir.file("recovery-1.yaml"), encoding: .utf8)
                  + "\nhttp: { listen: \"127.0.0.1:\(listenerTestPort(offset: 125))\" }\n")
        for host in hosts { try host.start() }
        defer { for host in hosts { host.stop() } }
        // Pages of 7 events, as the web view asks for them (after the last id it has), until the
        // restore below has returned and a page comes back empty.
        let restored = dir.file("restored")
        let follower = Task.detached { () throws -> (run: String, ids: [Int64]) in
            let deadline = Date().addingTimeInterval(120)
            var run: String?
            while run == nil {
                try #require(Date() < deadline, "no run listed at \(api)")
                run = (jsonObject(try httpGet(api).body) as? [[String: Any]])?.first?["id"] as? String
                if run == nil { try await Task.sleep(for: .milliseconds(20)) }
            }
            var (ids, after) = ([Int64](), Int64(0))
            while true {
                let ended = FileManager.default.fileExists(atPath: restored)
                let page = try #require(jsonObject(try httpGet("\(api)/\(run!)/events?after=\(after)&limit=7").body) as? [String: Any])
                let events = (page["events"] as? [[String: Any]] ?? []).compactMap { ($0["id"] as? NSNumber)?.int64Value }
                ids += events
                after = (page["next"] as? NSNumber)?.int64Value ?? after
                if events.isEmpty {
                    if ended { return (run!, ids) }
                    try #require(Date() < deadline, "the run's events were followed for 120 s")
                    try await Task.sleep(for: .milliseconds(10))
                }
            }
        }
        let start = try hosts[1].cli(["restore", "main", "--follow"])
        _ = FileManager.default.createFile(atPath: restored, contents: nil)
        #expect(start.status == 0, "\(start.stdout)\(start.stderr)\(hosts[1].daemonLog.suffix(3_000))")
        let sql = { (query: String) in try self.sql(server, database, query) }
        // Every event up to the last one the follower saw, each once and in order (events written
        // after its last page are not its to have seen yet).
        let followed = try await follower.value
        let last = try #require(followed.ids.last)
        #expect(try sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM events WHERE run_id = '\(followed.run)' AND id <= \(last)")
                == followed.ids.map(String.init).joined(separator: ","))
        #expect(followed.ids.count >= 48, "\(followed.ids.count) events followed")
        #expect(try sql("SELECT state, COUNT(*) FROM runs GROUP BY state") == "succeeded|1")
        #expect(try sql("SELECT COUNT(*) FROM jobs WHERE state = 'succeeded'") == "48")
        // Every host ran some of them.
        #expect(try sql("SELECT string_agg(DISTINCT host, ',' ORDER BY host) FROM jobs") == "recovery-1,recovery-2,recovery-3")
        // Never more than the plan's 6 at once across the fleet (each job's attempt, start to end).
        let overlap = try sql("""
            SELECT MAX((SELECT COUNT(*) FROM jobs o WHERE o.started_at <= j.started_at AND o.finished_at > j.started_at)) FROM jobs j
            """)
        #expect((Int(overlap) ?? 99) <= 6, "\(overlap) jobs ran at once")
        // Each job was claimed once: by a host's worker, or in the slot of a job that ended (with
        // its claim given back). Here 37–41 of the 48 went the second way; at least a quarter must
        // (a slot is left to the worker while another host claims from the run).
        func claimed(_ message: String) -> Int {
            hosts.flatMap { $0.daemonLog.split(separator: "\n") }.filter { $0.contains(message) }
                .compactMap { $0.firstMatch(of: /\bclaimed=([0-9]+)/).flatMap { Int($0.1) } }.reduce(0, +)
        }
        let (looked, handedOn) = (claimed(" jobs claimed "), claimed(" slots handed on "))
        #expect(looked + handedOn == 48 && handedOn >= 12, "claimed by the workers: \(looked), in slots handed on: \(handedOn)")
        #expect(try sql("SELECT COUNT(*) FROM quarantine") == "0")
        let events = try sql("""
            SELECT j.site || '/' || j.product || ': ' || (SELECT string_agg(e.kind, ',' ORDER BY e.id) FROM events e WHERE e.job_id = j.id) FROM jobs j
            WHERE (SELECT COUNT(*) FROM events e WHERE e.job_id = j.id AND e.kind = 'job.succeeded') <> 1
            """)
        #expect(events.isEmpty, "jobs not recorded succeeded exactly once: \(events)")
        let scene = try FaultScene(dir: dir, displaced: [])
        for site in scene.sites {
            for product in ["contacts", "jira"] { try scene.expectSameAsTar(site, product) }
        }
        #expect(try scene.stagingLeftovers().isEmpty)
        // The follower saw every job end, wherever it ran.
        #expect(start.stdout.contains("48 succeeded"), "\(start.stdout)")
        // The run's own series are its coordinator's (recovery-2): a host that only ran some of
        // its jobs exports none of them, during the run or after it.
        let metrics = try httpGet("http://127.0.0.1:\(listenerTestPort(offset: 125))/metrics").body
        #expect(metrics.contains("lifeboat_jobs_total{state=\"succeeded\"") && !metrics.contains("{run=\""), "\(metrics)")
    }

    /// A host with another version of a run's plan (a rollout under way, a stale deploy) works
    /// none of its jobs, and says so once: the run's checksum rule, verify command and fleet-wide
    /// limit are those it was started with, wherever its jobs run.
    @Test func aHostWithAnotherVersionOfTheRunsPlanWorksNoneOfItsJobs() async throws {
        let (dir, hosts, database, server) = try await fleet(sites: 6, hosts: ["recovery-1", "recovery-2"], verifySleep: "0.3", concurrency: 2)
        // recovery-2's plans: the same plan, changed (another verify command, checksums off, 12 at
        // once). Its verify command takes 3 s, so that its own run lasts long enough for
        // recovery-1 to look at it (and say why it claims none of it).
        let plan = try String(contentsOfFile: dir.file("plans/main.yaml"), encoding: .utf8)
        let loosened = plan.replacingOccurrences(of: "concurrency: 2", with: "concurrency: 12")
            .replacingOccurrences(of: #"verify: { checksum: if-present, command: ["/bin/sleep", "0.3"] }"#,
                                  with: #"verify: { checksum: "off", command: ["/bin/sleep", "3"] }"#)
        try #require(loosened.contains("concurrency: 12") && loosened.contains(#"["/bin/sleep", "3"]"#))
        dir.write("plans-b/main.yaml", loosened)
        let config = try String(contentsOfFile: dir.file("recovery-2.yaml"), encoding: .utf8)
        dir.write("recovery-2.yaml", config.replacingOccurrences(of: "plans_dir: plans\n", with: "plans_dir: plans-b\n"))
        for host in hosts { try host.start() }
        defer { for host in hosts { host.stop() } }
        let sql = { (query: String) in try self.sql(server, database, query) }

        let strict = try hosts[0].cli(["restore", "main", "--follow", "--json"])
        #expect(strict.status == 0, "\(strict.stdout)\(strict.stderr)")
        let first = try #require(try sql("SELECT id FROM runs").split(separator: "\n").first.map(String.init))
        #expect(try sql("SELECT state || ' ' || string_agg(DISTINCT host, ',') FROM jobs GROUP BY state") == "succeeded recovery-1")
        let version = try sql("SELECT plan_version FROM runs WHERE id = '\(first)'")
        #expect(version.hasPrefix("sha256:") && version.count == 71, "\(version)")
        let said = hosts[1].daemonLog.split(separator: "\n").filter { $0.contains("claiming none of the run's jobs") && $0.contains(first) }
        #expect(said.count == 1, "\(hosts[1].daemonLog.suffix(3_000))")
        #expect(said.first?.contains("run \(first) was started under version \(version.prefix(19)) of plan main, and this host has version sha256:") == true)
        #expect(said.first?.contains(dir.file("plans-b/main.yaml")) == true, "\(said)")
        // Every job ran its run's verify command (a 0.3 s sleep), none the other version's (3 s).
        #expect(try sql("SELECT COUNT(*) FROM jobs WHERE finished_at - started_at < interval '0.3 seconds' "
                        + "OR finished_at - started_at >= interval '3 seconds'") == "0")

        // A run started on recovery-2 is worked under its version there, and none of it on recovery-1.
        let loose = try hosts[1].cli(["restore", "main", "--follow"])
        #expect(loose.status == 0, "\(loose.stdout)\(loose.stderr)")
        #expect(try sql("SELECT string_agg(DISTINCT host, ',') FROM jobs WHERE run_id <> '\(first)'") == "recovery-2")
        #expect(try sql("SELECT COUNT(DISTINCT plan_version) FROM runs") == "2")
        #expect(hosts[0].daemonLog.contains("claiming none of the run's jobs: run "), "\(hosts[0].daemonLog.suffix(3_000))")
    }

    /// A cancel stops the run's jobs on every host: the hosts running some stop them and record
    /// them cancelled, nothing is claimed any more, nothing is left half-done.
    @Test func aCancelStopsTheJobsOnEveryHost() async throws {
        let (dir, hosts, database, server) = try await fleet(sites: 12, hosts: ["recovery-1", "recovery-2"], verifySleep: "5", concurrency: 4)
        for host in hosts { try host.start() }
        defer { for host in hosts { host.stop() } }
        let id = try startRestore(on: hosts[0])
        let sql = { (query: String) in try self.sql(server, database, query) }
        // Both hosts busy with a job each at least.
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, try sql("SELECT COUNT(DISTINCT host) FROM jobs WHERE state IN ('restoring', 'verifying')") != "2" {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try sql("SELECT COUNT(DISTINCT host) FROM jobs WHERE state IN ('restoring', 'verifying')") == "2")
        let cancel = try hosts[1].cli(["cancel", id])
        #expect(cancel.status == 0, "\(cancel.stdout)\(cancel.stderr)")
        #expect(try await waitForState(hosts[1], id, in: ["cancelled", "failed", "succeeded"]) == "cancelled")
        // Recorded cancelled at once (no host claims more), finished once the hosts stopped its jobs.
        while Date() < deadline, try sql("SELECT COUNT(*) FROM runs WHERE finished_at IS NULL") != "0" { try await Task.sleep(for: .milliseconds(100)) }
        // Ended for good: finished, no job left going, jobs that were running on either host cancelled.
        #expect(try sql("SELECT COUNT(*) FROM runs WHERE finished_at IS NULL") == "0", "\(hosts[0].daemonLog.suffix(6_000))\n-----\n\(hosts[1].daemonLog.suffix(6_000))")
        let jobsSeen = try sql("SELECT site, product, state, host, error FROM jobs ORDER BY id")
        #expect(try sql("SELECT COUNT(*) FROM jobs WHERE state NOT IN ('succeeded', 'cancelled', 'skipped')") == "0", "\(jobsSeen)")
        // The coordinator saw it through (nothing was left for another host to take over).
        #expect(!jobsSeen.contains("taken over"), "\(jobsSeen)\n\(hosts.map { $0.daemonLog.split(separator: "\n").filter { !$0.contains("DEBUG") }.suffix(40).joined(separator: "\n") }.joined(separator: "\n----\n"))")
        #expect(try sql("SELECT COUNT(DISTINCT host) FROM jobs WHERE state = 'cancelled' AND started_at IS NOT NULL") == "2", "\(jobsSeen)")
        // Each says who cancelled it, on whichever host it ran.
        #expect(try sql("SELECT COUNT(*) FROM jobs WHERE state = 'cancelled' AND error NOT LIKE '%cancelled by uid % on host recovery-2%'") == "0", "\(jobsSeen)")
        #expect(try sql("SELECT COUNT(*) FROM claims WHERE released_at IS NULL AND expires_at > now()") == "0")
        let scene = try FaultScene(dir: dir, displaced: [])
        #expect(try scene.stagingLeftovers().isEmpty)
        // What was cancelled or skipped is not in place; what succeeded is tar's.
        for line in try sql("SELECT site || '/' || product || '/' || state FROM jobs").split(separator: "\n") {
            let parts = line.split(separator: "/").map(String.init)
            if parts[2] == "succeeded" { try scene.expectSameAsTar(parts[0], parts[1]) } else {
                #expect(!FileManager.default.fileExists(atPath: scene.destination(parts[0], parts[1])), "\(line) has a destination")
            }
        }
    }

    /// A host frozen past its lease (SIGSTOP, as a paused VM or a long stall) loses its jobs: the
    /// other host takes them over from a fresh staging directory, and when the frozen one wakes up
    /// its late work is refused (fenced) — every job is committed exactly once.
    @Test func aFrozenHostsJobsAreTakenOverAndItsLateWorkIsFenced() async throws {
        let (dir, hosts, database, server) = try await fleet(sites: 12, hosts: ["recovery-1", "recovery-2"], verifySleep: "1.5", concurrency: 4)
        let (coordinator, frozen) = (hosts[0], hosts[1])
        for host in hosts { try host.start() }
        defer { for host in hosts { host.stop() } }
        let id = try startRestore(on: coordinator)
        let sql = { (query: String) in try self.sql(server, database, query) }
        // Freeze recovery-2 while it runs jobs (the ledger says restoring until the commit record:
        // the verifying step is queued with it).
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, try sql("SELECT COUNT(*) FROM jobs WHERE host = 'recovery-2' AND state IN ('restoring', 'verifying')") == "0" {
            try await Task.sleep(for: .milliseconds(50))
        }
        frozen.freeze()
        let caught = try sql("SELECT string_agg(site || '/' || product, ',') FROM jobs WHERE host = 'recovery-2' AND state IN ('restoring', 'verifying', 'committing')")
        #expect(!caught.isEmpty)
        // Past the 5 s lease, recovery-1 takes those jobs over (it looks every quarter second).
        let frozenAt = Date()
        try await Task.sleep(for: .seconds(5))
        while Date().timeIntervalSince(frozenAt) < 30,
              try sql("SELECT COUNT(*) FROM jobs WHERE host = 'recovery-2' AND state IN ('restoring', 'verifying', 'committing')") != "0" {
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(try sql("SELECT COUNT(*) FROM jobs WHERE host = 'recovery-2' AND state IN ('restoring', 'verifying', 'committing')") == "0",
                "caught: \(caught)\n\(coordinator.daemonLog.suffix(3_000))")
        frozen.thaw()
        #expect(try await waitForState(coordinator, id, in: ["succeeded", "failed", "cancelled"]) == "succeeded", "\(coordinator.daemonLog.suffix(3_000))")
        // The woken host noticed, and its late work counted for nothing.
        let woke = Date().addingTimeInterval(15)
        while Date() < woke, !frozen.daemonLog.contains("claim lost") { try await Task.sleep(for: .milliseconds(200)) }
        #expect(frozen.daemonLog.contains("claim lost") || frozen.daemonLog.contains("lost its lease"), "\(frozen.daemonLog.suffix(3_000))")
        #expect(coordinator.daemonLog.contains("taking over a job another host left mid-flight"))
        #expect(try sql("SELECT COUNT(*) FROM jobs WHERE state <> 'succeeded'") == "0")
        #expect(try sql("SELECT COUNT(*) FROM quarantine") == "0")
        let events = try sql("""
            SELECT j.site || '/' || j.product || ': ' || (SELECT string_agg(e.kind || ' ' || e.message, '; ' ORDER BY e.id) FROM events e WHERE e.job_id = j.id) FROM jobs j
            WHERE (SELECT COUNT(*) FROM events e WHERE e.job_id = j.id AND e.kind IN ('job.succeeded', 'job.recovered')) <> 1
            """)
        #expect(events.isEmpty, "not recorded succeeded exactly once: \(events)")
        let scene = try FaultScene(dir: dir, displaced: [])
        for site in scene.sites {
            for product in ["contacts", "jira"] { try scene.expectSameAsTar(site, product) }
        }
        #expect(try scene.stagingLeftovers().isEmpty)
        let quarantined = try run("/usr/bin/find", [dir.file("out"), "-path", "*/.lifeboat-quarantine/*"]).stdout
        #expect(quarantined.isEmpty, "a job was committed twice: \(quarantined)")
    }

    /// Every host restarted with a new version of the plan while a run of the old one is halted:
    /// no host takes the run (none has its version), and a cancel from any host ends it, so its
    /// destinations are free for a run under the new plan.
    @Test func aRunNoHostHasThePlanOfIsCancelledWithoutIt() async throws {
        let (dir, hosts) = try await haltingFleet()
        for host in hosts { try host.start() }
        defer { for host in hosts { host.stop() } }
        let id = try startRestore(on: hosts[0])
        #expect(try await waitForState(hosts[1], id, in: ["halted"]) == "halted")
        for host in hosts { #expect(host.stop() == 0) }
        let plan = try String(contentsOfFile: dir.file("plans/main.yaml"), encoding: .utf8)
        dir.write("plans/main.yaml", plan.replacingOccurrences(of: #"command: ["/bin/false"]"#, with: #"command: ["/bin/true"]"#))
        for host in hosts { try host.start() }
        // Neither takes the run: no coordinator (status asked again if, on a loaded machine,
        // the ledger took longer to answer than status waits).
        try await Task.sleep(for: .seconds(4))
        var status = ""
        for _ in 0..<40 where !status.contains("\n\(id)") {
            status = try hosts[1].cli(["status"]).stdout
            try await Task.sleep(for: .milliseconds(250))
        }
        let line = status.split(separator: "\n").first { $0.hasPrefix(id) }
        #expect(line.map { $0.contains(" - ") } == true, "\(status)")
        // A resume would wait for a host that has the run's version: refused, saying so.
        let resume = try hosts[0].cli(["resume", id])
        #expect(resume.status != 0 && resume.stderr.contains("no host coordinates run \(id) now, and this one cannot: run \(id) was started under version"),
                "\(resume.stderr)")
        let cancel = try hosts[1].cli(["cancel", id])
        #expect(cancel.status == 0, "\(cancel.stdout)\(cancel.stderr)")
        #expect(try runState(hosts[0], id) == "cancelled")
        let fresh = try hosts[0].cli(["restore", "main", "--follow"])
        #expect(fresh.status == 0, "\(fresh.stdout)\(fresh.stderr)")
    }

    /// A run's notifications come from its coordinator alone, whichever host ran each job: every
    /// site is announced once.
    @Test func eachSiteIsAnnouncedOnceAcrossTheFleet() async throws {
        let server = try await LocalPostgres.shared()
        let database = try server.createDatabase()
        let dir = TempDir()
        let log = dir.file("notified.jsonl")
        try DaemonHarness.writeFleet(in: dir, sites: 8, size: "8KiB", planExtra: """
            concurrency: 4
            verify: { checksum: if-present, command: ["/bin/sleep", "0.6"] }
            notify: ["/bin/sh", "-c", "cat >> \(log); echo >> \(log)"]
            """)
        let hosts = ["recovery-1", "recovery-2"].map { Host(name: $0, dir: dir, database: database, server: server) }
        for host in hosts { try host.start() }
        defer { for host in hosts { host.stop() } }
        let restore = try hosts[0].cli(["restore", "main", "--follow"])
        #expect(restore.status == 0, "\(restore.stdout)\(restore.stderr)")
        #expect(try sql(server, database, "SELECT COUNT(DISTINCT host) FROM jobs") == "2")
        // Notifications run off the run's path: wait for the run's last one.
        let deadline = Date().addingTimeInterval(20)
        func events() -> [[String: Any]] {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n")
                .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
        while Date() < deadline, !events().contains(where: { $0["event"] as? String == "run.finished" }) { try await Task.sleep(for: .milliseconds(100)) }
        try await Task.sleep(for: .seconds(1))
        let sites = events().filter { $0["event"] as? String == "site.restored" }.compactMap { ($0["site"] as? [String: Any])?["site"] as? String }
        #expect(sites.sorted() == Array(Set(sites)).sorted() && sites.count == 8, "\(sites)")
        #expect(events().filter { $0["event"] as? String == "run.finished" }.count == 1)
    }

    /// A coordinator frozen past its lease finds, once thawed, that the run was taken over: it
    /// says so (a notice, not an error), and leaves the run's end to the host that ended it — one
    /// report, written there. A watch of the run on each host follows it to its end and tells
    /// each job's end once: on the frozen host in the ledger once the run left it; on the host
    /// that takes it over, in the ledger until then (with the third host's jobs ending around the
    /// takeover); on the third, in the ledger beside its own jobs' events.
    @Test func aFrozenCoordinatorLeavesTheRunToTheHostThatTookItOver() async throws {
        let (dir, hosts, database, server) = try await fleet(sites: 8, hosts: ["recovery-1", "recovery-2", "recovery-3"], verifySleep: "1", concurrency: 3)
        let (frozen, other) = (hosts[0], hosts[1])
        for host in hosts { try host.start() }
        defer { for host in hosts { host.stop() } }
        let id = try startRestore(on: frozen)
        let watches = try hosts.map { try BackgroundCLI(socket: $0.socket, in: dir, ["watch", id], output: "watch-\($0.name).log") }
        let sql = { (query: String) in try self.sql(server, database, query) }
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, try sql("SELECT COUNT(*) FROM jobs WHERE state = 'succeeded'") == "0" { try await Task.sleep(for: .milliseconds(50)) }
        frozen.freeze()
        #expect(try await waitForState(other, id, in: ["succeeded", "failed", "cancelled"]) == "succeeded", "\(other.daemonLog.suffix(3_000))")
        let taker = hosts.dropFirst().first { $0.daemonLog.contains("run resumed") && $0.daemonLog.contains("run.id=\(id)") }
        #expect(taker != nil, "\(other.daemonLog.suffix(3_000))")
        frozen.thaw()
        let woke = Date()
        while Date().timeIntervalSince(woke) < 20, !frozen.daemonLog.contains("run taken over by another host") { try await Task.sleep(for: .milliseconds(200)) }
        #expect(frozen.daemonLog.contains("NOTICE run taken over by another host: this host's lease on it ran out"), "\(frozen.daemonLog.suffix(3_000))")
        #expect(!frozen.daemonLog.contains("run stopped: ledger write failed"))
        let jobs = try sql("SELECT string_agg(site || '/' || product, ',' ORDER BY site, product) FROM jobs")
        for (host, watch) in zip(hosts, watches) {
            #expect(try await watch.waitForExit(timeout: 30) == 0, "\(host.name): \(watch.text)\(watch.errorText)")
            #expect(watch.text.contains("run \(id) succeeded"), "\(host.name): \(watch.text)")
            // `<time>  succeeded <site>/<product>  …`, one line for each job.
            let ends = watch.text.split(separator: "\n").map { $0.split(separator: " ") }.filter { $0.count > 2 && $0[1] == "succeeded" && $0[0].hasSuffix("Z") }
            #expect(ends.map { String($0[2]) }.sorted().joined(separator: ",") == jobs, "\(host.name): \(watch.text)")
        }
        let reports = { (host: Host) in (try? FileManager.default.contentsOfDirectory(atPath: host.dir.file("state-\(host.name)/reports"))) ?? [] }
        if let taker { #expect(reports(taker).contains("\(id).html"), "\(reports(taker))") }
        #expect(!reports(frozen).contains { $0.hasPrefix(id) }, "\(reports(frozen))")
        #expect(try sql("SELECT COUNT(*) FROM jobs WHERE state <> 'succeeded'") == "0")
    }

    /// A host stopped cleanly (SIGTERM) in the middle of a run gives its jobs back and the run's
    /// coordination up at once: the other host finishes the run, each job committed once.
    @Test func aStoppedHostsJobsAndRunGoToTheOthers() async throws {
        let (dir, hosts, database, server) = try await fleet(sites: 10, hosts: ["recovery-1", "recovery-2"], verifySleep: "1", concurrency: 4)
        let (leaving, staying) = (hosts[0], hosts[1])
        for host in hosts { try host.start() }
        defer { for host in hosts { host.stop() } }
        let id = try startRestore(on: leaving)
        let sql = { (query: String) in try self.sql(server, database, query) }
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, try sql("SELECT COUNT(*) FROM jobs WHERE host = 'recovery-1' AND state IN ('restoring', 'verifying')") == "0" {
            try await Task.sleep(for: .milliseconds(50))
        }
        let asked = Date()
        #expect(leaving.stop() == 0, "\(leaving.daemonLog.suffix(3_000))")
        #expect(Date().timeIntervalSince(asked) < 15)
        #expect(leaving.daemonLog.contains("run left to the other hosts"), "\(leaving.daemonLog.suffix(3_000))")
        // Nothing of the leaving host is still claimed or mid-flight.
        #expect(try sql("SELECT COUNT(*) FROM claims WHERE host = 'recovery-1' AND released_at IS NULL") == "0")
        #expect(try sql("SELECT COUNT(*) FROM jobs WHERE host = 'recovery-1' AND state IN ('restoring', 'verifying', 'committing')") == "0")
        #expect(try await waitForState(staying, id, in: ["succeeded", "failed", "cancelled"]) == "succeeded", "\(staying.daemonLog.suffix(3_000))")
        #expect(try sql("SELECT COUNT(*) FROM jobs WHERE state <> 'succeeded'") == "0")
        #expect(try sql("SELECT COUNT(*) FROM quarantine") == "0")
        let scene = try FaultScene(dir: dir, displaced: [])
        for site in scene.sites {
            for product in ["contacts", "jira"] { try scene.expectSameAsTar(site, product) }
        }
        #expect(try scene.stagingLeftovers().isEmpty)
    }

    /// Three hosts, each in its own network namespace, restore 300 jobs. Mid-run the host that
    /// coordinates the run is killed (`kill -9`) and another is cut off the network (its link
    /// down past the lease, then up again). The third takes over the run and both hosts' jobs;
    /// the cut-off host's late work is refused (fenced) and it rejoins. Every job is committed
    /// exactly once, equal to tar's extraction, with its RPO and RTO right; no staging is left.
    @Test(.enabled(if: NetworkNamespace.available, "a network cut \(NetworkNamespace.requirement)"))
    func threeHostsRideOutAKillAndANetworkCut() async throws {
        let namespaces = try (0..<3).map { try NetworkNamespace(index: $0) }
        let server = try await LocalPostgres.dedicated(listeningAlsoOn: namespaces.map(\.outside), allowing: NetworkNamespace.network + ".0/24")
        defer { server.stop() }
        let database = try server.createDatabase()
        let dir = TempDir()
        try DaemonHarness.writeFleet(in: dir, sites: 150, size: "8KiB", planExtra: """
            concurrency: 12
            verify: { checksum: if-present, command: ["/bin/sleep", "0.4"] }
            """)
        let hosts = namespaces.enumerated().map { Host(name: "recovery-\($0 + 1)", dir: dir, database: database, server: server, namespace: $1) }
        let (killed, cutOff, survivor) = (hosts[0], hosts[1], hosts[2])
        for host in hosts { try host.start() }
        defer {
            try? namespaces[1].reconnect()
            // The host that was cut off may not stop by itself: a connection whose server dropped
            // it during the cut can keep a ledger write waiting (see the closing note of #12).
            for host in hosts { host.stop(grace: 20) }
        }
        let id = try startRestore(on: killed)
        let sql = { (query: String) in try self.sql(server, database, query) }
        func active(_ host: Host) throws -> Int {
            Int(try sql("SELECT COUNT(*) FROM jobs WHERE host = '\(host.name)' AND state IN ('restoring', 'verifying', 'committing')")) ?? 0
        }
        // All three at work, some jobs done.
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, try sql("SELECT COUNT(DISTINCT host) FROM jobs WHERE state IN ('restoring', 'verifying')") != "3"
                || (Int(try sql("SELECT COUNT(*) FROM jobs WHERE state = 'succeeded'")) ?? 0) < 12 {
            try await Task.sleep(for: .milliseconds(50))
        }
        killed.kill9()
        // Two jobs going, so that one is still going when the link is down (under load a single
        // one may end in between).
        while Date() < deadline, try active(cutOff) < 2 { try await Task.sleep(for: .milliseconds(20)) }
        try namespaces[1].cut()
        let cutAt = Date()
        let caught = try active(cutOff)
        #expect(caught > 0, "recovery-2 had no job going when cut off")
        // Past the 5 s lease the survivor takes the run and both hosts' jobs over.
        while Date().timeIntervalSince(cutAt) < 30, try active(killed) + active(cutOff) > 0 { try await Task.sleep(for: .milliseconds(200)) }
        #expect(try active(killed) + active(cutOff) == 0, "\(survivor.daemonLog.suffix(3_000))")
        // Cut off past the lease, then back.
        if Date().timeIntervalSince(cutAt) < 8 { try await Task.sleep(for: .seconds(8 - Date().timeIntervalSince(cutAt))) }
        // Cut off, the host stopped its jobs by its own clock once their lease ran out unconfirmed.
        let whileCut = cutOff.daemonLog
        #expect(whileCut.contains("could not renew the job's lease in time"), "\(whileCut.suffix(3_000))")
        try namespaces[1].reconnect()
        let ended = try await waitForState(survivor, id, in: ["succeeded", "failed", "cancelled"])
        #expect(ended == "succeeded", "\(survivor.daemonLog.suffix(4_000))")
        if ended != "succeeded" {
            // What holds the jobs left: their claims, the server's sessions and locks, and what
            // each host logged about them (a rare case seen in CI, not reproduced here).
            let left = try sql("SELECT string_agg(site || '/' || product, ' ') FROM jobs WHERE state <> 'succeeded'")
            let ledger: [String] = try [
                "claims: " + sql("SELECT string_agg(j.site || '/' || j.product || ' ' || j.state || ' host ' || coalesce(c.host, '-') || ' token ' || coalesce(c.token::text, '-') || ' expires ' || coalesce(c.expires_at::text, '-') || ' released ' || coalesce(c.released_at::text, '-'), E'\n') FROM jobs j LEFT JOIN claims c ON c.job_id = j.id WHERE j.state <> 'succeeded'"),
                "sessions: " + sql("SELECT string_agg(pid || ' ' || coalesce(client_addr::text, 'local') || ' ' || coalesce(state, '-') || ' ' || coalesce(wait_event_type || '/' || wait_event, '-') || ' since ' || coalesce(state_change::text, '-') || ': ' || left(query, 120), E'\n') FROM pg_stat_activity WHERE datname = current_database()"),
                "job row locks: " + sql("SELECT string_agg(l.pid || ' ' || l.mode || ' granted ' || l.granted, E'\n') FROM pg_locks l WHERE l.relation = 'jobs'::regclass"),
            ]
            let logs: [String] = hosts.map { host in
                let lines = host.daemonLog.split(separator: "\n").filter { line in
                    !line.contains("DEBUG") || left.split(separator: " ").contains { line.contains("job=\($0)") }
                }
                return "\(host.name): " + lines.suffix(60).joined(separator: "\n")
            }
            let diagnosis = (ledger + logs).joined(separator: "\n\n")
            Issue.record("the run did not end succeeded; jobs left: \(left)\n\(diagnosis)")
        }
        #expect(survivor.daemonLog.contains("resuming run") || cutOff.daemonLog.contains("resuming run"))
        #expect(survivor.daemonLog.contains("taking over a job another host left mid-flight"))
        // The cut-off host found out its claims were gone; what it did meanwhile counted for nothing.
        let woke = Date().addingTimeInterval(20)
        while Date() < woke, !cutOff.daemonLog.contains("claim lost") { try await Task.sleep(for: .milliseconds(200)) }
        #expect(cutOff.daemonLog.contains("claim lost"), "\(cutOff.daemonLog.suffix(4_000))")
        // Every job committed exactly once (a second commit would have displaced the first into
        // quarantine), with one success recorded (a killed host's last posted events may be lost).
        #expect(try sql("SELECT COUNT(*) FROM jobs") == "300")
        let unfinished = try sql("SELECT site || '/' || product || ' ' || state || ': ' || coalesce(error, '') FROM jobs WHERE state <> 'succeeded'")
        #expect(unfinished.isEmpty, "\(unfinished)")
        #expect(try sql("SELECT COUNT(*) FROM quarantine") == "0")
        let twice = try sql("""
            SELECT j.site || '/' || j.product FROM jobs j WHERE (SELECT COUNT(*) FROM events e WHERE e.job_id = j.id
                                                                  AND e.kind IN ('job.succeeded', 'job.recovered')) > 1
            """)
        #expect(twice.isEmpty, "recorded succeeded more than once: \(twice)")
        let quarantined = try run("/usr/bin/find", [dir.file("out"), "-path", "*/.lifeboat-quarantine/*"]).stdout
        #expect(quarantined.isEmpty, "a job was committed twice: \(quarantined)")
        // RPO: the incident time less the snapshot's; RTO: from the declaration to the job's end,
        // takeovers included.
        let wrong = try sql("""
            SELECT j.site || '/' || j.product || ' rpo ' || j.rpo_seconds || ' rto ' || j.rto_seconds FROM jobs j JOIN runs r ON r.id = j.run_id
            WHERE j.rpo_seconds IS NULL OR abs(j.rpo_seconds - extract(epoch FROM r.incident_at - j.snapshot_taken_at)) > 0.001
               OR j.rto_seconds IS NULL OR j.rto_seconds <= 0 OR abs(j.rto_seconds - extract(epoch FROM j.finished_at - r.declared_at)) > 0.001
            """)
        #expect(wrong.isEmpty, "RPO/RTO not as measured: \(wrong)")
        #expect(try sql("SELECT COUNT(*) FROM jobs j JOIN runs r ON r.id = j.run_id WHERE j.error IS NULL AND j.rto_seconds >= extract(epoch FROM to_timestamp(\(cutAt.timeIntervalSince1970 + 5)) - r.declared_at)") != "0",
                "no job's RTO covers the takeover")
        let scene = try FaultScene(dir: dir, displaced: [])
        for site in scene.sites {
            for product in ["contacts", "jira"] { try scene.expectSameAsTar(site, product) }
        }
        let leftovers = try scene.stagingLeftovers()
        let inside = leftovers.isEmpty ? "" : try run("/usr/bin/find", leftovers).stdout
        #expect(leftovers.isEmpty, "\(inside)\nrecovery-2: \(cutOff.daemonLog.suffix(4_000))\nrecovery-3: \(survivor.daemonLog.suffix(2_000))")
        // The killed host is lost to the others; the cut-off one is back (once its heartbeat goes
        // through: a connection that was waiting when the link went down may retry on TCP's
        // backed-off clock first).
        func hostStates() throws -> ([String: String], [[String: Any]]) {
            let listed = try #require((try survivor.json(["status"]) as? [String: Any])?["hosts"] as? [[String: Any]])
            return (Dictionary(uniqueKeysWithValues: listed.compactMap { host in (host["name"] as? String).map { ($0, host["state"] as? String ?? "") } }), listed)
        }
        var (states, listed) = try hostStates()
        let back = Date().addingTimeInterval(30)
        while Date() < back, states["recovery-2"] != "alive" {
            try await Task.sleep(for: .milliseconds(250))
            (states, listed) = try hostStates()
        }
        #expect(states == ["recovery-1": "lost", "recovery-2": "alive", "recovery-3": "alive"], "\(listed)\n\(cutOff.daemonLog.suffix(3_000))")
    }

    /// `resume` and `cancel` given to a host that does not coordinate the run reach the one that
    /// does, through the shared ledger.
    @Test func resumeAndCancelWorkFromAnyHostsSocket() async throws {
        let (_, hosts) = try await haltingFleet()
        let (coordinator, other) = (hosts[0], hosts[1])
        for host in hosts { try host.start() }
        defer { for host in hosts { host.stop() } }
        func startHalted() async throws -> String {
            let id = try startRestore(on: coordinator)
            #expect(try await waitForState(other, id, in: ["halted"]) == "halted")
            return id
        }
        let resumed = try await startHalted()
        // Every host's status shows the fleet's runs going, and which host coordinates each
        // (asked again if the ledger's answer took longer than status waits, on a loaded machine).
        var status = ""
        for _ in 0..<40 where !status.contains("\n\(resumed)") {
            status = try other.cli(["status"]).stdout
            try await Task.sleep(for: .milliseconds(250))
        }
        let line = status.split(separator: "\n").first { $0.hasPrefix(resumed) }
        #expect(line?.contains("halted") == true && line?.contains("recovery-1") == true && status.contains("COORDINATOR"), "\(status)")
        let runs = (try other.json(["status"]) as? [String: Any])?["runs"] as? [[String: Any]]
        #expect(runs?.first { $0["id"] as? String == resumed }?["coordinator"] as? String == "recovery-1", "\(runs ?? [])")
        let resume = try other.cli(["resume", resumed])
        #expect(resume.status == 0, "\(resume.stdout)\(resume.stderr)")
        #expect(resume.stdout.contains("coordinated by host recovery-1"), "\(resume.stdout)")
        // The coordinator goes on with the next wave (which fails too, ungated): the run ends.
        #expect(try await waitForState(other, resumed, in: ["failed", "succeeded", "cancelled"]) == "failed", "\(coordinator.daemonLog.suffix(3_000))")
        let cancelled = try await startHalted()
        let cancel = try other.cli(["cancel", cancelled])
        #expect(cancel.status == 0, "\(cancel.stdout)\(cancel.stderr)")
        #expect(try await waitForState(other, cancelled, in: ["failed", "succeeded", "cancelled"]) == "cancelled")
        let jobs = try #require((try other.json(["show", cancelled]) as? [String: Any])?["jobs"] as? [[String: Any]])
        #expect(jobs.contains { ($0["error"] as? String)?.contains("on host recovery-2") == true }, "who cancelled is recorded: \(jobs)")
        // An ended run's cancel is refused on any host, as on one.
        #expect(try other.cli(["cancel", resumed]).status != 0)
        #expect(coordinator.daemonLog.contains("applying a forwarded command"))
    }

    /// `retry` given to any host runs an ended run's failed jobs again on the fleet (any host may
    /// claim them), whichever host coordinated the run, and from the remaining host once the one
    /// that coordinated it last is gone. While the run is still going it is refused, naming the
    /// host that runs it; a refused retry leaves the run free for the next one on any host.
    @Test func retryWorksFromAnyHostsSocketAndWithItsCoordinatorGone() async throws {
        let server = try await LocalPostgres.shared()
        let database = try server.createDatabase()
        let dir = TempDir()
        let check = failOnceCheck(in: dir, sleep: "1")
        try DaemonHarness.writeFleet(in: dir, sites: 4, size: "64KiB", planExtra: """
            concurrency: 2
            verify: { checksum: if-present, command: ["\(check)", "{site}", "{product}"] }
            """)
        let scene = try FaultScene(dir: dir, displaced: [])
        let (flaky, later) = (scene.sites[0], scene.sites[1])
        for site in [flaky, later] { dir.write("fail-once/\(site)-contacts", "") }
        let hosts = ["recovery-1", "recovery-2"].map { Host(name: $0, dir: dir, database: database, server: server) }
        let (first, second) = (hosts[0], hosts[1])
        for host in hosts { try host.start() }
        defer { for host in hosts { host.stop() } }
        let sql = { (query: String) in try self.sql(server, database, query) }
        let id = try startRestore(on: first)
        // A job failed, the run still goes on recovery-1: a retry on recovery-2 is refused, naming it.
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, try sql("SELECT COUNT(*) FROM jobs WHERE state = 'failed'") == "0" { try await Task.sleep(for: .milliseconds(50)) }
        let early = try second.cli(["retry", id, try sql("SELECT MIN(id) FROM jobs WHERE state = 'failed'")])
        #expect(early.status == 2 && early.stderr.contains("still running, coordinated by host recovery-1"), "\(early.stdout)\(early.stderr)")
        #expect(try await waitForState(second, id, in: ["succeeded", "failed", "cancelled"]) == "failed")
        func jobs(_ host: Host) throws -> [String: [String: Any]] {
            let shown = try #require((try host.json(["show", id]) as? [String: Any])?["jobs"] as? [[String: Any]])
            return Dictionary(uniqueKeysWithValues: shown.map { ("\($0["site"] ?? "")/\($0["product"] ?? "")", $0) })
        }
        func state(_ jobs: [String: [String: Any]], _ name: String) -> String? { jobs[name]?["state"] as? String }
        var seen = try jobs(second)
        for site in [flaky, later] {
            #expect(state(seen, "\(site)/contacts") == "failed" && state(seen, "\(site)/jira") == "skipped", "\(seen)")
        }
        // A retry refused on recovery-1 (the job succeeded) leaves the run to whichever host is asked next.
        let done = try #require(seen.values.first { $0["state"] as? String == "succeeded" }?["id"] as? Int)
        let refused = try first.cli(["retry", id, "\(done)"])
        #expect(refused.status == 2 && refused.stderr.contains("only failed, cancelled or skipped jobs can be retried"), "\(refused.stderr)")
        // Given to recovery-2, the retry of the flaky site's skipped jira runs its failed contacts
        // first, then it, on the fleet; the run ends failed (the other site still failed).
        let retry = try second.cli(["retry", id, "\(try #require(seen["\(flaky)/jira"]?["id"] as? Int))"])
        #expect(retry.status == 0, "\(retry.stdout)\(retry.stderr)")
        #expect(retry.stdout.contains("retrying \(flaky)/contacts, \(flaky)/jira"), "\(retry.stdout)")
        #expect(try await waitForState(first, id, in: ["succeeded", "failed", "cancelled"]) == "failed", "\(second.daemonLog.suffix(3_000))")
        seen = try jobs(first)
        #expect(state(seen, "\(flaky)/contacts") == "succeeded" && state(seen, "\(flaky)/jira") == "succeeded", "\(seen)")
        #expect(state(seen, "\(later)/contacts") == "failed" && state(seen, "\(later)/jira") == "skipped", "\(seen)")
        // The host that coordinated the retry is gone: the remaining one retries the other site.
        #expect(second.stop() == 0)
        let last = try first.cli(["retry", id, "\(try #require(seen["\(later)/jira"]?["id"] as? Int))"])
        #expect(last.status == 0, "\(last.stdout)\(last.stderr)")
        #expect(try await waitForState(first, id, in: ["succeeded", "failed", "cancelled"]) == "succeeded", "\(first.daemonLog.suffix(3_000))")
        seen = try jobs(first)
        #expect(seen.count == 8 && seen.values.allSatisfy { $0["state"] as? String == "succeeded" }, "\(seen)")
        // Every job committed once: one success each in the events, nothing displaced (the
        // destinations were empty), each destination tar's extraction, no staging left.
        let events = try sql("""
            SELECT j.site || '/' || j.product || ': ' || (SELECT string_agg(e.kind, ',' ORDER BY e.id) FROM events e WHERE e.job_id = j.id) FROM jobs j
            WHERE (SELECT COUNT(*) FROM events e WHERE e.job_id = j.id AND e.kind = 'job.succeeded') <> 1
            """)
        #expect(events.isEmpty, "jobs not recorded succeeded exactly once: \(events)")
        #expect(try sql("SELECT COUNT(*) FROM quarantine") == "0")
        for site in scene.sites {
            for product in ["contacts", "jira"] { try scene.expectSameAsTar(site, product) }
        }
        #expect(try scene.stagingLeftovers().isEmpty)
    }

    /// `rollback` given to a host that did not coordinate the run undoes its commits as on one
    /// host; it waits for the fleet: refused while the run goes on another host, and while a
    /// run of another host holds one of its destinations.
    @Test func rollbackWorksFromAnyHostsSocketAndWaitsForTheFleet() async throws {
        let (dir, hosts, database, server) = try await fleet(sites: 3, hosts: ["recovery-1", "recovery-2"], verifySleep: "2", concurrency: 4)
        let sites = try FaultScene(dir: dir, displaced: []).sites
        // Two destinations held data before the restore; the others were empty.
        let scene = try FaultScene(dir: dir, displaced: [(sites[0], "contacts"), (sites[1], "jira")])
        let (first, second) = (hosts[0], hosts[1])
        for host in hosts { try host.start() }
        defer { for host in hosts { host.stop() } }
        let sql = { (query: String) in try self.sql(server, database, query) }
        let id = try startRestore(on: first)
        // A job committed, the run still going on recovery-1: refused on recovery-2, naming it.
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, try sql("SELECT COUNT(*) FROM jobs WHERE state = 'succeeded'") == "0" { try await Task.sleep(for: .milliseconds(50)) }
        let early = try second.cli(["rollback", id])
        #expect(early.status == 2 && early.stderr.contains("still running, coordinated by host recovery-1"), "\(early.stdout)\(early.stderr)")
        #expect(try await waitForState(second, id, in: ["succeeded", "failed", "cancelled"]) == "succeeded")
        #expect(try sql("SELECT COUNT(*) FROM events WHERE kind = 'rollback'") == "0")
        // A restore of one site going on recovery-1 holds its destinations for the whole fleet:
        // the rollback on recovery-2 is refused, naming that run. Cancelled, it leaves them as they were.
        let again = try first.cli(["restore", "main", "--sites", sites[2], "--json"])
        let other = try #require((try JSONSerialization.jsonObject(with: Data(again.stdout.utf8)) as? [String: Any])?["id"] as? String)
        while Date() < deadline, try sql("SELECT COUNT(*) FROM jobs WHERE run_id = '\(other)' AND state IN ('restoring', 'verifying')") == "0" {
            try await Task.sleep(for: .milliseconds(50))
        }
        let held = try second.cli(["rollback", id])
        #expect(held.status == 2 && held.stderr.contains("of run \(other), which is still going"), "\(held.stdout)\(held.stderr)")
        #expect(try first.cli(["cancel", other]).status == 0)
        #expect(try await waitForState(second, other, in: ["succeeded", "failed", "cancelled"]) == "cancelled")
        // Cancelling, its jobs stopping on the hosts, it still holds them; finished, it no longer does.
        while Date() < deadline, try sql("SELECT COUNT(*) FROM runs WHERE finished_at IS NULL") != "0" { try await Task.sleep(for: .milliseconds(100)) }
        #expect(try sql("SELECT COUNT(*) FROM events WHERE kind = 'rollback'") == "0")
        // Now it goes: every destination is back to what it was before the restore.
        let rollback = try second.cli(["rollback", id, "--json"])
        #expect(rollback.status == 0, "\(rollback.stdout)\(rollback.stderr)")
        let outcomes = try #require(try JSONSerialization.jsonObject(with: Data(rollback.stdout.utf8)) as? [[String: Any]])
        #expect(outcomes.count == 6)
        try scene.expectDisplacedUntouched()
        for site in sites {
            for product in ["contacts", "jira"] where !scene.displaced.contains(where: { $0 == (site, product) }) {
                #expect(!FileManager.default.fileExists(atPath: scene.destination(site, product)), "\(site)/\(product) is still in place")
            }
        }
        #expect(try scene.stagingLeftovers().isEmpty)
        // The restored data is kept in quarantine, as the other host lists it; the run's jobs were
        // committed once each, and a second rollback (on the other host) is refused.
        let quarantine = try #require(try first.json(["quarantine", "list"]) as? [[String: Any]])
        #expect(quarantine.filter { $0["run"] as? String == id && $0["reason"] as? String == "rollback" }.count == 6, "\(quarantine)")
        #expect(try sql("SELECT COUNT(*) FROM events WHERE run_id = '\(id)' AND kind = 'job.succeeded'") == "6")
        let twice = try first.cli(["rollback", id])
        #expect(twice.status == 2 && twice.stderr.contains("already rolled back"), "\(twice.stdout)\(twice.stderr)")
    }

    /// A host that boots while the database is unreachable says so, and a stop then ends it at
    /// once (it used to wait for the connection pool to give up, about a minute).
    @Test func aHostStopsPromptlyWhileTheLedgerIsUnreachable() async throws {
        let server = try await LocalPostgres.shared()
        let dir = TempDir()
        try DaemonHarness.writeFleet(in: dir, sites: 1, size: "8KiB")
        let host = Host(name: "recovery-1", dir: dir, database: try server.createDatabase(), server: server, ledgerPort: freeLoopbackPort())
        try host.start(waitReady: false)
        // The host says why it is not ready yet.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, !host.daemonLog.contains("the ledger has not answered") { try await Task.sleep(for: .milliseconds(200)) }
        #expect(host.daemonLog.contains("the ledger has not answered for 5 s"), "\(host.daemonLog.suffix(2_000))")
        let asked = Date()
        #expect(host.stop() == 0, "\(host.daemonLog.suffix(2_000))")
        #expect(Date().timeIntervalSince(asked) < 20, "a stop took \(Date().timeIntervalSince(asked)) s")
    }

    /// While the ledger does not answer, a host says so within seconds — in its log, in `status`
    /// (answered at once from what the host knows), in `/metrics` — and refuses other reads at
    /// once instead of holding them for the connection pool's minute; once the ledger answers
    /// again, so does everything.
    @Test func aHostSaysWithinSecondsThatTheLedgerDoesNotAnswer() async throws {
        let server = try await LocalPostgres.shared()
        let dir = TempDir()
        try DaemonHarness.writeFleet(in: dir, sites: 1, size: "8KiB")
        var ledger = FaultProxy(upstreamPort: server.port, fault: nil)
        let host = Host(name: "recovery-1", dir: dir, database: try server.createDatabase(), server: server, ledgerPort: ledger.port)
        let http = "http://127.0.0.1:\(freeLoopbackPort())"
        let config = try String(contentsOfFile: dir.file("recovery-1.yaml"), encoding: .utf8)
        dir.write("recovery-1.yaml", config + "\nhttp: { listen: \"\(http.dropFirst("http://".count))\" }\n")
        try host.start()
        defer {
            host.stop()
            ledger.stop()
        }
        #expect(try host.cli(["restore", "main", "--follow"]).status == 0)
        let before = try host.cli(["status"])
        #expect(before.status == 0 && before.stdout.contains("1 of 1 host(s) alive") && !before.stdout.contains("LEDGER"), "\(before.stdout)")
        #expect(try httpGet(http + "/metrics").body.contains("lifeboat_ledger_up{host=\"recovery-1\"} 1"))

        func timed(_ arguments: [String]) throws -> (ProcessResult, TimeInterval) {
            let asked = Date()
            let result = try host.cli(arguments)
            return (result, Date().timeIntervalSince(asked))
        }
        ledger.stop()
        let cut = Date()
        // Asked before the host knows: the read waits for a connection, and is given up as soon
        // as the host finds the ledger gone (not after the connection pool's minute).
        let (caught, caughtTook) = try timed(["runs"])
        #expect(caught.status == 3 && caught.stderr.contains("does not answer this host (since "), "\(caught.stdout)\(caught.stderr)")
        #expect(caughtTook < 8, "runs, caught by the cut, took \(caughtTook) s")
        while Date().timeIntervalSince(cut) < 30, !host.daemonLog.contains("ledger unreachable: ") { try await Task.sleep(for: .milliseconds(100)) }
        #expect(Date().timeIntervalSince(cut) < 15, "said after \(Date().timeIntervalSince(cut)) s: \(host.daemonLog.suffix(2_000))")
        let (status, statusTook) = try timed(["status"])
        #expect(status.status == 0 && status.stdout.contains("LEDGER NOT ANSWERING for "), "\(status.stdout)\(status.stderr)")
        #expect(status.stdout.contains("this host claims nothing and commits nothing it cannot record until it answers"))
        #expect(statusTook < 5, "status took \(statusTook) s")
        let json = try #require(try host.json(["status"]) as? [String: Any])
        let problem = try #require(json["ledger_problem"] as? [String: Any], "\(json)")
        #expect((problem["reason"] as? String)?.isEmpty == false && problem["since"] is String && json["hosts"] == nil, "\(json)")
        let (runs, runsTook) = try timed(["runs"])
        #expect(runs.status != 0 && runs.stderr.contains("does not answer this host (since "), "\(runs.stderr)")
        #expect(runsTook < 5, "runs took \(runsTook) s")
        #expect(try httpGet(http + "/metrics").body.contains("lifeboat_ledger_up{host=\"recovery-1\"} 0"))
        #expect(try httpGet(http + "/api/v1/status").body.contains("\"ledger_problem\""))
        // Every command that needs the ledger is refused at once, saying why; so is the API.
        for command in [["quarantine", "list"], ["report", "20261205-000000-0000"], ["restore", "main"]] {
            let (refused, took) = try timed(command)
            #expect(refused.status != 0 && refused.stderr.contains("does not answer this host (since ") && took < 5, "\(command): \(took) s \(refused.stderr)")
        }
        #expect(try httpGet(http + "/api/v1/runs").status == 503)
        // The reason is the server's, asked directly, not the connection pool's state.
        let refused = "cannot connect to 127.0.0.1:\(ledger.port): Connection refused"
        while Date().timeIntervalSince(cut) < 30, !(try host.cli(["status"]).stdout.contains(refused)) { try await Task.sleep(for: .milliseconds(250)) }
        let explained = try host.cli(["status"]).stdout
        #expect(explained.contains(refused), "\(explained)")

        // A failover's length: the pool's own backoff between attempts has grown to seconds.
        while Date().timeIntervalSince(cut) < 35 { try await Task.sleep(for: .milliseconds(250)) }
        // The database is back on the same address: this host answers again within seconds.
        ledger = FaultProxy(upstreamPort: server.port, fault: nil, port: ledger.port)
        let back = Date()
        var again = try host.cli(["runs"])
        while again.status != 0, Date().timeIntervalSince(back) < 60 {
            try await Task.sleep(for: .milliseconds(250))
            again = try host.cli(["runs"])
        }
        #expect(again.status == 0, "\(again.stderr)\(host.daemonLog.suffix(2_000))")
        #expect(Date().timeIntervalSince(back) < 5, "answered \(Date().timeIntervalSince(back)) s after the database was back")
        #expect(host.daemonLog.contains("the ledger's server accepts connections again; connecting anew now"), "\(host.daemonLog.suffix(2_000))")
        let answered = try host.cli(["status"]).stdout
        #expect(!answered.contains("LEDGER") && answered.contains("1 of 1 host(s) alive"), "\(answered)")
        while Date().timeIntervalSince(back) < 60, !host.daemonLog.contains("the ledger answers again") { try await Task.sleep(for: .milliseconds(100)) }
        #expect(host.daemonLog.contains("the ledger answers again unreachable_seconds="), "\(host.daemonLog.suffix(2_000))")
        #expect(try httpGet(http + "/metrics").body.contains("lifeboat_ledger_up{host=\"recovery-1\"} 1"))
    }

    /// A ledger that drops every connection for a few seconds while jobs verify (a restart, a
    /// failover): the jobs wait for it and the run ends as if nothing happened — every job once,
    /// no staging left, nothing recorded behind what was done; a watch of the run follows it to
    /// its end.
    @Test func aShortLedgerOutageMidRunLosesNothing() async throws {
        let (dir, _, database, server) = try await fleet(sites: 3, hosts: [], verifySleep: "2", concurrency: 6)
        var ledger = FaultProxy(upstreamPort: server.port, fault: nil)
        let host = Host(name: "recovery-1", dir: dir, database: database, server: server, ledgerPort: ledger.port)
        try host.start()
        defer {
            host.stop()
            ledger.stop()
        }
        let sql = { (query: String) in try self.sql(server, database, query) }
        let id = try startRestore(on: host)
        let watch = try BackgroundCLI(socket: host.socket, in: dir, ["watch", id], output: "watch.log")
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, try sql("SELECT COUNT(*) FROM jobs WHERE state IN ('restoring', 'verifying')") == "0" { try await Task.sleep(for: .milliseconds(20)) }
        // The watch's first read may be caught in flight: given up once the host finds the
        // ledger gone, it is waited out as the watch started during the outage (below) waits.
        ledger.stop()
        let cut = Date()
        try #require(try sql("SELECT COUNT(*) FROM jobs WHERE state = 'succeeded'") != "6", "the run ended before the outage")
        // A watch started once this host knows the ledger does not answer waits for it, and says so.
        while Date().timeIntervalSince(cut) < 30, !(try host.cli(["status"]).stdout.contains("LEDGER NOT ANSWERING")) { try await Task.sleep(for: .milliseconds(100)) }
        let lateWatch = try BackgroundCLI(socket: host.socket, in: dir, ["watch", id], output: "late-watch.log")
        while Date().timeIntervalSince(cut) < 40, !lateWatch.errorText.contains("waiting to follow") { try await Task.sleep(for: .milliseconds(100)) }
        #expect(lateWatch.errorText.contains("does not answer this host") && lateWatch.errorText.contains("waiting to follow run \(id)"), "\(lateWatch.errorText)")
        let rest = 3 - Date().timeIntervalSince(cut)
        if rest > 0 { try await Task.sleep(for: .seconds(rest)) }
        ledger = FaultProxy(upstreamPort: server.port, fault: nil, port: ledger.port)
        // `runs` is refused until the ledger answers this host again.
        let back = Date()
        while Date().timeIntervalSince(back) < 60, try host.cli(["runs"]).status != 0 { try await Task.sleep(for: .milliseconds(200)) }
        // Jobs whose claim ran out meanwhile start over (from fresh staging); none fails.
        #expect(try await waitForState(host, id, in: ["succeeded", "failed", "cancelled"]) == "succeeded", "\(host.daemonLog.suffix(4_000))")
        #expect(try sql("SELECT string_agg(DISTINCT state, ',') FROM jobs") == "succeeded", "\(host.daemonLog.suffix(4_000))")
        #expect(try await watch.waitForExit(timeout: 30) == 0, "\(watch.text)\(watch.errorText)")
        #expect(watch.text.contains("run \(id) succeeded"), "\(watch.text)")
        #expect(try await lateWatch.waitForExit(timeout: 30) == 0, "\(lateWatch.text)\(lateWatch.errorText)")
        #expect(lateWatch.text.contains("run \(id) succeeded") && lateWatch.errorText.contains("following run \(id) again"), "\(lateWatch.text)\(lateWatch.errorText)")
        // Each committed once: nothing displaced (the targets were empty), one success each.
        #expect(try sql("SELECT COUNT(*) FROM events WHERE run_id = '\(id)' AND kind = 'job.succeeded'") == "6")
        #expect(try sql("SELECT COUNT(*) FROM quarantine") == "0")
        let sites = try FileManager.default.contentsOfDirectory(atPath: dir.file("out"))
        #expect(sites.count == 3)
        for site in sites {
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("out/\(site)")).sorted() == ["contacts", "jira"])
        }
    }

    /// The connection is cut as PostgreSQL answers the COMMIT of a run's start (the run is
    /// recorded): the operator hears it started, as it did, and it runs once — not "ask again"
    /// while the host takes the run up as an orphan and runs it beside the one asked again.
    @Test func aRunStartWhoseAnswerIsLostIsSaidStartedAndRunsOnce() async throws {
        let (dir, _, database, server) = try await fleet(sites: 2, hosts: [], verifySleep: "0")
        let ledger = FaultProxy(upstreamPort: server.port, fault: nil)
        let host = Host(name: "recovery-1", dir: dir, database: database, server: server, ledgerPort: ledger.port)
        try host.start()
        defer {
            host.stop()
            ledger.stop()
        }
        ledger.loseAnswer(toRequestContaining: "COMMIT", after: "INSERT INTO runs")
        let id = try startRestore(on: host)
        #expect(ledger.faultsInjected == 1)
        #expect(try await waitForState(host, id, in: ["succeeded", "failed", "cancelled"]) == "succeeded", "\(host.daemonLog.suffix(4_000))")
        // Given time to adopt a ghost, there is none: one run, each job committed once.
        try await Task.sleep(for: .seconds(3))
        #expect(try sql(server, database, "SELECT COUNT(*) FROM runs") == "1")
        #expect(try sql(server, database, "SELECT COUNT(*) FROM events WHERE kind = 'job.succeeded'") == "4")
        #expect(host.daemonLog.contains("the answer to recording a run was lost; the run is recorded"), "\(host.daemonLog.suffix(4_000))")
    }

    /// The connection is cut as PostgreSQL answers the COMMIT of a retry (its job and its run
    /// recorded going again, together): the operator hears the retry went through, and it does
    /// — not "failed" while the run is taken up anyway, nor a pending job stranded in an ended run.
    @Test func aRetryWhoseAnswerIsLostIsSaidDoneAndHappens() async throws {
        let server = try await LocalPostgres.shared()
        let database = try server.createDatabase()
        let dir = TempDir()
        let check = failOnceCheck(in: dir, sleep: "0")
        try DaemonHarness.writeFleet(in: dir, sites: 1, size: "8KiB", planExtra: """
            verify: { checksum: if-present, command: ["\(check)", "{site}", "{product}"] }
            """)
        let site = try #require(try FaultScene(dir: dir, displaced: []).sites.first)
        dir.write("fail-once/\(site)-contacts", "")
        let ledger = FaultProxy(upstreamPort: server.port, fault: nil)
        let host = Host(name: "recovery-1", dir: dir, database: database, server: server, ledgerPort: ledger.port)
        try host.start()
        defer {
            host.stop()
            ledger.stop()
        }
        let sql = { (query: String) in try self.sql(server, database, query) }
        let id = try startRestore(on: host)
        #expect(try await waitForState(host, id, in: ["succeeded", "failed", "cancelled"]) == "failed", "\(host.daemonLog.suffix(3_000))")
        let failed = try sql("SELECT id FROM jobs WHERE state = 'failed'")
        ledger.loseAnswer(toRequestContaining: "COMMIT", after: "retrying \(site)/contacts")
        let retry = try host.cli(["retry", id, failed])
        #expect(retry.status == 0, "\(retry.stdout)\(retry.stderr)")
        #expect(ledger.faultsInjected == 1)
        #expect(try await waitForState(host, id, in: ["succeeded", "failed", "cancelled"]) == "succeeded", "\(host.daemonLog.suffix(3_000))")
        #expect(try sql("SELECT string_agg(DISTINCT state, ',') FROM jobs") == "succeeded")
        #expect(host.daemonLog.contains("the answer to a run's update was lost; the update is recorded"), "\(host.daemonLog.suffix(3_000))")
    }

    /// The connection is cut as PostgreSQL answers the insert of a cancel forwarded from another
    /// host: the operator hears that the cancel may be recorded and that giving it again is
    /// harmless, not that it failed — and the run's coordinator does apply it.
    @Test func aForwardedCancelWhoseAnswerIsLostIsSaidMaybeRecordedAndIsApplied() async throws {
        let (dir, hosts, database, server) = try await fleet(sites: 3, hosts: ["recovery-1"], verifySleep: "1", concurrency: 1)
        let coordinator = hosts[0]
        let ledger = FaultProxy(upstreamPort: server.port, fault: nil)
        let other = Host(name: "recovery-2", dir: dir, database: database, server: server, ledgerPort: ledger.port)
        try coordinator.start()
        try other.start()
        defer {
            other.stop()
            coordinator.stop()
            ledger.stop()
        }
        let id = try startRestore(on: coordinator)
        ledger.loseAnswer(toRequestContaining: "INSERT INTO forwarded_commands")
        let cancel = try other.cli(["cancel", id])
        #expect(ledger.faultsInjected == 1)
        #expect(cancel.status == 3, "\(cancel.stdout)\(cancel.stderr)")
        #expect(cancel.stderr.contains("the cancel of run \(id) may have been recorded before the answer was lost"), "\(cancel.stderr)")
        #expect(cancel.stderr.contains("lifeboat cancel \(id)"), "\(cancel.stderr)")
        // Recorded before the cut, so applied: the run ends cancelled with nobody asking again.
        #expect(try await waitForState(coordinator, id, in: ["succeeded", "failed", "cancelled"]) == "cancelled", "\(coordinator.daemonLog.suffix(3_000))")
        #expect(try sql(server, database, "SELECT COUNT(*) FROM forwarded_commands") == "1")
    }

    /// A lease a host holds for a run it no longer works on (its give-back got no answer) is not
    /// renewed with the others: it runs out, and another host may then roll the run back, rather
    /// than be told until the first host restarts that it is being retried or rolled back there.
    @Test func aLeaseWhoseGiveBackWasLostRunsOut() async throws {
        let (_, hosts, database, server) = try await fleet(sites: 1, hosts: ["recovery-1", "recovery-2"], verifySleep: "0")
        let (first, second) = (hosts[0], hosts[1])
        for host in hosts { try host.start() }
        defer { for host in hosts { host.stop() } }
        let sql = { (query: String) in try self.sql(server, database, query) }
        let id = try startRestore(on: first)
        #expect(try await waitForState(first, id, in: ["succeeded", "failed", "cancelled"]) == "succeeded")
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, try sql("SELECT COUNT(*) FROM run_leases WHERE run_id = '\(id)'") != "0" {
            try await Task.sleep(for: .milliseconds(50))
        }
        // What a give-back whose answer was lost leaves: recovery-1's live lease of the ended run.
        _ = try sql("INSERT INTO run_leases (run_id, host, expires_at) VALUES ('\(id)', 'recovery-1', now() + interval '5 seconds')")
        let held = try second.cli(["rollback", id])
        #expect(held.status == 2 && held.stderr.contains("rolled back by host recovery-1"), "\(held.stdout)\(held.stderr)")
        // Past the lease (5 s, which recovery-1 renews every third of it for the runs it works on).
        try await Task.sleep(for: .seconds(7))
        #expect(try sql("SELECT COUNT(*) FROM run_leases WHERE run_id = '\(id)' AND expires_at > now()") == "0")
        let rollback = try second.cli(["rollback", id, "--json"])
        #expect(rollback.status == 0, "\(rollback.stdout)\(rollback.stderr)")
        #expect(try sql("SELECT COUNT(*) FROM events WHERE run_id = '\(id)' AND kind = 'rollback'") != "0")
    }

    /// A run whose end the ledger refuses to record (the database's disk full, SQLSTATE 53100)
    /// stops, and is taken up again from the ledger once the database takes writes: it ends once,
    /// with one report, and a watch of it follows it to that end rather than to the stop.
    @Test func aRunStoppedByARefusedWriteIsTakenUpAgainAndWatchedToItsEnd() async throws {
        let (dir, hosts, database, server) = try await fleet(sites: 2, hosts: ["recovery-1"], verifySleep: "1", concurrency: 2)
        let host = hosts[0]
        let sql = { (query: String) in try self.sql(server, database, query) }
        try host.start()
        defer { host.stop() }
        // Once the host made the tables.
        _ = try sql("""
            CREATE FUNCTION refuse_run_end() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'could not extend file: No space left on device (a test)' USING ERRCODE = '53100'; END $$;
            CREATE TRIGGER refuse_run_end BEFORE UPDATE ON runs FOR EACH ROW
            WHEN (NEW.state IN ('succeeded', 'failed')) EXECUTE FUNCTION refuse_run_end();
            """)
        let id = try startRestore(on: host)
        let watch = try BackgroundCLI(socket: host.socket, in: dir, ["watch", id], output: "watch.log")
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, !host.daemonLog.contains("run stopped: ledger write failed") { try await Task.sleep(for: .milliseconds(100)) }
        #expect(host.daemonLog.contains("No space left on device (a test)"), "\(host.daemonLog.suffix(3_000))")
        // Still following: the run did not end.
        try await Task.sleep(for: .seconds(1))
        #expect(watch.process.isRunning, "\(watch.text)\(watch.errorText)")
        _ = try sql("DROP TRIGGER refuse_run_end ON runs")
        #expect(try await watch.waitForExit(timeout: 60) == 0, "\(watch.text)\(watch.errorText)\(host.daemonLog.suffix(3_000))")
        #expect(watch.text.contains("run \(id) succeeded"), "\(watch.text)")
        #expect(try sql("SELECT state FROM runs WHERE id = '\(id)'") == "succeeded")
        #expect(try sql("SELECT COUNT(*) FROM events WHERE run_id = '\(id)' AND kind = 'job.succeeded'") == "4")
        #expect(try sql("SELECT COUNT(*) FROM events WHERE run_id = '\(id)' AND kind = 'run.succeeded'") == "1")
        let reports = try FileManager.default.contentsOfDirectory(atPath: host.dir.file("state-\(host.name)/reports"))
        #expect(reports.filter { $0.hasPrefix(id) && $0.hasSuffix(".html") }.count == 1, "\(reports)")
    }

    /// A host already running when a newer lifeboat migrates the ledger's schema past its own
    /// claims nothing from its next heartbeat on, and says why once; it claims again if the
    /// schema is its own again.
    @Test func aHostStopsClaimingOnceTheSchemaIsNewerThanItKnows() async throws {
        let (_, hosts, database, server) = try await fleet(sites: 2, hosts: ["recovery-1"], verifySleep: "0.1")
        let host = hosts[0]
        try host.start()
        defer { host.stop() }
        let sql = { (query: String) in try self.sql(server, database, query) }
        let known = try sql("SELECT MAX(version) FROM lifeboat_schema")
        try server.psql(database, "INSERT INTO lifeboat_schema (version, name) VALUES (999, 'from a newer lifeboat')")
        let said = "has schema version 999, newer than this lifeboatd knows (\(known)); upgrade lifeboat on this host before it joins; this host claims nothing until it is upgraded"
        // Within a heartbeat (a third of the 5 s lease); a run started now gets nothing claimed.
        try await Task.sleep(for: .seconds(2))
        let id = try startRestore(on: host)
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline, !host.daemonLog.contains(said) { try await Task.sleep(for: .milliseconds(200)) }
        #expect(host.daemonLog.components(separatedBy: said).count == 2, "\(host.daemonLog.suffix(3_000))")
        try await Task.sleep(for: .seconds(1))
        #expect(try sql("SELECT COUNT(*) FROM jobs WHERE run_id = '\(id)' AND state <> 'pending'") == "0")
        try server.psql(database, "DELETE FROM lifeboat_schema WHERE version = 999")
        #expect(try await waitForState(host, id, in: ["succeeded", "failed", "cancelled"]) == "succeeded", "\(host.daemonLog.suffix(3_000))")
    }

    /// Waits (bounded) until a host lists the run in one of `states`; returns the last state seen.
    func waitForState(_ host: Host, _ id: String, in states: Set<String>) async throws -> String? {
        let deadline = Date().addingTimeInterval(90)
        var state: String?
        while Date() < deadline {
            state = try runState(host, id)
            if let state, states.contains(state) { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        return state
    }
}

/// Without `ledger:` nothing of the above shows: one host, SQLite, the answers as they were.
@Suite(.ownThread) struct SingleHostUnchangedTests {
    @Test func statusAndJobsCarryNoHosts() async throws {
        let daemon = try DaemonHarness(sites: 1)
        try daemon.start()
        defer { daemon.stop() }
        let status = try #require(try JSONSerialization.jsonObject(with: Data(try daemon.cli(["status", "--json"]).stdout.utf8)) as? [String: Any])
        #expect(status["hosts"] == nil && status["host"] == nil)
        #expect(status["ledger"] as? String == daemon.ledger)
        #expect(!(try daemon.cli(["status"]).stdout.contains("host(s) alive")))
        let id = try daemon.startRestore()
        #expect(try await daemon.waitForRun(id) == "succeeded")
        #expect(try daemon.jobs(id).allSatisfy { $0["host"] == nil })
    }
}
