import Crypto
import Foundation

/// Writes a synthetic snapshot store for demos, tests and benchmarks: for every site and product,
/// `snapshots` archives of about `archiveSize` uncompressed bytes each — JSON records and binary
/// attachments in nested folders, a few relative symlinks — with taken-at times spread over the
/// past days and a `.sha256` sidecar per archive. The same seed and `now` give the same bytes.
public struct FleetGenerator: Sendable {
    public var sites: Int
    public var products: [String]
    /// Uncompressed size each archive reaches (about).
    public var archiveSize: Int64
    public var snapshots: Int
    public var seed: UInt64
    /// The newest snapshot is taken in the day before this instant.
    public var now: Date
    /// zlib level for the archives (1 keeps generation fast; archives compress about 2:1).
    public var compressionLevel: Int32 = 1

    public init(sites: Int, products: [String], archiveSize: Int64 = 4 << 20, snapshots: Int = 1, seed: UInt64 = 1, now: Date) {
        self.sites = sites
        self.products = products
        self.archiveSize = archiveSize
        self.snapshots = snapshots
        self.seed = seed
        self.now = now
    }

    /// What a generation produced.
    public struct Summary: Sendable, Codable {
        public var sites: [String]
        public var archives: Int
        public var files: Int
        public var uncompressedBytes: Int64
        public var compressedBytes: Int64
    }

    /// Site ids of a fleet of `count` sites: tenant-like names, numbered past the list.
    public static func siteNames(count: Int) -> [String] {
        let names = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell", "cyberdyne",
                     "wonka", "soylent", "aperture", "vandelay", "dunder", "monarch", "oscorp", "gringotts",
                     "pied-piper", "massive", "nakatomi", "oceanic", "prestige", "sterling", "wernham"]
        return (0..<count).map { i in
            i < names.count ? names[i] : "\(names[i % names.count])-\(i / names.count + 1)"
        }
    }

    /// Generates the fleet into `directory`, which must not exist or be empty. Archives are
    /// generated in parallel, `parallelism` at a time; `progress` is called after each archive.
    public func generate(into directory: String, parallelism: Int = ProcessInfo.processInfo.activeProcessorCount,
                         progress: (@Sendable (Int, Int) -> Void)? = nil) async throws -> Summary {
        if FileSystem.exists(directory) {
            guard FileSystem.isDirectory(directory), try FileSystem.directoryEntries(directory).isEmpty else {
                throw FleetError("\(directory) already exists and is not empty; fleet generate writes only into a new or empty directory")
            }
        }
        try FileSystem.createDirectories(directory)
        let siteNames = Self.siteNames(count: sites)
        var work: [(site: String, product: String, index: Int, takenAt: Date)] = []
        for site in siteNames {
            for product in products {
                var rng = SplitMix64(seed: seed, key: "times/\(site)/\(product)")
                // Newest first: within the last day, then roughly one a day before that.
                var t = now.timeIntervalSince1970 - Double(600 + rng.below(20 * 3_600))
                var times: [Date] = []
                for _ in 0..<snapshots {
                    times.append(Date(timeIntervalSince1970: (t / 60).rounded(.down) * 60))
                    t -= Double(86_400 - 3_600 + rng.below(2 * 3_600))
                }
                try FileSystem.createDirectories("\(directory)/\(site)/\(product)")
                for (i, time) in times.reversed().enumerated() { work.append((site, product, i, time)) }
            }
        }
        let total = work.count
        var summary = Summary(sites: siteNames, archives: 0, files: 0, uncompressedBytes: 0, compressedBytes: 0)
        try await withThrowingTaskGroup(of: ArchiveStats.self) { group in
            var next = 0
            func add() {
                guard next < work.count else { return }
                let item = work[next]
                next += 1
                let generator = self
                group.addTask {
                    try generator.writeArchive(directory: directory, site: item.site, product: item.product,
                                               index: item.index, takenAt: item.takenAt)
                }
            }
            for _ in 0..<max(1, parallelism) { add() }
            while let stats = try await group.next() {
                summary.archives += 1
                summary.files += stats.files
                summary.uncompressedBytes += stats.uncompressed
                summary.compressedBytes += stats.compressed
                progress?(summary.archives, total)
                add()
            }
        }
        return summary
    }

    struct ArchiveStats: Sendable {
        var files: Int
        var uncompressed: Int64
        var compressed: Int64
    }

    /// Writes one archive through a temporary name, then its sidecar.
    func writeArchive(directory: String, site: String, product: String, index: Int, takenAt: Date) throws -> ArchiveStats {
        let name = Timestamp.formatBasic(takenAt) + ".tar.gz"
        let dir = "\(directory)/\(site)/\(product)"
        let tmp = "\(dir)/.\(name).partial"
        let output = try BufferedFileOutput(path: tmp)
        var hasher = SHA256()
        var compressed: Int64 = 0
        let gzip = try GzipWriter(level: compressionLevel) { chunk in
            hasher.update(bufferPointer: chunk)
            compressed += Int64(chunk.count)
            try output.write(chunk)
        }
        var tar = TarWriter { try gzip.write($0) }
        var rng = SplitMix64(seed: seed, key: "content/\(site)/\(product)/\(index)")
        let content = SyntheticContent(site: site, product: product, mtime: Int64(takenAt.timeIntervalSince1970))
        let stats = try content.write(into: &tar, rng: &rng, targetSize: archiveSize)
        try tar.finish()
        try gzip.finish()
        try output.close()
        guard rename(tmp, "\(dir)/\(name)") == 0 else {
            throw FileSystemError(path: "\(dir)/\(name)", operation: "rename into place", errno: errno)
        }
        let digest = hasher.finalize().hexDigits
        try Data("\(digest)  \(name)\n".utf8).write(to: URL(fileURLWithPath: "\(dir)/\(name).sha256"))
        return ArchiveStats(files: stats.files, uncompressed: stats.bytes, compressed: compressed)
    }
}

public struct FleetError: LifeboatError {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var exitCode: CLIExit { .rejected }
    public var description: String { message }
}
