import Foundation

/// A real PostgreSQL server for tests, started by the tests themselves: `initdb` into a temporary
/// directory and `pg_ctl start` on a free loopback port, run as an unprivileged user (PostgreSQL
/// refuses root: under root it runs as `postgres`, or `nobody`). One server per test process,
/// started on first use and stopped when the process exits; each test gets its own database.
///
/// The server's binaries come from Debian's `postgresql` package (`/usr/lib/postgresql/N/bin`),
/// or from `LIFEBOAT_PG_BIN`. Without them `available` is false and the tests that need it skip,
/// saying what to install — except under CI (`CI=true`), where they run and fail.
public final class LocalPostgres: Sendable {
    public let host = "127.0.0.1"
    public let port: Int
    /// The superuser the tests connect as (password authentication over TCP).
    public let user = "lifeboat"
    /// A `0600` file holding the password (what `ledger.password_file` names).
    public let passwordFile: String
    public let password: String
    /// The CA certificate that signed the server's (`sslrootcert`): the server accepts TLS, with a
    /// certificate for 127.0.0.1, when `openssl` was there to make one (nil otherwise).
    public let tlsRootCertificate: String?
    let directory: String
    let bin: String
    let runAs: String?

    /// What to install when the binaries are missing.
    public static let installHint = "needs PostgreSQL's server binaries (apt-get install -y postgresql)"

