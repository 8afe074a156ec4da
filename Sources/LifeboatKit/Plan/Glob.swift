/// Shell-style globs over ids: `*` (any run), `?` (one character), `[abc]`, `[a-z]`, `[!x]`.
public enum Glob {
    /// Whether `pattern` matches all of `text`. Iterative with single-star backtracking: linear
    /// in practice and never exponential.
    public static func matches(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern.unicodeScalars), t = Array(text.unicodeScalars)
        var pi = 0, ti = 0
        var starP = -1, starT = 0
        while ti < t.count {
            if pi < p.count, p[pi] == "*" {
                starP = pi
                starT = ti
                pi += 1
            } else if pi < p.count, let (ok, next) = matchOne(p, pi, t[ti]), ok {
                pi = next
                ti += 1
            } else if starP >= 0 {
                pi = starP + 1
                starT += 1
                ti = starT
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }

    /// Whether the pattern is one id written out, without `*`, `?` or `[`.
    public static func isLiteral(_ pattern: String) -> Bool {
        !pattern.unicodeScalars.contains { $0 == "*" || $0 == "?" || $0 == "[" }
    }

    /// A character the pattern needs that no id has (ids are `[a-z0-9][a-z0-9._-]*`), outside
    /// its `[…]` sets, or nil.
    public static func characterNoIDHas(_ pattern: String) -> Character? {
        let p = Array(pattern.unicodeScalars)
        var i = 0
        while i < p.count {
            switch p[i] {
            case "*", "?": break
            case "[": if let close = closingBracket(p, i) { i = close }
            default:
                let c = p[i]
                guard ("a"..."z").contains(c) || ("0"..."9").contains(c) || c == "." || c == "_" || c == "-" else { return Character(c) }
            }
            i += 1
        }
        return nil
    }

    /// Whether the pattern is well formed (balanced brackets).
    public static func isValid(_ pattern: String) -> Bool {
        let p = Array(pattern.unicodeScalars)
        var i = 0
        while i < p.count {
            if p[i] == "[" {
                guard let close = closingBracket(p, i) else { return false }
                i = close
            }
            i += 1
        }
        return !pattern.isEmpty
    }

    private static func closingBracket(_ p: [Unicode.Scalar], _ open: Int) -> Int? {
        var j = open + 1
        if j < p.count, p[j] == "!" || p[j] == "^" { j += 1 }
        if j < p.count, p[j] == "]" { j += 1 }
        while j < p.count, p[j] != "]" { j += 1 }
        return j < p.count ? j : nil
    }

    /// Matches one pattern element at `pi` against `c`; returns (matched, index after the element).
    private static func matchOne(_ p: [Unicode.Scalar], _ pi: Int, _ c: Unicode.Scalar) -> (Bool, Int)? {
        switch p[pi] {
        case "?":
            return (true, pi + 1)
        case "[":
            guard let close = closingBracket(p, pi) else { return (p[pi] == c, pi + 1) }
            var j = pi + 1
            var negate = false
            if p[j] == "!" || p[j] == "^" { negate = true; j += 1 }
            var found = false
            while j < close {
                if j + 2 < close, p[j + 1] == "-" {
                    if p[j] <= c && c <= p[j + 2] { found = true }
                    j += 3
                } else {
                    if p[j] == c { found = true }
                    j += 1
                }
            }
            return (found != negate, close + 1)
        default:
            return (p[pi] == c, pi + 1)
        }
    }
}
