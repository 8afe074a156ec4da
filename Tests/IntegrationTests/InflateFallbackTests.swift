import Foundation
import LifeboatTestSupport
import Testing

/// Without ISA-L (simulated by pointing the loader at a library that does not exist) the CLI
/// falls back to zlib; asking for ISA-L then fails with a message that says what to install.
@Suite(.ownThread) struct InflateFallbackTests {
    @Test func extractFallsBackToZlibWithoutISAL() throws {
        let dir = TempDir()
        let gen = try run(Binaries.lifeboat, ["fleet", "generate", dir.file("store"), "--sites", "1", "--products", "jira",
                                             "--size", "128KiB", "--now", "2026-11-25T10:00:00Z"])
        #expect(gen.status == 0, "\(gen.stderr)")
        let archive = try FileManager.default.subpathsOfDirectory(atPath: dir.file("store")).first { $0.hasSuffix(".tar.gz") }
        let path = dir.file("store/" + (archive ?? "missing"))
        let missing = ["LIFEBOAT_ISAL_LIBRARY": dir.file("no-such-libisal.so.2")]

        let fallback = try run(Binaries.lifeboat, ["snapshot", "extract", path, "--into", dir.file("zlib")], environment: missing)
        #expect(fallback.status == 0, "\(fallback.stderr)")
        let forced = try run(Binaries.lifeboat, ["snapshot", "extract", path, "--into", dir.file("forced")],
                             environment: missing.merging(["LIFEBOAT_INFLATE": "isal"]) { $1 })
        #expect(forced.status != 0)
        #expect(forced.stderr.contains("ISA-L") && forced.stderr.contains("libisal2"), "\(forced.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("forced")))
    }
}
