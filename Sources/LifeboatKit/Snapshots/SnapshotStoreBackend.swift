import Foundation

/// A snapshot store, wherever it lives (DESIGN.md "Snapshot store"): a local directory
/// (`DirectoryStore`) or an S3-compatible bucket (`BucketStore`). The catalog, point-in-time
/// selection and the archive pipeline are the same for both; only listing and reading differ.
public protocol SnapshotStoreBackend: Sendable {
    /// The plan's `snapshots:` as written (a path, or `s3://BUCKET/PREFIX`).
    var location: String { get }
    /// Lists the store into a catalog: snapshots per site and product, stray entries reported.
    func scan() async throws -> SnapshotStore
}

/// Opens stores: the one place that tells a directory from a bucket. Built from the daemon
/// config's `s3:` block (empty for the offline CLI) and the environment.
public struct SnapshotStores: Sendable {
    public var s3: S3Settings
    public var environment: [String: String]

    public init(s3: S3Settings = S3Settings(), environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.s3 = s3
        self.environment = environment
    }

    /// The store at `location`: `s3://BUCKET/PREFIX` or a directory.
    public func open(_ location: String) throws -> any SnapshotStoreBackend {
        if S3Location.isS3(location) {
            return BucketStore(location: try S3Location(parsing: location), client: try S3Client.make(s3, environment: environment))
        }
        return DirectoryStore(root: location)
    }

    /// One archive by its own path or `s3://BUCKET/KEY` URL (offline `snapshot verify|extract`,
    /// and a job's recorded snapshot). `listedSize`: an object's size when its run listed it (a
    /// snapshot is never rewritten: one of another size since was replaced).
    public func archive(_ path: String, listedSize: Int64? = nil) throws -> any ArchiveSource {
        if S3Location.isS3(path) {
            let (bucket, key) = try S3Location.object(path)
            return S3Archive(client: try S3Client.make(s3, environment: environment), bucket: bucket, key: key, listedSize: listedSize)
        }
        return LocalArchive(path: path)
    }
}
