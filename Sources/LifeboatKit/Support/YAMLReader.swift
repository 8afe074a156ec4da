import Foundation
import Yams

/// A source position in a YAML file (1-based line and column, columns counted in Unicode scalars).
public struct SourceMark: Sendable, Hashable {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    init(_ mark: Mark?) {
        self.init(line: mark?.line ?? 1, column: mark?.column ?? 1)
    }
}

/// Reads YAML configuration files into `Yams.Node` trees and walks them with typed accessors
/// that record every problem as a `Diagnostic` with file, line and column.
///
/// Shared by plans and the daemon config so both report errors the same way. Anchors and aliases
/// are refused (alias expansion is a denial-of-service vector), and so are files over `maxBytes`.
public final class YAMLReader {
    public let file: String
    public private(set) var diagnostics: [Diagnostic] = []
    private var lastText = ""

    /// Whether a file with no document (empty, or comments only) reads as an empty mapping:
    /// for files whose every key is optional (the daemon's config), not for plans.
    public var emptyIsMapping = false

    public init(file: String) { self.file = file }

    /// The largest configuration file accepted.
    public static let maxBytes = 1 << 20

    /// Loads and composes a file. Returns nil (with diagnostics) when it cannot be read or parsed.
    public func load(contentsOf path: String) -> Node? {
        // Without blocking: a FIFO (or a link to one) among the plans would otherwise hold the
        // reader, and the daemon's thread with it, until someone writes to it.
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            error(at: SourceMark(line: 1, column: 1), "cannot read the file (\(String(cString: strerror(errno))))")
            return nil
        }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        defer { try? handle.close() }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            let kind = switch info.st_mode & S_IFMT {
            case S_IFDIR: "a directory"
            case S_IFIFO: "a FIFO"
            case S_IFCHR, S_IFBLK: "a device"
            case S_IFSOCK: "a socket"
            default: "a special file"
            }
            error(at: SourceMark(line: 1, column: 1), "this is \(kind), not a regular file; plans and configs must be regular files")
            return nil
        }
        // Read at most one byte past the cap so an oversized (or endless) file is never held whole.
        let data = (try? handle.read(upToCount: Self.maxBytes + 1)) ?? Data()
        guard data.count <= Self.maxBytes else {
            error(at: SourceMark(line: 1, column: 1), "file is larger than 1 MiB; plans and configs must be smaller")
            return nil
        }
        guard let text = String(data: data, encoding: .utf8) else {
            let (mark, byte) = Self.firstInvalidUTF8(Array(data))
            error(at: mark, "file is not valid UTF-8 (byte 0x\(String(byte, radix: 16, uppercase: true)) here); save it as UTF-8")
            return nil
        }
        return load(text: text)
    }

    /// Where the first byte that is not part of valid UTF-8 is (line and column counted in
    /// characters before it), and that byte.
    static func firstInvalidUTF8(_ bytes: [UInt8]) -> (SourceMark, UInt8) {
        var line = 1, column = 1, index = 0
        var decoder = UTF8()
        var iterator = bytes.makeIterator()
        while true {
            let before = index
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                index += UTF8.width(scalar)
                if scalar == "\n" { (line, column) = (line + 1, 1) } else { column += 1 }
            case .emptyInput:
                return (SourceMark(line: line, column: column), 0)
            case .error:
                return (SourceMark(line: line, column: column), bytes[min(before, bytes.count - 1)])
            }
        }
    }

    /// Composes YAML text into a node tree, refusing anchors and aliases.
    public func load(text: String) -> Node? {
        // A byte order mark, as a file read from disk has it stripped.
        let text = text.hasPrefix("\u{FEFF}") ? String(text.dropFirst()) : text
        lastText = text
        do {
            let parser = try Parser(yaml: text, resolver: .basic)
            guard let root = try parser.singleRoot() else {
                if emptyIsMapping { return .mapping(Node.Mapping([])) }
                error(at: SourceMark(line: 1, column: 1), "file is empty; expected a mapping")
                return nil
            }
            // Node anchors are weak references owned by the parser: walk while it is alive.
            let anchored = withExtendedLifetime(parser) { Self.firstAnchor(in: root) }
            if let anchored {
                error(at: SourceMark(anchored.mark),
                      "YAML anchors and aliases are not allowed (alias expansion is a denial-of-service vector); write the value out")
                return nil
            }
            return root
        } catch let yamlError as YamlError {
            record(yamlError)
            return nil
        } catch {
            self.error(at: SourceMark(line: 1, column: 1), "cannot parse YAML: \(error)")
            return nil
        }
    }

    /// The first node carrying an anchor, in document order. Anchors precede their aliases in a
    /// YAML document, so this stops before walking into any alias expansion.
    private static func firstAnchor(in root: Node) -> Node? {
        var stack: [Node] = [root]
        while let node = stack.popLast() {
            if node.anchor != nil { return node }
            switch node {
            case .mapping(let mapping):
                for pair in mapping.reversed() {
                    stack.append(pair.value)
                    stack.append(pair.key)
                }
            case .sequence(let sequence):
                stack.append(contentsOf: sequence.reversed())
            case .alias:
                return node
            case .scalar:
                break
            }
        }
        return nil
    }

    private func record(_ yamlError: YamlError) {
        switch yamlError {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _):
            // Where the construct began is where to look (an unclosed quote, found at the end).
            if let context {
                error(at: SourceMark(context.mark), "YAML syntax error: \(context.text), \(problem) at \(mark.line):\(mark.column)")
            } else {
                error(at: SourceMark(mark), "YAML syntax error: \(problem)")
            }
        case .composer(let context, let problem, let mark, _):
            if problem.contains("undefined alias") || problem.contains("alias") {
                error(at: SourceMark(mark),
                      "YAML anchors and aliases are not allowed (alias expansion is a denial-of-service vector); write the value out")
            } else if problem.contains("another document") {
                error(at: SourceMark(mark), "a plan is one YAML document, but a second one (after ---) begins here; put it in a file of its own")
            } else {
                error(at: SourceMark(mark), "YAML error: \(context.map { "\($0.text), " } ?? "")\(problem)")
            }
        case .duplicatedKeysInMapping(let duplicates, let context):
            for key in duplicates.sorted() {
                error(at: Self.secondOccurrence(of: key, after: context.mark, in: lastText) ?? SourceMark(context.mark),
                      "duplicate key \"\(key)\"; each key may appear only once in a mapping")
            }
        case .reader(let problem, let offset, _, let yaml):
            error(at: Self.mark(ofOffset: offset ?? 0, in: yaml), "cannot read YAML: \(problem)")
        default:
            error(at: SourceMark(line: 1, column: 1), "cannot parse YAML: \(yamlError)")
        }
    }

    /// Where a duplicated block-style key appears the second time, from the mapping's start: a
    /// key of that mapping is at the mapping's own column (the same name in a nested mapping or
    /// a list item below it is another key).
    static func secondOccurrence(of key: String, after mark: Mark, in text: String) -> SourceMark? {
        if let flow = secondFlowOccurrence(of: key, after: mark, in: text) { return flow }
        var seen = 0
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where index + 1 >= mark.line {
            var body = line.drop { $0 == " " }
            if body.hasPrefix("- ") { body = body.dropFirst(2).drop { $0 == " " } }
            let column = line.count - body.count + 1
            guard column == mark.column else { continue }
            // The key as written: bare, or quoted either way.
            guard let written = [key, "\"\(key)\"", "'\(key)'"].first(where: { body.hasPrefix($0) }) else { continue }
            let rest = body.dropFirst(written.count).drop { $0 == " " }
            guard rest.hasPrefix(":") else { continue }
            seen += 1
            if seen == 2 { return SourceMark(line: index + 1, column: column) }
        }
        return nil
    }

    /// The same for a flow-style mapping (`{rto: 4h, rto: 5h}`, perhaps over several lines),
    /// whose mark is its first key, after the `{`: a key of it starts its entry at the mapping's
    /// own depth, after `{` or a comma.
    static func secondFlowOccurrence(of key: String, after mark: Mark, in text: String) -> SourceMark? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard mark.line >= 1, mark.line <= lines.count, mark.column >= 1 else { return nil }
        // The brace: the first character before the mark that is not a blank, on its line or above.
        var brace: (line: Int, column: Int)?
        var (line, column) = (mark.line - 1, mark.column - 2)
        search: while line >= 0 {
            let chars = Array(lines[line])
            while column >= 0 {
                if column < chars.count, chars[column] != " ", chars[column] != "\t" {
                    if chars[column] == "{" { brace = (line + 1, column + 1) }
                    break search
                }
                column -= 1
            }
            line -= 1
            column = line >= 0 ? lines[line].count - 1 : -1
        }
        guard let (braceLine, braceColumn) = brace else { return nil }
        let candidates = [key, "\"\(key)\"", "'\(key)'"].map(Array.init)
        var (depth, seen, atEntry) = (0, 0, false)
        var quote: Character?
        for lineIndex in (braceLine - 1)..<lines.count {
            let chars = Array(lines[lineIndex])
            var i = lineIndex == braceLine - 1 ? braceColumn - 1 : 0
            while i < chars.count {
                let c = chars[i]
                if let open = quote {
                    if c == open { quote = nil }
                    i += 1
                    continue
                }
                if atEntry, depth == 1, c != " " {
                    atEntry = false
                    if let written = candidates.first(where: { Array(chars[i...].prefix($0.count)) == $0 }),
                       chars[(i + written.count)...].drop(while: { $0 == " " }).first == ":" {
                        seen += 1
                        if seen == 2 { return SourceMark(line: lineIndex + 1, column: i + 1) }
                    }
                }
                switch c {
                case "{", "[":
                    depth += 1
                    atEntry = c == "{" && depth == 1
                case "}", "]":
                    depth -= 1
                    if depth == 0 { return nil }
                case ",": atEntry = depth == 1
                case "\"", "'": quote = c
                case "#" where i == 0 || chars[i - 1] == " ": i = chars.count
                default: break
                }
                i += 1
            }
        }
        return nil
    }

    private static func mark(ofOffset offset: Int, in text: String) -> SourceMark {
        var line = 1, column = 1
        for (i, scalar) in text.unicodeScalars.enumerated() {
            if i >= offset { break }
            if scalar == "\n" { line += 1; column = 1 } else { column += 1 }
        }
        return SourceMark(line: line, column: column)
    }

    // MARK: Diagnostics

    public func error(at mark: SourceMark, _ message: String) {
        diagnostics.append(Diagnostic(file: file, line: mark.line, column: mark.column, message: message))
    }

    public func error(at node: Node, _ message: String) {
        error(at: SourceMark(node.mark), message)
    }

    /// Throws every recorded diagnostic, sorted by position, if there are any.
    public func throwIfErrors() throws {
        guard !diagnostics.isEmpty else { return }
        throw DiagnosticsError(diagnostics.sorted { ($0.line, $0.column) < ($1.line, $1.column) })
    }
}

