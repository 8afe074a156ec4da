/// A validated, normalised path inside the restored tree: no empty, `.` or `..` components,
/// valid UTF-8, no control characters, each component at most 255 bytes, at most 4096 bytes in all.
struct EntryPath: Hashable {
    /// The components, root-relative; empty for the root itself.
    let components: [String]
    /// The components joined with "/" ("" for the root).
    let key: String

    static let maxComponentBytes = 255
    static let maxPathBytes = 4096

    init(components: [String]) {
        self.components = components
        key = components.joined(separator: "/")
    }

    var isRoot: Bool { components.isEmpty }
    var leaf: String { components.last ?? "" }
    var parent: EntryPath { EntryPath(components: Array(components.dropLast())) }

    /// Whether `bytes` hold a control character: C0 (below 0x20), DEL, or C1 (U+0080–U+009F,
    /// in UTF-8 0xC2 0x80–0x9F, which terminals take as CSI, NEL and the like).
    static func hasControlCharacter(_ bytes: [UInt8]) -> Bool {
        var previous: UInt8 = 0
        for b in bytes {
            if b < 0x20 || b == 0x7F || (previous == 0xC2 && (0x80...0x9F).contains(b)) { return true }
            previous = b
        }
        return false
    }

    /// Validates a name from the archive. `./a//b/` becomes `a/b`; `.` and `./` are the root.
    static func validate(_ bytes: [UInt8]) throws(RuleViolation) -> EntryPath {
        guard !bytes.isEmpty else { throw RuleViolation(.emptyName) }
        guard bytes.count <= maxPathBytes else { throw RuleViolation(.pathTooLong) }
        guard bytes.first != UInt8(ascii: "/") else { throw RuleViolation(.absoluteName) }
        if hasControlCharacter(bytes) { throw RuleViolation(.controlCharacter) }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw RuleViolation(.invalidUTF8) }
        var components: [String] = []
        for part in text.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
            if part.count == 1, part.first == UInt8(ascii: ".") { continue }
            if part.count == 2, part.elementsEqual("..".utf8) { throw RuleViolation(.parentReference) }
            guard part.count <= maxComponentBytes else { throw RuleViolation(.componentTooLong) }
            components.append(String(decoding: part, as: UTF8.self))
        }
        return EntryPath(components: components)
    }

    /// Validates a symbolic link's target: relative, valid UTF-8, no control characters, and
    /// lexically inside the root when resolved against the link's directory. (Chains through
    /// other links are checked once all links are known: see `SymlinkResolver`.)
    static func validateSymlinkTarget(_ bytes: [UInt8], linkAt link: EntryPath) throws(RuleViolation) -> String {
        guard !bytes.isEmpty else { throw RuleViolation(.emptyName, "the link target is empty") }
        guard bytes.count <= maxPathBytes else { throw RuleViolation(.pathTooLong, "the link target is longer than 4096 bytes") }
        guard bytes.first != UInt8(ascii: "/") else {
            throw RuleViolation(.linkEscapesRoot, "the link target is absolute")
        }
        if hasControlCharacter(bytes) {
            throw RuleViolation(.controlCharacter, "the link target contains a control character")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw RuleViolation(.invalidUTF8, "the link target is not valid UTF-8")
        }
        var depth = link.components.count - 1
        for part in text.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
            if part.count == 1, part.first == UInt8(ascii: ".") { continue }
            if part.count == 2, part.elementsEqual("..".utf8) {
                depth -= 1
                if depth < 0 { throw RuleViolation(.linkEscapesRoot, "the link target \(String(reflecting: text)) leaves the restored tree") }
            } else {
                guard part.count <= maxComponentBytes else { throw RuleViolation(.componentTooLong, "a component of the link target is longer than 255 bytes") }
                depth += 1
            }
        }
        return text
    }
}

/// An entry broke a safety rule.
struct RuleViolation: Error {
    var rule: UnsafeRule
    var detail: String

    init(_ rule: UnsafeRule, _ detail: String? = nil) {
        self.rule = rule
        self.detail = detail ?? rule.description
    }
}
