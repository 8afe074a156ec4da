import Foundation

/// One compressed archive of one site's product at one point in time.
public struct Snapshot: Sendable, Hashable, Codable {
    public var site: String
    public var product: String
    /// From the file name (`YYYYMMDDTHHMMSSZ.tar.gz`), UTC.
    public var takenAt: Date
    /// Absolute path of the archive.
    public var path: String
    /// Archive size in bytes.
    public var size: Int64
    /// The `.sha256` sidecar, when present.
    public var sidecarPath: String?

    public init(site: String, product: String, takenAt: Date, path: String, size: Int64, sidecarPath: String?) {
        self.site = site
        self.product = product
        self.takenAt = takenAt
        self.path = path
        self.size = size
        self.sidecarPath = sidecarPath
    }

    /// The store-relative name: `acme/jira/20261124T031500Z.tar.gz`.
    public var relativeName: String { "\(site)/\(product)/\(Timestamp.formatBasic(takenAt)).tar.gz" }
}

/// A file in a store that is not part of its layout; reported, never touched.
public struct StrayFile: Sendable, Hashable, Codable, CustomStringConvertible {
    public var path: String
    public var reason: String

    /// Printable: a path (an S3 key) is the store's text, control characters and all.
    public var description: String { "\(PrintableText.escaped(path)): \(reason)" }
}
