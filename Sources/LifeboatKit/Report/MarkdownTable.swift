/// A GitHub-flavoured Markdown table whose columns are padded to equal width, so the raw text
/// reads as a table in a terminal too.
struct MarkdownTable {
    enum Alignment { case left, right }

    private let headers: [String]
    private let alignments: [Alignment]
    private var rows: [[String]] = []

    init(_ columns: [(String, Alignment)]) {
        headers = columns.map { Self.escape($0.0) }
        alignments = columns.map(\.1)
    }

    /// Adds a row of plain text; cells are escaped here.
    mutating func add(_ cells: [String]) {
        rows.append(cells.map(Self.escape))
    }

    func render() -> String {
        var widths = headers.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        widths = widths.map { max($0, 3) }
        // A left-aligned last column (errors, reasons) is not padded and has no closing pipe
        // (optional in GFM), so short rows do not trail a long run of spaces.
        let openEnded = alignments.last == .left
        func line(_ cells: [String]) -> String {
            let padded = widths.indices.map { i -> String in
                let cell = i < cells.count ? cells[i] : ""
                if openEnded && i == widths.count - 1 { return cell }
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return alignments[i] == .right ? pad + cell : cell + pad
            }
            let text = "| " + padded.joined(separator: " | ")
            return openEnded ? Self.trimmingTrailingSpaces(text) : text + " |"
        }
        let rule = "|" + widths.indices.map { i in
            let dashes = String(repeating: "-", count: widths[i])
            return alignments[i] == .right ? "-" + dashes + ":" : "-" + dashes + "-"
        }.joined(separator: "|") + (openEnded ? "" : "|")
        return ([line(headers), rule] + rows.map(line)).joined(separator: "\n") + "\n"
    }

    /// `text` without the spaces it ends with (ASCII spaces are whole characters: the bytes
    /// before them end a character).
    static func trimmingTrailingSpaces(_ text: String) -> String {
        guard let last = text.utf8.lastIndex(where: { $0 != UInt8(ascii: " ") }) else { return "" }
        return String(decoding: text.utf8[...last], as: UTF8.self)
    }

    /// Makes any text safe inside a table cell: one line, no cell separators, no HTML or
    /// Markdown markup that GitHub would interpret (an error message may contain anything).
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for ch in text {
            switch ch {
            case "\n", "\r", "\t": out.append(" ")
            case "\\", "|", "<", ">", "`", "*", "[", "]": out.append("\\"); out.append(ch)
            default:
                if ch.unicodeScalars.allSatisfy({ $0.properties.generalCategory == .control }) {
                    out.append("\u{FFFD}")
                } else {
                    out.append(ch)
                }
            }
        }
        return out
    }
}
