import Foundation
import LifeboatTestSupport
import Testing
@testable import LifeboatKit

/// Archives written by GNU tar come back identical.
@Suite(.ownThread) struct GNUTarRoundTripTests {
    static func makeSource(_ root: String) throws {
        let fm = FileManager.default
        let long = String(repeating: "a-rather-long-directory-name-", count: 5)
        try fm.createDirectory(atPath: root + "/\(long)/sub", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/empty", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/ünïcödé ✓", withIntermediateDirectories: true)
        try Data("日本語のファイル".utf8).write(to: URL(fileURLWithPath: root + "/ünïcödé ✓/名前.txt"))
        try Data(String(repeating: "x", count: 100_000).utf8).write(to: URL(fileURLWithPath: root + "/\(long)/sub/\(long).dat"))
        try Data("exec".utf8).write(to: URL(fileURLWithPath: root + "/script.sh"))
        chmod(root + "/script.sh", 0o750)
        try Data("private".utf8).write(to: URL(fileURLWithPath: root + "/private"))
        chmod(root + "/private", 0o600)
        try Data().write(to: URL(fileURLWithPath: root + "/zero"))
        var random = [UInt8](repeating: 0, count: 300_000)
        for i in random.indices { random[i] = UInt8.random(in: 0...255) }
        try Data(random).write(to: URL(fileURLWithPath: root + "/random.bin"))
        try fm.createSymbolicLink(atPath: root + "/link", withDestinationPath: "script.sh")
        try fm.createSymbolicLink(atPath: root + "/\(long)/sub/up", withDestinationPath: "../../empty")
        try fm.linkItem(atPath: root + "/private", toPath: root + "/private-hardlink")
        // A hard link to a symbolic link (as `cp -al` and rsnapshot trees have), in another directory.
        #expect(linkat(AT_FDCWD, root + "/link", AT_FDCWD, root + "/empty/../ünïcödé ✓/link-hardlink", 0) == 0)
        chmod(root + "/empty", 0o700)
    }

    @Test(arguments: ["pax", "gnu"])
    func gnuTarArchivesComeBackIdentical(format: String) async throws {
        let scene = try RestoreScene()
        let source = scene.dir.sub("src")
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        try Self.makeSource(source)
        #expect(try run(["tar", "--format=\(format)", "-czf", scene.archive, "-C", source, "."]) == 0)
        let report = try await scene.restore(ExtractOptions(checksum: .off))
        #expect(report.skipped.isEmpty)
        #expect(try run(["diff", "-r", "--no-dereference", source, scene.destination]) == 0)
        var expected = snapshotTree(source)
        expected[""] = "dir 755"   // the root: staging mode, then the archive's "./" (0755 here)
        var got = snapshotTree(scene.destination)
        got[""] = "dir 755"
        #expect(got == expected)
        // Modification times come back too (directories included).
        for path in ["script.sh", "empty", "ünïcödé ✓/名前.txt"] {
            var a = stat(), b = stat()
            lstat(source + "/" + path, &a)
            lstat(scene.destination + "/" + path, &b)
            #expect(a.st_mtim.tv_sec == b.st_mtim.tv_sec, "mtime of \(path)")
        }
        for (first, second) in [("private", "private-hardlink"), ("link", "ünïcödé ✓/link-hardlink")] {
            var a = stat(), b = stat()
            lstat(scene.destination + "/" + first, &a)
            lstat(scene.destination + "/" + second, &b)
            #expect(a.st_ino == b.st_ino && a.st_nlink == 2, "\(first) and \(second) are one file")
        }
    }

    /// Hard links between many directories (more than the writer keeps open), over names taken
    /// before, come back as one file per group.
    @Test func hardLinksAcrossManyDirectoriesAreOneFile() async throws {
        let scene = try RestoreScene()
        let source = scene.dir.sub("src")
        for n in 0..<60 {
            try FileManager.default.createDirectory(atPath: source + "/d\(n)", withIntermediateDirectories: true)
            try Data("file \(n)".utf8).write(to: URL(fileURLWithPath: source + "/d\(n)/f"))
        }
        for n in 0..<60 {
            try FileManager.default.createDirectory(atPath: source + "/l\(n)/sub", withIntermediateDirectories: true)
            #expect(link(source + "/d\(n)/f", source + "/l\(n)/sub/a") == 0)
            #expect(link(source + "/d\((n + 7) % 60)/f", source + "/l\(n)/b") == 0)
            #expect(link(source + "/d\(n)/f", source + "/d\(n)/g") == 0)
        }
        #expect(try run(["tar", "-czf", scene.archive, "-C", source, "."]) == 0)
        // The same names once more, appended: each link replaces the link of the first pass.
        let again = scene.dir.sub("again.tar")
        #expect(try run(["tar", "-cf", again, "-C", source, "."]) == 0)
        #expect(try run(["sh", "-c", "gzip -dc \(scene.archive) | head -c -1024 > \(scene.dir.sub("both.tar")) && cat \(again) >> \(scene.dir.sub("both.tar")) && gzip -c \(scene.dir.sub("both.tar")) > \(scene.archive)"]) == 0)
        let report = try await scene.restore(ExtractOptions(checksum: .off))
        #expect(report.skipped.isEmpty)
        #expect(try run(["diff", "-r", source, scene.destination]) == 0)
        for n in 0..<60 {
            var a = stat(), b = stat(), c = stat(), d = stat()
            lstat(scene.destination + "/d\(n)/f", &a)
            lstat(scene.destination + "/l\(n)/sub/a", &b)
            lstat(scene.destination + "/d\(n)/g", &c)
            lstat(scene.destination + "/l\((n + 53) % 60)/b", &d)
            #expect(a.st_ino == b.st_ino && a.st_ino == c.st_ino && a.st_ino == d.st_ino && a.st_nlink == 4, "d\(n)/f")
        }
    }

    /// A hard link to a symbolic link is a link at its own place: one whose target would leave
    /// the tree from there is refused like any other.
    @Test func aHardLinkToASymlinkIsCheckedWhereItIs() async throws {
        let scene = try RestoreScene()
        let source = scene.dir.sub("src")
        try FileManager.default.createDirectory(atPath: source + "/d/e", withIntermediateDirectories: true)
        try Data("f".utf8).write(to: URL(fileURLWithPath: source + "/f"))
        try FileManager.default.createSymbolicLink(atPath: source + "/d/e/x", withDestinationPath: "../../f")
        #expect(linkat(AT_FDCWD, source + "/d/e/x", AT_FDCWD, source + "/y", 0) == 0)
        #expect(try run(["tar", "-czf", scene.archive, "-C", source, "."]) == 0)
        await #expect { _ = try await scene.restore(ExtractOptions(checksum: .off)) } throws: { error in
            (error as? ArchiveError)?.rule == .linkEscapesRoot && (error as? ArchiveError)?.entry == "./y"
        }
    }
}
