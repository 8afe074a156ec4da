import Foundation

/// A command's parameters on the wire: an object with snake_case keys. The daemon reads them
/// into the command with the answers the protocol has always given: a missing or empty required
/// parameter is `"run" is required`, a mistyped one `"job" must be an integer, found a string`,
/// both `invalid-params`. A null is the same as no key. A key the command does not know is
/// `invalid-params` too: a misspelt `site` must not leave `sites` unset, and a run go to every site.
enum ControlParams {
    /// The command's parameters, as the client sends them.
    static func encode(_ command: some ControlCommand) throws -> [String: JSONValue] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(Timestamp.isoMillis(date))
        }
        guard case .object(let params) = try JSONDecoder().decode(JSONValue.self, from: encoder.encode(command)) else { return [:] }
        return params
    }

    /// The command `C` with these parameters.
    static func decode<C: ControlCommand>(_ type: C.Type, from params: [String: JSONValue]) throws -> C {
        let asked = AskedKeys()
        let command = try C(from: ParamsDecoder(params: params, asked: asked))
        // The command read every key it has (a synthesized `init(from:)` asks for each), so what
        // it did not ask for, it does not know.
        if let unknown = params.keys.filter({ !asked.names.contains($0) }).min() {
            let known = asked.names.sorted()
            throw ControlError(.invalidParams, "unknown parameter \"\(unknown)\" for \(C.name)\(PlanLoader.didYouMean(unknown, among: known)); "
                               + (known.isEmpty ? "it takes none" : "it takes \(known.map { "\"\($0)\"" }.joined(separator: ", "))"))
        }
        return command
    }

    /// `forceAside` is `force_aside` on the wire (as JSONEncoder's `convertToSnakeCase` writes it).
    static func wireName(_ key: some CodingKey) -> String {
        var name = ""
        for character in key.stringValue {
            if character.isUppercase { name += "_" + character.lowercased() } else { name.append(character) }
        }
        return name
    }

    /// One parameter's value as `T`, or the error that names the parameter and says what it must be.
    static func value<T: Decodable>(_ value: JSONValue, as type: T.Type, name: String) throws -> T {
        func mismatch(_ expected: String) -> ControlError {
            ControlError(.invalidParams, "\"\(name)\" must be \(expected), found \(value.typeName)")
        }
        switch type {
        case is String.Type:
            guard case .string(let text) = value else { throw mismatch("a string") }
            return text as! T
        case is Bool.Type:
            guard case .bool(let flag) = value else { throw mismatch("true or false") }
            return flag as! T
        case let integer as any FixedWidthInteger.Type:
            switch value {
            case .integer(let i):
                guard let exact = integer.init(exactly: i) else { throw mismatch("an integer in \(integer.min)…\(integer.max)") }
                return exact as! T
            case .number(let n) where n == n.rounded() && abs(n) < 9e15:
                guard let exact = integer.init(exactly: n) else { throw mismatch("an integer in \(integer.min)…\(integer.max)") }
                return exact as! T
            default:
                throw mismatch("an integer")
            }
        case let real as any BinaryFloatingPoint.Type:
            switch value {
            case .integer(let i): return real.init(i) as! T
            case .number(let n): return real.init(n) as! T
            default: throw mismatch("a number")
            }
        case is Date.Type:
            guard case .string(let text) = value else { throw mismatch("a string") }
            guard let date = Timestamp.parse(text) else {
                throw ControlError(.invalidParams, "\"\(name)\" must be an ISO-8601 time like 2026-11-24T03:15:00Z, found \"\(text)\"")
            }
            return date as! T
        case is JobRef.Type:
            switch value {
            case .integer(let id): return JobRef.id(id) as! T
            case .string(let text):
                guard let job = JobRef(text) else {
                    throw ControlError(.invalidParams, "\"\(name)\" must be a job id or SITE/PRODUCT, found \"\(text)\"")
                }
                return job as! T
            default:
                throw mismatch("a job id (an integer) or SITE/PRODUCT (a string)")
            }
        case is Array<String>.Type:
            guard case .array(let items) = value else { throw mismatch("an array of strings") }
            return try items.map { item -> String in
                guard case .string(let text) = item else { throw ControlError(.invalidParams, "\"\(name)\" must contain only strings") }
                return text
            } as! T
        case let choice as any ParamChoice.Type:
            guard case .string(let text) = value else { throw mismatch("a string") }
            guard let chosen = choice.choose(text) else {
                let words = choice.words
                throw ControlError(.invalidParams, "\"\(name)\" must be \(words.dropLast().joined(separator: ", ")) or \(words.last ?? ""), found \"\(text)\"")
            }
            return chosen as! T
        default:
            throw ControlError(.internalError, "parameter \"\(name)\" has a type the control protocol does not carry: \(type)")
        }
    }
}

