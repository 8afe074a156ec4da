import Foundation

/// An error of the S3 store: what failed, on which bucket and key, the HTTP status and S3's own
/// error code, and what to check.
public struct S3Error: LifeboatError, Sendable {
    public enum Code: String, Sendable {
        /// The object (or the store's prefix) does not exist.
        case notFound = "not-found"
        case noSuchBucket = "no-such-bucket"
        /// 403: credentials rejected or not allowed.
        case accessDenied = "access-denied"
        /// No credentials in the standard places.
        case credentials
        /// A plan, config or URL holding a secret.
        case secretInLocation = "secret-in-location"
        case invalidLocation = "invalid-location"
        /// Throttling, server errors, timeouts and dropped connections that outlasted the retries.
        case unavailable
        /// The object changed while it was being read (its ETag is not the one first read).
        case changed
        /// Any other answer the store gave.
        case failed
    }

    public var code: Code
    public var message: String
    public var bucket: String?
    public var key: String?
    public var status: Int?
    /// S3's `<Code>` (`NoSuchKey`, `SlowDown`, `SignatureDoesNotMatch`…).
    public var s3Code: String?
    /// Worth another attempt later (a job retry): throttling, server errors, timeouts.
    public var isTransient: Bool

    /// What to check, when the code's own advice does not fit.
    var specificHint: String?

    public init(_ code: Code, _ message: String, bucket: String? = nil, key: String? = nil, status: Int? = nil,
                s3Code: String? = nil, isTransient: Bool = false, hint: String? = nil) {
        self.specificHint = hint
        self.code = code
        self.message = message
        self.bucket = bucket
        self.key = key
        self.status = status
        self.s3Code = s3Code
        self.isTransient = isTransient
    }

    public static let whereSecretsGo = "secrets go in lifeboatd's environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN; under systemd an EnvironmentFile= readable only by its user) or a shared credentials file (AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials, profile AWS_PROFILE), never in a plan or the daemon config"

    public var exitCode: CLIExit {
        switch code {
        case .secretInLocation, .invalidLocation, .notFound, .noSuchBucket: return .rejected
        default: return .failed
        }
    }

    public var description: String {
        var text = message
        var what: [String] = []
        if let bucket { what.append("bucket \(bucket)") }
        if let key { what.append("key \(key)") }
        if let status { what.append("HTTP \(status)" + (s3Code.map { " \($0)" } ?? "")) }
        if !what.isEmpty { text += " (\(what.joined(separator: ", ")))" }
        if let hint { text += "; \(hint)" }
        return text
    }

    var hint: String? {
        if let specificHint { return specificHint }
        switch code {
        case .notFound: return "check the plan's snapshots: URL (bucket and prefix) and that the object still exists (a snapshot deleted after it was listed is gone)"
        case .noSuchBucket: return "check the bucket name in snapshots: and the endpoint (s3.endpoint, AWS_ENDPOINT_URL) and region it lives in"
        case .accessDenied:
            if s3Code == "SignatureDoesNotMatch" { return "the secret key does not match the access key id, or the region (s3.region, AWS_REGION) is wrong" }
            if s3Code == "InvalidAccessKeyId" { return "the access key id is unknown to this endpoint: check AWS_ACCESS_KEY_ID / the credentials profile and s3.endpoint" }
            return "check the credentials (AWS_ACCESS_KEY_ID / AWS_PROFILE) and that they may s3:ListBucket and s3:GetObject on this bucket and prefix"
        case .unavailable: return "the store is throttling, failing or unreachable (each request is tried s3.attempts times, LIFEBOAT_S3_ATTEMPTS)"
        case .changed: return "the snapshot was overwritten while it was read; run again to read the new one"
        case .credentials, .secretInLocation, .invalidLocation, .failed: return nil
        }
    }

    /// Text from the store, fit to print (`PrintableText`), at most `limit` characters.
    static func printable(_ text: String, limit: Int = 300) -> String { PrintableText.escaped(text, limit: limit) }

