import Foundation
import LifeboatTestSupport
import Testing
@testable import LifeboatKit

/// The rule of issue #15: an archive that GNU tar extracts safely is extracted by Lifeboat to the
/// same tree; what Lifeboat rejects, it rejects because it is unsafe or damaged, never because it
/// is old or unusual. Each archive of the corpus (see `TarCorpus.swift`) is extracted by GNU tar,
/// the reference, and by Lifeboat's extractor through staging and commit, as `lifeboat snapshot
/// extract` and every job do; the trees must match: `diff -r --no-dereference`, then types,
/// modes as Lifeboat's rules leave them, sizes, times to the nanosecond, link targets and hard
/// links.
@Suite(.ownThread) struct TarCorpusTests {
    @Test(.enabled(if: CorpusWriter.gnuTar.enabledHere, CorpusWriter.gnuTar.missingMessage), arguments: WriterCase.cases(for: .gnuTar))
    func gnuTar(_ archive: WriterCase) async throws { try await Self.check(archive) }

    @Test(.enabled(if: CorpusWriter.bsdtar.enabledHere, CorpusWriter.bsdtar.missingMessage), arguments: WriterCase.cases(for: .bsdtar))
    func bsdtar(_ archive: WriterCase) async throws { try await Self.check(archive) }

    @Test(.enabled(if: CorpusWriter.busybox.enabledHere, CorpusWriter.busybox.missingMessage), arguments: WriterCase.cases(for: .busybox))
    func busybox(_ archive: WriterCase) async throws { try await Self.check(archive) }

    @Test(.enabled(if: CorpusWriter.python.enabledHere, CorpusWriter.python.missingMessage), arguments: WriterCase.cases(for: .python))
    func pythonTarfile(_ archive: WriterCase) async throws { try await Self.check(archive) }

    @Test(.enabled(if: CorpusWriter.perl.enabledHere, CorpusWriter.perl.missingMessage), arguments: WriterCase.cases(for: .perl))
    func perlArchiveTar(_ archive: WriterCase) async throws { try await Self.check(archive) }

    @Test(.enabled(if: CorpusWriter.gnuTar.enabledHere, CorpusWriter.gnuTar.missingMessage), arguments: HandMadeArchive.all)
    func handMade(_ archive: HandMadeArchive) async throws {
        let scene = try RestoreScene()
        let bytes = archive.build()
        switch archive.expectation {
        case .sameAsGNUTar:
            let tar = scene.dir.sub("archive.tar")
            try Data(bytes).write(to: URL(fileURLWithPath: tar))
            try await Self.compareWithGNUTar(tar, scene: scene)
        case .rejected(let code, let rule):
            try writeGzip(bytes, to: scene.archive)
            let error = try await scene.expectRejectedArchive(ExtractOptions(checksum: .off))
            #expect(error?.code == code, "\(String(describing: error))")
            #expect(error?.rule == rule, "\(String(describing: error))")
        }
    }

    @Test func theCorpusHasAtLeastSixtyArchivesFromFiveWriters() {
        let writerCases = CorpusWriter.allCases.flatMap { WriterCase.cases(for: $0) }
        let writers = Set(writerCases.map(\.writer)).union([.handMade])
        #expect(writerCases.count + HandMadeArchive.all.count >= 60)
        #expect(writers.count >= 5)
        #expect(Set(writerCases.map(\.tree)) == Set(CorpusTree.allCases), "a tree no writer archives")
    }

    /// Writes the case's archive and compares.
    static func check(_ archive: WriterCase) async throws {
        try #require(archive.writer.isAvailable, archive.writer.missingMessage)
        let scene = try RestoreScene()
        let source = scene.dir.sub("source")
        try archive.tree.build(at: source)
        let tar = scene.dir.sub("archive.tar")
        let written = try archive.write(source: source, archive: tar)
        try #require(written.status == 0, "\(archive.testDescription) failed: \(written.output)")
        let report = try await compareWithGNUTar(tar, scene: scene)
        #expect(report.entries > 0)
        let restored = TreeManifest.directoryTimes(scene.destination)
        for (path, time) in TreeManifest.directoryTimes(source) {
            #expect(restored[path] == time, "the time of directory \(path)")
        }
    }

    /// Extracts `tar` with GNU tar and, gzipped, with Lifeboat, and compares the trees.
    @discardableResult
    static func compareWithGNUTar(_ tar: String, scene: RestoreScene) async throws -> ExtractReport {
        try #require(CorpusWriter.gnuTar.isAvailable, CorpusWriter.gnuTar.missingMessage)
        let reference = scene.dir.sub("gnu-tar")
        try FileManager.default.createDirectory(atPath: reference, withIntermediateDirectories: false)
        let gnu = try runProcess("/usr/bin/env", ["tar", "-xf", tar, "-C", reference, "--no-same-owner"])
        try #require(gnu.status == 0, "GNU tar does not extract it: \(gnu.output)")
        #expect(try runProcess("/bin/sh", ["-c", "gzip -n -c \"$0\" > \"$1\"", tar, scene.archive]).status == 0)

        let report = try await scene.restore(ExtractOptions(checksum: .off), quarantine: nil)
        #expect(report.skipped.isEmpty, "\(report.skipped)")
        let diff = try runProcess("/usr/bin/env", ["diff", "-r", "--no-dereference", reference, scene.destination])
        #expect(diff.status == 0, "\(diff.output)")
        let differences = TreeManifest(scene.destination).differences(from: TreeManifest(reference))
        #expect(differences.isEmpty, "\(differences.joined(separator: "\n"))")
        return report
    }
}
