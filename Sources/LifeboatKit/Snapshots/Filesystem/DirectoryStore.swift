import Foundation

/// A snapshot store in a local (or mounted) directory.
public struct DirectoryStore: SnapshotStoreBackend {
    public let root: String

    public init(root: String) { self.root = root }

    public var location: String { root }

    public func scan() async throws -> SnapshotStore {
        try SnapshotStore(scanning: root)
    }
}
