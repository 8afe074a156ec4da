import Foundation

/// The CLI's side of the control socket: one connection, one request line at a time, blocking.
public final class ControlClient {
    public let path: String
    private let fd: Int32
    /// Bytes received: the lines not yet read start at `start`; none before `scanned` is a newline.
    private var buffer: [UInt8] = []
    private var start = 0
    private var scanned = 0
    /// What each `recv` reads into (allocated once: a watch reads thousands of lines).
    private var chunk = [UInt8](repeating: 0, count: 1 << 16)
    private var nextID = 1

    /// The daemon cannot be reached (exit code 3).
    public struct Unreachable: LifeboatError {
        public var path: String
        public var reason: String
        /// The daemon closed the connection before its answer ended (it stops, as a rule).
        public var closed = false
        public var exitCode: CLIExit { .unreachable }
        public var description: String {
            // A reason that asks its own question needs no stop after it, nor the usual one.
            let asks = reason.hasSuffix("?")
            return "cannot reach lifeboatd at \(path): \(reason)\(asks ? "" : ".") \(asks ? "" : Self.hint(reason) + " ")Use --socket or LIFEBOAT_SOCKET for another socket."
        }

        /// What to look at: a refused permission is the socket's group, not a stopped daemon.
        static func hint(_ reason: String) -> String {
            reason == String(cString: strerror(EACCES))
                ? "The daemon runs, but this user may not use its socket: ask to be added to the socket's group (socket.group), then log in again."
                : "Is the daemon running (systemctl status lifeboatd)?"
        }
    }

    /// No daemon at any of the default sockets (exit code 3).
    public struct NoneReachable: LifeboatError {
        public var tried: [Unreachable]
        public var exitCode: CLIExit { .unreachable }
        public var description: String {
            "cannot reach lifeboatd; tried " + tried.map { "\($0.path) (\($0.reason))" }.joined(separator: ", ")
                + ". Is the daemon running (systemctl status lifeboatd)? Use --socket or LIFEBOAT_SOCKET for another socket."
        }
    }

    /// Connects to the first of `paths` that answers.
    public static func connect(anyOf paths: [String]) throws -> ControlClient {
        var tried: [Unreachable] = []
        for path in paths {
            do { return try ControlClient(path: path) } catch let error as Unreachable { tried.append(error) }
        }
        if tried.count == 1 { throw tried[0] }
        throw NoneReachable(tried: tried)
    }

    /// The daemon answered with an error.
    public struct Refused: LifeboatError {
        public var error: ControlError
        public var exitCode: CLIExit {
            switch error.code {
            case .badRequest, .unknownCommand, .invalidParams, .tooLarge, .rejected, .notFound, .forbidden, .conflict: return .rejected
            // It cannot serve the request now (it is stopping, its ledger does not answer, its
            // connections are all in use): as good as unreachable, and worth asking again.
            case .unavailable: return .unreachable
            case .internalError: return .failed
            }
        }
        public var description: String { error.message + " (\(error.code.rawValue))" }
    }

