import Foundation
import Logging
import Synchronization
import Testing
@testable import LifeboatKit

/// A daemon built by `makeDaemon`, as `lifeboatd` builds it, over a fresh state directory: a plan
/// `main` (contacts, then jira) over a store of empty archives, and an executor that restores
/// nothing, so that runs end in milliseconds.
final class DaemonFixture: Sendable {
    let dir: TestDirectory
    let config: DaemonConfig
    let daemon: Daemon
    let executor: FakeExecutor

    /// Root, the daemon's own user: may change things.
    static let admin = PeerCredentials(pid: getpid(), uid: geteuid(), gid: getegid())
    /// Anyone else who can connect: may only read.
    static let reader = PeerCredentials(pid: 1, uid: 65534, gid: 65534)

    init(sites: [String] = ["acme", "globex"], name: String = #function) throws {
        dir = TestDirectory(name)
        for site in sites {
            for product in ["contacts", "jira"] { dir.write("store/\(site)/\(product)/20261124T000000Z.tar.gz", "") }
        }
        dir.write("plans/main.yaml", """
            name: main
            snapshots: ../store
            target: ../out/{site}/{product}
            sandbox: ../sandbox/{run}/{site}/{product}
            products: [{ name: contacts }, { name: jira, after: [contacts] }]
            """)
        var config = DaemonConfig.defaults()
        config.plansDirectory = dir.file("plans")
        config.stateDirectory = dir.file("state")
        // A short path: a socket's path is limited to 107 bytes.
        config.socket.path = NSTemporaryDirectory() + "lifeboat-\(UUID().uuidString.prefix(8)).sock"
        config.socket.mode = 0o600
        self.config = config
        executor = FakeExecutor(holdMilliseconds: 1)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        daemon = try makeDaemon(config: config, logger: logger, executor: executor)
    }

    deinit { unlink(config.socket.path) }

    /// Hands one request line to the daemon's control handler, as the socket server does, and
    /// returns the response lines.
    func ask(_ line: String, as peer: PeerCredentials = admin) async throws -> [Response] {
        guard case .success(let request) = ControlRequest.parse(Array(line.utf8)) else {
            Issue.record("not a request: \(line)")
            return []
        }
        let sent = Sent()
        try await daemon.handler.handle(request, peer: peer) { data in sent.lines.withLock { $0.append(data) } }
        return try sent.lines.withLock { $0 }.map { try Response($0) }
    }

    /// The one response line of a request.
    func answer(_ line: String, as peer: PeerCredentials = admin, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Response {
        let lines = try await ask(line, as: peer)
        #expect(lines.count == 1, "\(lines.count) lines for \(line)", sourceLocation: sourceLocation)
        return try #require(lines.first, sourceLocation: sourceLocation)
    }

    private final class Sent: Sendable {
        let lines = Mutex<[Data]>([])
    }

    /// A response line, read as an operator's script would.
    struct Response: @unchecked Sendable {
        let object: [String: Any]
        let text: String

        init(_ data: Data) throws {
            text = String(decoding: data, as: UTF8.self)
            object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], "not a JSON object: \(text)")
        }

        var ok: Bool { object["ok"] as? Bool == true }
        var id: Any? { object["id"] }
        var result: [String: Any] { object["result"] as? [String: Any] ?? [:] }
        var results: [[String: Any]] { object["result"] as? [[String: Any]] ?? [] }
        var code: String? { (object["error"] as? [String: Any])?["code"] as? String }
        var message: String { (object["error"] as? [String: Any])?["message"] as? String ?? "" }
    }
}
