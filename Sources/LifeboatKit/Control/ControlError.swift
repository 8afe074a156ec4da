/// An error answered on the control socket: a stable code and a message that says what to do.
public struct ControlError: Error, Sendable, Codable, CustomStringConvertible {
    public enum Code: String, Sendable, Codable {
        /// Not JSON, not an object, or no command.
        case badRequest = "bad-request"
        case unknownCommand = "unknown-command"
        /// A parameter is missing or has the wrong type or value.
        case invalidParams = "invalid-params"
        /// The request line is longer than 64 KiB.
        case tooLarge = "too-large"
        /// The caller may read but not change anything.
        case forbidden
        case notFound = "not-found"
        /// The request conflicts with the current state (e.g. resume of a run that is not halted).
        case conflict
        /// The plan or request was rejected (bad plan, unknown site…).
        case rejected
        /// The daemon is shutting down.
        case unavailable
        case internalError = "internal"
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
