import Foundation

/// A file's identity on its host: device and inode numbers. A rename keeps it, so after a crash
/// the identity of a destination tells whether a recorded staging directory was already committed.
public struct FileIdentity: Hashable, Sendable, Codable, CustomStringConvertible {
    public var device: UInt64
    public var inode: UInt64

    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }

    init(_ st: stat) {
        self.init(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    /// The identity of whatever is at `path` (not following a final symbolic link); nil if nothing.
    public init?(path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        self.init(st)
    }

    /// The identity of `name` inside the open directory `dirfd` (not following a final symbolic
    /// link): what a rename there moves, whatever path led to the directory. Nil if nothing
    /// (errno says why).
    init?(_ name: String, in dirfd: Int32) {
        var st = stat()
        guard fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return nil }
        self.init(st)
    }

    public var description: String { "\(device):\(inode)" }
}
