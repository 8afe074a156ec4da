import Foundation
import Testing

/// `lifeboat demo` runs its whole tour and leaves what it says it leaves.
@Suite struct DemoTests {
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
