import Foundation
import Logging
import Yams

/// `lifeboatd`'s configuration (config/lifeboatd.yaml documents every key). Decoded and validated
/// once, with the same file:line:col diagnostics as plans; every key has a default that works for
/// one user without a config file.
public struct DaemonConfig: Sendable {
    public enum LogFormat: String, Sendable, CaseIterable { case text, json }

    /// `socket: {path, mode, group}`.
    public typealias SocketConfig = ControlSocketConfig
    /// `admins` and `deleters`: uids and groups.
    public typealias Admins = AccessList

    /// Directory of plan files (`*.yaml`).
    public var plansDirectory: String
    /// Where the config sets `plans_dir` (nil: not set there), for its errors.
    public var plansDirectoryMark: SourceMark?
    /// State: the ledger, the lock, reports.
    public var stateDirectory: String
    public var socket: SocketConfig
    public var admins = Admins()
    /// Who may soft-delete sites (`lifeboat delete`) besides root; being an admin is not enough.
    public var deleters = Admins()
    /// `127.0.0.1:9464` to serve `/metrics`, the web view and `/api/v1/` (`http.listen`, or its
    /// older alias `metrics.listen`); nil (the default) serves nothing over HTTP.
    public var httpListen: String?
    public var logLevel: Logger.Level = .info
    public var logFormat: LogFormat = .text
    public var maxConcurrentRuns = 2
    /// The daemon's CPU niceness (`nice`, 0–19): restores are bulk work, and a host at full load
    /// still answers its operators (`lifeboat status`, a shell) and runs its other services first.
    /// Only ever raised at start: a service manager's higher `Nice=` stands.
    public var niceness: Int32 = 10
    /// The shared PostgreSQL ledger (`ledger: {url, password_file, lease}`); nil (the default):
    /// the embedded SQLite ledger at `ledgerPath`.
    public var sharedLedger: PostgresLedgerSettings?
    /// This daemon's name among the hosts sharing a ledger (`host: {name}`); the machine's host
    /// name by default.
    public var hostName: String = DaemonConfig.machineHostName
    /// With a shared ledger: jobs this host runs at once, over all runs (`host: {max_jobs}`); a
    /// run's `concurrency` is the fleet's limit, this one the host's.
    public var hostMaxJobs = 4 * ProcessInfo.processInfo.activeProcessorCount
    /// `s3: {endpoint, region, path_style, timeout, attempts}`: how `s3://` snapshot stores are
    /// reached (unset keys come from the standard AWS variables). Never credentials.
    public var s3 = S3Settings()
    /// The file the config was read from, if any.
    public var sourcePath: String?

    /// Defaults for one user: plans from `./plans`, state and socket in per-user directories.
    public static func defaults() -> DaemonConfig {
        DaemonConfig(plansDirectory: FileManager.default.currentDirectoryPath + "/plans",
                     stateDirectory: DefaultPaths.stateDirectory,
                     socket: SocketConfig(path: DefaultPaths.socket))
    }

    public var ledgerPath: String { DefaultPaths.ledger(in: stateDirectory) }
    /// Where the ledger is, for status and logs: the SQLite file, or the database URL (no password).
    public var ledgerDescription: String { sharedLedger?.redactedURL ?? ledgerPath }

    /// `gethostname(2)`, or `localhost` if it fails.
    public static var machineHostName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
    public var reportsDirectory: String { stateDirectory + "/reports" }

    /// Loads a config file; relative paths in it are resolved against its directory.
    public static func load(path: String) throws -> DaemonConfig {
        let reader = YAMLReader(file: path)
        // Every key is optional: an empty file (or comments only) is the defaults.
        reader.emptyIsMapping = true
        guard let root = reader.load(contentsOf: path) else {
            try reader.throwIfErrors()
            throw DiagnosticsError([Diagnostic(file: path, line: 1, column: 1, message: "cannot load the config")])
        }
        let base = URL(fileURLWithPath: path).standardizedFileURL.deletingLastPathComponent().path
        var config = decode(root, reader: reader, base: base)
        try reader.throwIfErrors()
        config.sourcePath = URL(fileURLWithPath: path).standardizedFileURL.path
        return config
    }

