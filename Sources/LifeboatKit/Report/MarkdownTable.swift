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
        func line(_ cells: [String]) -> String {
            let padded = widths.indices.map { i -> String in
                let cell = i < cells.count ? cells[i] : ""
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return alignments[i] == .right ? pad + cell : cell + pad
            }
            return "| " + padded.joined(separator: " | ") + " |"
        }
        let rule = "|" + widths.indices.map { i in
            let dashes = String(repeating: "-", count: widths[i])
            return alignments[i] == .right ? "-" + dashes + ":" : "-" + dashes + "-"
        }.joined(separator: "|") + "|"
        return ([line(headers), rule] + rows.map(line)).joined(separator: "\n") + "\n"
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
