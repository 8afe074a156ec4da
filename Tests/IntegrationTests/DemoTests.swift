import Foundation
import LifeboatTestSupport
import Testing

/// `lifeboat demo` runs its whole tour and leaves what it says it leaves.
@Suite(.ownThread) struct DemoTests {
    @Test func demoCompletesWithReportAndRestoredProduction() throws {
        let dir = TempDir()
        let root = dir.file("demo")
        let result = try run(Binaries.lifeboat, ["demo", "--directory", root, "--sites", "6"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("A maintenance script deletes 2 sites: acme, globex"))
        #expect(result.stdout.contains("run ") && result.stdout.contains(" succeeded"))
        let production = try FileManager.default.contentsOfDirectory(atPath: root + "/production").sorted()
        #expect(production.count == 6)
        let reports = try FileManager.default.contentsOfDirectory(atPath: root).filter { $0.hasPrefix("report-") && $0.hasSuffix(".html") }
        #expect(reports.count == 1)
        let html = try String(contentsOfFile: root + "/" + reports[0], encoding: .utf8)
        #expect(html.contains("<svg"))
        // Three runs recorded; the exercise's sandbox data is gone.
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/state/reports").filter { $0.hasSuffix(".html") }.count == 3)
        let sandbox = (try? FileManager.default.contentsOfDirectory(atPath: root + "/sandbox")) ?? []
        #expect(sandbox.isEmpty, "\(sandbox)")
        #expect(try run(Binaries.lifeboat, ["plan", "check", root + "/plans/demo.yaml"]).status == 0)
    }
}

/// `lifeboat demo --http`: the restore can be followed in a browser while the demo runs.
@Suite(.ownThread) struct DemoWebViewTests {
    /// Synchronous on purpose: it polls while the demo runs, and an async test could be left
    /// unscheduled past the demo's end while other tests block the few concurrency threads.
    @Test func demoServesTheWebViewUntilInterrupted() throws {
        let dir = TempDir()
        let port = listenerTestPort(offset: 141)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Binaries.lifeboat)
        process.arguments = ["demo", "--directory", dir.file("demo"), "--sites", "6", "--http", "127.0.0.1:\(port)"]
        let output = dir.file("demo.out")
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.standardError = process.standardOutput
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        // While the demo goes, the API lists its runs as they start.
        var runs: [[String: Any]] = []
        var last = ""
        let deadline = Date().addingTimeInterval(120)
        let text = { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }
        while process.isRunning, Date() < deadline, !text().contains("press Ctrl-C") {
            if runs.isEmpty {
                last = (try? httpGet("http://127.0.0.1:\(port)/api/v1/runs"))?.body ?? "curl failed"
                runs = (jsonObject(last) as? [[String: Any]]) ?? []
            }
            usleep(100_000)
        }
        #expect(!runs.isEmpty, "the web view never listed a run while the demo ran: \(last.prefix(300)) \(text())")
        // After the tour, the web view stays up with every run, until Ctrl-C.
        let restore = try #require(text().firstMatch(of: /press Ctrl-C: (http:\/\/[^\s]+\/runs\/([0-9a-f-]+))/), "\(text())")
        #expect(String(restore.1) == "http://127.0.0.1:\(port)/runs/\(restore.2)")
        sleep(2)
        let listed = (jsonObject(try httpGet("http://127.0.0.1:\(port)/api/v1/runs").body) as? [[String: Any]]) ?? []
        #expect(listed.count == 3 && listed.contains { $0["id"] as? String == String(restore.2) }, "\(listed)")
        let page = try httpGet(String(restore.1))
        #expect(page.status == 200 && page.body.contains("/static/app.js"))
        #expect(process.isRunning)
        process.interrupt()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(text())")
        #expect(text().contains("web view: http://127.0.0.1:\(port)/"))
        #expect(text().contains("follow it in a browser: http://127.0.0.1:\(port)/runs/"))
        #expect(text().contains("Everything is in "), "\(text())")
        #expect(try httpGet("http://127.0.0.1:\(port)/api/v1/runs").status == 0, "the web view outlived the demo")
    }

    /// A port already taken stops the demo with a message that names it (it waited for a web
    /// view that would never listen, silently and for good).
    @Test func demoOnATakenPortSaysSoAndStops() throws {
        let dir = TempDir()
        let held = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(held) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                try #require(bind(held, $0, length) == 0 && listen(held, 1) == 0 && getsockname(held, $0, &length) == 0)
            }
        }
        let port = Int(UInt16(bigEndian: address.sin_port))
        let result = try run("/usr/bin/timeout", ["-s", "KILL", "60", Binaries.lifeboat, "demo", "--directory", dir.file("demo"),
                                                  "--sites", "3", "--http", "127.0.0.1:\(port)"])
        #expect(result.status == 1, "\(result.status): \(result.stdout)\(result.stderr)")
        #expect(result.stderr.contains("cannot serve HTTP on 127.0.0.1:\(port): Address already in use"), "\(result.stderr)")
    }
}
