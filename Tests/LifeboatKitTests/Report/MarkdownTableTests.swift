import Testing
@testable import LifeboatKit

/// Tables that read as tables in a terminal and on GitHub.
@Suite struct MarkdownTableTests {
    @Test func anOpenEndedLastColumnIsNotPaddedAndTrailsNoSpaces() {
        var table = MarkdownTable([("Job", .left), ("Tries", .right), ("Reason", .left)])
        table.add(["acme/jira", "2", "disk full · ENOSPC"])
        table.add(["zürich-ä/confluence", "10", ""])
        table.add(["b/c", "1", "a|b  "])
        #expect(table.render() == """
            | Job                 | Tries | Reason
            |---------------------|------:|--------------------
            | acme/jira           |     2 | disk full · ENOSPC
            | zürich-ä/confluence |    10 |
            | b/c                 |     1 | a\\|b

            """)
    }

    @Test func aRightAlignedLastColumnClosesEachRow() {
        var table = MarkdownTable([("Product", .left), ("Jobs", .right)])
        table.add(["jira", "12"])
        #expect(table.render() == "| Product | Jobs |\n|---------|-----:|\n| jira    |   12 |\n")
    }

    @Test func trimmingKeepsCharactersWhole() {
        #expect(MarkdownTable.trimmingTrailingSpaces("é  ") == "é")
        #expect(MarkdownTable.trimmingTrailingSpaces("👩‍🚒 x ") == "👩‍🚒 x")
        #expect(MarkdownTable.trimmingTrailingSpaces("   ") == "")
        #expect(MarkdownTable.trimmingTrailingSpaces("") == "")
        #expect(MarkdownTable.trimmingTrailingSpaces("a\u{301} ") == "a\u{301}")
    }
}
