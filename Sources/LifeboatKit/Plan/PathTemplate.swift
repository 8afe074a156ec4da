import Foundation

/// The variables of path and command templates.
public enum TemplateVariable: String, Sendable, CaseIterable {
    case site, product, run
    /// The job's data directory: commands only.
    case path
}

/// A string with `{site}`, `{product}`, `{run}` (and, in commands, `{path}`) placeholders.
public struct PathTemplate: Sendable, Hashable, CustomStringConvertible {
    public enum Piece: Sendable, Hashable {
        case literal(String)
        case variable(TemplateVariable)
    }

    public let text: String
    public let pieces: [Piece]

    /// A problem in a template: the character offset and what is wrong.
    public struct Problem: Error, Sendable {
        public var offset: Int
        public var message: String
    }

    /// The longest template (a path's length, PATH_MAX), and the longest part of it from its
    /// first variable on: the check that no two jobs render one path (`collidingPairs`) grows with
    /// the square of that part (a plan check over the socket must stay cheap).
    public static let maxLength = 4_096
    public static let maxVariablePart = 256

    /// Parses a template, allowing only `allowed` variables.
    public init(_ text: String, allowed: Set<TemplateVariable> = [.site, .product, .run]) throws(Problem) {
        self.text = text
        var pieces: [Piece] = []
        var literal = ""
        let scalars = Array(text.unicodeScalars)
        guard scalars.count <= Self.maxLength else {
            throw Problem(offset: Self.maxLength, message: "template is \(scalars.count) characters long; a path has at most \(Self.maxLength)")
        }
        var i = 0
        while i < scalars.count {
            let c = scalars[i]
            if c == "{" {
                guard let close = scalars[i...].firstIndex(of: "}") else {
                    throw Problem(offset: i, message: "unclosed \"{\" in \"\(text)\"")
                }
                let name = String(String.UnicodeScalarView(scalars[(i + 1)..<close]))
                guard let variable = TemplateVariable(rawValue: name), allowed.contains(variable) else {
                    let names = TemplateVariable.allCases.filter(allowed.contains).map { "{\($0.rawValue)}" }
                    throw Problem(offset: i, message: "unknown template variable {\(name)}; expected one of \(names.joined(separator: ", "))")
                }
                if !literal.isEmpty { pieces.append(.literal(literal)); literal = "" }
                pieces.append(.variable(variable))
                i = close + 1
            } else if c == "}" {
                throw Problem(offset: i, message: "unmatched \"}\" in \"\(text)\"")
            } else {
                literal.unicodeScalars.append(c)
                i += 1
            }
        }
        if !literal.isEmpty { pieces.append(.literal(literal)) }
        if let first = scalars.firstIndex(of: "{"), scalars.count - first > Self.maxVariablePart {
            throw Problem(offset: first, message: "the template's part from its first variable on is \(scalars.count - first) characters long; at most \(Self.maxVariablePart) are allowed")
        }
        self.pieces = pieces
    }

    public var description: String { text }

    public var variables: Set<TemplateVariable> {
        Set(pieces.compactMap { if case .variable(let v) = $0 { v } else { nil } })
    }

    /// Substitutes the variables; values are ids (they contain no `/`), so substitution cannot
    /// add path components.
    public func render(_ values: [TemplateVariable: String]) -> String {
        pieces.map { piece in
            switch piece {
            case .literal(let s): return s
            case .variable(let v): return values[v] ?? "{\(v.rawValue)}"
            }
        }.joined()
    }

    /// A copy with a relative path made absolute against `base`, lexically normalised.
    func resolved(against base: String) -> PathTemplate {
        let absolute = text.hasPrefix("/") ? text : base + "/" + text
        let normalised = PathTemplate.normalise(absolute)
        return (try? PathTemplate(normalised, allowed: Set(TemplateVariable.allCases))) ?? self
    }

