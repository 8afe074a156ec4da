import Foundation
import Testing
import LifeboatTestSupport

/// A real S3 API server on loopback for the S3 store tests: `moto_server` (PyPI `moto[server]`)
/// on a free 127.0.0.1 port, started and stopped by the test itself.
final class MotoServer: @unchecked Sendable {
    static let installHint = "moto_server is not installed: python3 -m pip install 'moto[server]' (.ci/run does)"

    /// The `moto_server` executable on PATH, if any.
    static let executable: String? = {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let path = "\(dir)/moto_server"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }()

    static var underCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// Tests run where moto_server is, and under CI always (where its absence is a failure).
    static var shouldRun: Bool { executable != nil || underCI }

    let port: Int
    let process: Process
    var endpoint: String { "http://127.0.0.1:\(port)" }

    /// Credentials moto accepts (it checks none unless told to); never real ones.
    static let credentials = ["AWS_ACCESS_KEY_ID": "lifeboat-test", "AWS_SECRET_ACCESS_KEY": "lifeboat-test-secret", "AWS_REGION": "us-east-1"]

    /// The environment a user would set for this server.
    var environment: [String: String] {
        MotoServer.credentials.merging(["AWS_ENDPOINT_URL": endpoint, "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                                        "AWS_CONFIG_FILE": "/nonexistent"]) { $1 }
    }

    /// Starts a server; `extraEnvironment` e.g. `INITIAL_NO_AUTH_ACTION_COUNT=0` makes moto check credentials.
    init(extraEnvironment: [String: String] = [:]) throws {
        guard let executable = Self.executable else {
            Issue.record(Comment(rawValue: Self.installHint))
            throw MotoMissing()
        }
        port = freeLoopbackPort()
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["-H", "127.0.0.1", "-p", "\(port)"]
        process.environment = ProcessInfo.processInfo.environment.merging(extraEnvironment) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if canConnect(port: port) { return }
            guard process.isRunning else { break }
            usleep(100_000)
        }
        stop()
        throw MotoMissing()
    }

    func stop() {
        // SIGKILL: a child started from the test's threads inherits their blocked SIGTERM and
        // SIGINT, and a test server has nothing to flush.
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { stop() }

    /// `aws --endpoint-url … ARGS` (the other client, for cross-checks).
    func aws(_ arguments: [String]) throws -> ProcessResult {
        try run("/usr/bin/env", ["aws", "--endpoint-url", endpoint] + arguments, environment: environment)
    }

    /// The real `lifeboat` binary with this server's environment.
    func lifeboat(_ arguments: [String], endpoint: String? = nil, extra: [String: String] = [:]) throws -> ProcessResult {
        var env = environment.merging(extra) { $1 }
        if let endpoint { env["AWS_ENDPOINT_URL"] = endpoint }
        return try run(Binaries.lifeboat, arguments, environment: env)
    }

    struct MotoMissing: Error {}
}

func canConnect(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}

/// A loopback TCP proxy in front of the S3 server that injects faults the way networks and
/// stores produce them: a connection cut in the middle of a response body, bursts of 503
/// SlowDown answers, a stalled server. It counts the bytes it forwards to the client. Without a
/// fault it relays any TCP server (PostgreSQL); `stop()` then cuts every connection, as a server
/// gone down would, and a new proxy on the same `port` brings the server back.
final class FaultProxy: @unchecked Sendable {
    enum Fault {
        /// The first response carrying more than `bytes` downstream is cut there (once).
        case cutOnce(afterBytes: Int)
        /// The first `count` requests get `503 SlowDown` without reaching the server.
        case slowDown(count: Int)
        /// The first request gets no answer at all (the connection stays open, silent).
        case stallOnce
        /// Every request is answered `200` with this body, as a broken or hostile store would
        /// answer a listing.
        case answer(String)
        /// Every answer's first `afterBytes` go through at once, the rest at `bytesPerSecond`.
        case trickle(afterBytes: Int, bytesPerSecond: Int)
    }

    let port: Int
    private let upstreamPort: Int
    private let listener: Int32
    private let lock = NSLock()
    private var fault: Fault?
    private var _downstreamBytes = 0
    private var _faultsInjected = 0
    private var stopped = false
    private var held: [Int32] = []
    private var relays: [Relay] = []
    /// Armed by `loseAnswer(toRequestContaining:after:)`: markers to see in turn, the last one's
    /// answer lost.
    private var answerToLose: [[UInt8]] = []

    /// One relayed connection's two sockets: `stop()` shuts them down unless their thread closed them.
    private final class Relay: @unchecked Sendable {
        private let lock = NSLock()
        private var open = true
        let fds: [Int32]

        init(_ fds: [Int32]) { self.fds = fds }

        func shutDown() { lock.withLock { if open { for fd in fds { shutdown(fd, Int32(SHUT_RDWR)) } } } }

        func shutDownWriting(_ fd: Int32) { lock.withLock { if open { shutdown(fd, Int32(SHUT_WR)) } } }

        /// The next answer from the server is not forwarded: the connection is cut instead.
        private var _loseNextAnswer = false
        var loseNextAnswer: Bool {
            get { lock.withLock { _loseNextAnswer } }
            set { lock.withLock { _loseNextAnswer = newValue } }
        }

        func closeBoth() {
            lock.withLock {
                open = false
                for fd in fds {
                    shutdown(fd, Int32(SHUT_RDWR))
                    close(fd)
                }
            }
        }
    }

    /// The answer to the next request whose bytes contain `marker` (a statement's parameter, as a
    /// client sends it) never reaches the client: the server has done the work, and the connection
    /// is cut as the answer arrives, as a network or a failover can. Once. With `earlier`, only
    /// a request after one carrying `earlier` counts (`"COMMIT"` after a transaction's statement).
    func loseAnswer(toRequestContaining marker: String, after earlier: String? = nil) {
        lock.withLock { answerToLose = (earlier.map { [Array($0.utf8)] } ?? []) + [Array(marker.utf8)] }
    }

    /// Takes the next armed marker if `bytes` carry it; true when that was the last.
    private func takeAnswerToLose(_ bytes: ArraySlice<UInt8>) -> Bool {
        lock.withLock {
            guard let marker = answerToLose.first, bytes.count >= marker.count else { return false }
            let found = (bytes.startIndex...(bytes.endIndex - marker.count)).contains { bytes[$0..<$0 + marker.count].elementsEqual(marker) }
            guard found else { return false }
            answerToLose.removeFirst()
            return answerToLose.isEmpty
        }
    }

    var downstreamBytes: Int { lock.withLock { _downstreamBytes } }
    var faultsInjected: Int { lock.withLock { _faultsInjected } }
    var endpoint: String { "http://127.0.0.1:\(port)" }

    init(upstreamPort: Int, fault: Fault?, port wanted: Int = 0) {
        self.upstreamPort = upstreamPort
        self.fault = fault
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = in_port_t(UInt16(wanted).bigEndian)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        listen(listener, 64)
        self.listener = listener
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// Once only: `deinit` calls it again, maybe after another proxy got the same descriptor
    /// number for its listener (closing that one refused the next test's connections).
    func stop() {
        let first: Bool = lock.withLock {
            guard !stopped else { return false }
            stopped = true
            for fd in held { close(fd) }
            held.removeAll()
            for relay in relays { relay.shutDown() }
            return true
        }
        guard first else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    deinit { stop() }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            guard client >= 0 else {
                if lock.withLock({ stopped }) { return }
                if errno == EINTR { continue }
                return
            }
            Thread { [self] in serve(client) }.start()
        }
    }

    /// Takes the current fault for a new connection, if it still applies.
    private func takeFault() -> Fault? {
        lock.withLock {
            switch fault {
            case .slowDown(let count) where count > 0:
                fault = count > 1 ? .slowDown(count: count - 1) : nil
                _faultsInjected += 1
                return .slowDown(count: 1)
            case .stallOnce:
                fault = nil
                _faultsInjected += 1
                return .stallOnce
            case .cutOnce(let bytes):
                return .cutOnce(afterBytes: bytes)
            case .answer(let body):
                _faultsInjected += 1
                return .answer(body)
            case .trickle(let after, let rate):
                _faultsInjected += 1
                return .trickle(afterBytes: after, bytesPerSecond: rate)
            default:
                return nil
            }
        }
    }

    private func serve(_ client: Int32) {
        let connectionFault = takeFault()
        switch connectionFault {
        case .slowDown?:
            _ = readRequestHead(client)
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
            let answer = "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
            _ = answer.withCString { send(client, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
            close(client)
            return
        case .stallOnce?:
            // Say nothing; keep the socket open until the proxy stops.
            lock.withLock { held.append(client) }
            return
        case .answer(let body)?:
            _ = readRequestHead(client)
            let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
            _ = answer.withCString { send(client, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
            close(client)
            return
        default:
            break
        }
        let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = in_port_t(UInt16(upstreamPort).bigEndian)
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else {
            close(client)
            close(upstream)
            return
        }
        let relay = Relay([client, upstream])
        if lock.withLock({ relays.append(relay); return stopped }) { relay.shutDown() }
        // Closed once both directions are done with them (a number closed early may be reused).
        let upward = DispatchSemaphore(value: 0)
        defer {
            relay.shutDown()
            upward.wait()
            relay.closeBoth()
        }
        // client → server
        Thread {
            defer { upward.signal() }
            var buffer = [UInt8](repeating: 0, count: 64 << 10)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                // Armed before the request goes on, so that its answer cannot come first.
                if self.takeAnswerToLose(buffer[0..<n]) { relay.loseNextAnswer = true }
                if !sendAll(upstream, buffer, n) { break }
            }
            relay.shutDownWriting(upstream)
        }.start()
        // server → client, counting, cut when the fault says so.
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var forwarded = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(upstream, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            if relay.loseNextAnswer {
                lock.withLock { _faultsInjected += 1 }
                break
            }
            var count = n
            var cut = false
            if case .cutOnce(let limit)? = connectionFault, forwarded + n > limit {
                let taken: Bool = lock.withLock {
                    guard case .cutOnce? = fault else { return false }
                    fault = nil
                    _faultsInjected += 1
                    return true
                }
                if taken {
                    count = max(0, limit - forwarded)
                    cut = true
                }
            }
            if case .trickle(let after, let rate)? = connectionFault, forwarded + count > after {
                // What is past `after` goes out a tenth of a second's worth at a time.
                let fast = max(0, after - forwarded)
                if fast > 0, !sendAll(client, buffer, fast) { break }
                var sent = fast
                let step = max(1, rate / 10)
                while sent < count {
                    let piece = min(step, count - sent)
                    let n = Array(buffer[sent..<sent + piece])
                    if !sendAll(client, n, piece) { break }
                    sent += piece
                    usleep(100_000)
                }
                guard sent == count else { break }
            } else if count > 0, !sendAll(client, buffer, count) {
                break
            }
            forwarded += count
            lock.withLock { _downstreamBytes += count }
            if cut { break }
        }
    }

    private func readRequestHead(_ fd: Int32) -> String {
        var data = [UInt8]()
        var byte: UInt8 = 0
        while data.count < 64 << 10, recv(fd, &byte, 1, 0) == 1 {
            data.append(byte)
            if data.count >= 4, data.suffix(4) == [13, 10, 13, 10] { break }
        }
        return String(decoding: data, as: UTF8.self)
    }
}

private func sendAll(_ fd: Int32, _ buffer: [UInt8], _ count: Int) -> Bool {
    var sent = 0
    while sent < count {
        let n = buffer.withUnsafeBytes { send(fd, $0.baseAddress! + sent, count - sent, Int32(MSG_NOSIGNAL)) }
        if n <= 0 { return false }
        sent += n
    }
    return true
}
