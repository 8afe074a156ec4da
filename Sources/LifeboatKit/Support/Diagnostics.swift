/// A problem found in an input file, pinned to its line and column: `plans/x.yaml:14:5: message`.
public struct Diagnostic: Sendable, Hashable, Codable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public var message: String

    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String { "\(file):\(line):\(column): \(message)" }
}

/// Every problem found in one input file (plans and the daemon config report them all at once).
public struct DiagnosticsError: LifeboatError, Sendable {
    public var diagnostics: [Diagnostic]

    public init(_ diagnostics: [Diagnostic]) { self.diagnostics = diagnostics }

    public var exitCode: CLIExit { .rejected }

    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}
