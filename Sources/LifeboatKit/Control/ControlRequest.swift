import Foundation

/// One request line: `{"id": 1, "command": "run.show", "params": {"run": "…"}}`.
/// `method` is accepted for `command` (and `jsonrpc` ignored), and parameters may also sit at the
/// top level. The handler
/// reads the parameters into the command's type (``ControlCommand``, ``ControlParams``).
public struct ControlRequest: Sendable {
    public var id: JSONValue
    public var command: String
    public var params: [String: JSONValue]

    public init(id: JSONValue = .null, command: String, params: [String: JSONValue] = [:]) {
        self.id = id
        self.command = command
        self.params = params
    }

    /// A request that could not be parsed, with whatever id could be read from it.
    public struct ParseFailure: Error, Sendable {
        public var id: JSONValue
        public var error: ControlError

        init(_ id: JSONValue, _ error: ControlError) {
            self.id = id
            self.error = error
        }
    }

    /// The deepest nesting of arrays and objects a request may have. Requests need a handful of
    /// levels; Foundation's JSON reader accepts depths its writer then refuses (an id 511 levels
    /// deep could not be echoed) and failed outright on 513 unclosed brackets, so anything deeper
    /// is refused before it is parsed.
    static let maxDepth = 64

    /// Parses a request line.
    public static func parse(_ bytes: some Collection<UInt8>) -> Result<ControlRequest, ParseFailure> {
        let shape = shape(of: bytes)
        guard shape.depth <= maxDepth else {
            return .failure(ParseFailure(.null, ControlError(.badRequest, "the request nests arrays and objects more than \(maxDepth) deep")))
        }
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(bytes)) else {
            return .failure(ParseFailure(.null, ControlError(.badRequest, "the request is not valid JSON; send one JSON object per line")))
        }
        guard case .object(var object) = value else {
            return .failure(ParseFailure(.null, ControlError(.badRequest, "the request must be a JSON object like {\"id\":1,\"command\":\"status\"}")))
        }
        let id = object.removeValue(forKey: "id") ?? .null
        if let key = shape.repeatedKey {
            return .failure(ParseFailure(id, ControlError(.badRequest, "the request gives the key \"\(key)\" twice in one object; give each key once")))
        }
        // A JSON-RPC client's version tag is the envelope's, not a parameter.
        object.removeValue(forKey: "jsonrpc")
        let commandValue = object.removeValue(forKey: "command") ?? object.removeValue(forKey: "method")
        guard case .string(let command)? = commandValue, !command.isEmpty else {
            return .failure(ParseFailure(id, ControlError(.badRequest, "the request has no \"command\" string (e.g. \"status\")")))
        }
        var params: [String: JSONValue] = [:]
        if let nested = object.removeValue(forKey: "params") {
            switch nested {
            case .object(let p): params = p
            case .null: break
            default: return .failure(ParseFailure(id, ControlError(.invalidParams, "\"params\" must be an object, found \(nested.typeName)")))
            }
        }
        for (key, value) in object where params[key] == nil { params[key] = value }
        return .success(ControlRequest(id: id, command: command, params: params))
    }

    /// What a request's bytes show before they are parsed, counted as they come (valid JSON or
    /// not): how deep its arrays and objects nest, and the first key an object gives twice.
    /// Foundation's reader keeps a repeated key's first value where most keep the last: a request
    /// that means one thing to a proxy that logged it and another to the daemon is refused.
    static func shape(of bytes: some Collection<UInt8>) -> (depth: Int, repeatedKey: String?) {
        var deepest = 0
        // Per open container: the keys of an object so far, nil for an array.
        var open: [Set<[UInt8]>?] = []
        var inString = false, escaped = false
        var expectingKey = false, readingKey = false, keyEscaped = false
        var key: [UInt8] = []
        var repeated: String?
        for byte in bytes {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                    keyEscaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                    if readingKey, repeated == nil, let last = open.indices.last, open[last] != nil {
                        let canonical = keyEscaped ? canonicalKey(key) : key
                        if !open[last]!.insert(canonical).inserted { repeated = String(decoding: canonical, as: UTF8.self) }
                    }
                    continue
                }
                if readingKey { key.append(byte) }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
                readingKey = expectingKey
                expectingKey = false
                keyEscaped = false
                key.removeAll(keepingCapacity: true)
            case UInt8(ascii: "{"):
                open.append([])
                deepest = max(deepest, open.count)
                expectingKey = true
            case UInt8(ascii: "["):
                open.append(nil)
                deepest = max(deepest, open.count)
                expectingKey = false
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                _ = open.popLast()
                expectingKey = false
            case UInt8(ascii: ","):
                expectingKey = open.last.map { $0 != nil } ?? false
            default:
                break
            }
        }
        return (deepest, repeated)
    }

    /// A key written with escapes (`\u0061`) as the reader sees it; as written when it does not parse.
    private static func canonicalKey(_ raw: [UInt8]) -> [UInt8] {
        guard let text = try? JSONDecoder().decode(String.self, from: Data([UInt8(ascii: "\"")] + raw + [UInt8(ascii: "\"")])) else { return raw }
        return Array(text.utf8)
    }
}

