/// HTML escaping for every piece of text a report interpolates: site names, errors, paths and
/// notes come from the ledger and may contain anything, `<script>` included.
enum HTML {
    /// Escapes text for element content and quoted attribute values alike. Control characters
    /// (other than newline and tab) become U+FFFD: they are not allowed in HTML or XML.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "\n", "\t": out.unicodeScalars.append(scalar)
            default:
                if scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) {
                    out += "\u{FFFD}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}
