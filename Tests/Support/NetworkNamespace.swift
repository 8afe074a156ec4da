import Foundation

/// A network namespace for a test's host (`ip netns`), linked to this one by a veth pair, so that
/// the host can be cut off by taking its link down and reconnected by bringing it up: a real
/// network partition between one process and the rest, on one machine.
///
/// Each link is a /30: this side `outside` (where a server the host talks to listens), the
/// namespace's side `inside`. Names carry this process's pid; what a killed test process left
/// behind is removed by the next one. Needs root (CAP_NET_ADMIN) and iproute2.
public final class NetworkNamespace: Sendable {
    public let name: String
    /// The address on this side of the link.
    public let outside: String
    /// The namespace's address.
    public let inside: String
    /// This side's end of the veth pair (the one a cut takes down).
    let link: String

    static let ip = "/usr/sbin/ip"

    /// Whether tests needing namespaces run: root and iproute2, or CI (where they must).
    public static let available = (geteuid() == 0 && FileManager.default.isExecutableFile(atPath: ip))
        || ProcessInfo.processInfo.environment["CI"] == "true"

    public static let requirement = "needs root (CAP_NET_ADMIN, for ip netns and veth links) and iproute2 (apt-get install -y iproute2)"

    /// The 10.a.b.0/24 this process's links come from (a, b from the pid: concurrent test
    /// processes do not collide).
    public static let network: String = {
        let pid = Int(getpid())
        return "10.\(64 + (pid >> 8) % 64).\(pid & 0xff)"
    }()

    public struct SetupError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Namespace `index` (0..<60) of this process, linked and up.
    public init(index: Int) throws {
        precondition((0..<60).contains(index))
        Self.sweepLeftovers()
        let pid = getpid()
        name = "lifeboat-test-\(pid)-\(index)"
        link = "lbt\(pid % 1_000_000)h\(index)"
        outside = "\(Self.network).\(4 * index + 1)"
        inside = "\(Self.network).\(4 * index + 2)"
        let peer = "lbt\(pid % 1_000_000)n\(index)"
        do {
            try Self.ip(["netns", "add", name])
            try Self.ip(["link", "add", link, "type", "veth", "peer", "name", peer])
            try Self.ip(["link", "set", peer, "netns", name])
            try Self.ip(["addr", "add", "\(outside)/30", "dev", link])
            try Self.ip(["link", "set", link, "up"])
            try Self.ip(["-n", name, "addr", "add", "\(inside)/30", "dev", peer])
            try Self.ip(["-n", name, "link", "set", peer, "up"])
            try Self.ip(["-n", name, "link", "set", "lo", "up"])
        } catch {
            remove()
            throw error
        }
    }

    /// `argv` run inside the namespace (`ip netns exec` execs it: the pid is the command's).
    public func command(_ argv: [String]) -> (executable: String, arguments: [String]) {
        (Self.ip, ["netns", "exec", name] + argv)
    }

    /// Takes the link down: nothing goes in or out of the namespace until `reconnect`.
    public func cut() throws { try Self.ip(["link", "set", link, "down"]) }

    public func reconnect() throws { try Self.ip(["link", "set", link, "up"]) }

    /// Removes the namespace (its end of the link with it, and so the pair).
    public func remove() {
        _ = try? Self.ip(["link", "del", link])
        _ = try? Self.ip(["netns", "del", name])
    }

    deinit { remove() }

    @discardableResult
    static func ip(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ip)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw SetupError(description: "ip \(arguments.joined(separator: " ")) failed (exit \(process.terminationStatus)): \(text) — \(requirement)")
        }
        return text
    }

    /// Namespaces (and their links) of test processes that are gone.
    private static func sweepLeftovers() {
        guard let listed = try? ip(["netns", "list"]) else { return }
        for line in listed.split(separator: "\n") {
            let name = String(line.split(separator: " ").first ?? "")
            let parts = name.split(separator: "-")
            guard parts.count == 4, name.hasPrefix("lifeboat-test-"), let pid = Int32(parts[2]), pid != getpid(),
                  kill(pid, 0) != 0, errno == ESRCH else { continue }
            _ = try? ip(["link", "del", "lbt\(pid % 1_000_000)h\(parts[3])"])
            _ = try? ip(["netns", "del", name])
        }
    }
}