/// A YAML mapping being decoded: typed accessors for its keys, and `finish()` to report the keys
/// nobody asked for (unknown keys are errors).
public struct YAMLMapping {
    public let node: Node
    /// Where this mapping sits in the document, for messages: `products[2]`.
    public let path: String
    let reader: YAMLReader
    private var entries: [(key: String, keyNode: Node, value: Node)] = []
    private var used: Set<String> = []

    /// Returns nil (with a diagnostic) when `node` is not a mapping.
    public init?(_ node: Node, path: String, reader: YAMLReader) {
        self.node = node
        self.path = path
        self.reader = reader
        guard case .mapping(let mapping) = node else {
            reader.error(at: node, "\(path.isEmpty ? "the document" : path) must be a mapping (key: value), found \(node.kindDescription)")
            return nil
        }
        for pair in mapping {
            guard case .scalar(let keyScalar) = pair.key else {
                reader.error(at: pair.key, "keys in \(path.isEmpty ? "the document" : path) must be plain strings")
                continue
            }
            entries.append((keyScalar.string, pair.key, pair.value))
        }
    }

    private func qualified(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The value node of `key`, or nil when absent or null.
    public mutating func value(_ key: String) -> Node? {
        used.insert(key)
        guard let entry = entries.first(where: { $0.key == key }) else { return nil }
        if entry.value.isNull { return nil }
        return entry.value
    }

    public func has(_ key: String) -> Bool { entries.contains { $0.key == key } }

    /// Whether `key` is there with no value (`key:` or `key: ~`).
    public func isNull(_ key: String) -> Bool { entries.first { $0.key == key }?.value.isNull ?? false }

    /// Reports a required key that `value`, `string`… found nothing for: absent (at `missingAt`,
    /// the mapping's node by default), or there but empty (at the key). A value of the wrong
    /// type was reported by the accessor.
    public func requireValue(_ key: String, _ what: String, missingAt node: Node? = nil) {
        guard let keyNode = keyNode(key) else {
            reader.error(at: node ?? self.node, "missing required key \"\(qualified(key))\" (\(what))")
            return
        }
        if isNull(key) { reader.error(at: keyNode, "\(qualified(key)) is empty: it needs \(what)") }
    }

    /// The node of a key itself (for positions).
    public func keyNode(_ key: String) -> Node? { entries.first { $0.key == key }?.keyNode }

    public mutating func string(_ key: String) -> (String, Node)? {
        guard let node = value(key) else { return nil }
        guard case .scalar(let scalar) = node else {
            reader.error(at: node, "\(qualified(key)) must be a string, found \(node.kindDescription)")
            return nil
        }
        return (scalar.string, node)
    }

    public mutating func int(_ key: String, range: ClosedRange<Int>? = nil) -> Int? {
        guard let node = value(key) else { return nil }
        guard case .scalar(let scalar) = node, scalar.style == .plain, let n = Int(scalar.string) else {
            reader.error(at: node, "\(qualified(key)) must be an integer, found \(node.kindDescription(quotedAs: "a string"))")
            return nil
        }
        if let range, !range.contains(n) {
            reader.error(at: node, "\(qualified(key)) must be between \(range.lowerBound) and \(range.upperBound), found \(n)")
            return nil
        }
        return n
    }

    public mutating func double(_ key: String, range: ClosedRange<Double>) -> Double? {
        guard let node = value(key) else { return nil }
        guard case .scalar(let scalar) = node, scalar.style == .plain, let n = Double(scalar.string), n.isFinite else {
            reader.error(at: node, "\(qualified(key)) must be a number, found \(node.kindDescription(quotedAs: "a string"))")
            return nil
        }
        guard range.contains(n) else {
            reader.error(at: node, "\(qualified(key)) must be between \(range.lowerBound) and \(range.upperBound), found \(scalar.string)")
            return nil
        }
        return n
    }

    public mutating func bool(_ key: String) -> Bool? {
        guard let node = value(key) else { return nil }
        guard case .scalar(let scalar) = node, scalar.style == .plain else {
            reader.error(at: node, "\(qualified(key)) must be true or false, found \(node.kindDescription(quotedAs: "a string"))")
            return nil
        }
        switch scalar.string {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            reader.error(at: node, "\(qualified(key)) must be true or false, found \"\(scalar.string)\"")
            return nil
        }
    }

    public mutating func duration(_ key: String) -> DurationSpec? {
        guard let (text, node) = string(key) else { return nil }
        let d = DurationSpec(parsing: text)
        if let d, d <= DurationSpec.longest { return d }
        // Written as a duration, too long to be one (or to count in seconds at all).
        if d != nil || DurationSpec.isOverflowing(text) {
            reader.error(at: node, "\(qualified(key)) \(text) is too long: durations go up to 36525d (100 years)")
        } else {
            reader.error(at: node, "\(qualified(key)) must be a duration like 90s, 15m, 4h or 30d, found \"\(text)\"")
        }
        return nil
    }

    public mutating func size(_ key: String) -> ByteSize? {
        guard let (text, node) = string(key) else { return nil }
        guard let s = ByteSize(parsing: text) else {
            reader.error(at: node, "\(qualified(key)) must be a size like 512MiB or 2GiB, found \"\(text)\"")
            return nil
        }
        return s
    }

    /// A list of strings; a single string is not accepted (say what you mean: `[a]`).
    public mutating func strings(_ key: String) -> [(String, Node)]? {
        guard let node = value(key) else { return nil }
        guard case .sequence(let sequence) = node else {
            reader.error(at: node, "\(qualified(key)) must be a list of strings, found \(node.kindDescription)")
            return nil
        }
        var result: [(String, Node)] = []
        for (i, item) in sequence.enumerated() {
            guard case .scalar(let scalar) = item else {
                reader.error(at: item, "\(qualified(key))[\(i)] must be a string, found \(item.kindDescription)")
                continue
            }
            result.append((scalar.string, item))
        }
        return result
    }

    /// A value that must be one of `choices`.
    public mutating func choice<T: RawRepresentable>(_ key: String, _ type: T.Type) -> T?
    where T.RawValue == String, T: CaseIterable {
        guard let (text, node) = string(key) else { return nil }
        guard let value = T(rawValue: text) else {
            let expected = T.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
            reader.error(at: node, "\(qualified(key)) must be one of \(expected), found \"\(text)\"")
            return nil
        }
        return value
    }

    public mutating func mapping(_ key: String) -> YAMLMapping? {
        guard let node = value(key) else { return nil }
        return YAMLMapping(node, path: qualified(key), reader: reader)
    }

    public mutating func sequence(_ key: String) -> [Node]? {
        guard let node = value(key) else { return nil }
        guard case .sequence(let sequence) = node else {
            reader.error(at: node, "\(qualified(key)) must be a list, found \(node.kindDescription)")
            return nil
        }
        return Array(sequence)
    }

    /// Reports every key that was never asked for, with the closest known key and all of them
    /// (a cut list hid the very key an operator was looking for).
    public func finish() {
        let known = used.sorted()
        for entry in entries where !used.contains(entry.key) {
            // A credential where no key is expected: say where secrets go, not "unknown key".
            if let secret = Self.secretKey(entry.key, entry.keyNode, entry.value) {
                reader.error(at: secret.node, "\"\(secret.key)\" looks like a credential: \(S3Error.whereSecretsGo)")
                continue
            }
            let suggestion = PlanLoader.didYouMean(entry.key, among: known)
            reader.error(at: entry.keyNode,
                         "unknown key \"\(entry.key)\" in \(path.isEmpty ? "the document" : path)\(suggestion); expected one of \(known.map { "\"\($0)\"" }.joined(separator: ", "))")
        }
    }
}

