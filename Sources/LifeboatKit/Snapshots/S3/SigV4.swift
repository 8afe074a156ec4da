import Crypto
import Foundation

/// Credentials for signing requests. Only ever read from the standard places
/// (`S3Credentials.resolve`), never from a plan or the daemon config.
public struct S3Credentials: Sendable, Hashable {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }
}

/// AWS Signature Version 4, header-based (the `Authorization` header), as S3 and the
/// S3-compatible stores check it. Checked against AWS's published vectors (SigV4Tests).
public struct SigV4Signer: Sendable {
    public var credentials: S3Credentials
    public var region: String
    public var service: String

    public init(credentials: S3Credentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// What signing produced; the canonical request and string to sign are kept for tests and
    /// for explaining a `SignatureDoesNotMatch`.
    public struct Signed: Sendable {
        /// Headers to send: the caller's, plus `x-amz-date`, the session token when there is one,
        /// and `authorization`.
        public var headers: [(name: String, value: String)]
        public var authorization: String
        public var signature: String
        public var canonicalRequest: String
        public var stringToSign: String
    }

    /// Signs a request.
    /// - Parameters:
    ///   - path: the decoded path (`/bucket/key with spaces`); it is encoded here, once, the way
    ///     it must also go on the wire (`canonicalPath`).
    ///   - query: decoded names and values; encoded here (`canonicalQuery`).
    ///   - headers: every header to sign, including `host` (names in any case).
    ///   - payloadHash: hex SHA-256 of the body (`x-amz-content-sha256`).
    public func sign(method: String, path: String, query: [(String, String)], headers: [(name: String, value: String)],
                     payloadHash: String, date: Date) -> Signed {
        let amzDate = Timestamp.formatBasic(date)
        let day = String(amzDate.prefix(8))
        var all = headers
        all.append(("x-amz-date", amzDate))
        if let token = credentials.sessionToken { all.append(("x-amz-security-token", token)) }
        var canonical: [String: String] = [:]
        for (name, value) in all {
            let key = name.lowercased()
            let trimmed = Self.collapseSpaces(value.trimmingCharacters(in: .whitespaces))
            canonical[key] = canonical[key].map { $0 + "," + trimmed } ?? trimmed
        }
        let names = canonical.keys.sorted()
        let signedHeaders = names.joined(separator: ";")
        let canonicalRequest = [
            method,
            Self.canonicalPath(path),
            Self.canonicalQuery(query),
            names.map { "\($0):\(canonical[$0]!)\n" }.joined(),
            signedHeaders,
            payloadHash,
        ].joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, Self.hex(SHA256.hash(data: Data(canonicalRequest.utf8)))]
            .joined(separator: "\n")
        var key = SymmetricKey(data: Data(("AWS4" + credentials.secretAccessKey).utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(part.utf8), using: key)))
        }
        let signature = Self.hex(HMAC<SHA256>.authenticationCode(for: Data(stringToSign.utf8), using: key))
        let authorization = "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
        all.append(("authorization", authorization))
        return Signed(headers: all, authorization: authorization, signature: signature,
                      canonicalRequest: canonicalRequest, stringToSign: stringToSign)
    }

    /// The hex SHA-256 of an empty body.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// RFC 3986 encoding as SigV4 wants it: unreserved characters stay, every other byte of the
    /// UTF-8 is `%XX` (upper case); `/` stays unless `encodeSlash`.
    public static func uriEncode(_ text: String, encodeSlash: Bool) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if unreserved[Int(byte)] || (byte == slash && !encodeSlash) {
                out.unicodeScalars.append(UnicodeScalar(byte))
            } else {
                out.unicodeScalars.append("%")
                out.unicodeScalars.append(UnicodeScalar(hexDigits[Int(byte >> 4)]))
                out.unicodeScalars.append(UnicodeScalar(hexDigits[Int(byte & 0x0F)]))
            }
        }
        return out
    }

    private static let slash = UInt8(ascii: "/")
    private static let hexDigits = Array("0123456789ABCDEF".utf8)
    /// RFC 3986's unreserved characters: A–Z a–z 0–9 - _ . ~
    private static let unreserved: [Bool] = (0..<256).map { value in
        let c = UInt8(value)
        if c >= 0x41 && c <= 0x5A { return true }
        if c >= 0x61 && c <= 0x7A { return true }
        if c >= 0x30 && c <= 0x39 { return true }
        return c == 0x2D || c == 0x5F || c == 0x2E || c == 0x7E
    }

    /// S3's canonical URI: the path encoded once (S3 does not double-encode), `/` kept.
    public static func canonicalPath(_ path: String) -> String {
        path.isEmpty ? "/" : uriEncode(path, encodeSlash: false)
    }

    /// Names and values encoded, sorted by name then value, `&`-joined (also the wire form).
    public static func canonicalQuery(_ query: [(String, String)]) -> String {
        let encoded: [(name: String, value: String)] = query.map { pair in
            (name: uriEncode(pair.0, encodeSlash: true), value: uriEncode(pair.1, encodeSlash: true))
        }
        let sorted = encoded.sorted { a, b in a.name == b.name ? a.value < b.value : a.name < b.name }
        return sorted.map { pair in pair.name + "=" + pair.value }.joined(separator: "&")
    }

    static func collapseSpaces(_ text: String) -> String {
        guard text.contains("  ") else { return text }
        var out = ""
        var lastSpace = false
        for c in text {
            if c == " " {
                if !lastSpace { out.append(c) }
                lastSpace = true
            } else {
                out.append(c)
                lastSpace = false
            }
        }
        return out
    }

    /// Lowercase hex SHA-256 (`x-amz-content-sha256`).
    static func sha256Hex(_ data: Data) -> String { hex(SHA256.hash(data: data)) }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.hexDigits
    }
}