    /// Lexical normalisation of an absolute path: collapses `//` and `.`, and resolves `..`
    /// against the segment before it (never above `/`).
    static func normalise(_ path: String) -> String {
        if isNormal(path) { return path }
        // On the bytes: a `/` followed by a combining mark is one Character, still a separator.
        var parts: [Substring] = []
        for bytes in path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
            let part = Substring(bytes)
            if part.utf8.elementsEqual(".".utf8) { continue }
            if part.utf8.elementsEqual("..".utf8) {
                if !parts.isEmpty { parts.removeLast() }
            } else {
                parts.append(part)
            }
        }
        return "/" + parts.joined(separator: "/")
    }

    /// Whether `path` is already as `normalise` would give it: absolute, no empty, `.` or `..`
    /// component, no trailing `/` (a run's thousands of destinations usually are).
    static func isNormal(_ path: String) -> Bool {
        let slash = UInt8(ascii: "/"), dot = UInt8(ascii: ".")
        var utf8 = path.utf8.makeIterator()
        guard utf8.next() == slash else { return false }
        var componentLength = 0, dotsOnly = true
        while true {
            let byte = utf8.next()
            if byte == nil || byte == slash {
                // The root alone is normal; otherwise every component is a real name.
                if componentLength == 0 { return byte == nil && path.utf8.count == 1 }
                if dotsOnly && componentLength <= 2 { return false }
                if byte == nil { return true }
                (componentLength, dotsOnly) = (0, true)
            } else {
                componentLength += 1
                if byte != dot { dotsOnly = false }
            }
        }
    }

    /// The path segments (split on `/`), each a list of pieces.
    var segments: [[Piece]] {
        var result: [[Piece]] = [[]]
        for piece in pieces {
            switch piece {
            case .variable:
                result[result.count - 1].append(piece)
            case .literal(let s):
                let parts = s.split(separator: "/", omittingEmptySubsequences: false)
                for (i, part) in parts.enumerated() {
                    if i > 0 { result.append([]) }
                    if !part.isEmpty { result[result.count - 1].append(.literal(String(part))) }
                }
            }
        }
        return result.filter { !$0.isEmpty }
    }
}

extension PathTemplate {
    /// Whether some values of the variables make `inner` equal to, or a path under, `outer`.
    ///
    /// Each variable stands for one id (no `/`, characters `[a-z0-9._-]`, at least one), so a
    /// template is a sequence of segment patterns; two segment patterns may coincide when their
    /// languages intersect, decided by a small product automaton. This is conservative in the safe
    /// direction: it ignores that the same variable must take the same value in both templates.
    public static func couldResolve(_ inner: PathTemplate, inside outer: PathTemplate) -> Bool {
        let a = inner.segments, b = outer.segments
        guard a.count >= b.count else { return false }
        for (x, y) in zip(a, b) where !SegmentPattern(x).intersects(SegmentPattern(y)) {
            return false
        }
        return true
    }
}

/// A path segment as a pattern: literal characters, and for a variable an id (`[a-z0-9]` then
/// any number of `[a-z0-9._-]`).
struct SegmentPattern {
    enum Item: Equatable {
        case char(Unicode.Scalar)
        /// An id's first character: a letter or digit.
        case idFirst
        case idStar
    }

    var items: [Item] = []

    init(_ pieces: [PathTemplate.Piece]) {
        for piece in pieces {
            switch piece {
            case .literal(let s): items += s.unicodeScalars.map(Item.char)
            case .variable: items += [.idFirst, .idStar]
            }
        }
    }

    static func isIDChar(_ c: Unicode.Scalar) -> Bool {
        isIDFirst(c) || c == "." || c == "_" || c == "-"
    }

    static func isIDFirst(_ c: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(c) || ("0"..."9").contains(c)
    }

    /// Whether some string matches both patterns (breadth-first search over position pairs).
    func intersects(_ other: SegmentPattern) -> Bool {
        let a = items, b = other.items
        var seen = Set<[Int]>()
        var queue: [(Int, Int)] = [(0, 0)]
        while let (i, j) = queue.popLast() {
            guard seen.insert([i, j]).inserted else { continue }
            if i == a.count && j == b.count { return true }
            // A star may match nothing.
            if i < a.count, a[i] == .idStar { queue.append((i + 1, j)) }
            if j < b.count, b[j] == .idStar { queue.append((i, j + 1)) }
            guard i < a.count, j < b.count else { continue }
            // Both consume one character: possible when their character sets meet.
            let meet: Bool
            switch (a[i], b[j]) {
            case (.char(let x), .char(let y)): meet = x == y
            case (.char(let x), .idFirst), (.idFirst, .char(let x)): meet = Self.isIDFirst(x)
            case (.char(let x), _): meet = Self.isIDChar(x)
            case (_, .char(let y)): meet = Self.isIDChar(y)
            default: meet = true
            }
            if meet {
                queue.append((a[i] == .idStar ? i : i + 1, b[j] == .idStar ? j : j + 1))
            }
        }
        return false
    }
}

extension PathTemplate {
    /// The leading segments without variables: `/srv/sites` of `/srv/sites/{site}/{product}`.
    /// Lifeboat resolves symbolic links there (an operator's layout) and nowhere below it when it
    /// creates sandbox paths.
    public var literalRoot: String {
        var root: [String] = []
        for segment in segments {
            var text = ""
            for piece in segment {
                guard case .literal(let s) = piece else { return "/" + root.joined(separator: "/") }
                text += s
            }
            root.append(text)
        }
        return "/" + root.joined(separator: "/")
    }