    /// An error answer's classification from its status and S3 code.
    /// - Parameter endpoint: where the request went, as `S3Endpoint.display` says it.
    static func from(status: Int, body: String, method: String, bucket: String, key: String?, endpoint: String? = nil) -> S3Error {
        let s3Code = XMLText.first("Code", in: body).map { printable($0, limit: 64) }
        let serverMessage = XMLText.first("Message", in: body).map { printable($0) }
        let what = (key.map { "\(method) \($0)" } ?? "\(method) on the bucket") + (endpoint.map { " at \($0)" } ?? "")
        let detail = serverMessage.map { ": \($0)" } ?? ""
        switch (status, s3Code) {
        case (301, _), (307, _), (308, _), (_, "PermanentRedirect"), (_, "TemporaryRedirect"), (_, "AuthorizationHeaderMalformed"):
            // The bucket lives in another region, or behind another endpoint.
            let elsewhere = XMLText.first("Endpoint", in: body).map { " (it names \(printable($0, limit: 120)))" }
                ?? XMLText.first("Region", in: body).map { " (it names the region \(printable($0, limit: 64)))" } ?? ""
            return S3Error(.failed, "the store sends \(what) elsewhere\(elsewhere)\(detail)", bucket: bucket, key: key, status: status, s3Code: s3Code,
                           hint: "the bucket is in another region or behind another endpoint: set s3.region (AWS_REGION) and s3.endpoint (AWS_ENDPOINT_URL) to where it lives")
        case (_, "NoSuchBucket"):
            return S3Error(.noSuchBucket, "the bucket does not exist\(detail)", bucket: bucket, key: key, status: status, s3Code: s3Code)
        case (404, _), (_, "NoSuchKey"):
            return S3Error(.notFound, "no such object\(detail)", bucket: bucket, key: key, status: status, s3Code: s3Code)
        case (403, _), (401, _):
            return S3Error(.accessDenied, "access denied for \(what)\(detail)", bucket: bucket, key: key, status: status, s3Code: s3Code)
        case (412, _):
            return S3Error(.changed, "the object changed while it was read", bucket: bucket, key: key, status: status, s3Code: s3Code)
        case (500...599, _), (429, _), (_, "SlowDown"), (_, "RequestTimeout"), (_, "InternalError"), (_, "ServiceUnavailable"):
            return S3Error(.unavailable, "the store answered \(what) with a transient error\(detail)", bucket: bucket, key: key,
                           status: status, s3Code: s3Code, isTransient: true)
        default:
            return S3Error(.failed, "the store refused \(what)\(detail)", bucket: bucket, key: key, status: status, s3Code: s3Code)
        }
    }
}

/// Just enough XML for S3's answers (ListObjectsV2, errors, multipart uploads): the text of
/// elements by name, entities decoded. S3's XML has no attributes or CDATA we need.
enum XMLText {
    /// The text of every `<name>…</name>`, in order.
    static func all(_ name: String, in xml: Substring) -> [String] {
        elements(name, in: xml).map(decode)
    }

    static func first(_ name: String, in xml: String) -> String? { all(name, in: xml[...]).first }

    /// The raw inner XML of every `<name>…</name>` (for nested elements like `<Contents>`), in
    /// linear time: searched byte by byte (Foundation's `range(of:)` on a substring copies it, so
    /// a page of 40,000 keys took seconds), and never inside a comment.
    static func elements(_ name: String, in xml: some StringProtocol) -> [Substring] {
        let text = Substring(xml)
        let bytes = text.utf8
        let open = Array("<\(name)>".utf8), close = Array("</\(name)>".utf8)
        let commentOpen = Array("<!--".utf8), commentClose = Array("-->".utf8)
        var result: [Substring] = []
        var i = bytes.startIndex
        // The next comment, searched for again only once passed (else each element would scan
        // to the end for one).
        var comment = find(commentOpen, in: bytes, from: i)
        while let start = find(open, in: bytes, from: i) {
            // A comment before the element: its text is not XML; go on after it.
            if let opened = comment, opened < start {
                guard let end = find(commentClose, in: bytes, from: bytes.index(opened, offsetBy: commentOpen.count)) else { break }
                i = bytes.index(end, offsetBy: commentClose.count)
                comment = find(commentOpen, in: bytes, from: i)
                continue
            }
            let inner = bytes.index(start, offsetBy: open.count)
            guard let end = find(close, in: bytes, from: inner) else { break }
            result.append(text[inner..<end])
            i = bytes.index(end, offsetBy: close.count)
        }
        return result
    }

    /// Where `needle` starts in `bytes` at or after `from`.
    private static func find(_ needle: [UInt8], in bytes: Substring.UTF8View, from: String.Index) -> String.Index? {
        var i = from
        while i < bytes.endIndex, let candidate = bytes[i...].firstIndex(of: needle[0]) {
            if bytes[candidate...].starts(with: needle) { return candidate }
            i = bytes.index(after: candidate)
        }
        return nil
    }

    static func decode(_ text: Substring) -> String {
        guard text.contains("&") else { return String(text) }
        var out = ""
        var i = text.startIndex
        while i < text.endIndex {
            if text[i] == "&", let semi = text[i...].firstIndex(of: ";"), text.distance(from: i, to: semi) <= 10 {
                let entity = text[text.index(after: i)..<semi]
                var scalar: UnicodeScalar?
                switch entity {
                case "amp": scalar = "&"
                case "lt": scalar = "<"
                case "gt": scalar = ">"
                case "quot": scalar = "\""
                case "apos": scalar = "'"
                default:
                    if entity.hasPrefix("#x") { scalar = UInt32(entity.dropFirst(2), radix: 16).flatMap(UnicodeScalar.init) }
                    else if entity.hasPrefix("#") { scalar = UInt32(entity.dropFirst()).flatMap(UnicodeScalar.init) }
                }
                if let scalar {
                    out.unicodeScalars.append(scalar)
                    i = text.index(after: semi)
                    continue
                }
            }
            out.append(text[i])
            i = text.index(after: i)
        }
        return out
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
