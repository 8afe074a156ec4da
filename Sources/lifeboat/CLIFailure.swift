import Foundation
import LifeboatKit

/// An outcome that ends the CLI with one of Lifeboat's documented exit codes.
struct CLIFailure: Error {
    var code: CLIExit
    var message: String
}

/// Prints a line to standard error (a failure to do so is dropped: there is nowhere to say it).
func printError(_ text: String) {
    StandardOutput.write(Data((text + "\n").utf8), to: STDERR_FILENO)
}

/// Writes to standard output; when that fails (a full disk, a closed pipe) the command ends with
/// exit 1 and says why on standard error, rather than crashing.
func writeOutput(_ data: Data) throws {
    if let error = StandardOutput.write(data) {
        throw CLIFailure(code: .failed, message: "error: cannot write to standard output: \(String(cString: strerror(error)))")
    }
}

/// Encodes a value as pretty, key-sorted JSON on standard output (`--json`).
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.dateEncodingStrategy = .iso8601
    let data = try encoder.encode(value)
    try writeOutput(data + Data("\n".utf8))
}
