import Foundation

/// Where the shared ledger lives (`ledger: {url, password_file, lease}` in the daemon config).
/// The password is never part of the URL or the config text: it comes from `password_file`, or
/// from `PGPASSWORD` as for every PostgreSQL client, or not at all (trust, peer).
public struct PostgresLedgerSettings: Sendable, Hashable {
    public enum SSLMode: String, Sendable, CaseIterable {
        case disable, prefer, require
        /// TLS with the server's certificate checked against `sslrootcert` (or the system's
        /// trust store) and its name against the host.
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    /// A directory holding the server's Unix socket (`?host=/run/postgresql`), instead of TCP.
    public var socketDirectory: String?
    public var user: String
    public var database: String
    public var sslMode: SSLMode
    public var sslRootCert: String?
    /// A file whose first line is the password.
    public var passwordFile: String?
    /// How long a claim or a host's registration lasts without renewal.
    public var lease: TimeInterval
    /// Connections this host keeps at most.
    public var maxConnections: Int

    public static let defaultLease: TimeInterval = 30

    /// `postgres://user@host:5432/db?sslmode=require`, with the password elsewhere.
    public var redactedURL: String {
        let location = socketDirectory.map { "?host=\($0)" } ?? ""
        return "postgres://\(user)@\(socketDirectory == nil ? "\(host):\(port)" : "")/\(database)\(location)"
    }

    public struct Invalid: LifeboatError {
        public var message: String
        public var exitCode: CLIExit { .rejected }
        public var description: String { message }
    }

    /// Parses a `postgres://` (or `postgresql://`) URL. A password in it is refused: URLs end up
    /// in logs, `ps` output and config backups.
    public init(url text: String, passwordFile: String? = nil, lease: TimeInterval = Self.defaultLease, maxConnections: Int = 10) throws {
        guard let url = URLComponents(string: text), let scheme = url.scheme, ["postgres", "postgresql"].contains(scheme) else {
            throw Invalid(message: "ledger.url must be a postgres://user@host:port/database URL, found \"\(text)\"")
        }
        if url.password != nil {
            throw Invalid(message: "ledger.url must not carry a password (it would show in logs and `ps`); put it in the file named by ledger.password_file, or in PGPASSWORD")
        }
        guard let user = url.user, !user.isEmpty else {
            throw Invalid(message: "ledger.url names no user: write postgres://USER@\(url.host ?? "HOST")/DATABASE")
        }
        let database = String(url.path.drop { $0 == "/" })
        guard !database.isEmpty, !database.contains("/") else {
            throw Invalid(message: "ledger.url names no database: write postgres://\(user)@\(url.host ?? "HOST")/DATABASE")
        }
        self.user = user
        self.database = database
        self.host = url.host ?? ""
        self.port = url.port ?? 5432
        self.passwordFile = passwordFile
        self.lease = lease
        self.maxConnections = maxConnections
        self.sslMode = .prefer
        for item in url.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                // libpq's allow behaves like prefer for a client that can do TLS.
                let value = item.value == "allow" ? "prefer" : (item.value ?? "")
                guard let mode = SSLMode(rawValue: value) else {
                    throw Invalid(message: "ledger.url: sslmode must be disable, prefer, require or verify-full, found \"\(item.value ?? "")\"")
                }
                sslMode = mode
            case "sslrootcert":
                sslRootCert = item.value
            case "host":
                guard let value = item.value, value.hasPrefix("/") else {
                    throw Invalid(message: "ledger.url: host= must name the directory of the server's Unix socket, e.g. ?host=/run/postgresql")
                }
                socketDirectory = value
            default:
                throw Invalid(message: "ledger.url: unknown parameter \"\(item.name)\"; Lifeboat honours sslmode, sslrootcert and host")
            }
        }
        if host.isEmpty && socketDirectory == nil {
            throw Invalid(message: "ledger.url names no host: write postgres://\(user)@HOST:5432/\(database)")
        }
        if sslRootCert != nil && sslMode != .verifyFull && sslMode != .require {
            throw Invalid(message: "ledger.url: sslrootcert needs sslmode=verify-full (or require)")
        }
    }

    /// The password: the first line of `password_file`, else `PGPASSWORD`, else none. A password
    /// file others can read is refused, as libpq refuses such a `.pgpass`.
    public func password(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String? {
        guard let passwordFile else { return environment["PGPASSWORD"] }
        var info = stat()
        guard stat(passwordFile, &info) == 0 else {
            throw Invalid(message: "ledger.password_file \(passwordFile): \(String(cString: strerror(errno)))")
        }
        if info.st_mode & 0o077 != 0 {
            throw Invalid(message: "ledger.password_file \(passwordFile) is readable by others (mode \(String(info.st_mode & 0o777, radix: 8))); chmod 600 it")
        }
        guard let text = try? String(contentsOfFile: passwordFile, encoding: .utf8) else {
            throw Invalid(message: "ledger.password_file \(passwordFile): cannot read it as UTF-8 text (uid \(getuid()))")
        }
        let line = text.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let password = line.hasSuffix("\r") ? String(line.dropLast()) : line
        guard !password.isEmpty else { throw Invalid(message: "ledger.password_file \(passwordFile) is empty") }
        return password
    }
}
