import Foundation

/// A `host:port` for the HTTP listener; loopback only (put an authenticating proxy in front to
/// show the web view to others).
public struct MetricsAddress: Sendable, Hashable {
    public var host: String
    public var port: Int

    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65_535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard host == "localhost" || host == "::1" || host.hasPrefix("127.") else { return nil }
        self.host = host
        self.port = port
    }
}
