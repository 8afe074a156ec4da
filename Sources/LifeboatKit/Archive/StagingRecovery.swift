import CLinux
import Foundation

/// Cleans up after a crash, touching only what a restore created: a staging directory is
/// removed only while it still has the identity recorded when it was made, and data a commit
/// displaced (left at the staging path if the crash came between the swap and the quarantine
/// step) is moved to quarantine, never removed.
public enum StagingRecovery {
    /// Removes the staging directory at `path` if it still has `identity` (or, when the identity
    /// was never recorded, whatever directory holds the name reserved for it). Missing is fine.
    public static func removeLeftover(path: String, identity: FileIdentity?) throws {
        let (area, _) = try StagingDirectory.split(path)
        guard URL(fileURLWithPath: area).lastPathComponent == StagingDirectory.areaName else {
            throw ArchiveError(.io, "refusing to remove \(path): it is not inside a \(StagingDirectory.areaName) directory")
        }
        guard let identity = identity ?? FileIdentity(path: path) else {
            // Killed between the name's record and the directory's creation: only the area.
            removeEmptyArea(of: path)
            return
        }
        try TreeRemover.remove(path: path, ifIdentity: identity, removeEmptyParent: false)
        StagingDirectory.removeAreaIfEmpty(path: area)
    }

    /// Removes the staging area of `stagingPath` if it is empty: a job killed after its commit
    /// renamed the staging directory into place, before it tidied up, leaves it so (and no
    /// other job of the destination's parent may come to remove it), with the hold file it
    /// held its destination by.
    public static func removeEmptyArea(of stagingPath: String) {
        guard let (area, _) = try? StagingDirectory.split(stagingPath) else { return }
        StagingDirectory.removeAreaIfEmpty(path: area)
    }

    /// Removes a directory a commit put in place (an exercise's sandbox data), if it still has
    /// the identity recorded for that commit; then its parent if that became empty.
    public static func removeCommitted(path: String, identity: FileIdentity) throws {
        try TreeRemover.remove(path: path, ifIdentity: identity, removeEmptyParent: true)
    }

    /// Moves whatever is at `path` (the displaced data) to `<destination's parent>/.lifeboat-quarantine/<name>`.
    /// Returns the quarantine path.
    public static func quarantineLeftover(path: String, destination: String, quarantineName: String) throws -> String {
        let (_, name) = try StagingDirectory.split(path)
        let (parent, _) = try StagingDirectory.split(destination)
        let quarantine = try QuarantineArea.directory(for: destination)
        let parentFD = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard parentFD >= 0 else { throw ArchiveError(.io, "cannot open \(parent)", errno: errno) }
        defer { close(parentFD) }
        let area = (parent == "/" ? "" : parent) + "/" + StagingDirectory.areaName
        let areaFD = try OwnDirectory.enter(StagingDirectory.areaName, in: parentFD, path: area, create: false)
        defer { close(areaFD) }
        let quarantineFD = try OwnDirectory.enter(QuarantineArea.name, in: parentFD, path: quarantine)
        defer { close(quarantineFD) }
        guard lifeboat_renameat2(areaFD, name, quarantineFD, quarantineName, UInt32(LIFEBOAT_RENAME_NOREPLACE)) == 0 else {
            throw ArchiveError(.io, "cannot move the displaced data \(path) to quarantine \(quarantine)/\(quarantineName)", errno: errno)
        }
        _ = fsync(quarantineFD)
        _ = fsync(areaFD)
        StagingDirectory.removeAreaIfEmpty(in: parentFD)
        return quarantine + "/" + quarantineName
    }
}

extension FileIdentity {
    /// Parses `device:inode` as written by `description`.
    public init?(parsing text: String) {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return nil }
        self.init(device: device, inode: inode)
    }
}
