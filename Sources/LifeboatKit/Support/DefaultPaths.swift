import Foundation

/// Where Lifeboat keeps its state when no config says otherwise: one user's directories, so
/// `lifeboatd` and `lifeboat` work out of the box without root.
public enum DefaultPaths {
    /// Root's state directory: `/var/lib/lifeboat/state`, a directory of its own below
    /// `/var/lib/lifeboat`, so that a snapshot store or sandbox beside it there
    /// (`/var/lib/lifeboat/snapshots`, as DESIGN.md's example plan has it) is not inside it.
    public static let rootStateDirectory = "/var/lib/lifeboat/state"

    /// `rootStateDirectory` for root; otherwise `$XDG_STATE_HOME/lifeboat` or `~/.local/state/lifeboat`.
    public static var stateDirectory: String {
        let env = ProcessInfo.processInfo.environment
        if geteuid() == 0 { return rootStateDirectory }
        if let xdg = env["XDG_STATE_HOME"], xdg.hasPrefix("/") { return xdg + "/lifeboat" }
        return home + "/.local/state/lifeboat"
    }

    /// `~`: `$HOME` when it is an absolute path, as shells and the XDG rules read it; else the
    /// user's home in the password database.
    static var home: String {
        if let home = ProcessInfo.processInfo.environment["HOME"], home.hasPrefix("/") { return home }
        return NSHomeDirectory()
    }

    /// The ledger in a state directory.
    public static func ledger(in stateDirectory: String) -> String { stateDirectory + "/ledger.sqlite" }

    /// The system daemon's socket (systemd, as root).
    public static let systemSocket = "/run/lifeboat/lifeboatd.sock"

    /// `/run/lifeboat/lifeboatd.sock` for root; otherwise `$XDG_RUNTIME_DIR/lifeboat/lifeboatd.sock`
    /// or the state directory.
    public static var socket: String {
        let env = ProcessInfo.processInfo.environment
        if geteuid() == 0 { return systemSocket }
        if let runtime = env["XDG_RUNTIME_DIR"], runtime.hasPrefix("/") { return runtime + "/lifeboat/lifeboatd.sock" }
        return stateDirectory + "/lifeboatd.sock"
    }

    /// Where the CLI looks for a daemon when not told: this user's own, then the system's (an
    /// operator in the socket's group talks to the system daemon without saying so).
    public static var socketCandidates: [String] {
        socket == systemSocket ? [systemSocket] : [socket, systemSocket]
    }
}
