import Foundation

/// The daemon config's `s3:` block (config/lifeboatd.yaml): where S3-compatible stores are
/// reached. Every key is optional; what is unset comes from the standard AWS variables
/// (`S3Endpoint.resolve`). Never credentials: those come from the standard places only.
public struct S3Settings: Sendable, Hashable {
    /// `https://s3.example.net` or `http://127.0.0.1:9000`; default AWS_ENDPOINT_URL_S3,
    /// AWS_ENDPOINT_URL, else AWS's regional endpoint.
    public var endpoint: String?
    /// Default AWS_REGION, AWS_DEFAULT_REGION, else us-east-1.
    public var region: String?
    /// Path-style addressing (`endpoint/bucket/key`) rather than virtual-hosted
    /// (`bucket.endpoint/key`); default: path-style for an IP-address or localhost endpoint.
    public var pathStyle: Bool?
    /// A request (or, while streaming an archive, the wait for the next bytes) that takes longer
    /// is abandoned and retried; default 30 s (LIFEBOAT_S3_TIMEOUT, in seconds, for the CLI).
    public var timeout: Double?
    /// Attempts per request before a transient error is reported; default 6.
    public var attempts: Int?

    public init(endpoint: String? = nil, region: String? = nil, pathStyle: Bool? = nil, timeout: Double? = nil, attempts: Int? = nil) {
        self.endpoint = endpoint
        self.region = region
        self.pathStyle = pathStyle
        self.timeout = timeout
        self.attempts = attempts
    }
}

/// Where and how requests go, resolved from `S3Settings` and the environment.
public struct S3Endpoint: Sendable, Hashable {
    public var scheme: String
    public var host: String
    public var port: Int?
    public var region: String
    public var pathStyle: Bool
    public var timeout: Double
    public var attempts: Int

    /// Config first, then the standard AWS variables, then AWS's defaults.
    public static func resolve(_ settings: S3Settings, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> S3Endpoint {
        func env(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        let region = settings.region ?? env("AWS_REGION") ?? env("AWS_DEFAULT_REGION") ?? "us-east-1"
        let endpointText = settings.endpoint ?? env("AWS_ENDPOINT_URL_S3") ?? env("AWS_ENDPOINT_URL") ?? "https://s3.\(region).amazonaws.com"
        let (scheme, host, port) = try parse(endpointText)
        let isLocal = host == "localhost" || host.hasSuffix(".localhost") || host.contains(":")
            || host.split(separator: ".").count == 4 && host.split(separator: ".").allSatisfy { UInt8($0) != nil }
        let timeout = settings.timeout ?? env("LIFEBOAT_S3_TIMEOUT").flatMap(Double.init) ?? 30
        // 0.1 s to a day: a timeout beyond (or "inf") is a day; not a number is the default.
        return S3Endpoint(scheme: scheme, host: host, port: port, region: region,
                          pathStyle: settings.pathStyle ?? isLocal, timeout: timeout.isNaN ? 30 : min(86_400, max(0.1, timeout)),
                          attempts: max(1, settings.attempts ?? env("LIFEBOAT_S3_ATTEMPTS").flatMap { Int($0) } ?? 6))
    }

    /// An endpoint URL's scheme, host and port. Refused: credentials in it (said without
    /// echoing them, whatever else is wrong), another scheme than http(s), no host, and a path
    /// (buckets are addressed at the endpoint's root; a gateway's path prefix is not kept).
    public static func parse(_ text: String) throws -> (scheme: String, host: String, port: Int?) {
        let components = URLComponents(string: text)
        if components?.user != nil || components?.password != nil || text.contains("@") {
            throw S3Error(.secretInLocation, "the S3 endpoint must not carry credentials; \(S3Error.whereSecretsGo)")
        }
        guard let components, let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = components.host, !host.isEmpty else {
            throw S3Error(.invalidLocation, "the S3 endpoint \"\(text)\" is not an http(s) URL like https://s3.example.net or http://127.0.0.1:9000 (s3.endpoint, AWS_ENDPOINT_URL)")
        }
        guard components.path.isEmpty || components.path == "/", components.query == nil, components.fragment == nil else {
            throw S3Error(.invalidLocation, "the S3 endpoint \"\(text)\" has a path or query; give only scheme, host and port (buckets are addressed at the endpoint's root)")
        }
        return (scheme, host, components.port)
    }

    /// The `Host` header for a bucket.
    func hostHeader(bucket: String) -> String {
        let name = pathStyle ? host : "\(bucket).\(host)"
        let bracketed = name.contains(":") ? "[\(name)]" : name
        guard let port, port != (scheme == "https" ? 443 : 80) else { return bracketed }
        return "\(bracketed):\(port)"
    }

    /// The decoded request path of an object (or of the bucket when `key` is empty).
    func path(bucket: String, key: String) -> String {
        pathStyle ? "/\(bucket)/\(key)" : "/\(key)"
    }

    /// A printable endpoint, for messages.
    public var display: String { "\(scheme)://\(host)\(port.map { ":\($0)" } ?? "")" }
}
