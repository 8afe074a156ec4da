import Foundation

extension FleetGenerator {
    /// Generates the fleet into a bucket store: the same archives and sidecars as
    /// `generate(into:)`, written to a scratch directory and uploaded under the prefix (archives
    /// larger than one part as multipart uploads), archives before their sidecars. The prefix
    /// must hold no objects yet. The scratch directory is removed whatever happens.
    public func generate(into location: S3Location, client: S3Client,
                         parallelism: Int = ProcessInfo.processInfo.activeProcessorCount,
                         progress: (@Sendable (Int, Int) -> Void)? = nil) async throws -> Summary {
        let existing = try await client.list(bucket: location.bucket, prefix: location.listPrefix)
        guard existing.isEmpty else {
            throw FleetError("\(location) already holds \(existing.count) object(s); fleet generate writes only under an empty prefix")
        }
        var template = Array((NSTemporaryDirectory() + "/lifeboat-fleet-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw FileSystemError(path: NSTemporaryDirectory(), operation: "create a scratch directory", errno: errno)
        }
        let scratch = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let summary = try await generate(into: scratch, parallelism: parallelism)
        var files: [String] = []
        for site in try FileSystem.directoryEntries(scratch) where site.kind == .directory {
            for product in try FileSystem.directoryEntries(scratch + "/" + site.name) where product.kind == .directory {
                for file in try FileSystem.directoryEntries("\(scratch)/\(site.name)/\(product.name)") where !file.name.hasPrefix(".") {
                    files.append("\(site.name)/\(product.name)/\(file.name)")
                }
            }
        }
        // Archives first, then sidecars: a reader never sees a sidecar without its archive.
        let ordered = files.filter { !$0.hasSuffix(".sha256") }.sorted() + files.filter { $0.hasSuffix(".sha256") }.sorted()
        let archives = ordered.count - files.filter { $0.hasSuffix(".sha256") }.count
        try await withThrowingTaskGroup(of: Bool.self) { group in
            var next = 0, done = 0
            func add() {
                guard next < ordered.count else { return }
                let relative = ordered[next]
                next += 1
                group.addTask {
                    try await client.upload(file: scratch + "/" + relative, bucket: location.bucket, key: location.key(relative))
                    return !relative.hasSuffix(".sha256")
                }
            }
            for _ in 0..<max(1, parallelism) { add() }
            while let wasArchive = try await group.next() {
                if wasArchive {
                    done += 1
                    progress?(done, archives)
                }
                add()
            }
        }
        return summary
    }
}
