import Foundation
import NIOCore
import Synchronization

/// A snapshot store in an S3-compatible bucket: the directory layout as keys under a prefix.
public struct BucketStore: SnapshotStoreBackend {
    public let bucketLocation: S3Location
    public let client: S3Client

    public init(location: S3Location, client: S3Client) {
        self.bucketLocation = location
        self.client = client
    }

    public var location: String { bucketLocation.description }

    /// Lists every key under the prefix (ListObjectsV2, all pages) into the same catalog a
    /// directory gives.
    public func scan() async throws -> SnapshotStore {
        let objects = try await client.list(bucket: bucketLocation.bucket, prefix: bucketLocation.listPrefix)
        let prefix = bucketLocation.listPrefix
        // Only keys under the prefix asked for (a store that answers with others is ignored).
        let entries = objects.filter { $0.key.hasPrefix(prefix) }.map { object in
            SnapshotStore.ListedFile(relativePath: String(object.key.dropFirst(prefix.count)), size: object.size)
        }
        return SnapshotStore(root: location, listing: entries) { relative in
            bucketLocation.url(key: bucketLocation.key(relative))
        }
    }
}

/// An archive object in a bucket, with its `.sha256` sidecar object beside it. The object read
/// is the one the HEAD saw (`If-Match` on its ETag), and, for a job, one of the size its run
/// listed: a snapshot replaced in between is an error, not restored, whatever the checksum policy.
public struct S3Archive: ArchiveSource {
    public let client: S3Client
    public let bucket: String
    public let key: String
    /// The object's size when its run listed it (nil: not listed, as for `snapshot verify`).
    public var listedSize: Int64?
    /// The ETag the HEAD saw.
    private let seen = SeenETag()

    private final class SeenETag: Sendable {
        let value = Mutex<String?>(nil)
    }

    public init(client: S3Client, bucket: String, key: String, listedSize: Int64? = nil) {
        (self.client, self.bucket, self.key, self.listedSize) = (client, bucket, key, listedSize)
    }

    public var name: String { client.url(bucket: bucket, key: key) }

    /// Checks that the archive is there (HEAD: a snapshot deleted since it was listed is a clear
    /// 404 naming bucket and key before anything is staged), then reads the sidecar.
    public func expectedDigest(policy: ChecksumPolicy) async throws -> String? {
        guard let object = try await client.head(bucket: bucket, key: key) else {
            throw S3Error(.notFound, "no such object: the snapshot archive is not in the bucket", bucket: bucket, key: key, status: 404)
        }
        if let listedSize, object.size != listedSize {
            throw S3Error(.changed, "the object is \(object.size) bytes, and was \(listedSize) when the run listed it: it was replaced since "
                          + "(a snapshot is never rewritten; find out what writes to the bucket)", bucket: bucket, key: key)
        }
        seen.value.withLock { $0 = object.etag }
        guard policy != .off else { return nil }
        let sidecarKey = key + ".sha256"
        let body: ByteBuffer?
        do {
            body = try await client.get(bucket: bucket, key: sidecarKey, maxBytes: ChecksumSidecar.maxSize)
        } catch let error as S3Error {
            throw ArchiveError(.io, "cannot read the checksum sidecar: \(error.description)", archive: name, isTransient: error.isTransient)
        }
        guard let body else {
            guard policy == .required else { return nil }
            throw ArchiveError(.checksumMissing, "the checksum sidecar s3://\(bucket)/\(sidecarKey) does not exist (verify.checksum: required)", archive: name)
        }
        let archiveName = String(key.split(separator: "/").last ?? "")
        guard let digest = ChecksumSidecar.parse(String(buffer: body), archiveName: archiveName) else {
            throw ArchiveError(.checksumMissing, "the checksum sidecar s3://\(bucket)/\(sidecarKey) has no SHA-256 line for \(archiveName)", archive: name)
        }
        return digest
    }

    public func openReader(cancellation: CancellationFlag?) throws -> any ArchiveReading {
        S3ObjectReader(client: client, bucket: bucket, key: key, etag: seen.value.withLock { $0 }, cancellation: cancellation)
    }
}
