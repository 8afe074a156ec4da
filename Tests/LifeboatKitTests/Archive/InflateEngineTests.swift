import Foundation
import Testing
@testable import LifeboatKit

/// ISA-L and zlib must be interchangeable: the same trees and bytes from the same archives, and
/// the same failures for damaged ones. Where ISA-L is absent these tests are skipped, saying so.
@Suite struct InflateEngineTests {
    static let isalNote: Comment = "ISA-L is unavailable here (\(InflateEngine.isalUnavailableReason ?? "")); install libisal2 (Debian: apt-get install libisal2) to run the ISA-L tests"

    /// Archives (name, gzip bytes) that exercise the inflate paths: stored, fixed and dynamic
    /// blocks, data spanning many buffers, multi-member streams split anywhere, and optional
    /// gzip header fields.
    static func archives() async throws -> [(String, [UInt8])] {
        let dir = TestDirectory()
        var result: [(String, [UInt8])] = []
        func gzip(_ bytes: [UInt8], _ arguments: String = "-n") throws -> [UInt8] {
            let path = dir.sub("t\(result.count).gz")
            try Data(bytes).write(to: URL(fileURLWithPath: path + ".raw"))
            #expect(try run(["sh", "-c", "gzip \(arguments) -c \"$0\" > \"$1\"", path + ".raw", path]) == 0)
            return try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        }
        let plain = mixedTar()
        result.append(("mixed", try gzip(plain)))
        result.append(("mixed-level9", try gzip(plain, "-n -9")))
        result.append(("mixed-level1", try gzip(plain, "-n -1")))
        // Multi-member, split inside headers and data, with an empty member in between.
        for cuts in [[512 * 3 + 100], [1, 700, 300 << 10, plain.count - 1]] {
            var members: [UInt8] = []
            var start = 0
            for cut in cuts + [plain.count] {
                members += try gzip(Array(plain[start..<cut]))
                if start == 0 { members += try gzip([]) }
                start = cut
            }
            result.append(("members-\(cuts.count + 1)", members))
        }
        // The original name in the header (gzip without -n), and FEXTRA + FCOMMENT + FHCRC.
        result.append(("fname", try gzip(plain, "-N")))
        result.append(("header-fields", withHeaderFields(try gzip(plain))))
        // The fleet generator's archives.
        let store = dir.sub("store")
        let generator = FleetGenerator(sites: 2, products: ["contacts", "jira"], archiveSize: 48 << 10,
                                       now: Date(timeIntervalSince1970: 1_790_000_000))
        _ = try await generator.generate(into: store, parallelism: 1)
        for relative in try FileManager.default.subpathsOfDirectory(atPath: store).sorted() where relative.hasSuffix(".tar.gz") {
            result.append(("fleet/" + relative, try [UInt8](Data(contentsOf: URL(fileURLWithPath: store + "/" + relative)))))
        }
        #expect(result.filter { $0.0.hasPrefix("fleet/") }.count == 4)
        return result
    }

    /// Many files, compressible and not (random bytes become stored blocks), one spanning several
    /// of the reader's 256 KiB buffers.
    static func mixedTar() -> [UInt8] {
        var rng = SystemRandomNumberGenerator()
        var tar = TarBuilder()
        tar.directory("d/")
        for i in 0..<60 { tar.file("d/f\(i).txt", String(repeating: "record \(i) ", count: i * 7)) }
        tar.entry(Array("random.bin".utf8), data: (0..<(40 << 10)).map { _ in UInt8.random(in: 0...255, using: &rng) })
        tar.entry(Array("big.bin".utf8), data: (0..<(300 << 10)).map { UInt8(truncatingIfNeeded: $0 / 7 &* 31 &+ $0 >> 12) })
        tar.symlink("link", to: "d/f1.txt")
        tar.end()
        return tar.bytes
    }

