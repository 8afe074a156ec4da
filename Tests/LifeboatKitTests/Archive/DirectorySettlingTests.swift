import Foundation
import LifeboatTestSupport
import Testing
@testable import LifeboatKit

/// Directories get their final modes and times at the end, deepest first — or, past the writer's
/// limit of directories waiting (millions of directories must not cost memory without bound),
/// earlier: the tree restored is the same either way, whatever order the archive goes in.
@Suite(.ownThread) struct DirectorySettlingTests {
    /// Every entry's kind, mode, content and modification time (directories included).
    static func tree(_ root: String) -> [String: String] {
        var tree = snapshotTree(root)
        for path in tree.keys {
            var st = stat()
            lstat(path.isEmpty ? root : root + "/" + path, &st)
            tree[path]! += " @\(st.st_mtim.tv_sec)"
        }
        return tree
    }

    /// Goes in and out of directories out of order: read-only ones entered again after they were
    /// left, implied ones, one named twice, links made at the end in directories long left.
    static var outOfOrder: TarBuilder {
        var tar = TarBuilder()
        tar.entry(Array("./".utf8), type: "5", mode: 0o750, mtime: 1_500_000_000)
        tar.entry(Array("a/".utf8), type: "5", mode: 0o755, mtime: 1_500_000_001)
        tar.entry(Array("a/ro/".utf8), type: "5", mode: 0o555, mtime: 1_500_000_002)
        tar.entry(Array("a/ro/f".utf8), data: Array("first".utf8), mode: 0o444, mtime: 1_500_000_003)
        tar.entry(Array("c/".utf8), type: "5", mode: 0o700, mtime: 1_500_000_004)
        tar.entry(Array("c/x".utf8), data: Array("x".utf8), mtime: 1_500_000_005)
        tar.entry(Array("i/j/k".utf8), data: Array("implied".utf8), mtime: 1_500_000_006)
        for n in 0..<6 {
            tar.entry(Array("many/d\(n)/".utf8), type: "5", mode: 0o755, mtime: 1_500_000_100 + n)
            tar.entry(Array("many/d\(n)/f".utf8), data: Array("\(n)".utf8), mtime: 1_500_000_200 + n)
        }
        tar.entry(Array("a/ro/g".utf8), data: Array("later".utf8), mode: 0o444, mtime: 1_500_000_007)
        tar.entry(Array("c/new/deeper/n".utf8), data: Array("new".utf8), mtime: 1_500_000_011)
        tar.symlink("a/ro/link", to: "f")
        tar.hardLink("c/h", to: "a/ro/f")
        tar.entry(Array("i/j/l".utf8), data: Array("implied too".utf8), mtime: 1_500_000_008)
        tar.entry(Array("a/".utf8), type: "5", mode: 0o711, mtime: 1_500_000_009)
        tar.entry(Array("many/d0/again".utf8), data: Array("again".utf8), mtime: 1_500_000_010)
        tar.end()
        return tar
    }

    @Test func directoriesSettledEarlyComeBackAsAtTheEnd() async throws {
        var trees: [Int: [String: String]] = [:]
        for limit in [65_536, 1, 2, 3, 5] {
            let scene = try RestoreScene()
            try scene.write(Self.outOfOrder)
            var options = ExtractOptions(checksum: .off)
            options.pendingDirectoryLimit = limit
            let report = try await scene.restore(options)
            #expect(report.entries == 26 && report.skipped.isEmpty)
            trees[limit] = Self.tree(scene.destination)
        }
        let atTheEnd = try #require(trees[65_536])
        #expect(atTheEnd[""] == "dir 750 @1500000000")
        #expect(atTheEnd["a"] == "dir 711 @1500000009")       // named again: the latest entry
        #expect(atTheEnd["a/ro"] == "dir 555 @1500000002")    // entered again, a link made in it
        #expect(atTheEnd["a/ro/g"] == "file 444 later @1500000007")
        #expect(atTheEnd["a/ro/link"]?.hasPrefix("link -> f") == true)
        #expect(atTheEnd["c"] == "dir 700 @1500000004")
        #expect(atTheEnd["c/h"] == "file 444 first @1500000003")
        #expect(atTheEnd["i/j"]?.hasPrefix("dir 755") == true)
        #expect(atTheEnd["many/d0"] == "dir 755 @1500000100")
        #expect(atTheEnd["many/d5/f"] == "file 644 5 @1500000205")
        for (limit, tree) in trees where limit != 65_536 {
            // Implied directories have no time of their own (they keep that of their making).
            let differences = Set(tree.keys).union(atTheEnd.keys).filter { path in
                !["i", "i/j", "many", "c/new", "c/new/deeper"].contains(path) && tree[path] != atTheEnd[path]
            }
            #expect(differences.isEmpty, "limit \(limit): \(differences.sorted().map { "\($0): \(tree[$0] ?? "-") vs \(atTheEnd[$0] ?? "-")" })")
            #expect(tree["i/j"]?.hasPrefix("dir 755") == true && tree["many"]?.hasPrefix("dir 755") == true)
        }
    }

    /// A GNU tar archive of a tree with links of every kind, restored while settling after every
    /// directory, is the tree.
    @Test func aGNUTarTreeSettledAfterEveryDirectoryComesBackIdentical() async throws {
        let scene = try RestoreScene()
        let source = scene.dir.sub("src")
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        try GNUTarRoundTripTests.makeSource(source)
        for n in 0..<20 {
            try FileManager.default.createDirectory(atPath: source + "/wide/d\(n)/e", withIntermediateDirectories: true)
            try Data("\(n)".utf8).write(to: URL(fileURLWithPath: source + "/wide/d\(n)/e/f"))
            chmod(source + "/wide/d\(n)", n % 2 == 0 ? 0o555 : 0o750)
        }
        // Times of the past, so that a directory disturbed by the restore shows.
        #expect(try run(["find", source, "-exec", "touch", "-h", "-d", "@1500000000", "{}", "+"]) == 0)
        #expect(try run(["tar", "-czf", scene.archive, "-C", source, "."]) == 0)
        var options = ExtractOptions(checksum: .off)
        options.pendingDirectoryLimit = 1
        let report = try await scene.restore(options)
        #expect(report.skipped.isEmpty)
        var expected = Self.tree(source)
        var got = Self.tree(scene.destination)
        expected[""] = nil   // the root: the source's, the staging's, then the archive's "./"
        got[""] = nil
        #expect(got == expected)
    }
}
