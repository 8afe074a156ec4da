import ArgumentParser
import Foundation
import LifeboatKit

/// `lifeboat snapshot extract ARCHIVE --into DIR`: the job's extractor, offline. Extracts into a
/// staging directory next to DIR, makes it durable and renames it into place.
struct SnapshotExtractCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "extract",
        abstract: "Safely extract an archive into a new directory (the same extractor restores use).",
        discussion: "DIR must not exist; its parent must. Exit status 2 when the archive is rejected.")

    @Argument(help: "The snapshot archive (.tar.gz): a file or s3://BUCKET/KEY.")
    var archive: String

    @Option(help: "The directory to create.")
    var into: String

    @OptionGroup var extraction: ExtractCLIOptions

    @Flag(help: "Print the report as JSON.")
    var json = false

    func run() async throws {
        let options = try extraction.options(hashAlways: false)
        var st = stat()
        if lstat(into, &st) == 0 {
            throw CLIFailure(code: .rejected, message: "error: \(into) exists; extract creates a new directory")
        }
        // Split as the staging directory will be (Foundation's path functions trap on a
        // one-character relative name).
        let parent: String
        do { parent = try StagingDirectory.split(into).parent } catch {
            throw CLIFailure(code: .rejected, message: "error: \(into) is not a usable destination")
        }
        guard stat(parent, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw CLIFailure(code: .rejected, message: "error: the parent directory of \(into) does not exist")
        }
        let archive = self.archive
        let into = self.into
        let source: any ArchiveSource
        do {
            source = try SnapshotStores().archive(archive)
        } catch let error as S3Error {
            throw CLIFailure(code: error.exitCode, message: "error: \(archive): \(error.description)")
        }
        let report = try await withStagingDirectory(for: into, name: "extract") { staging in
            let report = try await extractArchive(from: source, into: staging.path, options: options)
            _ = try commitStaging(staging.makeDurable(), quarantineName: nil)
            return report
        }
        if json {
            try printJSON(report)
        } else {
            ExtractCLIOptions.printHuman(report, verb: "extracted into \(into)", archive: archive)
        }
    }
}