    /// A gzip member with FEXTRA, FCOMMENT and FHCRC added to its 10-byte header.
    static func withHeaderFields(_ member: [UInt8]) -> [UInt8] {
        var header = Array(member[0..<10])
        header[3] = 0x02 | 0x04 | 0x10  // FHCRC, FEXTRA, FCOMMENT
        header += [6, 0, UInt8(ascii: "L"), UInt8(ascii: "b"), 2, 0, 1, 2]  // XLEN 6: one subfield
        header += Array("a comment".utf8) + [0]
        let crc = crc32(header)
        header += [UInt8(crc & 0xFF), UInt8((crc >> 8) & 0xFF)]
        return header + member[10...]
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    /// Extracts `bytes` with `engine` into a fresh directory; the tree, or the error.
    struct Outcome: Sendable {
        var tree: [String: String]
        var report: ExtractReport?
        var error: ArchiveError?
        var unexpected: String?
    }

    static func extract(_ bytes: [UInt8], engine: InflateEngine, in dir: TestDirectory, _ name: String) -> Outcome {
        let archive = dir.sub("\(name.replacingOccurrences(of: "/", with: "_")).\(engine).tar.gz")
        let into = archive + ".out"
        try! Data(bytes).write(to: URL(fileURLWithPath: archive))
        try! FileManager.default.createDirectory(atPath: into, withIntermediateDirectories: false)
        var options = ExtractOptions(checksum: .off, alwaysComputeSHA256: true)
        options.inflate = engine
        do {
            let report = try extractArchive(at: archive, into: into, options: options)
            return Outcome(tree: snapshotTree(into), report: report)
        } catch let error as ArchiveError {
            return Outcome(tree: snapshotTree(into), error: error)
        } catch {
            return Outcome(tree: [:], unexpected: "\(error)")
        }
    }

    /// Under CI, where `.ci/run` installs ISA-L, its absence is a failure rather than a skip.
    static let runISAL = InflateEngine.isalAvailable || ProcessInfo.processInfo.environment["CI"] == "true"

    @Test func zlibIsAlwaysAvailableAndTheDefaultWithoutISAL() {
        #expect((try? ZlibInflater()) != nil)
        if !InflateEngine.isalAvailable {
            #expect(InflateEngine.current == .zlib)
            #expect(throws: ArchiveError.self) { try IsalInflater() }
        }
        #expect(ExtractOptions().inflate == InflateEngine.current)
    }

    @Test(.enabled(if: runISAL, isalNote))
    func isalAndZlibProduceIdenticalTrees() async throws {
        try #require(InflateEngine.isalAvailable, "\(Self.isalNote)")
        let dir = TestDirectory()
        let archives = try await Self.archives()
        // Extraction blocks: run it off Swift concurrency's pool (2 threads on 2 cores), which
        // the other tests running in parallel need.
        let results = try await runBlocking(flag: CancellationFlag()) {
            archives.map { name, bytes in
                (name, Self.extract(bytes, engine: .zlib, in: dir, name), Self.extract(bytes, engine: .isal, in: dir, name))
            }
        }
        for (name, zlib, isal) in results {
            #expect(zlib.unexpected == nil && isal.unexpected == nil, "\(name): \(zlib.unexpected ?? "") \(isal.unexpected ?? "")")
            #expect(zlib.error == nil, "\(name): zlib failed: \(String(describing: zlib.error))")
            #expect(isal.error == nil, "\(name): ISA-L failed: \(String(describing: isal.error))")
            #expect(zlib.report != nil && zlib.report == isal.report, "\(name): reports differ")
            #expect(!zlib.tree.isEmpty && zlib.tree == isal.tree, "\(name): trees differ")
        }
    }

    @Test(.enabled(if: runISAL, isalNote))
    func damagedInputsFailTheSameWay() async throws {
        try #require(InflateEngine.isalAvailable, "\(Self.isalNote)")
        let dir = TestDirectory()
        var tar = TarBuilder()
        for i in 0..<40 { tar.file("f\(i)", String(repeating: "line \(i) of the file\n", count: 50 + i * 20)) }
        tar.end()
        func gzipped(_ bytes: [UInt8], _ name: String) throws -> [UInt8] {
            let path = dir.sub(name)
            try writeGzip(bytes, to: path)
            return try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        }
        let small = try gzipped(tar.bytes, "small.gz")
        let good = try gzipped(Self.mixedTar(), "mixed.gz")  // spans several reads
        var cases: [(String, [UInt8])] = []
        // The cheap cases on both; the mixed archive (slow in debug builds) gets the ones where a
        // position past the first buffer matters.
        for (offset, label) in [(good.count / 2, "middle"), (good.count - 7, "CRC-32")] {
            var flipped = good
            flipped[offset] ^= 0x55
            cases.append(("mixed: \(label) flipped", flipped))
        }
        cases.append(("mixed: cut in the middle", Array(good[..<(good.count / 2)])))
        cases.append(("mixed: second member damaged", good + Array(small.prefix(20)) + [0xFF, 0xFF, 0xFF]))
        for (label, archive) in [("small", small)] {
            for offset in [archive.count / 3, archive.count / 2, archive.count - 12] {
                var flipped = archive
                flipped[offset] ^= 0x55
                cases.append(("\(label): byte \(offset) flipped", flipped))
            }
            var crc = archive
            crc[crc.count - 6] ^= 0x01
            cases.append(("\(label): CRC-32 wrong", crc))
            var isize = archive
            isize[isize.count - 3] ^= 0x01
            cases.append(("\(label): ISIZE wrong", isize))
            for cut in [archive.count - 1, archive.count - 5, archive.count - 9, archive.count / 2, 11, 5] {
                cases.append(("\(label): cut at \(cut)", Array(archive[..<cut])))
            }
            cases.append(("\(label): trailing garbage", archive + Array("garbage".utf8)))
            cases.append(("\(label): trailing 0x1f garbage", archive + [0x1F, 0x8B, 0x08, 0, 1, 2]))
            cases.append(("\(label): trailing lone 0x1f", archive + [0x1F]))
            cases.append(("\(label): trailing zeros then garbage", archive + [UInt8](repeating: 0, count: 16) + [0x01]))
            var magic = archive
            magic[1] = 0x8C
            cases.append(("\(label): bad magic", magic))
            var method = archive
            method[2] = 7
            cases.append(("\(label): unknown method", method))
            var flags = archive
            flags[3] = 0xE0
            cases.append(("\(label): reserved flags", flags))
            var headerCRC = Self.withHeaderFields(archive)
            headerCRC[headerCRC.count - archive.count + 10 - 1] ^= 0xFF
            cases.append(("\(label): header CRC wrong", headerCRC))
            cases.append(("\(label): second member damaged", archive + Array(small.prefix(20)) + [0xFF, 0xFF, 0xFF]))
        }
        cases.append(("empty", []))
        let damaged = cases
        let results = try await runBlocking(flag: CancellationFlag()) {
            damaged.enumerated().map { i, item in
                (item.0, Self.extract(item.1, engine: .zlib, in: dir, "case\(i)"), Self.extract(item.1, engine: .isal, in: dir, "case\(i)"))
            }
        }
        for (name, zlib, isal) in results {
            #expect(zlib.error != nil, "\(name): zlib accepted it")
            #expect(zlib.error?.code == isal.error?.code,
                    "\(name): zlib \(String(describing: zlib.error)) vs ISA-L \(String(describing: isal.error))")
        }
    }
}
