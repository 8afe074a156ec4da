import Foundation

/// One archive to read, wherever its store keeps it: a local file or an object in a bucket.
/// Stores hand these out (`SnapshotStoreBackend.archive(at:)`); the pipeline reads them.
public protocol ArchiveSource: Sendable {
    /// The archive's path or URL, as messages and reports name it.
    var name: String { get }
    /// The SHA-256 its `.sha256` sidecar gives, under `policy`; nil when there is nothing to check.
    func expectedDigest(policy: ChecksumPolicy) async throws -> String?
    /// Opens the bytes for reading front to back; called on the blocking pool.
    func openReader(cancellation: CancellationFlag?) throws -> any ArchiveReading
}

/// Where an archive's compressed bytes come from, front to back: a local file or a stream from
/// a bucket (`S3ObjectReader`). Blocking; read on the blocking pool.
public protocol ArchiveReading: AnyObject {
    /// Fills the buffer with the next bytes; returns 0 at the end of the archive.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// An archive file of a local directory store.
public struct LocalArchive: ArchiveSource {
    public let path: String
    public init(path: String) { self.path = path }
    public var name: String { path }

    public func expectedDigest(policy: ChecksumPolicy) async throws -> String? {
        try ChecksumSidecar.expectedDigest(for: path, policy: policy)
    }

    public func openReader(cancellation: CancellationFlag?) throws -> any ArchiveReading {
        try LocalFileReader(path: path)
    }
}

/// Extracts an archive from any store into an empty staging directory, as `extractArchive(at:)`
/// does for a local file: the sidecar is read first, then the bytes stream through
/// hash → inflate → tar → staging on the blocking pool, with memory bounded.
public func extractArchive(from source: any ArchiveSource, into stagingPath: String, options: ExtractOptions = ExtractOptions(),
                           progress: (@Sendable (Int64) -> Void)? = nil) async throws -> ExtractReport {
    try await readArchive(source, options) { expected, checked in
        try extractArchive(reading: source, expected: expected, into: stagingPath, options: checked, progress: progress)
    }
}

/// Reads a whole archive from any store and checks it, writing nothing (`verifyArchive(at:)`).
public func verifyArchive(from source: any ArchiveSource, options: ExtractOptions = ExtractOptions(),
                          progress: (@Sendable (Int64) -> Void)? = nil) async throws -> ExtractReport {
    try await readArchive(source, options) { expected, checked in
        try ArchivePipeline.run(source, expected: expected, writer: nil, options: checked, progress: progress)
    }
}

/// The sidecar's digest first, then `body` on the blocking pool with a cancellation flag that
/// the awaiting task's cancellation sets.
private func readArchive(_ source: any ArchiveSource, _ options: ExtractOptions,
                         _ body: @escaping @Sendable (String?, ExtractOptions) throws -> ExtractReport) async throws -> ExtractReport {
    let expected = try await expectedDigest(source, options)
    let flag = options.cancellation ?? CancellationFlag()
    var checked = options
    checked.cancellation = flag
    let final = checked
    return try await runBlocking(flag: flag) { try body(expected, final) }
}

private func expectedDigest(_ source: any ArchiveSource, _ options: ExtractOptions) async throws -> String? {
    do {
        return try await source.expectedDigest(policy: options.checksum)
    } catch let error as ArchiveError {
        throw error.inArchive(source.name)
    }
}
