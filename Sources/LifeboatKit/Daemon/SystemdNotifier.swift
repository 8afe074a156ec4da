import Foundation

/// The systemd notification protocol (sd_notify), written in-project: datagrams to
/// `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace). Does nothing when the
/// variable is unset, so the daemon runs the same outside systemd.
public struct SystemdNotifier: Sendable {
    public let socketPath: String?

    public init(environment: [String: String] = ProcessInfo.processInfo.environment, pid: Int32 = getpid()) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        // As sd_watchdog_enabled(): a WATCHDOG_PID naming another process means the watchdog is not ours.
        let ours = environment["WATCHDOG_PID"].map { Int32($0) == pid } ?? true
        watchdogInterval = ours ? environment["WATCHDOG_USEC"].flatMap(UInt64.init).map { Duration.microseconds(Int64($0)) } : nil
    }

    /// The notifier the service manager set up for this process, with its variables taken out of
    /// the environment (as sd_notify's `unset_environment`), so that hooks and other children do
    /// not take the daemon's notification socket or watchdog for theirs. Call it first thing.
    public static func takenFromEnvironment() -> SystemdNotifier {
        let notifier = SystemdNotifier()
        for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] { unsetenv(name) }
        return notifier
    }

    /// From `WATCHDOG_USEC`: pings must come at least this often.
    public let watchdogInterval: Duration?

    public func ready(status: String? = nil) { send("READY=1" + (status.map { "\nSTATUS=\($0)" } ?? "")) }
    public func reloading() {
        // systemd ≥ 253 wants the monotonic time with RELOADING=1.
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        send("RELOADING=1\nMONOTONIC_USEC=\(UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000)")
    }
    public func stopping() { send("STOPPING=1") }
    public func status(_ text: String) { send("STATUS=\(text)") }
    public func watchdog() { send("WATCHDOG=1") }

    /// Sends one datagram; failures are ignored (notification is best effort by design).
    public func send(_ message: String) {
        guard let socketPath else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(socketPath.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
        let payload = Array(message.utf8)
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                sendto(fd, payload, payload.count, Int32(MSG_NOSIGNAL), sa, length)
            }
        }
    }
}
