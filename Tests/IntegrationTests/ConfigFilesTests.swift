import Foundation
import LifeboatTestSupport
import Testing
@testable import LifeboatKit

/// The shipped config and unit files are valid.
@Suite(.ownThread) struct ConfigFilesTests {
    @Test func exampleDaemonConfigLoads() throws {
        let config = try DaemonConfig.load(path: Binaries.packageRoot + "/config/lifeboatd.yaml")
        #expect(config.plansDirectory == "/etc/lifeboat/plans")
        #expect(config.stateDirectory == DefaultPaths.rootStateDirectory)
        #expect(config.socket.path == "/run/lifeboat/lifeboatd.sock")
        #expect(config.socket.mode == 0o660)
        #expect(config.maxConcurrentRuns == 2)
        #expect(config.niceness == 10)
    }

    @Test func brokenDaemonConfigIsReportedWithPositions() throws {
        let dir = TempDir()
        let file = dir.write("bad.yaml", "socket:\n  mode: 0660\nmax_concurrent_runs: lots\nlistn: x\nnice: -5\n")
        let result = try run(Binaries.lifeboatd, ["--config", file])
        #expect(result.status == 2)
        #expect(result.stderr.contains("\(file):2:9: socket.mode must be a quoted octal string"))
        #expect(result.stderr.contains("\(file):3:22: max_concurrent_runs must be an integer"))
        #expect(result.stderr.contains("\(file):4:1: unknown key \"listn\""))
        #expect(result.stderr.contains("\(file):5:7: nice must be between 0 and 19, found -5"), "\(result.stderr)")
    }

    /// The state directory is Lifeboat's own: not the root directory (a probe's `state_dir: /`
    /// wrote /ledger.sqlite and said ready), not the plans directory.
    @Test func aStateDirectoryThatIsNotLifeboatsOwnIsRefused() throws {
        let dir = TempDir()
        for (name, text, words) in [("root.yaml", "state_dir: /\n", "state_dir / is the root directory"),
                                    ("dots.yaml", "state_dir: /tmp/../\n", "is the root directory"),
                                    ("plans.yaml", "plans_dir: here\nstate_dir: here/.\n", "is the plans directory")] {
            let error = #expect(throws: DiagnosticsError.self) { try DaemonConfig.load(path: dir.write(name, text)) }
            #expect(error?.diagnostics.contains { $0.message.contains(words) && $0.line == text.split(separator: "\n").count } == true,
                    "\(name): \(error?.diagnostics.map(\.description) ?? [])")
        }
        #expect(try DaemonConfig.load(path: dir.write("own.yaml", "state_dir: state\n")).stateDirectory == dir.file("state"))
    }

    /// Every key is optional: an empty config (or one of comments only) is the defaults.
    @Test func anEmptyConfigIsTheDefaults() throws {
        let dir = TempDir()
        for (name, text) in [("empty.yaml", ""), ("comments.yaml", "# nothing set yet\n\n")] {
            let config = try DaemonConfig.load(path: dir.write("etc/\(name)", text))
            #expect(config.plansDirectory == dir.file("etc/plans") && config.maxConcurrentRuns == DaemonConfig.defaults().maxConcurrentRuns)
        }
    }

    /// A user's default state directory is under `$HOME` (as `~` reads in a shell), not under the
    /// home the password database names (`/nonexistent` for nobody).
    @Test(.enabled(if: geteuid() == 0, "switching to another user needs root (CI runs as root)"))
    func theDefaultStateDirectoryFollowsHOME() throws {
        let dir = TempDir()
        let help = try run("/usr/bin/env", ["-u", "XDG_STATE_HOME", "-u", "XDG_RUNTIME_DIR", "HOME=\(dir.path)",
                                            "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", Binaries.lifeboatd, "--help"])
        #expect(help.status == 0)
        let text = help.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(text.contains("for this user now: state \(dir.path)/.local/state/lifeboat, socket \(dir.path)/.local/state/lifeboat/lifeboatd.sock"), "\(help.stdout)")
    }

    @Test func defaultPlansDirIsBesideTheConfigFileNotTheWorkingDirectory() throws {
        let dir = TempDir()
        let file = dir.write("etc/lifeboatd.yaml", "state_dir: state\n")
        let config = try DaemonConfig.load(path: file)
        #expect(config.plansDirectory == dir.file("etc/plans"))
        #expect(config.stateDirectory == dir.file("etc/state"))
    }

    @Test func anUnreadablePlansDirStopsTheDaemonWithExitTwo() throws {
        let dir = TempDir()
        chmod(dir.path, 0o755)
        let missing = dir.write("missing.yaml", "plans_dir: nowhere\nstate_dir: state\nsocket: { path: s.sock }\n")
        let result = try run(Binaries.lifeboatd, ["--config", missing])
        #expect(result.status == 2)
        #expect(result.stderr.contains("\(missing):1:12: plans_dir \(dir.file("nowhere")) is not a directory (nothing is there); create it or set plans_dir"), "\(result.stderr)")
        // Not set: the default beside the config file, said so.
        let unset = dir.write("unset.yaml", "state_dir: state\nsocket: { path: s.sock }\n")
        let beside = try run(Binaries.lifeboatd, ["--config", unset])
        #expect(beside.status == 2 && beside.stderr.contains("\(unset): plans_dir (not set: plans beside the config) \(dir.file("plans")) is not a directory"), "\(beside.stderr)")
        // Not readable by the daemon's user.
        try FileManager.default.createDirectory(atPath: dir.file("locked"), withIntermediateDirectories: true)
        chmod(dir.file("locked"), 0o700)
        let locked = dir.write("locked.yaml", "plans_dir: locked\nstate_dir: state\nsocket: { path: s.sock }\n")
        chmod(locked, 0o644)
        if geteuid() == 0 {
            let user = try run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", Binaries.lifeboatd, "--config", locked])
            #expect(user.status == 2)
            #expect(user.stderr.contains("plans_dir \(dir.file("locked")) is not readable by this user (uid 65534)"), "\(user.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.file("state")), "the daemon got as far as its state")
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
@Suite(.ownThread) struct ExampleHTTPConfigTests {
    @Test func exampleHTTPListenerUncommentedIsLoopbackOnly() throws {
        let text = try String(contentsOfFile: Binaries.packageRoot + "/config/lifeboatd.yaml", encoding: .utf8)
        #expect(text.contains("# http:\n#   listen: 127.0.0.1:9464\n"))
        let dir = TempDir()
        let file = dir.write("lifeboatd.yaml", text.replacingOccurrences(of: "# http:\n#   listen:", with: "http:\n  listen:"))
        #expect(try DaemonConfig.load(path: file).httpListen == "127.0.0.1:9464")
        #expect(try DaemonConfig.load(path: Binaries.packageRoot + "/config/lifeboatd.yaml").httpListen == nil)
    }
}