    static func decode(_ root: Node, reader: YAMLReader, base: String) -> DaemonConfig {
        var config = DaemonConfig.defaults()
        func absolute(_ text: String) -> String {
            PathTemplate.normalise(text.hasPrefix("/") ? text : base + "/" + text)
        }
        // Like every relative path of the file: `plans` beside it (/etc/lifeboat/plans for
        // /etc/lifeboat/lifeboatd.yaml), whatever the working directory.
        config.plansDirectory = absolute("plans")
        guard var doc = YAMLMapping(root, path: "", reader: reader) else { return config }
        if let (text, node) = doc.string("plans_dir") {
            config.plansDirectory = absolute(text)
            config.plansDirectoryMark = SourceMark(node.mark)
        }
        if let (text, node) = doc.string("state_dir") {
            config.stateDirectory = absolute(text)
            // Its ledger, lock, hooks and reports go in it: a directory of Lifeboat's own.
            let resolved = ResolvedPath.of(config.stateDirectory)
            if resolved == "/" {
                reader.error(at: node, "state_dir \(text) is the root directory; Lifeboat keeps its ledger, lock and reports there: give it a directory of its own, like /var/lib/lifeboat/state")
            } else if resolved == ResolvedPath.of(config.plansDirectory) {
                reader.error(at: node, "state_dir \(text) is the plans directory (plans_dir); keep the ledger and the plans apart: give state_dir a directory of its own")
            }
        }
        if var s = doc.mapping("socket") {
            if let (text, _) = s.string("path") { config.socket.path = absolute(text) }
            if let (text, node) = s.string("mode") {
                if case .scalar(let scalar) = node, scalar.style == .plain {
                    reader.error(at: node, "socket.mode must be a quoted octal string like \"0660\" (unquoted, YAML reads it as a number)")
                } else if let mode = mode_t(text, radix: 8), text.count >= 3, mode <= 0o777 {
                    config.socket.mode = mode
                } else {
                    reader.error(at: node, "socket.mode must be an octal permission string like \"0660\", found \"\(text)\"")
                }
            }
            if let (text, node) = s.string("group") {
                if getgrnam(text) == nil { reader.error(at: node, "socket.group \"\(text)\" is not a group on this host") }
                config.socket.group = text
            }
            s.finish()
        }
        for key in ["admins", "deleters"] {
            guard var a = doc.mapping(key) else { continue }
            var role = Admins()
            if let nodes = a.sequence("uids") {
                for node in nodes {
                    if case .scalar(let scalar) = node, scalar.style == .plain, let uid = uid_t(scalar.string) {
                        role.uids.append(uid)
                    } else {
                        reader.error(at: node, "\(key).uids must list numeric user ids, found \(node.kindDescription)")
                    }
                }
            }
            if let groups = a.strings("groups") {
                for (name, node) in groups {
                    if getgrnam(name) == nil { reader.error(at: node, "\(key).groups: \"\(name)\" is not a group on this host") }
                    role.groups.append(name)
                }
            }
            a.finish()
            if key == "admins" { config.admins = role } else { config.deleters = role }
        }
        var listens: [(key: String, text: String, node: Node)] = []
        for key in ["http", "metrics"] {
            guard var m = doc.mapping(key) else { continue }
            if let (text, node) = m.string("listen") {
                if MetricsAddress(text) == nil {
                    reader.error(at: node, "\(key).listen must be host:port on a loopback address, e.g. 127.0.0.1:9464, found \"\(text)\"")
                } else {
                    listens.append((key, text, node))
                }
            }
            m.finish()
        }
        // metrics.listen predates the web view: it names the same listener as http.listen.
        if listens.count == 2, listens[0].text != listens[1].text {
            reader.error(at: listens[1].node, "metrics.listen is an alias of http.listen (one listener serves /metrics, the web view and /api/v1); set only http.listen")
        }
        config.httpListen = listens.first?.text
        if var l = doc.mapping("log") {
            if let (text, node) = l.string("level") {
                if let level = Logger.Level(rawValue: text) { config.logLevel = level } else {
                    reader.error(at: node, "log.level must be one of trace, debug, info, notice, warning, error, critical, found \"\(text)\"")
                }
            }
            if let format = l.choice("format", LogFormat.self) { config.logFormat = format }
            l.finish()
        }
        if let n = doc.int("max_concurrent_runs", range: 1...64) { config.maxConcurrentRuns = n }
        if let n = doc.int("nice", range: 0...19) { config.niceness = Int32(n) }
        if var l = doc.mapping("ledger") {
            let passwordFile = l.string("password_file").map { absolute($0.0) }
            let lease = l.duration("lease")
            if let lease, lease.seconds < 5 || lease.seconds > 3_600, let node = l.keyNode("lease") {
                reader.error(at: node, "ledger.lease must be between 5s and 1h, found \(lease)")
            }
            let connections = l.int("max_connections", range: 2...200)
            if let (text, node) = l.string("url") {
                do {
                    config.sharedLedger = try PostgresLedgerSettings(url: text, passwordFile: passwordFile,
                                                                     lease: TimeInterval(lease?.seconds ?? Int64(PostgresLedgerSettings.defaultLease)),
                                                                     maxConnections: connections ?? 10)
                } catch {
                    reader.error(at: node, "\(error)")
                }
            } else if let node = l.keyNode("password_file") ?? l.keyNode("lease") ?? doc.keyNode("ledger") {
                reader.error(at: node, "ledger.url is missing: the shared ledger is postgres://USER@HOST:5432/DATABASE (without ledger, the SQLite ledger in state_dir is used)")
            }
            l.finish()
        }
        if var h = doc.mapping("host") {
            if let (name, node) = h.string("name") {
                if name.isEmpty || name.count > 253 || name.contains(where: { $0.isWhitespace || $0.isNewline }) {
                    reader.error(at: node, "host.name must be a non-empty name without spaces, found \"\(name)\"")
                } else {
                    config.hostName = name
                }
            }
            if let n = h.int("max_jobs", range: 1...4_096) { config.hostMaxJobs = n }
            h.finish()
        }
        if var s = doc.mapping("s3") {
            if let (text, node) = s.string("endpoint") {
                do {
                    _ = try S3Endpoint.parse(text)
                    config.s3.endpoint = text
                } catch {
                    reader.error(at: node, "s3.endpoint: \((error as? S3Error)?.message ?? "\(error)")")
                }
            }
            if let (text, _) = s.string("region") { config.s3.region = text }
            if let pathStyle = s.bool("path_style") { config.s3.pathStyle = pathStyle }
            if let timeout = s.duration("timeout") { config.s3.timeout = Double(max(1, timeout.seconds)) }
            if let attempts = s.int("attempts", range: 1...20) { config.s3.attempts = attempts }
            s.finish()
        }
        doc.finish()
        return config
    }

    /// Why the daemon could not read its plans directory, or nil when it can: a daemon that
    /// serves no plan because of a typo must not start as if all were well (checked at start;
    /// a reload reports it as a problem and keeps the plans it has).
    public var plansDirectoryProblem: String? {
        guard FileSystem.isDirectory(plansDirectory) else {
            return "\(plansDirectory) is not a directory (\(FileSystem.exists(plansDirectory) ? "a file is there" : "nothing is there")); create it or set plans_dir"
        }
        guard access(plansDirectory, R_OK | X_OK) == 0 else {
            return "\(plansDirectory) is not readable by this user (uid \(getuid())): \(String(cString: strerror(errno)))"
        }
        return nil
    }
}