    /// The directory holding `initdb`, `pg_ctl` and `psql`, if any.
    public static let binDirectory: String? = {
        let fm = FileManager.default
        func usable(_ dir: String) -> Bool { ["initdb", "pg_ctl", "psql"].allSatisfy { fm.isExecutableFile(atPath: dir + "/" + $0) } }
        if let dir = ProcessInfo.processInfo.environment["LIFEBOAT_PG_BIN"], usable(dir) { return dir }
        let versions = ((try? fm.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []).compactMap(Int.init).sorted(by: >)
        return versions.map { "/usr/lib/postgresql/\($0)/bin" }.first(where: usable)
    }()

    /// Whether tests needing the server run: the binaries are there, or CI demands them.
    public static let available = binDirectory != nil || ProcessInfo.processInfo.environment["CI"] == "true"

    public struct StartError: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// The process's server, started on first use (concurrent callers wait for the one start).
    public static func shared() async throws -> LocalPostgres {
        try await starter.server()
    }

    private static let starter = Starter()

    private actor Starter {
        var started: Result<LocalPostgres, Error>?
        var starting: Task<LocalPostgres, Error>?

        func server() async throws -> LocalPostgres {
            if let started { return try started.get() }
            if starting == nil {
                // initdb takes seconds: off the cooperative pool.
                starting = Task {
                    try await withCheckedThrowingContinuation { continuation in
                        Thread.detachNewThread { continuation.resume(with: Result { try LocalPostgres() }) }
                    }
                }
            }
            do {
                let server = try await starting!.value
                started = .success(server)
                return server
            } catch {
                started = .failure(error)
                throw error
            }
        }
    }

    /// A server of its own for one test, listening on 127.0.0.1 and on `addresses` (this side of
    /// network namespaces' links), accepting password logins from `network` (a CIDR) too.
    /// Stopped by `stop()` or when the process exits.
    public static func dedicated(listeningAlsoOn addresses: [String], allowing network: String) async throws -> LocalPostgres {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try LocalPostgres(alsoListen: addresses, allow: network) }) }
        }
    }

    private init(alsoListen addresses: [String] = [], allow network: String? = nil) throws {
        guard let bin = Self.binDirectory else { throw StartError(message: "PostgreSQL " + Self.installHint) }
        self.bin = bin
        runAs = geteuid() == 0 ? (getpwnam("postgres") != nil ? "postgres" : "nobody") : nil
        Self.sweepLeftovers(bin: bin, runAs: runAs)
        directory = NSTemporaryDirectory() + "lifeboat-pg-\(getpid())-\(UUID().uuidString.prefix(8))"
        password = "pw-" + UUID().uuidString
        passwordFile = directory + "-password"
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        if let runAs, let pw = getpwnam(runAs) { chown(directory, pw.pointee.pw_uid, pw.pointee.pw_gid) }
        // The client's copy (0600, ours) and initdb's (inside the server's directory, its user's).
        fm.createFile(atPath: passwordFile, contents: Data((password + "\n").utf8), attributes: [.posixPermissions: 0o600])
        let initPassword = directory + "/initdb-password"
        fm.createFile(atPath: initPassword, contents: Data(password.utf8), attributes: [.posixPermissions: 0o600])
        if let runAs, let pw = getpwnam(runAs) { chown(initPassword, pw.pointee.pw_uid, pw.pointee.pw_gid) }
        let initdb = try Self.run(bin + "/initdb", ["-D", directory + "/data", "-U", user, "--pwfile=\(initPassword)",
                                                   "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync",
                                                   "--locale=C"], as: runAs)
        guard initdb.status == 0 else { throw StartError(message: "initdb failed: \(initdb.output)") }
        if let network {
            let hba = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/data/pg_hba.conf"))
            try hba.seekToEnd()
            try hba.write(contentsOf: Data("host all all \(network) scram-sha-256\n".utf8))
            try hba.close()
        }
        tlsRootCertificate = Self.makeCertificates(directory: directory, runAs: runAs)
        let tls = tlsRootCertificate == nil ? "" : " -c ssl=on -c ssl_cert_file=\(directory)/server.pem -c ssl_key_file=\(directory)/server.key"
        var lastError = ""
        for _ in 0..<5 {
            let port = freeLoopbackPort()
            // A test server: no fsync (the tests check the ledger's logic, not the disk's).
            let options = "-c listen_addresses=\((["127.0.0.1"] + addresses).joined(separator: ",")) -p \(port) -k \(directory) -c fsync=off -c full_page_writes=off -c max_connections=300" + tls
            // The server must not inherit this process's descriptors: Foundation learns that a
            // child ended when the last holder of one it passed closes it, and the server lives on.
            let closeInherited = "for fd in $(ls /proc/$$/fd); do [ \"$fd\" -gt 2 ] && eval \"exec $fd>&-\"; done; exec \"$@\""
            let start = try Self.run("/bin/bash", ["-c", closeInherited, "bash", bin + "/pg_ctl", "-D", directory + "/data", "-l", directory + "/server.log",
                                                "-w", "-t", "120", "-o", options, "start"], as: runAs)
            if start.status == 0 {
                self.port = port
                Self.registerStop(bin: bin, data: directory + "/data", runAs: runAs, remove: [directory, passwordFile, directory + "-ca.pem"])
                return
            }
            lastError = start.output + ((try? String(contentsOfFile: directory + "/server.log", encoding: .utf8)) ?? "")
        }
        throw StartError(message: "pg_ctl start failed: \(lastError)")
    }

    /// A CA and a server certificate for 127.0.0.1 signed by it (the server's key is its user's,
    /// 0600); returns the CA's certificate, or nil when openssl is missing or fails.
    private static func makeCertificates(directory: String, runAs: String?) -> String? {
        let openssl = "/usr/bin/openssl"
        guard FileManager.default.isExecutableFile(atPath: openssl) else { return nil }
        let ca = directory + "-ca.pem"
        FileManager.default.createFile(atPath: directory + "/san.ext", contents: Data("subjectAltName=IP:127.0.0.1\n".utf8))
        let steps: [[String]] = [
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", directory + "/ca.key", "-out", ca, "-days", "2", "-subj", "/CN=lifeboat test CA"],
            ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", directory + "/server.key", "-out", directory + "/server.csr", "-subj", "/CN=127.0.0.1"],
            ["x509", "-req", "-in", directory + "/server.csr", "-CA", ca, "-CAkey", directory + "/ca.key", "-CAcreateserial",
             "-out", directory + "/server.pem", "-days", "2", "-extfile", directory + "/san.ext"],
        ]
        for step in steps {
            guard let result = try? run(openssl, step, as: nil), result.status == 0 else { return nil }
        }
        chmod(directory + "/server.key", 0o600)
        if let runAs, let pw = getpwnam(runAs) {
            for file in ["server.key", "server.pem"] { chown(directory + "/" + file, pw.pointee.pw_uid, pw.pointee.pw_gid) }
        }
        return ca
    }

    /// A fresh, empty database for one test.
    public func createDatabase() throws -> String {
        let name = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(20)
        try psql("postgres", "CREATE DATABASE \(name)")
        return String(name)
    }

    /// `postgres://lifeboat@127.0.0.1:PORT/DATABASE` (or the server's other address `host`).
    public func url(database: String, host: String? = nil) -> String { "postgres://\(user)@\(host ?? self.host):\(port)/\(database)?sslmode=disable" }

    /// Stops the server now and removes its files (a dedicated server, when its test is done).
    public func stop() {
        Self.stop(data: directory + "/data")
    }

    /// Runs SQL as the superuser (tests tampering with the ledger from outside).
    @discardableResult
    public func psql(_ database: String, _ sql: String) throws -> String {
        let result = try Self.run(bin + "/psql", ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", "\(port)",
                                                 "-U", user, "-d", database, "-c", sql],
                                  as: nil, environment: ["PGPASSWORD": password])
        guard result.status == 0 else { throw StartError(message: "psql: \(result.output)") }
        return result.output
    }

    // MARK: Processes

    private static func run(_ executable: String, _ arguments: [String], as user: String?,
                            environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let process = Process()
        if let user {
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
            process.arguments = ["-u", user, "--", executable] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
        }
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        env["LC_ALL"] = "C"
        process.environment = env
        // A directory every user may enter (runuser keeps the working directory).
        process.currentDirectoryURL = URL(fileURLWithPath: "/")
        // Output goes to a file, not a pipe: the server pg_ctl starts would inherit a pipe's
        // write end and keep a reader waiting for its end forever.
        let outputPath = NSTemporaryDirectory() + "lifeboat-pg-output-\(UUID().uuidString)"
        FileManager.default.createFile(atPath: outputPath, contents: nil, attributes: [.posixPermissions: 0o600])
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        defer { try? output.close() }
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        let data = FileManager.default.contents(atPath: outputPath) ?? Data()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Servers of test processes that were killed (no exit handler ran): stopped and removed.
    private static func sweepLeftovers(bin: String, runAs: String?) {
        let temp = NSTemporaryDirectory()
        for name in (try? FileManager.default.contentsOfDirectory(atPath: temp)) ?? [] where name.hasPrefix("lifeboat-pg-") {
            let parts = name.split(separator: "-")
            guard parts.count >= 4, let pid = Int32(parts[2]), pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            let path = temp + name
            if FileManager.default.fileExists(atPath: path + "/data/postmaster.pid") {
                _ = try? run(bin + "/pg_ctl", ["-D", path + "/data", "-m", "immediate", "-w", "stop"], as: runAs)
            }
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    /// Stops the server and removes its files when the test process exits (if not stopped before).
    private static func registerStop(bin: String, data: String, runAs: String?, remove: [String]) {
        stopCommands.withLock { $0[data] = (bin, runAs, remove) }
        _ = stopAtExit
    }

    private static let stopAtExit: Void = {
        atexit {
            for data in LocalPostgres.stopCommands.withLock({ Array($0.keys) }) { LocalPostgres.stop(data: data) }
        }
    }()

    private static func stop(data: String) {
        guard let (bin, runAs, remove) = stopCommands.withLock({ $0.removeValue(forKey: data) }) else { return }
        _ = try? run(bin + "/pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"], as: runAs)
        for path in remove { try? FileManager.default.removeItem(atPath: path) }
    }

    /// The servers to stop, by data directory: (binaries, their user, what to remove).
    private static let stopCommands = LockedValue<[String: (String, String?, [String])]>([:])
}

/// A value behind a lock (for the exit handler, which cannot capture).
final class LockedValue<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()
    init(_ value: Value) { self.value = value }
    func withLock<T>(_ body: (inout Value) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}

/// A loopback port nobody listens on right now (the kernel's choice for an ephemeral bind).
public func freeLoopbackPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}
