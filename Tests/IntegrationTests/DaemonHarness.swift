import Foundation
import Testing

/// A real `lifeboatd` started with a temporary config, driven by the real `lifeboat` binary.
final class DaemonHarness: @unchecked Sendable {
    let dir: TempDir
    var process: Process?
    var socket: String { dir.file("lifeboatd.sock") }
    var log: String { dir.file("daemon.log") }

    /// A fleet of `sites` × contacts,jira and a plan `main` over it, in a fresh directory.
    init(sites: Int = 4, size: String = "256KiB", planExtra: String = "", name: String = #function) throws {
        dir = TempDir(name)
        try Self.writeFleet(in: dir, sites: sites, size: size, planExtra: planExtra)
        dir.write("lifeboatd.yaml", """
            plans_dir: plans
            state_dir: state
            socket: { path: lifeboatd.sock, mode: "0666" }
            log: { level: debug }
            max_concurrent_runs: 2
            """)
    }

    /// A generated store of `sites` × contacts,jira in `dir/store` and a plan `main` over it in
    /// `dir/plans` (targets in `dir/out`, sandbox in `dir/sandbox`), `planExtra` appended.
    static func writeFleet(in dir: TempDir, sites: Int, size: String, planExtra: String = "") throws {
        let gen = try run(Binaries.lifeboat, ["fleet", "generate", dir.file("store"), "--sites", "\(sites)", "--products", "contacts,jira",
                                             "--size", size, "--now", "2026-11-25T10:00:00Z"])
        #expect(gen.status == 0, "\(gen.stderr)")
        dir.write("plans/main.yaml", """
            name: main
            snapshots: ../store
            target: ../out/{site}/{product}
            sandbox: ../sandbox/{run}/{site}/{product}
            products:
              - name: contacts
              - name: jira
                after: [contacts]
            objectives: { rto: 1h, rpo: 24h }
            \(planExtra)
            """)
    }

    /// Starts the daemon and waits until `status` answers (and, with `http.listen` in its config,
    /// until that port takes connections: the listener starts beside the control socket, and on
    /// a loaded machine after it); `launcher` execs it (`/usr/bin/nice -n 15`).
    func start(environment: [String: String] = [:], launcher: [String] = [], waitReady: Bool = true) throws {
        let process = Process()
        let command = launcher + [Binaries.lifeboatd, "--config", dir.file("lifeboatd.yaml")]
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try handle.seekToEnd()
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        self.process = process
        guard waitReady else { return }
        let deadline = Date().addingTimeInterval(20)
        let config = (try? String(contentsOfFile: dir.file("lifeboatd.yaml"), encoding: .utf8)) ?? ""
        let http = config.firstMatch(of: /http: \{ listen: "127\.0\.0\.1:([0-9]+)"/).flatMap { Int($0.1) }
        while Date() < deadline {
            if try cli(["status"]).status == 0, http.map(canConnect(port:)) ?? true { return }
            guard process.isRunning else { break }
            usleep(50_000)
        }
        Issue.record("lifeboatd did not become ready: \(daemonLog)")
    }

    var daemonLog: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    /// Runs the CLI against this daemon.
    @discardableResult
    func cli(_ arguments: [String], as user: String? = nil) throws -> ProcessResult {
        if let user {
            return try run("/usr/bin/setpriv", ["--reuid=\(user)", "--regid=\(user)", "--clear-groups", Binaries.lifeboat] + arguments,
                           environment: ["LIFEBOAT_SOCKET": socket])
        }
        return try run(Binaries.lifeboat, arguments, environment: ["LIFEBOAT_SOCKET": socket])
    }

    func signal(_ signal: Int32) {
        if let process, process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// SIGTERM and wait; returns the exit status.
    @discardableResult
    func stop() -> Int32 {
        guard let process else { return -1 }
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Waits for the daemon to exit on its own (a crash point); its exit status, or nil on timeout.
    /// Async, so the wait leaves Swift concurrency's few threads to the in-process tests.
    func waitForExit(timeout: TimeInterval = 30) async throws -> Int32? {
        guard let process else { return nil }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        guard !process.isRunning else { return nil }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// The ledger the daemon writes.
    var ledger: String { dir.file("state/ledger.sqlite") }

    /// The runs in the ledger (`runs --json`), newest first.
    func runs() throws -> [[String: Any]] {
        let runs = try cli(["runs", "--json"])
        return (try? JSONSerialization.jsonObject(with: Data(runs.stdout.utf8)) as? [[String: Any]]) ?? []
    }

    /// Polls until the run `id` ends (succeeded, failed or cancelled); its final state, or nil.
    func waitForRun(_ id: String, timeout: TimeInterval = 60) async throws -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        // At least a few looks whatever the clock says: other tests' blocking waits can hold the
        // test threads past the deadline before this task ever ran.
        var looks = 0
        while Date() < deadline || looks < 10 {
            looks += 1
            if let state = try runs().first(where: { $0["id"] as? String == id })?["state"] as? String,
               ["succeeded", "failed", "cancelled"].contains(state) { return state }
            try await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    /// Starts a restore of `plan` and returns the run id.
    func startRestore(plan: String = "main", _ extra: [String] = []) throws -> String {
        let start = try cli(["restore", plan, "--json"] + extra)
        #expect(start.status == 0, "\(start.stdout)\(start.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(start.stdout.utf8)) as? [String: Any]
        return try #require(json?["id"] as? String, "restore answered \(start.stdout)")
    }

    /// `show RUN --json`: the run's jobs.
    func jobs(_ run: String) throws -> [[String: Any]] {
        let show = try cli(["show", run, "--json"])
        let detail = try JSONSerialization.jsonObject(with: Data(show.stdout.utf8)) as? [String: Any]
        return detail?["jobs"] as? [[String: Any]] ?? []
    }

    func kill9() {
        guard let process else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit {
        if let process, process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Sends raw bytes on a fresh connection and returns what came back within `timeout`.
    func raw(_ bytes: [UInt8], closeAfterSend: Bool = false, timeout: TimeInterval = 2) throws -> String {
        let fd = socketConnect(socket)
        guard fd >= 0 else { throw POSIXError(.ECONNREFUSED) }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }
            offset += n
        }
        if closeAfterSend { shutdown(fd, Int32(SHUT_WR)) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var output = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            output += chunk[..<n]
            if !closeAfterSend, output.last == UInt8(ascii: "\n") {
                let lines = output.split(separator: UInt8(ascii: "\n")).count
                if lines >= expectedLines(bytes) { break }
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    private func expectedLines(_ bytes: [UInt8]) -> Int { max(1, bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).count - 1) }
}

/// Connects a Unix stream socket; returns the fd or -1.
func socketConnect(_ path: String) -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
    let ok = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    if ok != 0 { close(fd); return -1 }
    return fd
}

/// A fake systemd: a datagram socket that collects sd_notify messages.
final class FakeNotifySocket: @unchecked Sendable {
    let path: String
    let fd: Int32

    init(path: String) {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        var tv = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Messages received until `until` matches one or `timeout` passes.
    func collect(until: (String) -> Bool, timeout: TimeInterval = 20) -> [String] {
        var messages: [String] = []
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 4_096)
        while Date() < deadline {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                let message = String(decoding: buffer[..<n], as: UTF8.self)
                messages.append(message)
                if until(message) { break }
            }
        }
        return messages
    }
}
