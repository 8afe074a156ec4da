import ArgumentParser

/// The global options, `--socket PATH` (or `--socket=PATH`) and `--json`, are accepted before the
/// subcommand as well as after it, as in docker, kubectl and systemctl (DESIGN.md "CLI").
///
/// The commands declare them where they apply (`DaemonOptions`, and `--json` on the offline
/// commands that print JSON), so that help, completion and the man page show them there; before
/// parsing, the ones given ahead of the subcommand are moved just after it:
/// `lifeboat --socket S quarantine list` parses as `lifeboat quarantine list --socket S`. An
/// option the subcommand does not take stays a usage error.
enum GlobalOptions {
    /// `arguments` without the program name.
    static func reordered(_ arguments: [String], root: ParsableCommand.Type) -> [String] {
        var globals: [String] = []
        var chain: [String] = []
        var level = root.configuration.subcommands
        var i = 0
        scan: while i < arguments.count {
            let argument = arguments[i]
            switch argument {
            case "--json":
                globals.append(argument)
                i += 1
            case "--socket" where i + 1 < arguments.count:
                globals += [argument, arguments[i + 1]]
                i += 2
            case _ where argument.hasPrefix("--socket="):
                globals.append(argument)
                i += 1
            default:
                guard let command = level.first(where: { $0._commandName == argument || $0.configuration.aliases.contains(argument) }) else {
                    break scan
                }
                chain.append(argument)
                level = command.configuration.subcommands
                i += 1
                if level.isEmpty { break scan }
            }
        }
        // Nothing to move, or no subcommand to move it after: ArgumentParser says what is wrong.
        guard !globals.isEmpty, !chain.isEmpty else { return arguments }
        return chain + globals + arguments[i...]
    }
}
