import Foundation

/// Extracts a snapshot archive (`.tar.gz`) into an existing, empty staging directory, enforcing
/// every safety rule at the system-call level (DESIGN.md "One job, step by step", 2–4).
///
/// Synchronous and blocking; memory stays bounded whatever the archive's size. It checks for task
/// cancellation between entries and data chunks and throws `CancellationError`. On any error the
/// staging directory holds a partial tree: remove it (`withStagingDirectory` does).
///
/// - Parameters:
///   - archivePath: the archive; its sidecar `<archive>.sha256` is used per `options.checksum`.
///   - stagingPath: an empty directory Lifeboat created, on the destination's filesystem.
///   - progress: called with the compressed bytes read so far, after each chunk read.
/// - Throws: `ArchiveError`, or `CancellationError`.
public func extractArchive(
    at archivePath: String, into stagingPath: String, options: ExtractOptions = ExtractOptions(),
    progress: ((Int64) -> Void)? = nil
) throws -> ExtractReport {
    let source = LocalArchive(path: archivePath)
    let expected = try ChecksumSidecar.expectedDigest(for: archivePath, policy: options.checksum)
    return try extractArchive(reading: source, expected: expected, into: stagingPath, options: options, progress: progress)
}

/// The blocking half of `extractArchive(from:)`: the sidecar's digest is already known.
func extractArchive(
    reading source: any ArchiveSource, expected: String?, into stagingPath: String, options: ExtractOptions,
    progress: ((Int64) -> Void)?
) throws -> ExtractReport {
    let archivePath = source.name
    let rootFD = open(stagingPath, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    guard rootFD >= 0 else {
        throw ArchiveError(.io, "cannot open the staging directory \(stagingPath)", archive: archivePath, errno: errno)
    }
    defer { close(rootFD) }
    let writeback = try BackgroundWriteback(rootFD: rootFD)
    let report: ExtractReport
    do {
        report = try ArchivePipeline.run(source, expected: expected,
                                         writer: StagingWriter(rootFD: rootFD, rootPath: stagingPath, writeback: writeback,
                                                               pendingLimit: options.pendingDirectoryLimit),
                                         options: options, progress: progress)
    } catch {
        try? writeback.finish()
        throw error
    }
    do {
        try writeback.finish()
    } catch let error as ArchiveError {
        throw error.inArchive(archivePath)
    }
    return report
}

/// Reads a whole archive and checks it as `extractArchive` would — sidecar checksum, gzip CRCs
/// and lengths, tar structure, safety rules and limits — writing nothing.
///
/// Conflicts only the filesystem reveals (an entry replacing a non-empty directory, a path through
/// an earlier regular file) are found by extraction only.
public func verifyArchive(
    at archivePath: String, options: ExtractOptions = ExtractOptions(), progress: ((Int64) -> Void)? = nil
) throws -> ExtractReport {
    let expected = try ChecksumSidecar.expectedDigest(for: archivePath, policy: options.checksum)
    return try ArchivePipeline.run(LocalArchive(path: archivePath), expected: expected, writer: nil, options: options, progress: progress)
}

/// read → SHA-256 → gunzip → tar → extractor.
enum ArchivePipeline {
    static func run(
        _ source: any ArchiveSource, expected: String?, writer: StagingWriter?, options: ExtractOptions, progress: ((Int64) -> Void)?
    ) throws -> ExtractReport {
        let archivePath = source.name
        do {
            let input = try ArchiveInput(path: archivePath, reader: source.openReader(cancellation: options.cancellation),
                                         hashing: expected != nil || options.alwaysComputeSHA256)
            let gzip = GzipReader(input: input, inflater: try options.inflate.makeInflater())
            gzip.onInput = progress
            var report = try Extractor(reader: TarReader(stream: gzip, maxBytes: options.maxBytes, maxSparseRegions: options.maxEntries),
                                   writer: writer, options: options).run()
            report.archiveBytes = input.bytesRead
            report.sha256 = input.finishHash()
            if let expected {
                guard report.sha256 == expected else {
                    throw ArchiveError(.checksumMismatch, "the archive's SHA-256 is \(report.sha256 ?? "?") but its sidecar says \(expected)")
                }
                report.checksumVerified = true
            }
            return report
        } catch let error as ArchiveError {
            throw error.inArchive(archivePath)
        }
    }
}