    /// The segments below `literalRoot`, each a list of pieces.
    var templatedSegments: [[Piece]] {
        let all = segments
        let literalCount = all.prefix { $0.allSatisfy { if case .literal = $0 { true } else { false } } }.count
        return Array(all.dropFirst(literalCount))
    }

    /// Two different (site, product) pairs that render the same path, if the template allows any:
    /// `/srv/{site}-{product}` gives `a-a` × `a` and `a` × `a-a`.
    ///
    /// Ids are `[a-z0-9][a-z0-9._-]*` without `/`, so read as a regular expression with `{site}`
    /// and `{product}` as ids, the template renders one path for two pairs exactly when that
    /// expression is ambiguous. That is decided on the product of its position automaton with
    /// itself: an accepting path along which the two copies part is a string with two parses.
    /// Exact when each variable occurs once; conservative (in the safe direction) when one
    /// repeats. `{run}` is one fixed value within a run: it counts as literal id characters.
    /// The 63-character cap on ids is ignored, also in the safe direction.
    public var collidingPairs: (first: Pair, second: Pair)? {
        enum Token: Equatable { case char(Unicode.Scalar), variable(TemplateVariable) }
        var tokens: [Token] = []
        for piece in pieces {
            switch piece {
            case .literal(let s): tokens += s.unicodeScalars.map(Token.char)
            case .variable(.run): tokens += "r".unicodeScalars.map(Token.char)
            case .variable(let v): tokens.append(.variable(v))
            }
        }
        // Before the first variable both readings are forced through the same characters.
        tokens.removeFirst(tokens.firstIndex { if case .variable = $0 { true } else { false } } ?? tokens.count)
        let n = tokens.count
        // State s: tokens[0..<s] were read; after a variable (tokens[s-1]) it may read more.
        func successors(_ state: Int, _ c: Unicode.Scalar) -> [Int] {
            var result: [Int] = []
            if state > 0, case .variable = tokens[state - 1], SegmentPattern.isIDChar(c) { result.append(state) }
            if state < n {
                switch tokens[state] {
                case .char(let x): if x == c { result.append(state + 1) }
                case .variable: if Self.isIDStart(c) { result.append(state + 1) }
                }
            }
            return result
        }
        // One representative id character stands for every one no literal uses.
        var letters = Set<Unicode.Scalar>()
        for case .char(let c) in tokens { letters.insert(c) }
        letters.insert("abcdefghijklmnopqrstuvwxyz0123456789".unicodeScalars.first { !letters.contains($0) } ?? "a")
        let alphabet = letters.sorted { $0.value < $1.value }

        struct Node: Hashable { var a: Int, b: Int, parted: Bool }
        let start = Node(a: 0, b: 0, parted: false), accept = Node(a: n, b: n, parted: true)
        var previous: [Node: (Node, Unicode.Scalar)] = [:]
        var queue = [start], head = 0
        var seen: Set<Node> = [start]
        while head < queue.count, !seen.contains(accept) {
            let node = queue[head]
            head += 1
            for c in alphabet {
                for a in successors(node.a, c) {
                    for b in successors(node.b, c) {
                        let next = Node(a: a, b: b, parted: node.parted || a != b)
                        if seen.insert(next).inserted {
                            previous[next] = (node, c)
                            queue.append(next)
                        }
                    }
                }
            }
        }
        guard seen.contains(accept) else { return nil }
        // Walk back to the string and the two ways of reading it.
        var steps: [(from: Node, to: Node, c: Unicode.Scalar)] = []
        var node = accept
        while let (before, c) = previous[node] {
            steps.append((before, node, c))
            node = before
        }
        steps.reverse()
        func parse(_ state: KeyPath<Node, Int>) -> Pair {
            var values: [Int: String] = [:]
            for step in steps {
                let from = step.from[keyPath: state], to = step.to[keyPath: state]
                values[from == to ? to - 1 : from, default: ""].unicodeScalars.append(step.c)
            }
            func value(_ v: TemplateVariable) -> String {
                tokens.indices.first { tokens[$0] == .variable(v) }.flatMap { values[$0] } ?? ""
            }
            return Pair(site: value(.site), product: value(.product))
        }
        return (parse(\.a), parse(\.b))
    }

    /// A (site, product) pair.
    public struct Pair: Sendable, Hashable, CustomStringConvertible {
        public var site: String
        public var product: String
        public var description: String { "site \"\(site)\" × product \"\(product)\"" }
    }

    static func isIDStart(_ c: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(c) || ("0"..."9").contains(c)
    }

    /// Whether `name` (one path segment) is a rendering of `segment` for some id values.
    static func segment(_ segment: [Piece], matches name: String) -> Bool {
        SegmentPattern(segment).intersects(SegmentPattern([.literal(name)]))
    }
}
