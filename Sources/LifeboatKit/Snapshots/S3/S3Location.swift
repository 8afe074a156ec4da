import Foundation

/// `s3://BUCKET/PREFIX`: a snapshot store in a bucket, the store layout under the prefix.
public struct S3Location: Sendable, Hashable, CustomStringConvertible {
    public var bucket: String
    /// Without leading or trailing `/`; empty for the bucket's root.
    public var prefix: String

    public static let scheme = "s3://"

    public init(bucket: String, prefix: String) {
        self.bucket = bucket
        self.prefix = prefix
    }

    /// Whether `text` names an S3 location at all (valid or not).
    public static func isS3(_ text: String) -> Bool { text.lowercased().hasPrefix(scheme) }

    /// Parses `s3://bucket[/prefix]`; the error says what is wrong, and never echoes a secret.
    public init(parsing text: String) throws {
        guard Self.isS3(text) else { throw S3Error(.invalidLocation, "\"\(text)\" is not an s3:// URL (s3://BUCKET/PREFIX)") }
        let rest = text.dropFirst(Self.scheme.count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = String(rest[..<slash])
        if authority.contains("@") {
            throw S3Error(.secretInLocation, "an s3:// URL must not carry credentials (s3://KEY:SECRET@…); \(S3Error.whereSecretsGo)")
        }
        guard Self.isValidBucket(authority) else {
            throw S3Error(.invalidLocation, "\"\(authority)\" is not a bucket name (3–63 characters: lower-case letters, digits, '.' and '-') in s3://BUCKET/PREFIX")
        }
        if rest.contains("?") || rest.contains("#") {
            throw S3Error(.invalidLocation, "s3://\(authority)/…: a store location has no query or fragment")
        }
        var prefix = rest[slash...].drop { $0 == "/" }
        while prefix.hasSuffix("/") { prefix = prefix.dropLast() }
        if !prefix.isEmpty, prefix.split(separator: "/", omittingEmptySubsequences: false).contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) {
            throw S3Error(.invalidLocation, "s3://\(authority)/\(prefix): the prefix must not contain empty, '.' or '..' segments")
        }
        self.bucket = authority
        self.prefix = String(prefix)
    }

    static func isValidBucket(_ name: String) -> Bool {
        guard (3...63).contains(name.count), let first = name.first, let last = name.last,
              first.isLetter || first.isNumber, last.isLetter || last.isNumber else { return false }
        return name.allSatisfy { ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "." || $0 == "-" }
    }

    /// The object key of a store-relative name (`acme/jira/…tar.gz`).
    public func key(_ relative: String) -> String { prefix.isEmpty ? relative : prefix + "/" + relative }

    /// The key prefix to list: everything of the store (ends in `/` unless at the bucket root).
    public var listPrefix: String { prefix.isEmpty ? "" : prefix + "/" }

    /// `s3://bucket/key`.
    public func url(key: String) -> String { "s3://\(bucket)/\(key)" }

    public var description: String { prefix.isEmpty ? "s3://\(bucket)" : "s3://\(bucket)/\(prefix)" }

    /// Splits an object URL (`s3://bucket/key`) into its bucket and key.
    public static func object(_ url: String) throws -> (bucket: String, key: String) {
        let location = try S3Location(parsing: url)
        guard !location.prefix.isEmpty else { throw S3Error(.invalidLocation, "\(url) names a bucket, not an object") }
        return (location.bucket, location.prefix)
    }
}