extension YAMLMapping {
    /// Key names that hold secrets (S3 and AWS credentials, passwords, tokens).
    static func isSecretName(_ key: String) -> Bool {
        let k = key.lowercased().replacingOccurrences(of: "-", with: "_")
        return k.contains("secret") || k.contains("access_key") || k.contains("session_token") || k.contains("password")
            || k == "token" || k.hasSuffix("_token") || k == "credentials" || k == "aws_access_key_id"
    }

    /// The first secret-looking key at `key` or anywhere under `value`.
    static func secretKey(_ key: String, _ keyNode: Node, _ value: Node) -> (key: String, node: Node)? {
        if isSecretName(key) { return (key, keyNode) }
        switch value {
        case .mapping(let mapping):
            for pair in mapping {
                guard case .scalar(let k) = pair.key else { continue }
                if let found = secretKey(k.string, pair.key, pair.value) { return found }
            }
        case .sequence(let sequence):
            for item in sequence {
                if case .mapping = item, let found = secretKey("", item, item) { return found }
            }
        default:
            break
        }
        return nil
    }
}

extension Node {
    var isNull: Bool {
        guard case .scalar(let scalar) = self, scalar.style == .plain else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    var kindDescription: String { kindDescription(quotedAs: nil) }

    func kindDescription(quotedAs quoted: String?) -> String {
        switch self {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar):
            if let quoted, scalar.style != .plain { return "\(quoted) \"\(scalar.string)\"" }
            return "\"\(scalar.string)\""
        }
    }

    /// The position of a character offset inside a single-line scalar (for pointing at `{var}`).
    func mark(atOffset offset: Int) -> SourceMark {
        guard case .scalar(let scalar) = self, let mark = scalar.mark else { return SourceMark(self.mark) }
        switch scalar.style {
        case .plain: return SourceMark(line: mark.line, column: mark.column + offset)
        case .singleQuoted, .doubleQuoted: return SourceMark(line: mark.line, column: mark.column + 1 + offset)
        default: return SourceMark(mark)
        }
    }
}
