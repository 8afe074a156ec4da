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
        var options = try extraction.options(hashAlways: false)
        // Ctrl-C or a TERM stops the extraction between chunks; its staging directory is then
        // removed like any failed extraction's, and nothing is left beside DIR.
        let interrupted = CancellationFlag()
        options.cancellation = interrupted
        let signals = [SIGINT, SIGTERM].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { interrupted.cancel() }
            source.resume()
            return source
        }
        defer { signals.forEach { $0.cancel() } }
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
        Self.mentionLeftovers(beside: parent)
        let report: ExtractReport
        do {
            report = try await withStagingDirectory(for: into, name: Self.stagingName) { staging in
                let report = try await extractArchive(from: source, into: staging.path, options: options)
                _ = try commitStaging(staging.makeDurable(), quarantineName: nil)
                return report
            }
        } catch where interrupted.isCancelled {
            throw CLIFailure(code: .failed, message: "interrupted: nothing was extracted into \(into), and the partial extraction was removed")
        } catch let held as DestinationHeldElsewhere {
            throw CLIFailure(code: .failed, message: "error: \(held.description); let it finish, or extract somewhere else")
        }
        if json {
            try printJSON(report)
        } else {
            ExtractCLIOptions.printHuman(report, verb: "extracted into \(into)", archive: archive)
        }
    }

    static let stagingName = "extract"

    /// The staging directories an extract killed outright (kill -9, a crash) left beside DIR's
    /// siblings: named, with their size, for the operator to remove (another extract may be
    /// using one, so they are not removed here).
    static func mentionLeftovers(beside parent: String) {
        let area = (parent == "/" ? "" : parent) + "/" + StagingDirectory.areaName
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: area) else { return }
        let leftovers = names.filter { $0.hasPrefix(stagingName + ".") }.sorted()
        // While a process works beside DIR (an extract, a restore), what is staged there may be
        // its live work: nothing is said that would have someone remove it.
        guard !leftovers.isEmpty, !StagingDirectory.areaInUse(area) else { return }
        let bytes = leftovers.reduce(Int64(0)) { $0 + TreeSize.bytes(area + "/" + $1) }
        printError("note: \(area) holds \(leftovers.count) partial extraction(s) of \(ByteSize.format(bytes)) left by extracts that were killed "
                   + "(\(leftovers.prefix(3).joined(separator: ", "))\(leftovers.count > 3 ? ", …" : "")); unless another extract is running, remove them: "
                   + "rm -rf \(area)/\(stagingName).*")
    }
}
