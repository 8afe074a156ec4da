import Foundation
import Testing
@testable import LifeboatKit

@Suite struct PathTableTests {
    func path(_ key: String) -> EntryPath { EntryPath(components: key.split(separator: "/").map(String.init)) }

    /// Thousands of links through index rebuilds: replaced and dropped ones are gone, the others
    /// come back whole, in archive order, and block paths below them.
    @Test func linksAreFoundReplacedAndDroppedThroughGrowth() throws {
        var links = PendingLinks()
        let metadata = StagingWriter.Metadata(mode: 0o755, mtime: (1_700_000_000, 5), owner: (1000, 1001))
        for i in 0..<5_000 {
            links.add(path: path("d\(i % 7)/link\(i)"), target: "../t\(i)", name: Array("./d\(i % 7)/link\(i)".utf8), metadata: metadata)
        }
        #expect(links.count == 5_000)
        // A later link of the same name replaces the first; a file of that name drops it.
        let replaced = links.add(path: path("d3/link3"), target: "elsewhere", name: Array("d3/link3".utf8),
                                 metadata: StagingWriter.Metadata(mode: 0o700, mtime: nil, owner: nil))
        links.remove("d1/link1")
        links.remove("d1/not-a-link")
        #expect(links.count == 4_999)
        #expect(links.serial(of: "d3/link3") == replaced && links.target(replaced) == "elsewhere")
        // A walk to the same path, component by component and back, finds the same link.
        var walk = PathWalk(components: ["d3", "x", "y"])
        walk.pop()
        walk.pop()
        walk.push("link3")
        #expect(links.serial(of: walk) == replaced && walk.key == "d3/link3")
        #expect(links.serial(of: "d1/link1") == nil && links.link(1) == nil && links.link(3) == nil)
        let hard = links.add(path: path("h"), target: "elsewhere", name: Array("h".utf8), metadata: metadata, source: replaced)
        let alive = links.serials.compactMap { links.link($0) }
        #expect(alive.count == 5_000 && alive.map(\.serial) == alive.map(\.serial).sorted())
        let first = try #require(links.link(0))
        #expect(first.path.key == "d0/link0" && first.target == "../t0" && first.name == Array("./d0/link0".utf8))
        #expect(first.metadata.mode == 0o755 && first.metadata.mtime! == (1_700_000_000, 5) && first.metadata.owner! == (1000, 1001))
        let mine = try #require(links.link(replaced))
        #expect(mine.metadata.mode == 0o700 && mine.metadata.mtime == nil && mine.metadata.owner == nil)
        #expect(links.link(hard)?.source == replaced && first.source == nil)
        // Paths through a held-back link, at any depth; the link itself and its siblings are not.
        #expect(links.link(above: "d2/link2/x/y") == "d2/link2")
        #expect(links.link(above: "d2/link2") == nil && links.link(above: "d2/link9") == nil)
        #expect(links.link(above: "d1/link1/x") == nil)
        #expect(links.link(above: "d2/link2/" + Array(repeating: "deep", count: 900).joined(separator: "/")) == "d2/link2")
    }

    /// A name repeated over and over (a hostile archive) keeps one live entry, found at once:
    /// the index is rebuilt from itself, never from every entry ever added.
    @Test func oneNameRepeatedOrRemovedAndAddedAgainStaysOneEntry() {
        var table = PathTable<Int>()
        for i in 0..<100_000 { table.add("d/same", i) }
        #expect(table.count == 1 && table.value(at: table.position(of: "d/same")!) == 99_999)
        for i in 0..<100_000 {
            table.remove("d/other")
            table.add("d/other", i)
        }
        #expect(table.count == 2 && table.value(at: table.position(of: "d/other")!) == 99_999)
        #expect(table.positions.compactMap { table.value(at: $0) }.count == 2)
    }
}

@Suite struct VerifyTreeTests {
    /// What a restore meets in staging, met without one: files through growth and replacement,
    /// parents made on the way, a file as a parent, a non-empty directory replaced.
    @Test func namesAreKeptAsARestoreMakesThem() throws {
        func path(_ text: String) throws -> EntryPath { try EntryPath.validate(Array(text.utf8)) }
        var tree = VerifyTree()
        for i in 0..<100_000 {
            let file = try path("dir\(i % 97)/file\(i)")
            try tree.makeParents(of: file)
            try tree.makeFile(file)
        }
        for i in stride(from: 0, to: 100_000, by: 2) { try tree.clear(try path("dir\(i % 97)/file\(i)")) }
        let wrong = try (0..<100_000).filter { i in try tree.isFile(try path("dir\(i % 97)/file\(i)")) != (i % 2 == 1) }
        #expect(wrong.isEmpty, "\(wrong.prefix(10))")
        #expect(try !tree.isFile(path("dir1")) && !tree.isFile(path("dir1/file")))
        // dir1 holds files: it cannot be replaced, and a file cannot be a parent.
        #expect(throws: RuleViolation.self) { try tree.makeFile(try path("dir1")) }
        #expect((try? tree.makeParents(of: try path("dir1/file1/x"))) == nil)
        // Emptied, a directory may be replaced by a file, which then is no parent either.
        try tree.makeParents(of: try path("e/only"))
        try tree.makeFile(try path("e/only"))
        try tree.clear(try path("e/only"))
        try tree.makeFile(try path("e"))
        #expect(try tree.isFile(path("e")))
        #expect((try? tree.makeParents(of: try path("e/x"))) == nil)
        // A directory over a file keeps nothing of it.
        tree.makeDirectory(try path("e"))
        try tree.makeParents(of: try path("e/x"))
        #expect(try !tree.isFile(path("e")))
    }
}
