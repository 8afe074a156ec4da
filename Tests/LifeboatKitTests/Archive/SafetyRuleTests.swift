import Foundation
import Testing
@testable import LifeboatKit

/// Hostile archives: each rule of DESIGN.md "One job, step by step" 3, with nothing outside
/// staging changed and no staging left behind.
@Suite struct SafetyRuleTests {
    /// One hostile entry after a harmless one; the rule it must break.
    static let hostileNames: [(String, UnsafeRule)] = [
        ("../x", .parentReference),
        ("a/../../x", .parentReference),
        ("../sentinel/file", .parentReference),
        ("/tmp/lifeboat-absolute", .absoluteName),
        ("", .emptyName),
        ("a\nb", .controlCharacter),
        ("tab\there", .controlCharacter),
        ("esc\u{1B}[31m", .controlCharacter),
        ("csi\u{9B}31m", .controlCharacter),  // C1: U+009B, 0xC2 0x9B
        ("next\u{85}line", .controlCharacter),
        (String(repeating: "n", count: 256), .componentTooLong),
    ]

    @Test(arguments: hostileNames)
    func hostileNameIsRejected(name: String, rule: UnsafeRule) async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.file("ok.txt", "fine")
        if name.utf8.count > 100 { tar.gnuLong(name) }
        tar.file(name, "evil")
        tar.end()
        let error = try await scene.expectRejected(tar)
        #expect(error?.code == .unsafeEntry)
        #expect(error?.rule == rule)
        #expect(error?.exitCode == .rejected)
        #expect(error?.description.contains(scene.archive) == true)
    }

    /// C1 controls in a link target are refused as in a name; the characters around them in
    /// UTF-8 (U+00A0, é) are not controls.
    @Test func controlCharactersAreC0DelAndC1Only() async throws {
        #expect(EntryPath.hasControlCharacter(Array("a\u{80}b".utf8)) && EntryPath.hasControlCharacter(Array("\u{9F}".utf8)))
        #expect(!EntryPath.hasControlCharacter(Array("caf\u{E9} \u{A0}\u{7E}\u{100}\u{2028}".utf8)))
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.file("caf\u{E9}\u{A0}", "fine")
        tar.symlink("l", to: "x\u{9B}y")
        tar.end()
        let error = try await scene.expectRejected(tar)
        #expect(error?.rule == .controlCharacter && error?.entry == "l", "\(String(describing: error))")
    }

    @Test func invalidUTF8IsRejected() async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.entry([0x61, 0xFF, 0xFE, 0x62], data: Array("x".utf8))
        tar.end()
        #expect(try await scene.expectRejected(tar)?.rule == .invalidUTF8)
    }

    @Test func dotReplacingTheRootIsRejectedButDotDirectoryIsTheRoot() async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.file(".", "not a directory")
        tar.end()
        #expect(try await scene.expectRejected(tar)?.rule == .replacesRoot)

        var ok = TarBuilder()
        ok.directory("./", mode: 0o750)
        ok.file("./a", "x")
        ok.end()
        try scene.write(ok)
        try await scene.restore()
        #expect(readText(scene.destination + "/a") == "x")
    }

    @Test func pathsLongerThan4096BytesAreRejected() async throws {
        let scene = try RestoreScene()
        let name = Array(repeating: String(repeating: "d", count: 200), count: 21).joined(separator: "/")
        var tar = TarBuilder()
        tar.gnuLong(name)
        tar.file(name, "x")
        tar.end()
        #expect(try await scene.expectRejected(tar)?.rule == .pathTooLong)
    }

    @Test(arguments: [
        ("/etc/passwd", "l"),
        ("../sentinel/file", "l"),
        ("../../sentinel", "a/l"),
        ("a/../../sentinel", "l"),
    ])
    func symlinkEscapesAreRejected(target: String, name: String) async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.symlink(name, to: target)
        tar.end()
        let error = try await scene.expectRejected(tar)
        #expect(error?.rule == .linkEscapesRoot)
    }

    @Test func symlinkChainsThatEscapeAreRejected() async throws {
        // Each target is inside the root on its own; together they lead out.
        let scene = try RestoreScene()
        var chain = TarBuilder()
        chain.symlink("a", to: "b")
        chain.symlink("b", to: "..")
        chain.end()
        #expect(try await scene.expectRejected(chain)?.rule == .linkEscapesRoot)

        var hidden = TarBuilder()
        hidden.directory("d")
        hidden.symlink("d/up", to: "..")        // the root: fine
        hidden.symlink("d/esc", to: "up/..")    // lexically "d", really the root's parent
        hidden.end()
        let error = try await scene.expectRejected(hidden)
        #expect(error?.rule == .linkEscapesRoot)
        #expect(error?.entry?.contains("d/esc") == true)
    }

    @Test func linksInsideTheRootAreKept() async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.directory("d")
        tar.file("d/f", "data")
        tar.symlink("d/up", to: "..")
        tar.symlink("rel", to: "d/f")
        tar.symlink("dangling", to: "nowhere")
        tar.hardLink("h", to: "d/f")
        tar.end()
        try scene.write(tar)
        try await scene.restore()
        let tree = snapshotTree(scene.destination)
        #expect(tree["d/up"] == "link -> ..")
        #expect(tree["rel"] == "link -> d/f")
        #expect(tree["dangling"] == "link -> nowhere")
        #expect(tree["h"] == "file 644 data")
    }

    @Test func aSymlinkFollowedByAFileOfTheSameNameIsReplacedNotFollowed() async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.file("target.txt", "original")
        tar.symlink("l", to: "target.txt")
        tar.file("l", "replacement")
        tar.end()
        try scene.write(tar)
        try await scene.restore()
        let tree = snapshotTree(scene.destination)
        #expect(tree["l"] == "file 644 replacement")
        #expect(tree["target.txt"] == "file 644 original")
    }

    @Test func aFileUnderASymlinksNameIsRejected() async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.directory("sub")
        tar.symlink("link", to: "sub")
        tar.file("link/x", "through the link")
        tar.end()
        let error = try await scene.expectRejected(tar)
        #expect(error?.rule == .throughSymlink)

        // Skipped instead: recorded, and nothing written through the link.
        try scene.write(tar)
        let report = try await scene.restore(ExtractOptions(unsafeEntries: .skip))
        #expect(report.skipped == [SkippedEntry(name: "link/x", rule: .throughSymlink)])
        #expect(FileManager.default.fileExists(atPath: scene.destination + "/sub/x") == false)
        #expect(snapshotTree(scene.destination)["link"] == "link -> sub")
    }

    /// A loop of links resolves to nothing (the kernel answers ELOOP), so it cannot leave the
    /// tree: GNU tar extracts it, and so does Lifeboat. One that escapes before it loops does not.
    @Test func symlinkLoopsAreExtractedAsTheyAre() async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.symlink("self", to: "self")
        tar.symlink("a", to: "b")
        tar.symlink("b", to: "a")
        tar.symlink("deep/c", to: "../a/x")
        tar.end()
        try scene.write(tar)
        let report = try await scene.restore()
        #expect(report.skipped.isEmpty && report.entries == 4)
        let tree = snapshotTree(scene.destination)
        #expect(tree["self"] == "link -> self" && tree["a"] == "link -> b" && tree["b"] == "link -> a" && tree["deep/c"] == "link -> ../a/x", "\(tree)")

        var escaping = TarBuilder()
        escaping.directory("d")
        escaping.symlink("d/up", to: "..")
        escaping.symlink("a", to: "b")
        escaping.symlink("b", to: "d/up/../a")   // lexically d/a, really ../a: outside before it loops
        escaping.end()
        #expect(try await scene.expectRejected(escaping)?.rule == .linkEscapesRoot)
    }

    /// Under skip, a link checked as going through another held-back link must not stay when
    /// that one is refused as it is made: `z` is inside only while `B` is a link, and `B/l`
    /// makes `B` a directory first (found by a hostile-archive review).
    @Test func aLinkThatStaysInsideOnlyThroughARefusedLinkIsRemovedToo() async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.directory("d")
        tar.symlink("d/A", to: "..")
        tar.symlink("z", to: "d/A/B/../../../sentinel")
        tar.symlink("B/l", to: ".")
        tar.symlink("B", to: "x/y/z")
        tar.end()
        #expect(try await scene.expectRejected(tar)?.rule == .replacesDirectory)

        try scene.write(tar)
        let report = try await scene.restore(ExtractOptions(unsafeEntries: .skip))
        #expect(report.skipped == [SkippedEntry(name: "B", rule: .replacesDirectory), SkippedEntry(name: "z", rule: .linkEscapesRoot)])
        let tree = snapshotTree(scene.destination)
        #expect(tree["z"] == nil, "\(tree)")
        #expect(tree["d/A"] == "link -> .." && tree["B/l"] == "link -> .", "\(tree)")
        #expect(readText(scene.destination + "/z/file") == nil)
        #expect(report.entries == 3)
    }

    @Test(arguments: [
        ("../sentinel/file", UnsafeRule.linkEscapesRoot),
        ("/etc/passwd", .linkEscapesRoot),
        ("missing", .hardLinkTarget),
        ("d", .hardLinkTarget),   // a directory
        ("gone", .hardLinkTarget),   // a file that a directory replaced
        ("later", .hardLinkTarget),   // a file that comes after the link
        ("h", .hardLinkTarget),   // itself, with nothing there (it used to vanish without a word)
    ])
    func hardLinkEscapesAreRejected(target: String, rule: UnsafeRule) async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.directory("d")
        tar.symlink("l", to: "d")
        tar.file("gone", "a file")
        tar.directory("gone")
        tar.hardLink("h", to: target)
        tar.file("later", "too late")
        tar.end()
        #expect(try await scene.expectRejected(tar)?.rule == rule)
        // Verify, which has no filesystem to ask, says the same.
        #expect { try verifyArchive(at: scene.archive, options: ExtractOptions(checksum: .off)) } throws: { error in
            (error as? ArchiveError)?.rule == rule
        }
    }

    /// A hard link to itself over the file of that name asks for what is there: it stays (as
    /// with GNU tar), in a restore and in verify alike.
    @Test func aHardLinkToItselfKeepsItsFile() async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.file("h", "kept")
        tar.hardLink("h", to: "h")
        tar.end()
        try scene.write(tar)
        let report = try await scene.restore(ExtractOptions())
        #expect(report.skipped.isEmpty && report.entries == 2)
        #expect(readText(scene.destination + "/h") == "kept")
        #expect(try verifyArchive(at: scene.archive, options: ExtractOptions(checksum: .off)).entries == 2)
    }

    /// A hard link to a symbolic link inside the tree is that link again (GNU tar makes it so).
    @Test func aHardLinkToASymlinkIsTheSameLink() async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.directory("d")
        tar.symlink("l", to: "d")
        tar.hardLink("h", to: "l")
        tar.end()
        try scene.write(tar)
        let report = try await scene.restore(ExtractOptions())
        #expect(report.skipped.isEmpty)
        let tree = snapshotTree(scene.destination)
        #expect(tree["h"] == "link -> d" && tree["l"] == "link -> d", "\(tree)")
        var a = stat(), b = stat()
        lstat(scene.destination + "/l", &a)
        lstat(scene.destination + "/h", &b)
        #expect(a.st_ino == b.st_ino)
    }

    @Test(arguments: [(Character("3"), UnsafeRule.device), ("4", .device), ("6", .fifo), ("M", .unsupportedType)])
    func specialEntriesAreRejectedOrSkipped(type: Character, rule: UnsafeRule) async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.file("before", "1")
        // Devices and FIFOs carry no data whatever their size says; a multi-volume piece does.
        tar.entry(Array("special".utf8), type: type, data: type == "M" ? Array("continued".utf8) : [], size: type == "M" ? nil : 700)
        tar.file("after", "2")
        tar.end()
        #expect(try await scene.expectRejected(tar)?.rule == rule)

        try scene.write(tar)
        let report = try await scene.restore(ExtractOptions(unsafeEntries: .skip))
        #expect(report.skipped.map(\.rule) == [rule])
        #expect(report.entries == 2)
        #expect(Set(snapshotTree(scene.destination).keys) == ["", "before", "after"])
    }

    /// Sparse maps are checked as GNU tar checks them, before anything is written: a region
    /// outside the file, more region data than the entry holds, a map that is not numbers; and
    /// their size is bounded by the plan's limits (real size: max_bytes; regions: max_entries).
    @Test(arguments: [
        ("1.0 map that is not numbers", [("GNU.sparse.realsize", "100")], "map and data", ArchiveError.Code.corrupt),
        ("region past the real size", [("GNU.sparse.size", "10"), ("GNU.sparse.map", "8,4")], "data", .corrupt),
        ("regions holding more than the data", [("GNU.sparse.size", "100"), ("GNU.sparse.map", "0,50")], "data", .corrupt),
        ("offset without length", [("GNU.sparse.size", "100"), ("GNU.sparse.map", "0,4,50")], "data", .corrupt),
        ("numbytes without offset", [("GNU.sparse.size", "100"), ("GNU.sparse.numbytes", "4")], "data", .corrupt),
        ("no real size", [("GNU.sparse.map", "0,4")], "data", .corrupt),
        ("real size beyond max_bytes", [("GNU.sparse.size", "\(1 << 40)"), ("GNU.sparse.map", "0,4")], "data", .limitExceeded),
        ("more regions than max_entries", [("GNU.sparse.size", "100"), ("GNU.sparse.map", (0..<20).map { "\($0),0" }.joined(separator: ","))], "", .limitExceeded),
    ])
    func malformedOrOversizedSparseMapsAreRejected(what: String, records: [(String, String)], data: String, code: ArchiveError.Code) async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.file("before", "1")
        let major = what.hasPrefix("1.0") ? [("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0")] : []
        tar.pax(major + records)
        tar.file("sparse", data)
        tar.end()
        let error = try await scene.expectRejected(tar, ExtractOptions(maxBytes: 1 << 30, maxEntries: 10))
        #expect(error?.code == code, "\(what): \(String(describing: error))")
        #expect(error?.entry == "sparse", "\(what)")
    }

    /// Old GNU sparse headers ('S'): the map in the header and extension blocks, with the same
    /// checks. A region past the real size is damage, and nothing outside staging changes.
    @Test func oldGNUSparseMapsAreCheckedToo() async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.entry(Array("sparse".utf8), type: "S", data: Array("abcd".utf8), format: .gnu) { h in
            TarBuilder.put(Array("00000000010\u{0}".utf8), into: &h, at: 386)   // offset 8
            TarBuilder.put(Array("00000000004\u{0}".utf8), into: &h, at: 398)   // 4 bytes
            TarBuilder.put(Array("00000000010\u{0}".utf8), into: &h, at: 483)   // real size 8: too small
        }
        tar.end()
        let error = try await scene.expectRejected(tar)
        #expect(error?.code == .corrupt)
        #expect(error?.detail.contains("outside the file's 8 bytes") == true, "\(String(describing: error))")
    }

    @Test func specialModeBitsAndOwnershipAreNotApplied() async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.entry(Array("setuid".utf8), data: Array("x".utf8), mode: 0o4777, uid: 4242, gid: 4242)
        tar.entry(Array("shared".utf8), data: Array("x".utf8), mode: 0o2666)
        tar.entry(Array("sticky".utf8), type: "5", mode: 0o1777)
        tar.entry(Array("readonly".utf8), type: "5", mode: 0o555)
        tar.entry(Array("readonly/f".utf8), data: Array("x".utf8), mode: 0o400)
        tar.end()
        try scene.write(tar)
        try await scene.restore()
        let tree = snapshotTree(scene.destination)
        #expect(tree["setuid"] == "file 755 x")
        #expect(tree["shared"] == "file 644 x")
        #expect(tree["sticky"] == "dir 755")
        #expect(tree["readonly"] == "dir 555")
        #expect(tree["readonly/f"] == "file 400 x")
        var st = stat()
        #expect(lstat(scene.destination + "/setuid", &st) == 0)
        #expect(st.st_uid == getuid())
        #expect(st.st_mtim.tv_sec == 1_700_000_000)
    }

    @Test func ownershipIsAppliedWhenAsked() async throws {
        guard getuid() == 0 else { return }  // needs the privilege to chown
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.entry(Array("owned".utf8), data: Array("x".utf8), uid: 4242, gid: 4343)
        tar.end()
        try scene.write(tar)
        try await scene.restore(ExtractOptions(applyOwnership: true))
        var st = stat()
        #expect(lstat(scene.destination + "/owned", &st) == 0)
        #expect(st.st_uid == 4242 && st.st_gid == 4343)
    }

    @Test func duplicatesLaterWinsNeverThroughAHardLink() async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.file("a", "one")
        tar.hardLink("h", to: "a")
        tar.file("h", "two")           // must not write into "a" through the shared inode
        tar.file("b", "first")
        tar.file("b", "second")
        tar.directory("d")
        tar.file("d", "a file replaces an empty directory")
        tar.end()
        try scene.write(tar)
        try await scene.restore()
        let tree = snapshotTree(scene.destination)
        #expect(tree["a"] == "file 644 one")
        #expect(tree["h"] == "file 644 two")
        #expect(tree["b"] == "file 644 second")
        #expect(tree["d"] == "file 644 a file replaces an empty directory")
    }

    @Test func anEntryReplacingANonEmptyDirectoryIsRejected() async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.file("d/x", "inside")
        tar.symlink("d", to: "elsewhere")
        tar.end()
        #expect(try await scene.expectRejected(tar)?.rule == .replacesDirectory)
    }

    @Test func entriesUnderARegularFileAreRejected() async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.file("f", "a file")
        tar.file("f/x", "under it")
        tar.end()
        #expect(try await scene.expectRejected(tar)?.rule == .parentNotDirectory)
    }

    @Test func deepAndLongNamesAreExtracted() async throws {
        let scene = try RestoreScene()
        let deep = (1...150).map { "d\($0)" }.joined(separator: "/") + "/leaf"
        let long = String(repeating: "long-name-", count: 25) + "end"   // 253 bytes
        var tar = TarBuilder()
        tar.gnuLong(deep)
        tar.file(deep, "deep")
        tar.pax([("path", long)])
        tar.file("ignored-ustar-name", "long")
        tar.end()
        try scene.write(tar)
        let report = try await scene.restore()
        #expect(report.entries == 2)
        #expect(readText(scene.destination + "/" + deep) == "deep")
        #expect(readText(scene.destination + "/" + long) == "long")
        #expect(FileManager.default.fileExists(atPath: scene.destination + "/ignored-ustar-name") == false)
    }

    /// A name is shown so that two different names never read the same: bytes that are not
    /// UTF-8 one by one as `\xFF`, control characters and quotes escaped, in time linear in
    /// its length.
    @Test func namesThatAreNotUTF8AreShownByteByByte() {
        #expect(ArchiveError.displayName(Array("bad".utf8) + [0xFF, 0xFE] + Array("name".utf8)) == #"bad\xFF\xFEname"#)
        #expect(ArchiveError.displayName(Array("tab\there \"é\"".utf8)) == #"tab\there \"é\""#)
        #expect(ArchiveError.displayName(Array("a".utf8) + [0xE2, 0x82] + Array("b".utf8))
                != ArchiveError.displayName(Array("a".utf8) + [0xE2] + Array("b".utf8)))
        #expect(ArchiveError.displayName([UInt8](repeating: 0xFF, count: 1 << 20)).count == 4 << 20)
        // C1 controls (CSI, NEL) act on a terminal as ESC does: escaped as C0 ones are, never raw.
        #expect(ArchiveError.displayName(Array("csi\u{9B}31m nel\u{85} esc\u{1B}".utf8)) == #"csi\u{9B}31m nel\u{85} esc\u{1B}"#)
    }
}