/// A parameter that is one of a few words (`mode`, `format`): a wrong word is answered with the
/// words it may be.
protocol ParamChoice {
    static var words: [String] { get }
    static func choose(_ word: String) -> Self?
}

extension ParamChoice where Self: CaseIterable & RawRepresentable, RawValue == String {
    static var words: [String] { allCases.map(\.rawValue) }
    static func choose(_ word: String) -> Self? { Self(rawValue: word) }
}

extension RunMode: ParamChoice {}
extension ReportFormat: ParamChoice {}

/// The wire names of the parameters a command asked for while it was read.
private final class AskedKeys {
    var names: Set<String> = []
}

/// Reads a command from its `params` object (see ``ControlParams``).
private struct ParamsDecoder: Decoder {
    let params: [String: JSONValue]
    let asked: AskedKeys
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(Params(params: params, asked: asked))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer { throw Self.notFlat }
    func singleValueContainer() throws -> any SingleValueDecodingContainer { throw Self.notFlat }

    static let notFlat = ControlError(.internalError, "a command's parameters are one flat object")

    struct Params<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let params: [String: JSONValue]
        let asked: AskedKeys
        var codingPath: [any CodingKey] { [] }

        var allKeys: [Key] {
            params.keys.compactMap { wire in
                Key(stringValue: wire.split(separator: "_").enumerated().map { $0.offset == 0 ? String($0.element) : $0.element.capitalized }.joined())
            }
        }

        func present(_ key: Key) -> JSONValue? {
            let name = ControlParams.wireName(key)
            asked.names.insert(name)
            guard let value = params[name], value != .null else { return nil }
            return value
        }

        func contains(_ key: Key) -> Bool { present(key) != nil }
        func decodeNil(forKey key: Key) throws -> Bool { present(key) == nil }

        /// A required parameter: present (and for a string, not empty).
        func required<T: Decodable>(_ type: T.Type, _ key: Key, empty: JSONValue? = nil) throws -> T {
            let name = ControlParams.wireName(key)
            guard let value = present(key), value != empty else { throw ControlError(.invalidParams, "\"\(name)\" is required") }
            return try ControlParams.value(value, as: type, name: name)
        }

        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try required(type, key) }
        func decode(_ type: String.Type, forKey key: Key) throws -> String { try required(type, key, empty: .string("")) }
        func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try required(type, key) }
        func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try required(type, key) }
        func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try required(type, key) }
        func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try required(type, key) }
        func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try required(type, key) }
        func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try required(type, key) }
        func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try required(type, key) }
        func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try required(type, key) }
        func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try required(type, key) }
        func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try required(type, key) }
        func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try required(type, key) }
        func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try required(type, key) }
        func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try required(type, key) }

        /// An optional string may be empty (only a required one may not).
        func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? {
            guard let value = present(key) else { return nil }
            return try ControlParams.value(value, as: type, name: ControlParams.wireName(key))
        }

        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
            throw ParamsDecoder.notFlat
        }

        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer { throw ParamsDecoder.notFlat }
        func superDecoder() throws -> any Decoder { throw ParamsDecoder.notFlat }
        func superDecoder(forKey key: Key) throws -> any Decoder { throw ParamsDecoder.notFlat }
    }
}
