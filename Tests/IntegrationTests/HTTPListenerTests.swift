import Foundation
import LifeboatTestSupport
import Testing
@testable import LifeboatKit

/// The HTTP listener is read-only and hard to disturb: GET/HEAD only, bounded requests and
/// connections, garbage answered 400, and the daemon carries on.
@Suite(.serialized, .ownThread) struct HTTPListenerTests {
    /// Sends raw bytes to the listener; returns what came back before it closed (or `timeout`).
    func raw(port: Int, _ bytes: [UInt8], timeout: Int = 3, halfClose: Bool = false) -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else { return "connect failed" }
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }
            offset += n
        }
        if halfClose { shutdown(fd, Int32(SHUT_WR)) }
        var output = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            output += chunk[..<n]
        }
        return String(decoding: output, as: UTF8.self)
    }

    func port(_ base: String) -> Int { Int(base.split(separator: ":").last!)! }

    @Test func refusesWritesGarbageAndFloodsWithoutDisturbingTheDaemon() async throws {
        let daemon = try DaemonHarness(sites: 2)
        let base = daemon.enableHTTP(offset: 101)
        let port = port(base)
        try daemon.start()

        // Only GET and HEAD: every other method is 405 and names the way to change things.
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            let answer = raw(port: port, Array("\(method) /api/v1/runs HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}".utf8))
            #expect(answer.hasPrefix("HTTP/1.1 405"), "\(method): \(answer)")
            #expect(answer.contains("Allow: GET, HEAD"))
        }
        let head = raw(port: port, Array("HEAD /metrics HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n\r\n".utf8))
        #expect(head.hasPrefix("HTTP/1.1 200") && !head.contains("lifeboat_jobs_total"), "\(head)")

        // Garbage: one 400, then the connection closes at once (not a crash, nor a 408 later).
        for garbage in ["\u{0}\u{1}\u{2}\r\n\r\n", "GET\r\n\r\n", "HELLO WORLD\r\n\r\n", "GET / HTTP/9.9\r\nHost: \u{7}\r\n\r\n",
                        "GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", "get / HTTP/1.1\r\nHost: x\r\n\r\n",
                        "GET / HTTP/2.0\r\nHost: x\r\n\r\n"] {
            let started = Date()
            let answer = raw(port: port, Array(garbage.utf8), timeout: 15)
            #expect(answer.hasPrefix("HTTP/1.1 400"), "\(garbage.debugDescription) got \(answer.debugDescription)")
            #expect(answer.components(separatedBy: "HTTP/1.1 ").count == 2, "\(garbage.debugDescription) got \(answer.debugDescription)")
            #expect(Date().timeIntervalSince(started) < 3, "\(garbage.debugDescription): closed after \(Date().timeIntervalSince(started)) s")
        }
        // Bounded request size: a 1 MiB header is refused before it is parsed.
        let huge = "GET / HTTP/1.1\r\nX-Pad: " + String(repeating: "a", count: 1 << 20) + "\r\n\r\n"
        let tooLarge = raw(port: port, Array(huge.utf8))
        #expect(tooLarge.hasPrefix("HTTP/1.1 413"), "\(tooLarge.prefix(200))")
        // So is a request that only declares a body that large: at once, not after the 10 s a
        // whole request is given.
        let declared = Date()
        let declaresHuge = raw(port: port, Array("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999999\r\n\r\n".utf8), timeout: 15)
        #expect(declaresHuge.hasPrefix("HTTP/1.1 413"), "\(declaresHuge.prefix(200))")
        #expect(Date().timeIntervalSince(declared) < 3, "answered after \(Date().timeIntervalSince(declared)) s")

        // Bounded connections: 70 idle connections; past 64 the listener answers 503 at once.
        var held: [Int32] = []
        let flooded = Date()
        for _ in 0..<70 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            held.append(fd)
        }
        // Wait until the listener has taken all 70 in: 64 hold a slot, 6 were answered 503.
        var refused = Set<Int32>()
        var answers: [Int32: [UInt8]] = [:]
        let deadline = Date().addingTimeInterval(5)
        while refused.count < 6, Date() < deadline {
            for fd in held where !refused.contains(fd) {
                var chunk = [UInt8](repeating: 0, count: 64)
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n > 0 { answers[fd, default: []] += chunk[..<n] }
                if String(decoding: answers[fd, default: []], as: UTF8.self).hasPrefix("HTTP/1.1 503") { refused.insert(fd) }
            }
            usleep(20_000)  // not Task.sleep: held connections must not idle out while this waits for a thread
        }
        // A slot is held at most 10 s (the request timeout answers 408 and frees it): on a
        // machine so loaded that the daemon took the flood in slower than that, a later
        // connection may have found a slot freed, and fewer than 6 were refused.
        if Date().timeIntervalSince(flooded) < 9 {
            #expect(refused.count == 6, "\(refused.count) of 70 connections were refused")
        } else {
            #expect((1...6).contains(refused.count), "\(refused.count) of 70 connections were refused, \(Date().timeIntervalSince(flooded)) s after the flood")
        }
        let busy = raw(port: port, Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(busy.hasPrefix("HTTP/1.1 503"), "\(busy)")
        // Meanwhile the control socket answers and a restore runs as usual.
        #expect(try daemon.cli(["status"]).status == 0)
        for fd in held { close(fd) }
        usleep(300_000)

        let restore = try daemon.cli(["restore", "main", "--follow"])
        #expect(restore.status == 0, "\(restore.stderr)")
        let metrics = try httpGet(base + "/metrics")
        #expect(metrics.status == 200 && metrics.body.contains("lifeboat_jobs_total"), "\(metrics)")
        let missing = try httpGet(base + "/nothing-here")
        #expect(missing.status == 404 && missing.body.contains("/api/v1/"))
        #expect(daemon.daemonLog.contains("http listening"))
        // What was refused is in the log: the flood as a warning, each kind once.
        #expect(daemon.daemonLog.contains("WARNING http request refused: over 64 connections open at once"), "\(daemon.daemonLog.suffix(3_000))")
        for kind in ["method", "malformed", "too-large", "busy"] {
            #expect(daemon.daemonLog.components(separatedBy: "refusal=\(kind)").count == 2, "\(kind): \(daemon.daemonLog.suffix(3_000))")
        }
        #expect(daemon.stop() == 0)
    }

    @Test func slowClientsAreClosed() async throws {
        let daemon = try DaemonHarness(sites: 1)
        let base = daemon.enableHTTP(offset: 102)
        try daemon.start()
        // A client that never finishes its request is closed after the idle timeout (10 s)
        // rather than holding a slot forever.
        let started = Date()
        let answer = raw(port: port(base), Array("GET / HTTP/1.1\r\n".utf8), timeout: 20)
        #expect(Date().timeIntervalSince(started) < 19, "closed after \(Date().timeIntervalSince(started)) s")
        #expect(!answer.hasPrefix("HTTP/1.1 200"))

        // One that trickles a byte every half second is never idle: the request's deadline
        // (10 s from the connection) answers it 408 and closes it.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port(base)).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(connected == 0)
        let trickleStarted = Date()
        var reply = [UInt8]()
        trickle: for byte in Array("GET /api/v1/status HTTP/1.1\r\nHost: localhost\r\nX-Slow: ".utf8) + [UInt8](repeating: UInt8(ascii: "a"), count: 60) {
            var b = byte
            _ = send(fd, &b, 1, Int32(MSG_NOSIGNAL))
            usleep(500_000)
            var chunk = [UInt8](repeating: 0, count: 4_096)
            while true {
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n > 0 { reply += chunk[..<n]; continue }
                if n == 0 { break trickle }
                break
            }
        }
        let took = Date().timeIntervalSince(trickleStarted)
        #expect(String(decoding: reply, as: UTF8.self).hasPrefix("HTTP/1.1 408"), "\(String(decoding: reply, as: UTF8.self).prefix(200))")
        #expect(took > 9 && took < 14, "closed after \(took) s")
        #expect(daemon.stop() == 0)
    }

    /// Only requests for a loopback name are answered (a page that points its own name at
    /// 127.0.0.1 reads nothing); proxies' absolute-form targets are routed; a client that shuts
    /// down its sending side still gets its answer.
    @Test func requestsMustNameALoopbackHost() async throws {
        let daemon = try DaemonHarness(sites: 1)
        let base = daemon.enableHTTP(offset: 103)
        let port = port(base)
        try daemon.start()
        func get(_ target: String, host: String?, version: String = "HTTP/1.1", halfClose: Bool = false) -> String {
            raw(port: port, Array("GET \(target) \(version)\r\n\(host.map { "Host: \($0)\r\n" } ?? "")\r\n".utf8), halfClose: halfClose)
        }
        for host in ["127.0.0.1:\(port)", "localhost", "LOCALHOST:\(port)", "[::1]:\(port)", "127.1.2.3", "localhost.:\(port)", "[0:0:0:0:0:0:0:1]"] {
            let answer = get("/api/v1/status", host: host)
            #expect(answer.hasPrefix("HTTP/1.1 200"), "Host \(host): \(answer.prefix(200))")
        }
        for host in ["attacker.example:\(port)", "127.0.0.1.attacker.example", "localhost.attacker.example", "[::2]", "127.0.0.1:x", "localhost:8a",
                     "127.+0.+0.+1", "localhost:", "[::1]:", "127.0.0.1:99999"] {
            let answer = get("/api/v1/status", host: host)
            #expect(answer.hasPrefix("HTTP/1.1 421") && !answer.contains("\"runs\""), "Host \(host): \(answer.prefix(200))")
        }
        #expect(get("/api/v1/status", host: nil).hasPrefix("HTTP/1.1 400"))
        #expect(get("/api/v1/status", host: nil, version: "HTTP/1.0").hasPrefix("HTTP/1.1 200"))
        #expect(get("http://127.0.0.1:\(port)/api/v1/status", host: "127.0.0.1:\(port)").hasPrefix("HTTP/1.1 200"))
        // An absolute-form target names its host itself: another one is refused, whatever Host says.
        for target in ["http://attacker.example/api/v1/status", "HTTP://127.0.0.1@attacker.example:\(port)/api/v1/status", "https://[::2]/api/v1/status"] {
            let answer = get(target, host: "127.0.0.1:\(port)")
            #expect(answer.hasPrefix("HTTP/1.1 421") && !answer.contains("\"runs\""), "\(target): \(answer.prefix(200))")
        }
        #expect(get("http://user@localhost:\(port)/api/v1/status", host: "localhost").hasPrefix("HTTP/1.1 200"))
        // A path's parts are separated by plain slashes: an encoded one (which a proxy's rules
        // would read as data) and an encoded NUL are refused.
        for target in ["/api%2fv1%2fstatus", "/api%2Fv1/status", "/api/v1/runs/a%00b"] {
            let answer = get(target, host: "localhost")
            #expect(answer.hasPrefix("HTTP/1.1 400") && answer.contains("encoded /") && !answer.contains("\"runs\""), "\(target): \(answer.prefix(200))")
        }
        // Refusals are told in the log, once a minute for each kind.
        #expect(daemon.daemonLog.contains("http request refused: a request for \"/api/v1/status\" with Host \"attacker.example:\(port)\" was answered 421"),
                "\(daemon.daemonLog.suffix(3_000))")
        #expect(daemon.daemonLog.components(separatedBy: "refusal=421").count == 2, "\(daemon.daemonLog.suffix(3_000))")
        for _ in 0..<5 {
            let answer = get("/api/v1/status", host: "localhost", halfClose: true)
            #expect(answer.hasPrefix("HTTP/1.1 200") && answer.contains("\"runs\""), "half-closed: \(answer.prefix(200))")
        }
        #expect(daemon.stop() == 0)
    }

    @Test func metricsListenIsAnAliasAndAConflictIsAnError() throws {
        let dir = TempDir()
        let same = dir.write("same.yaml", "metrics: { listen: \"127.0.0.1:9464\" }\nhttp: { listen: \"127.0.0.1:9464\" }\n")
        #expect(try DaemonConfig.load(path: same).httpListen == "127.0.0.1:9464")
        let alias = dir.write("alias.yaml", "metrics: { listen: \"127.0.0.1:9465\" }\n")
        #expect(try DaemonConfig.load(path: alias).httpListen == "127.0.0.1:9465")
        let conflict = dir.write("conflict.yaml", "http: { listen: \"127.0.0.1:9464\" }\nmetrics: { listen: \"127.0.0.1:9465\" }\n")
        let result = try run(Binaries.lifeboatd, ["--config", conflict])
        #expect(result.status == 2)
        #expect(result.stderr.contains("conflict.yaml:2:20: metrics.listen is an alias of http.listen"), "\(result.stderr)")
        let public_ = dir.write("public.yaml", "http: { listen: \"0.0.0.0:9464\" }\n")
        let refused = try run(Binaries.lifeboatd, ["--config", public_])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("http.listen must be host:port on a loopback address"), "\(refused.stderr)")
    }
}
