import ArgumentParser
import Foundation
import LifeboatKit

extension ChecksumPolicy: ExpressibleByArgument {}
extension UnsafeEntryPolicy: ExpressibleByArgument {}

/// `lifeboat snapshot verify ARCHIVE`: reads a whole archive and checks it, writing nothing.
struct SnapshotVerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check an archive: sidecar checksum, gzip CRCs, tar structure, safety rules. Writes nothing.",
        discussion: "Exit status 2 when the archive is rejected (unsafe, damaged, checksum mismatch).")

    @Argument(help: "The snapshot archive (.tar.gz): a file or s3://BUCKET/KEY.")
    var archive: String

    @OptionGroup var extraction: ExtractCLIOptions

    @Flag(help: "Print the report as JSON.")
    var json = false

    func run() async throws {
        let options = try extraction.options(hashAlways: true)
        let report: ExtractReport
        do {
            report = try await verifyArchive(from: SnapshotStores().archive(archive), options: options)
        } catch let error as S3Error {
            throw CLIFailure(code: error.exitCode, message: "error: \(archive): \(error.description)")
        }
        if json {
            try printJSON(report)
        } else {
            ExtractCLIOptions.printHuman(report, verb: "verified", archive: archive)
        }
    }
}

/// Options shared by `snapshot verify` and `snapshot extract`. Their defaults are a plan's (the
/// same archive passes offline and in a restore, or fails in both).
struct ExtractCLIOptions: ParsableArguments {
    @Option(help: "The .sha256 sidecar: required, if-present or off (a plan's verify.checksum default).")
    var checksum: ChecksumPolicy = VerifyPolicy().checksum

    @Option(help: "Maximum total size of the entries' data, e.g. 500GiB (default: a plan's limits.max_bytes, \(ArchiveLimits().maxBytes)).")
    var maxBytes: String?

    @Option(help: "Maximum number of entries (a plan's limits.max_entries default).")
    var maxEntries: Int = ArchiveLimits().maxEntries

    @Option(help: "Entries breaking a safety rule: reject the archive, or skip and list them (a plan's unsafe_entries default).")
    var unsafeEntries: UnsafeEntryPolicy = .reject

    func options(hashAlways: Bool) throws -> ExtractOptions {
        guard let bytes = maxBytes.map({ ByteSize(parsing: $0) }) ?? ArchiveLimits().maxBytes, bytes.bytes >= 0 else {
            throw CLIFailure(code: .rejected, message: "error: --max-bytes \(String(reflecting: maxBytes ?? "")) is not a size (e.g. 512MiB, 2GiB)")
        }
        guard maxEntries >= 0 else {
            throw CLIFailure(code: .rejected, message: "error: --max-entries must not be negative")
        }
        return ExtractOptions(maxBytes: bytes.bytes, maxEntries: maxEntries, unsafeEntries: unsafeEntries,
                              checksum: checksum, alwaysComputeSHA256: hashAlways)
    }

    static func printHuman(_ report: ExtractReport, verb: String, archive: String) {
        print("\(archive): \(report.entries) entries, \(ByteSize.format(report.bytes)) of file data "
              + "(\(ByteSize.format(report.archiveBytes)) compressed) \(verb)")
        if let sha = report.sha256 {
            print("sha256: \(sha)" + (report.checksumVerified ? " (matches the sidecar)" : " (no sidecar checked)"))
        }
        if !report.skipped.isEmpty {
            print("skipped \(report.skipped.count) unsafe entries:")
            for entry in report.skipped { print("  \"\(entry.name)\": \(entry.rule.rawValue) (\(entry.rule))") }
        }
    }
}