    public init(path: String) throws {
        self.path = path
        guard var address = UnixAddress(path) else { throw Unreachable(path: path, reason: "not a usable socket path") }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Unreachable(path: path, reason: String(cString: strerror(errno))) }
        guard address.withSockaddr({ Glibc.connect(fd, $0, $1) }) == 0 else {
            let e = errno
            close(fd)
            throw Unreachable(path: path, reason: String(cString: strerror(e)))
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Sends a command and returns its result.
    public func call<C: ControlCommand>(_ command: C) throws -> C.Result {
        try command.decodeResult(try answer(command))
    }

    /// Sends a command and returns its answer, to decode or to print as it came over the wire.
    public func answer<C: ControlCommand>(_ command: C) throws -> Answer {
        try send(C.name, try ControlParams.encode(command))
        return Answer(line: try readLine(within: command.answerWithin), path: path)
    }

    /// A line longer than this is no answer of lifeboatd's (a run of 10,000 jobs is 7 MB).
    static let maxLine = 512 << 20

    /// Sends a command whose answer is several lines (`run.watch`); `onResult` sees each result,
    /// decoded and (when asked) as it came over the wire, and returns false to stop.
    public func stream<C: ControlCommand>(_ command: C, onResult: (C.Result, _ wire: () throws -> JSONValue) throws -> Bool) throws {
        try send(C.name, try ControlParams.encode(command))
        while true {
            let answer = Answer(line: try readLine(), path: path)
            guard try onResult(try command.decodeResult(answer), answer.json) else { return }
        }
    }

    /// One response line: `{"id":…, "ok":true, "result":…}` or the daemon's error.
    public struct Answer {
        let line: [UInt8]
        let path: String

        /// The result decoded as `T`, straight from the line. Going through `JSONValue` first
        /// (decoded, encoded again, decoded again) cost the CLI more CPU per job of a followed
        /// run than the daemon spent restoring it, and `lifeboat show` of a 10,000-job run 2 s.
        /// Any other line (an error, an unexpected shape) takes the general path, which throws
        /// the daemon's error or says what does not fit.
        public func decode<T: Decodable>(_ type: T.Type) throws -> T {
            if let envelope = try? ControlClient.wireDecoder().decode(Success<T>.self, from: Data(line)), envelope.ok {
                return envelope.result
            }
            let value = try json()
            do {
                return try ControlClient.decode(type, from: value)
            } catch let error as DecodingError {
                throw Unreachable(path: path, reason: "the answer does not read as lifeboatd's (\(Self.describe(error))); "
                                  + "is lifeboat the version of lifeboatd (lifeboatd --version), and is lifeboatd what listens there?")
            }
        }

        /// A decoding error in a few words: what is missing or wrong, and where.
        static func describe(_ error: DecodingError) -> String {
            func at(_ path: [any CodingKey]) -> String { path.isEmpty ? "" : " at \(path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: "."))" }
            switch error {
            case .keyNotFound(let key, let context): return "no \"\(key.stringValue)\"\(at(context.codingPath))"
            case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
                return "\(context.debugDescription)\(at(context.codingPath))"
            @unknown default: return "\(error)"
            }
        }

        /// The result as it came over the wire (`--json` prints it as is), or the daemon's error thrown.
        public func json() throws -> JSONValue {
            guard let decoded = try? JSONDecoder().decode(JSONValue.self, from: Data(line)), case .object(let response) = decoded else {
                throw Unreachable(path: path, reason: "the answer is not a JSON object (it begins \(String(reflecting: PrintableText.escaped(String(decoding: line.prefix(40), as: UTF8.self)))))"
                                  + "; is something other than lifeboatd listening there?")
            }
            if case .bool(true) = response["ok"] { return response["result"] ?? .null }
            if let error = response["error"], let decoded = try? JSONDecoder().decode(ControlError.self, from: JSONEncoder().encode(error)) {
                throw Refused(error: decoded)
            }
            throw Refused(error: ControlError(.internalError, "the daemon answered without a result or an error"))
        }
    }

    @discardableResult
    private func send(_ command: String, _ params: [String: JSONValue]) throws -> Int {
        let id = nextID
        nextID += 1
        let request: JSONValue = .object(["id": .integer(Int64(id)), "command": .string(command), "params": .object(params)])
        var data = try JSONEncoder().encode(request)
        data.append(UInt8(ascii: "\n"))
        try data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw Unreachable(path: path, reason: "the connection broke while sending (\(String(cString: strerror(errno))))")
                }
                offset += n
            }
        }
        return id
    }

    /// The next line. Each byte is looked at once: a run's snapshot of 10,000 jobs is one 7 MB
    /// line, read 64 KiB at a time. `within`: nothing received for that long is an error.
    private func readLine(within patience: Duration? = nil) throws -> [UInt8] {
        var timeout = timeval()
        if let patience { (timeout.tv_sec, timeout.tv_usec) = (Int(patience.components.seconds), 0) }
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        while true {
            if let newline = buffer[scanned...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffer[start..<newline])
                start = newline + 1
                scanned = start
                return line
            }
            // Every line here was read: drop them before reading more.
            buffer.removeSubrange(..<start)
            start = 0
            scanned = buffer.count
            guard buffer.count <= Self.maxLine else {
                throw Unreachable(path: path, reason: "the answer goes on past \(Self.maxLine >> 20) MiB without ending; is something other than lifeboatd listening there?")
            }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK, let patience {
                    throw Unreachable(path: path, reason: "no answer within \(patience.components.seconds) s: the daemon took the connection but does not answer (stopped with SIGSTOP, frozen, or not lifeboatd?)")
                }
                throw Unreachable(path: path, reason: "the connection broke (\(String(cString: strerror(errno))))")
            }
            if n == 0 { throw Unreachable(path: path, reason: "the daemon closed the connection (is it shutting down?)", closed: true) }
            buffer.append(contentsOf: chunk[..<n])
        }
    }

    /// Decodes a result into a Codable type (dates in the wire's ISO-8601 form).
    public static func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws -> T {
        try wireDecoder().decode(type, from: JSONEncoder().encode(value))
    }

    fileprivate struct Success<T: Decodable>: Decodable {
        var ok: Bool
        var result: T
    }

    /// Keys in snake_case, dates in the wire's ISO-8601 form.
    fileprivate static func wireDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            guard let date = Timestamp.parse(text) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a time: \(text)"))
            }
            return date
        }
        return decoder
    }
}
