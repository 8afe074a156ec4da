import Foundation
import LifeboatTestSupport
import Testing

/// Shell completion and the man page, as the README's install steps make them with the real
/// binary: every command is in them.
@Suite(.ownThread) struct CompletionAndManualTests {
    /// Every visible command path ("quarantine list"…), as the binary describes itself.
    static func commandPaths() throws -> [(path: [String], options: [String])] {
        let dump = try run(Binaries.lifeboat, ["--experimental-dump-help"])
        let root = try #require(try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any])
        var found: [(path: [String], options: [String])] = []
        func walk(_ command: [String: Any], path: [String]) {
            for sub in command["subcommands"] as? [[String: Any]] ?? [] where sub["shouldDisplay"] as? Bool != false {
                let name = sub["commandName"] as? String ?? "?"
                let options = (sub["arguments"] as? [[String: Any]] ?? []).filter { $0["shouldDisplay"] as? Bool != false }
                    .compactMap { ($0["names"] as? [[String: Any]])?.first { $0["kind"] as? String == "long" }?["name"] as? String }
                    .filter { !["help", "version"].contains($0) }
                found.append((path + [name], options))
                walk(sub, path: path + [name])
            }
        }
        walk(try #require(root["command"] as? [String: Any]), path: [])
        return found
    }

    static let isCI = ProcessInfo.processInfo.environment["CI"] == "true"

    @Test(arguments: [("bash", ["-n"]), ("zsh", ["-n"]), ("fish", ["--no-execute"])])
    func completionScript(shell: String, syntaxCheck: [String]) throws {
        let result = try run(Binaries.lifeboat, ["--generate-completion-script", shell])
        #expect(result.status == 0, "\(result.stderr)")
        let commands = try Self.commandPaths()
        #expect(commands.count >= 25)
        for (path, _) in commands where path.count == 1 {
            #expect(result.stdout.contains(path[0]), "the \(shell) completion lacks \(path[0])")
        }
        #expect(result.stdout.contains("socket"))
        // The script is valid for its shell (the shells are installed by .ci/run).
        let dir = TempDir()
        let script = dir.write("lifeboat.\(shell)", result.stdout)
        guard let shellPath = ["/usr/bin/\(shell)", "/bin/\(shell)"].first(where: FileManager.default.isExecutableFile) else {
            #expect(!Self.isCI, "\(shell) is not installed: apt-get install \(shell)")
            print("\(shell) is not installed (apt-get install \(shell)): its completion script is not syntax-checked")
            return
        }
        let check = try run(shellPath, syntaxCheck + [script])
        #expect(check.status == 0, "\(shell) rejects the completion script: \(check.stderr)")
    }

    @Test func manualPageDescribesEveryCommandAndOption() throws {
        let result = try run(Binaries.lifeboat, ["generate-manual"])
        #expect(result.status == 0, "\(result.stderr)")
        let page = result.stdout
        #expect(page.hasPrefix(".TH LIFEBOAT 1"))
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "ENVIRONMENT", "EXIT STATUS"] {
            #expect(page.contains(".SH \(section)\n"), "no \(section) section")
        }
        let commands = try Self.commandPaths()
        #expect(commands.contains { $0.path == ["quarantine", "purge"] } && commands.contains { $0.path == ["snapshot", "extract"] })
        // Each command's section names each of its options.
        let sections = page.components(separatedBy: ".SS \"")
        for (path, options) in commands {
            let title = "lifeboat " + path.joined(separator: " ").replacingOccurrences(of: "-", with: "\\-")
            let section = sections.first { $0.hasPrefix(title + "\"\n") }
            #expect(section != nil, "no section for lifeboat \(path.joined(separator: " "))")
            for option in options {
                #expect(section?.contains("\\fB\\-\\-\(option.replacingOccurrences(of: "-", with: "\\-"))\\fR") == true,
                        "lifeboat \(path.joined(separator: " ")): --\(option) is not described")
            }
        }
        #expect(!page.contains("generate\\-manual"), "the hidden command is not documented")

        // groff formats it without a warning, and man shows it.
        let dir = TempDir()
        let file = dir.write("lifeboat.1", page)
        let groff = try run("/usr/bin/env", ["groff", "-man", "-Tutf8", "-ww", "-z", file])
        #expect(groff.status == 0 && groff.stderr.isEmpty, "groff: \(groff.stderr)")
        let man = try run("/usr/bin/env", ["man", "-l", file], environment: ["MANWIDTH": "100", "MANPAGER": "cat", "PAGER": "cat"])
        #expect(man.status == 0, "\(man.stderr)")
        #expect(man.stdout.contains("lifeboat quarantine purge"))
    }
}
