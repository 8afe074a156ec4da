import ArgumentParser
import Foundation
import LifeboatKit

/// How the CLI finds the daemon, and whether it prints JSON.
struct DaemonOptions: ParsableArguments {
    @Option(help: "The control socket (default: $LIFEBOAT_SOCKET, else the per-user default).")
    var socket: String?

    @Flag(help: "Print results as JSON.")
    var json = false

    var socketPath: String {
        socket ?? ProcessInfo.processInfo.environment["LIFEBOAT_SOCKET"].flatMap { $0.isEmpty ? nil : $0 } ?? DefaultPaths.socket
    }

    func connect() throws -> ControlClient { try ControlClient(path: socketPath) }

    /// One request; prints the raw result with --json and returns it.
    func call(_ command: String, _ params: [String: JSONValue] = [:]) throws -> JSONValue {
        let result = try connect().call(command, params)
        if json { try printJSON(result) }
        return result
    }
}
