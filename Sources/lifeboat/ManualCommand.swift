import ArgumentParser
import Foundation
import LifeboatKit

/// `lifeboat generate-manual`: the lifeboat(1) man page, generated from the command definitions
/// (the same description ArgumentParser's own GenerateManual plugin reads, from
/// `--experimental-dump-help`), so that it cannot drift from the commands. Hidden: installers run
/// it (README "Install"), operators read `man lifeboat`.
struct GenerateManualCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate-manual",
        abstract: "Print the lifeboat(1) man page (roff), generated from the command definitions.",
        shouldDisplay: false)

    func run() throws {
        var dump = ""
        do {
            _ = try Lifeboat.parseAsRoot(["--experimental-dump-help"])
        } catch {
            dump = Lifeboat.fullMessage(for: error)
        }
        let tool = try JSONDecoder().decode(ManualPage.ToolInfo.self, from: Data(dump.utf8))
        print(ManualPage(root: tool.command).render(), terminator: "")
    }
}

/// Renders a command tree as a man(7) page.
struct ManualPage {
    /// The part of ArgumentParser's `--experimental-dump-help` (ToolInfoV0) a man page needs.
    struct ToolInfo: Decodable { var command: Command }

    struct Command: Decodable {
        var commandName: String
        var abstract: String?
        var discussion: String?
        var shouldDisplay: Bool?
        var subcommands: [Command]?
        var arguments: [Argument]?
    }

    struct Argument: Decodable {
        struct Name: Decodable {
            var kind: String
            var name: String
            var flag: String { kind == "short" ? "-" + name : kind == "longWithSingleDash" ? "-" + name : "--" + name }
        }

        var kind: String
        var shouldDisplay: Bool
        var isOptional: Bool
        var isRepeating: Bool
        var names: [Name]?
        var valueName: String?
        var defaultValue: String?
        var abstract: String?
        var discussion: String?
    }

    var root: Command

    func render() -> String {
        var out = """
            .TH LIFEBOAT 1 "" "lifeboat \(LifeboatVersion.string)" "Lifeboat"
            .SH NAME
            lifeboat \\- \(Self.escape(root.abstract ?? ""))
            .SH SYNOPSIS
            .B lifeboat
            [\\fB\\-\\-socket\\fR \\fIPATH\\fR] [\\fB\\-\\-json\\fR]
            .I command
            [\\fIoptions\\fR] [\\fIarguments\\fR]

            """
        out += ".SH DESCRIPTION\n" + paragraphs(root.discussion)
        out += """
            .PP
            Each command is described below; \\fBlifeboat\\fR \\fIcommand\\fR \\fB\\-\\-help\\fR says the same.

            """
        out += ".SH COMMANDS\n"
        for command in root.subcommands ?? [] { render(command, path: ["lifeboat"], into: &out) }
        out += """
            .SH ENVIRONMENT
            .TP
            .B LIFEBOAT_SOCKET
            The control socket, when \\fB\\-\\-socket\\fR is not given.
            .TP
            .B LIFEBOAT_INFLATE
            \\fBzlib\\fR or \\fBisal\\fR: the inflate implementation of the offline archive commands.
            .TP
            \\fBAWS_ENDPOINT_URL\\fR, \\fBAWS_REGION\\fR, \\fBAWS_PROFILE\\fR
            The S3\\-compatible store of \\fBs3://\\fR snapshots (credentials from the standard places).
            .SH EXIT STATUS
            .TP
            .B 0
            Success.
            .TP
            .B 1
            The operation ran and failed (a job failed, verification failed).
            .TP
            .B 2
            Usage error or rejected input (bad plan, unsafe archive, refused request).
            .TP
            .B 3
            The daemon cannot be reached.
            .SH SEE ALSO
            .B lifeboatd
            (the daemon),
            .BR tar (1),
            and the README of the Lifeboat sources.

            """
        return out
    }

    private func render(_ command: Command, path: [String], into out: inout String) {
        guard command.shouldDisplay ?? true else { return }
        let path = path + [command.commandName]
        let arguments = (command.arguments ?? []).filter { $0.shouldDisplay && !Self.isBuiltIn($0) }
        out += ".SS \"\(Self.escape(path.joined(separator: " ")))\"\n"
        out += ".B \(Self.escape(path.joined(separator: " ")))\n"
        let synopsis = arguments.map(Self.synopsis).joined(separator: " ")
        if !synopsis.isEmpty { out += synopsis + "\n" }
        out += ".PP\n" + paragraphs(command.abstract) + paragraphs(command.discussion)
        for argument in arguments {
            out += ".TP\n" + Self.term(argument) + "\n"
            var help = argument.abstract ?? ""
            if let value = argument.defaultValue, !value.isEmpty, argument.kind == "option" { help += " (default: \(value))" }
            out += (help.isEmpty ? "\\&" : Self.escape(help)) + "\n"
            if let discussion = argument.discussion, !discussion.isEmpty { out += Self.escape(discussion) + "\n" }
        }
        for sub in command.subcommands ?? [] { render(sub, path: path, into: &out) }
    }

    /// `--help`, `--version` and the like, which every command has.
    private static func isBuiltIn(_ argument: Argument) -> Bool {
        argument.names?.contains { ["help", "version", "h"].contains($0.name) } ?? false
    }

    private static func term(_ argument: Argument) -> String {
        guard argument.kind != "positional" else { return "\\fI\(escape(argument.valueName ?? "value"))\\fR" }
        let names = (argument.names ?? []).map { "\\fB\(escape($0.flag))\\fR" }.joined(separator: ", ")
        return argument.kind == "option" ? names + " \\fI\(escape(argument.valueName ?? "value"))\\fR" : names
    }

    private static func synopsis(_ argument: Argument) -> String {
        var text = term(argument)
        if argument.kind == "positional" { text = "\\fI\(escape(argument.valueName ?? "value"))\\fR" }
        if argument.isRepeating { text += "\\&..." }
        return argument.isOptional ? "[\(text)]" : text
    }

    private func paragraphs(_ text: String?) -> String {
        guard let text, !text.isEmpty else { return "" }
        return text.components(separatedBy: "\n\n").map { Self.escape($0) + "\n" }.joined(separator: ".PP\n")
    }

    /// Escapes text for roff: backslashes and hyphens, and a leading '.' or '\'' (a request).
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\e").replacingOccurrences(of: "-", with: "\\-")
            .split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix(".") || $0.hasPrefix("'") ? "\\&" + $0 : String($0) }
            .joined(separator: "\n")
    }
}
