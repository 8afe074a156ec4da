import Foundation
import Testing
@testable import LifeboatKit

/// gzip and tar structure: damage, truncation, limits, pax and GNU extensions.
@Suite struct ArchiveFormatTests {
    static func simpleTar(_ files: Int = 3) -> TarBuilder {
        var tar = TarBuilder()
        for i in 0..<files { tar.file("f\(i)", String(repeating: "content \(i) ", count: 200)) }
        tar.end()
        return tar
    }

    @Test func corruptGzipIsRejected() async throws {
        let scene = try RestoreScene()
        try scene.write(Self.simpleTar())
        var data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: scene.archive)))
        data[data.count / 2] ^= 0x55
        try Data(data).write(to: URL(fileURLWithPath: scene.archive))
        let error = try await scene.expectRejectedArchive()
        #expect(error?.code == .corrupt)
        #expect(error?.isTransient == false)
    }

    @Test func truncatedGzipIsRejected() async throws {
        let scene = try RestoreScene()
        try scene.write(Self.simpleTar())
        let data = try Data(contentsOf: URL(fileURLWithPath: scene.archive))
        for cut in [data.count - 4, data.count / 2, 10] {
            try data.prefix(cut).write(to: URL(fileURLWithPath: scene.archive))
            #expect(try await scene.expectRejectedArchive()?.code == .truncated)
        }
        try Data().write(to: URL(fileURLWithPath: scene.archive))
        #expect(try await scene.expectRejectedArchive()?.code == .truncated)
    }

    @Test func trailingGarbageIsRejected() async throws {
        let scene = try RestoreScene()
        try scene.write(Self.simpleTar())
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: scene.archive))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("garbage".utf8))
        try handle.close()
        #expect(try await scene.expectRejectedArchive()?.code == .corrupt)
    }

    /// Zeros to the end of the file are padding (a tape's or dd's blocks), which gzip and so
    /// `tar -xzf` ignore: so does Lifeboat, over several reads. Anything after them is garbage.
    @Test func zeroPaddingAfterTheGzipStreamIsIgnored() async throws {
        let scene = try RestoreScene()
        try scene.write(Self.simpleTar(3))
        let archive = try Data(contentsOf: URL(fileURLWithPath: scene.archive))
        try (archive + Data(count: 600 << 10)).write(to: URL(fileURLWithPath: scene.archive))
        let report = try await scene.restore()
        #expect(report.entries == 3 && report.archiveBytes == Int64(archive.count + (600 << 10)))
        try FileManager.default.removeItem(atPath: scene.destination)
        for tail in [Data(count: 600 << 10) + Data("x".utf8), Data(count: 7) + Data([0x1F, 0x8B])] {
            try (archive + tail).write(to: URL(fileURLWithPath: scene.archive))
            let error = try await scene.expectRejectedArchive()
            #expect(error?.code == .corrupt && error?.description.contains("trailing garbage after zero padding") == true, "\(String(describing: error))")
        }
    }

    @Test func multiMemberGzipIsOneStream() async throws {
        let scene = try RestoreScene()
        let tar = Self.simpleTar(4).bytes
        let cut = 512 * 3 + 100   // members split anywhere, even inside a header
        try writeGzip(Array(tar[..<cut]), to: scene.dir.sub("m1.gz"))
        try writeGzip(Array(tar[cut...]), to: scene.dir.sub("m2.gz"))
        let joined = try Data(contentsOf: URL(fileURLWithPath: scene.dir.sub("m1.gz")))
            + Data(contentsOf: URL(fileURLWithPath: scene.dir.sub("m2.gz")))
        try joined.write(to: URL(fileURLWithPath: scene.archive))
        let report = try await scene.restore()
        #expect(report.entries == 4)
        #expect(readText(scene.destination + "/f3") == String(repeating: "content 3 ", count: 200))
    }

    @Test func badHeaderChecksumIsRejected() async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.file("ok", "x")
        tar.entry(Array("bad".utf8), data: Array("y".utf8), badChecksum: true)
        tar.end()
        let error = try await scene.expectRejected(tar)
        #expect(error?.code == .corrupt)
        #expect(error?.detail.contains("checksum") == true)
    }

    @Test func missingEndOfArchiveIsTruncation() async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.file("a", "x")
        #expect(try await scene.expectRejected(tar)?.code == .truncated)
    }

    /// GNU tar ends at a single zero block ("a lone zero block", a warning): at the very end
    /// nothing is lost, so it is accepted; followed by more data, the rest would be silently left
    /// out, so the archive is rejected as damaged.
    @Test func aLoneZeroBlockEndsTheArchiveOnlyAtTheEnd() async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.file("a", "x")
        tar.bytes += [UInt8](repeating: 0, count: 512)
        try scene.write(tar)
        #expect(try await scene.restore().entries == 1)
        #expect(readText(scene.destination + "/a") == "x")

        let other = try RestoreScene()
        tar.file("b", "after the lone zero block")
        tar.end()
        let error = try await other.expectRejected(tar)
        #expect(error?.code == .corrupt)
        #expect(error?.detail.contains("lone zero block") == true)
    }

    @Test func entryDataCutShortIsTruncation() async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.entry(Array("a".utf8), data: Array("short".utf8), size: 100_000)
        #expect(try await scene.expectRejected(tar)?.code == .truncated)
    }

    @Test func paxPathAndSizeOverrideTheHeader() async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.pax([("path", "real/name.txt"), ("size", "5"), ("mtime", "1600000000.5")])
        tar.entry(Array("header-name".utf8), data: Array("hello".utf8), size: 0o777)
        tar.pax([("linkpath", "real/name.txt")])
        tar.symlink("link", to: "ignored")
        tar.end()
        try scene.write(tar)
        let report = try await scene.restore()
        #expect(report.entries == 2)
        let tree = snapshotTree(scene.destination)
        #expect(tree["real/name.txt"] == "file 644 hello")
        #expect(tree["link"] == "link -> real/name.txt")
        var st = stat()
        #expect(lstat(scene.destination + "/real/name.txt", &st) == 0)
        #expect(st.st_mtim.tv_sec == 1_600_000_000 && st.st_mtim.tv_nsec == 500_000_000)
    }

    @Test func paxSizeDesyncIsCaught() async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.pax([("size", "600")])   // claims more data than follows: the next "header" read is b's data
        tar.file("a", "tiny")
        tar.file("b", "next")
        tar.end()
        let error = try await scene.expectRejected(tar)
        #expect(error?.code == .corrupt || error?.code == .truncated)
    }

    /// Long attributes make pax headers of megabytes; they count against max_bytes (and are never
    /// held in memory whole), so the limit to raise is that one.
    @Test func largePaxHeadersCountAgainstMaxBytes() async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.pax([("SCHILY.xattr.user.big", String(repeating: "x", count: 3 << 20)), ("path", "real-name")])
        tar.file("a", "x")
        tar.end()
        try scene.write(tar)
        #expect(try await scene.restore().entries == 1)
        #expect(readText(scene.destination + "/real-name") == "x")

        let small = try RestoreScene()
        let error = try await small.expectRejected(tar, ExtractOptions(maxBytes: 2 << 20))
        #expect(error?.code == .limitExceeded)
        #expect(error?.description.contains("pax extended header of 3.0 MiB") == true, "\(String(describing: error))")
        #expect(error?.description.contains("max_bytes") == true)
        #expect(error?.description.contains("raise limits.max_bytes") == true)
    }

    @Test(arguments: [("size", "9999999999999999999"), ("mtime", "9999999999999999999"), ("mtime", "12abc"), ("mtime", "1e9"),
                      ("mtime", "-9223372036854775808"), ("mtime", "1.5.2")])
    func paxNumbersThatAreNotNumbersAreDamageNotACrash(key: String, value: String) async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.pax([(key, value)])
        tar.file("a", "x")
        tar.end()
        // Not passed over for the header's field either (an mtime was, while a size was refused).
        #expect(try await scene.expectRejected(tar)?.code == .corrupt)
        #expect { try verifyArchive(at: scene.archive, options: ExtractOptions(checksum: .off)) } throws: { error in
            (error as? ArchiveError)?.code == .corrupt
        }
    }

    @Test func malformedPaxRecordIsRejected() async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.entry(Array("pax".utf8), type: "x", data: Array("99 path=x\n".utf8))
        tar.file("a", "x")
        tar.end()
        #expect(try await scene.expectRejected(tar)?.code == .corrupt)
    }

    @Test func decompressionBombIsStoppedByTheByteLimit() async throws {
        let scene = try RestoreScene()
        // 64 MiB of zeros compress to ~64 KiB; the limit is 1 MiB.
        var tar = TarBuilder()
        tar.entry(Array("bomb".utf8), data: [UInt8](repeating: 0, count: 64 << 20))
        tar.end()
        let error = try await scene.expectRejected(tar, ExtractOptions(maxBytes: 1 << 20))
        #expect(error?.code == .limitExceeded)
        #expect(error?.entry == "bomb")

        // A header declaring far more than exists is stopped before any data is read.
        var liar = TarBuilder()
        liar.entry(Array("liar".utf8), data: [], size: 0o77777777777)
        #expect(try await scene.expectRejected(liar, ExtractOptions(maxBytes: 1 << 30))?.code == .limitExceeded)
    }

    @Test func base256SizesAreRead() async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.entry(Array("b256".utf8), data: Array("12345".utf8))
        // Rewrite the size field as base-256 (0x80 marker, big-endian), fixing the checksum.
        var header = Array(tar.bytes[0..<512])
        for i in 124..<136 { header[i] = 0 }
        header[124] = 0x80
        header[135] = 5
        for i in 148..<156 { header[i] = 0x20 }
        let sum = header.reduce(0) { $0 + Int($1) }
        for (i, b) in Array(String(format: "%06o", sum).utf8).enumerated() { header[148 + i] = b }
        header[154] = 0
        tar.bytes.replaceSubrange(0..<512, with: header)
        tar.end()
        try scene.write(tar)
        try await scene.restore()
        #expect(readText(scene.destination + "/b256") == "12345")
    }

    @Test func entryLimitIsEnforced() async throws {
        let scene = try RestoreScene()
        let error = try await scene.expectRejected(Self.simpleTar(5), ExtractOptions(maxEntries: 4))
        #expect(error?.code == .limitExceeded)
        #expect(error?.entry == "f4")
    }

    @Test func verifyReadsEverythingAndWritesNothing() throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        tar.file("a", "xyz")
        tar.hardLink("h", to: "a")
        tar.symlink("l", to: "a")
        tar.end()
        try scene.write(tar)
        let before = snapshotTree(scene.dir.path)
        let report = try verifyArchive(at: scene.archive, options: ExtractOptions(alwaysComputeSHA256: true))
        #expect(report.entries == 3)
        #expect(report.bytes == 3)
        #expect(report.sha256?.count == 64)
        #expect(snapshotTree(scene.dir.path) == before)

        var evil = TarBuilder()
        evil.symlink("l", to: "../../etc")
        evil.end()
        try scene.write(evil)
        #expect(throws: ArchiveError.self) { try verifyArchive(at: scene.archive) }
    }

    @Test func cancellationStopsExtractionAndRemovesStaging() async throws {
        let scene = try RestoreScene()
        try scene.write(Self.simpleTar(50))
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await scene.restore()
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect((try? FileManager.default.contentsOfDirectory(atPath: scene.restoreParent)) == [])
    }
}
