import Foundation
import LifeboatTestSupport
import Testing

/// `--socket PATH` (or `--socket=PATH`) and `--json` before or after the subcommand, as in
/// docker, kubectl and systemctl (DESIGN.md "CLI"), with the real binary.
@Suite(.ownThread) struct GlobalOptionsTests {
    /// Every command that takes `--socket`, as the binary describes itself, with a placeholder for
    /// each positional argument ("1" reads as a run, a job number or a plan).
    static func daemonCommands() throws -> [[String]] {
        let dump = try run(Binaries.lifeboat, ["--experimental-dump-help"])
        let root = try #require(try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any])
        var found: [[String]] = []
        func walk(_ command: [String: Any], path: [String]) {
            let arguments = command["arguments"] as? [[String: Any]] ?? []
            let names = arguments.flatMap { ($0["names"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String } }
            if names.contains("socket") {
                let positionals = arguments.filter { $0["kind"] as? String == "positional" && $0["isOptional"] as? Bool != true }
                found.append(path + positionals.map { _ in "1" })
            }
            for sub in command["subcommands"] as? [[String: Any]] ?? [] {
                walk(sub, path: path + [sub["commandName"] as? String ?? "?"])
            }
        }
        walk(try #require(root["command"] as? [String: Any]), path: [])
        return found
    }

    /// A negative sampling seed (the ledger records them so) is a value, not an option.
    @Test func aNegativeSeedIsAValue() throws {
        let socket = TempDir().file("no-daemon-here.sock")
        let result = try run(Binaries.lifeboat, ["exercise", "main", "--seed", "-5", "--socket", socket])
        #expect(result.status == 3 && result.stderr.contains("cannot reach lifeboatd at \(socket)"), "\(result.stderr)")
    }

    @Test func socketBeforeOrAfterTheSubcommandForEveryDaemonCommand() throws {
        let commands = try Self.daemonCommands()
        #expect(commands.count >= 15, "\(commands)")
        #expect(commands.contains(["status"]) && commands.contains(["quarantine", "list"]))
        let dir = TempDir()
        let socket = dir.file("no-daemon-here.sock")
        // The environment names another socket: only the option can have named this one.
        let environment = ["LIFEBOAT_SOCKET": dir.file("the-environment.sock")]
        for command in commands {
            let name: [String] = Array(command.prefix { $0 != "1" })
            let positionals: [String] = Array(command.dropFirst(name.count))
            let before: [String] = ["--socket", socket] + name + positionals
            let beforeJoined: [String] = ["--socket=\(socket)"] + name + positionals
            let after: [String] = name + ["--socket", socket] + positionals
            let last: [String] = name + positionals + ["--socket=\(socket)"]
            let withJSON: [String] = ["--json", "--socket", socket] + name + positionals
            for arguments in [before, beforeJoined, after, last, withJSON] {
                let result = try run(Binaries.lifeboat, arguments, environment: environment)
                #expect(result.status == 3, "lifeboat \(arguments.joined(separator: " ")): \(result.stderr)")
                #expect(result.stderr.contains("cannot reach lifeboatd at \(socket)"), "lifeboat \(arguments.joined(separator: " ")): \(result.stderr)")
            }
        }
    }

    @Test func jsonBeforeOrAfterTheSubcommandAgainstARealDaemon() throws {
        let daemon = try DaemonHarness(sites: 1)
        try daemon.start()
        defer { daemon.stop() }
        let environment = ["LIFEBOAT_SOCKET": daemon.dir.file("not-the-daemon.sock")]
        var outputs: [[String: Any]] = []
        for arguments in [["--socket", daemon.socket, "--json", "status"], ["--json", "status", "--socket=\(daemon.socket)"],
                          ["status", "--json", "--socket", daemon.socket]] {
            let result = try run(Binaries.lifeboat, arguments, environment: environment)
            #expect(result.status == 0, "lifeboat \(arguments.joined(separator: " ")): \(result.stderr)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any],
                                    "lifeboat \(arguments.joined(separator: " ")) printed no JSON object: \(result.stdout)")
            #expect(json["socket"] as? String == daemon.socket)
            outputs.append(json)
        }
        #expect(Set(outputs.map { $0.keys.sorted() }).count == 1, "the same result whatever the order")
        // Without --json, the human summary.
        let human = try run(Binaries.lifeboat, ["--socket", daemon.socket, "status"], environment: environment)
        #expect(human.status == 0)
        #expect(human.stdout.hasPrefix("lifeboatd "))
    }

    @Test func jsonBeforeAnOfflineCommandAndUnknownPlacementsStayUsageErrors() throws {
        let dir = TempDir()
        let plan = dir.write("p.yaml", "snapshots: s\ntarget: /srv/{site}/{product}\nproducts: [{name: a}]\n")
        let result = try run(Binaries.lifeboat, ["--json", "plan", "check", plan])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]]
        #expect(json?.first?["file"] as? String == plan)
        // An option the subcommand does not take is still a usage error, wherever it is.
        #expect(try run(Binaries.lifeboat, ["--socket", "/x", "plan", "check", plan]).status == 2)
        #expect(try run(Binaries.lifeboat, ["--socket"]).status == 2)
    }
}
