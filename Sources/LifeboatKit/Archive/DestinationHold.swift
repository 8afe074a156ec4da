import CLinux
import Foundation

/// A restore's hold on its destination that every process sees, not only the daemon that took it
/// (`DestinationHolds` is one daemon's memory): an open file description lock on one byte of
/// `<destination's parent>/.lifeboat-staging/.holds`, at an offset derived from the destination's
/// name. It is taken before staging is made and kept until the staging directory is gone
/// (committed or discarded); the kernel lets go of it when the process ends, however it ends, so
/// a killed process never leaves a destination held.
///
/// So two processes never restore one destination at once, whatever their state directories: two
/// daemons (a test instance pointed at production's plans, two hosts sharing a mount but not a
/// ledger), or a daemon and `lifeboat snapshot extract`. The parent is the directory itself
/// (opened, links followed), so two templates reaching it through different links meet here too.
///
/// The file stays while anyone holds a byte of it. Whoever lets go removes it if nobody holds any
/// of it — under a lock on the whole file, which no holder's byte can share — so the staging area
/// can go once empty; a taker checks, once locked, that the file it locked is still the one named
/// `.holds` (not one removed meanwhile).
struct DestinationHold: Sendable {
    static let fileName = ".holds"

    /// The locked file's descriptor; -1 where the filesystem has no such locks (then only this
    /// daemon's own holds apply), or where the job goes on without the hold (`none`).
    private let fd: Int32

    /// No hold: staging that goes on while another process holds the destination.
    static let none = DestinationHold(fd: -1, offset: 0)

    /// The byte held for a destination named `name`: FNV-1a of the name, in 1..<2^62 (byte 0 and
    /// beyond stay free for the whole-file lock of whoever removes the file).
    static func offset(of name: String) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return Int64(hash >> 2) | 1
    }

    /// Takes the hold on the destination `name` in the staging area open at `areaFD` (`area` names
    /// it in errors); nil when another process holds it.
    static func take(_ name: String, in areaFD: Int32, area: String) throws -> DestinationHold? {
        let offset = offset(of: name)
        for _ in 0..<1_000 {
            let fd = openat(areaFD, fileName, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                let e = errno
                if e == ELOOP || e == EISDIR {
                    throw ArchiveError(.io, "\(area)/\(fileName) is \(e == ELOOP ? "a symbolic link" : "a directory"), not the file Lifeboat holds "
                                       + "destinations by (never followed); nothing was staged: remove it, then run the job again")
                }
                throw ArchiveError(.io, "cannot open \(area)/\(fileName)", errno: e)
            }
            guard lifeboat_ofd_lock(fd, 1, offset, 1) == 0 else {
                let e = errno
                var start: Int64 = 0, length: Int64 = 0
                let conflict = e == EAGAIN || e == EACCES ? lifeboat_ofd_conflict(fd, offset, 1, &start, &length) : -1
                close(fd)
                switch e {
                case EAGAIN, EACCES:
                    // A holder's byte: held elsewhere. The whole file (its last holder removing
                    // it), or gone meanwhile: a moment, then again.
                    if conflict == 1 && length != 0 { return nil }
                    usleep(1_000)
                    continue
                case ENOLCK, EINVAL, EOPNOTSUPP:
                    return .none
                default:
                    throw ArchiveError(.io, "cannot lock \(area)/\(fileName)", errno: e)
                }
            }
            if Self.isNamed(fd, in: areaFD) { return DestinationHold(fd: fd, offset: offset) }
            close(fd)
        }
        throw ArchiveError(.io, "cannot take a hold in \(area)/\(fileName): it keeps being replaced")
    }

    /// The byte held, for `release`.
    private let offset: Int64

    /// Lets go of the destination, then removes the file from the area open at `areaFD` (nil:
    /// not to be opened) if nobody holds any of it. Unlocked before it is closed: a process being
    /// spawned meanwhile shares the descriptor until it execs, and would keep the lock that long.
    func release(in areaFD: Int32?) {
        if fd >= 0 {
            _ = lifeboat_ofd_lock(fd, 0, offset, 1)
            close(fd)
        }
        if let areaFD { Self.removeIfUnheld(in: areaFD) }
    }

    /// Removes `.holds` from the staging area open at `areaFD` if no process holds any of it
    /// (one killed while it held a destination leaves the file behind, never the lock).
    static func removeIfUnheld(in areaFD: Int32) {
        let fd = openat(areaFD, fileName, O_RDWR | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        guard lifeboat_ofd_lock(fd, 1, 0, 0) == 0 else { return }
        if isNamed(fd, in: areaFD) { _ = unlinkat(areaFD, fileName, 0) }
        _ = lifeboat_ofd_lock(fd, 0, 0, 0)
    }

    /// Whether a process holds any destination of the staging area at `area` now (so what is
    /// staged there may be in use).
    static func anyHeld(inArea area: String) -> Bool {
        let fd = open(area + "/" + fileName, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var start: Int64 = 0, length: Int64 = 0
        return lifeboat_ofd_conflict(fd, 0, 0, &start, &length) == 1
    }

    /// Whether `fd` is the file named `.holds` in the area now.
    private static func isNamed(_ fd: Int32, in areaFD: Int32) -> Bool {
        var opened = stat(), named = stat()
        return fstat(fd, &opened) == 0 && fstatat(areaFD, fileName, &named, AT_SYMLINK_NOFOLLOW) == 0
            && FileIdentity(opened) == FileIdentity(named)
    }
}

/// Another process is restoring (or extracting into) the destination right now.
public struct DestinationHeldElsewhere: LifeboatError {
    public var destination: String
    public var exitCode: CLIExit { .failed }
    public var description: String {
        "\(destination) is being restored by another process right now (a lifeboatd with another state directory or ledger, "
            + "or a `lifeboat snapshot extract`); a destination is restored by one job at a time, and nothing was staged or changed"
    }
}
