import Foundation
import Testing
@testable import LifeboatKit

/// The shipped config and unit files are valid.
@Suite struct ConfigFilesTests {
    @Test func exampleDaemonConfigLoads() throws {
        let config = try DaemonConfig.load(path: Binaries.packageRoot + "/config/lifeboatd.yaml")
        #expect(config.plansDirectory == "/etc/lifeboat/plans")
        #expect(config.socket.path == "/run/lifeboat/lifeboatd.sock")
        #expect(config.socket.mode == 0o660)
        #expect(config.maxConcurrentRuns == 2)
    }

    @Test func brokenDaemonConfigIsReportedWithPositions() throws {
        let dir = TempDir()
        let file = dir.write("bad.yaml", "socket:\n  mode: 0660\nmax_concurrent_runs: lots\nlistn: x\n")
        let result = try run(Binaries.lifeboatd, ["--config", file])
        #expect(result.status == 2)
        #expect(result.stderr.contains("\(file):2:9: socket.mode must be a quoted octal string"))
        #expect(result.stderr.contains("\(file):3:22: max_concurrent_runs must be an integer"))
        #expect(result.stderr.contains("\(file):4:1: unknown key \"listn\""))
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze"), "needs systemd-analyze"))
    func systemdUnitVerifies() throws {
        let dir = TempDir()
        let unit = try String(contentsOfFile: Binaries.packageRoot + "/config/lifeboatd.service", encoding: .utf8)
            .replacingOccurrences(of: "/usr/local/bin/lifeboatd", with: Binaries.lifeboatd)
        let path = dir.write("lifeboatd.service", unit)
        let result = try run("/usr/bin/systemd-analyze", ["verify", path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!result.stderr.contains("lifeboatd.service:"), "\(result.stderr)")
        #expect(unit.contains("Type=notify") && unit.contains("ProtectSystem=strict") && unit.contains("NoNewPrivileges=true"))
    }
}

/// The example config documents the HTTP listener; uncommented, it is what the README says.
@Suite struct ExampleHTTPConfigTests {
    @Test func exampleHTTPListenerUncommentedIsLoopbackOnly() throws {
        let text = try String(contentsOfFile: Binaries.packageRoot + "/config/lifeboatd.yaml", encoding: .utf8)
        #expect(text.contains("# http:\n#   listen: 127.0.0.1:9464\n"))
        let dir = TempDir()
        let file = dir.write("lifeboatd.yaml", text.replacingOccurrences(of: "# http:\n#   listen:", with: "http:\n  listen:"))
        #expect(try DaemonConfig.load(path: file).httpListen == "127.0.0.1:9464")
        #expect(try DaemonConfig.load(path: Binaries.packageRoot + "/config/lifeboatd.yaml").httpListen == nil)
    }
}
