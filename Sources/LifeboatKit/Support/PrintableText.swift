/// Text from outside (a store's key names and error bodies, a client's free text) fit for a
/// terminal or a log line: control characters (C0, DEL, C1), format characters (bidirectional
/// overrides, zero-width ones) and the line and paragraph separators are written as escapes —
/// `\n`, `\r`, `\t`, `\u{1b}` — so they can neither move the cursor, recolour, retitle a
/// terminal nor start a log line of their own.
public enum PrintableText {
    /// `text` escaped; cut to `limit` characters (then ending in "…") when one is given.
    public static func escaped(_ text: String, limit: Int? = nil) -> String {
        if limit == nil, !text.unicodeScalars.contains(where: needsEscape) { return text }
        var out = ""
        var count = 0
        for scalar in text.unicodeScalars {
            if let limit, count >= limit {
                out += "…"
                break
            }
            count += 1
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where needsEscape(scalar): out += "\\u{\(String(scalar.value, radix: 16))}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator: true
        default: false
        }
    }
}
