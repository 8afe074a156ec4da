/// A plain text table with left-aligned columns, for human output.
struct TextTable {
    private var rows: [[String]]

    init(_ header: [String]) { rows = [header] }

    mutating func add(_ row: [String]) { rows.append(row) }

    /// Prints a table of `items`, one row each.
    static func print<Item>(_ header: [String], _ items: [Item], row: (Item) -> [String]) {
        var table = TextTable(header)
        for item in items { table.add(row(item)) }
        Swift.print(table.render(), terminator: "")
    }

    func render() -> String {
        let widths = (0..<(rows.first?.count ?? 0)).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            zip(row, widths).enumerated().map { i, pair in
                i == row.count - 1 ? pair.0 : pair.0.padding(toLength: pair.1, withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }
}
