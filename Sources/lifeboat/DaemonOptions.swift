import ArgumentParser
import Foundation
import LifeboatKit

/// How the CLI finds the daemon, and whether it prints JSON.
struct DaemonOptions: ParsableArguments {
    @Option(help: "The control socket (default: $LIFEBOAT_SOCKET, else this user's daemon's, then the system daemon's \(DefaultPaths.systemSocket)).")
    var socket: String?

    @Flag(help: "Print results as JSON.")
    var json = false

    /// The sockets to try, in order: the one given, else the default ones.
    var socketPaths: [String] {
        (socket ?? ProcessInfo.processInfo.environment["LIFEBOAT_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }).map { [$0] }
            ?? DefaultPaths.socketCandidates
    }

    func connect() throws -> ControlClient { try ControlClient.connect(anyOf: socketPaths) }

    /// One request whose answer is shown: as it came over the wire with --json, else by `show`.
    func show<C: ControlCommand>(_ command: C, _ show: (C.Result) throws -> Void) throws {
        let result = try call(command)
        if !json { try show(result) }
    }

    /// One request; prints the result as it came over the wire with --json, and returns it decoded.
    func call<C: ControlCommand>(_ command: C) throws -> C.Result {
        let answer = try connect().answer(command)
        if json { try printJSON(try answer.json()) }
        return try command.decodeResult(answer)
    }
}