/// Encodes response lines: `{"id":…,"ok":true,"result":…}` or `{"id":…,"ok":false,"error":{…}}`.
public enum ControlResponse {
    private struct Success<T: Encodable>: Encodable {
        var id: JSONValue
        var ok = true
        var result: T
    }

    private struct Failure: Encodable {
        var id: JSONValue
        var ok = false
        var error: ControlError
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // snake_case on the wire, like the request parameters and the ledger's columns.
        e.keyEncodingStrategy = .convertToSnakeCase
        e.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(Timestamp.isoMillis(date))
        }
        return e
    }()

    public static func success<T: Encodable>(id: JSONValue, _ result: T) -> Data {
        var data = (try? encodeSuccess(id: id, result))
            ?? encode(Failure(id: id, error: ControlError(.internalError, "the result could not be encoded")))
        data.append(UInt8(ascii: "\n"))
        return data
    }

    private static func encodeSuccess<T: Encodable>(id: JSONValue, _ result: T) throws -> Data {
        try encode(result, wrappedAt: ["result"]) { Success(id: id, result: $0) }
    }

    /// `encoder.encode(wrap(value))`, where `wrap` puts `value` at `path`; the long array of a
    /// value that has one (``LongArrayResult``) is encoded a chunk at a time (``JSONSplice``).
    static func encode<T: Encodable, Wrapped: Encodable>(_ value: T, wrappedAt path: [String], by wrap: (T) -> Wrapped) throws -> Data {
        if let long = value as? any LongArrayResult, let data = try spliced(long, wrappedAt: path, by: wrap) { return data }
        return try encoder.encode(wrap(value))
    }

    private static func spliced<R: LongArrayResult, T, Wrapped: Encodable>(_ value: R, wrappedAt path: [String], by wrap: (T) -> Wrapped) throws -> Data? {
        guard let parts = value.spliceParts, let shell = parts.shell as? T else { return nil }
        return try JSONSplice.encode(wrap(shell), splicing: parts.elements, at: path + parts.path, with: encoder)
    }

    public static func failure(id: JSONValue, _ error: ControlError) -> Data {
        var data = encode(Failure(id: id, error: error))
        data.append(UInt8(ascii: "\n"))
        return data
    }

    /// An error answer. Should the client's id itself not encode, the answer goes with `id: null`
    /// (an error's message and code always encode): never a crash on what a client sent.
    private static func encode(_ failure: Failure) -> Data {
        if let data = try? encoder.encode(failure) { return data }
        var plain = failure
        plain.id = .null
        return (try? encoder.encode(plain)) ?? Data(#"{"error":{"code":"internal","message":"the answer could not be encoded"},"id":null,"ok":false}"#.utf8)
    }
}
