import CLinux
import Foundation

/// The points of a commit, reported to `commitStaging`'s `onStep` as each is reached (durable),
/// so the engine can record progress and fault tests can inject crashes.
public enum CommitStep: String, Sendable, Codable {
    /// Every file, directory and the staging tree itself are on disk (one `syncfs`).
    case stagingDurable = "staging-durable"
    /// The destination now holds the restored data (renamed or exchanged, the rename synced).
    case swapped
    /// The displaced data is in quarantine (the rename synced).
    case quarantined
}

/// What a commit did.
public struct CommitResult: Sendable, Codable, Equatable {
    /// Where the restored data now is.
    public var destination: String
    /// Where the data that was at the destination went; nil if there was none.
    public var quarantinePath: String?
    /// The identity of the committed directory (that of the staging directory).
    public var identity: FileIdentity
    /// The identity of the data that went to quarantine, as found there after the move.
    public var quarantinedIdentity: FileIdentity? = nil
}

/// A staging directory whose whole tree is on disk: the only thing `commitStaging` moves into
/// place. `StagingDirectory.makeDurable()` makes one.
public struct DurableStaging: Sendable {
    public let staging: StagingDirectory

    fileprivate init(staging: StagingDirectory) { self.staging = staging }
}

extension StagingDirectory {
    /// Makes the staging tree durable (DESIGN.md "One job, step by step", 5): after checking that
    /// it is the directory this restore created, one `syncfs` flushes every file and directory of
    /// it (since Linux 5.8 it reports writeback errors), shared with the commits that need one at
    /// the same time on this filesystem. Nothing may be written into the tree afterwards.
    ///
    /// Separate from the commit so that a caller can wait for it together with the commit's
    /// record in the ledger: both must precede the rename, neither needs the other.
    public func makeDurable() throws -> DurableStaging {
        let opened = try StagingCommit(staging: self).openStaging()
        defer { opened.close() }
        let synced = SharedSync.shared.sync(opened.staging)
        guard synced == 0 else {
            throw ArchiveError(.commitFailed, "cannot make the staging directory \(path) durable (syncfs)", errno: synced)
        }
        return DurableStaging(staging: self)
    }
}

/// Moves a durable staging directory into place atomically (DESIGN.md "One job, step by step", 6).
///
/// - If the destination does not exist: `renameat2(RENAME_NOREPLACE)`.
/// - If it exists: `renameat2(RENAME_EXCHANGE)` swaps it with staging in one step, then the old
///   data (now at the staging path) moves to `<destination's parent>/.lifeboat-quarantine/<quarantineName>`
///   with `RENAME_NOREPLACE`. Nothing is ever deleted.
///
/// Nothing is committed over unsynced data: the staging tree was made durable first (a failing
/// `syncfs` there fails before any rename). After each rename the directory it went into is
/// synced (`fsync`), and a failure there undoes the rename.
///
/// - Parameters:
///   - quarantineName: one path component, unique per commit; nil when the destination must not
///     exist (`snapshot extract --into`), which makes an existing destination an error.
///   - onStep: called at each durable step; throwing from it stops the commit there.
public func commitStaging(
    _ durable: DurableStaging, quarantineName: String?, onStep: (CommitStep) throws -> Void = { _ in }
) throws -> CommitResult {
    try StagingCommit(staging: durable.staging).run(quarantineName: quarantineName, onStep: onStep)
}

/// The steps of `commitStaging`, with the directory descriptors they share.
private struct StagingCommit {
    let staging: StagingDirectory

    /// The destination's parent, the staging area in it and the staging directory, checked to be
    /// the one this restore created.
    struct Opened {
        let parent: Int32
        let area: Int32
        let staging: Int32

        func close() {
            Foundation.close(staging)
            Foundation.close(area)
            Foundation.close(parent)
        }
    }

    func openStaging() throws -> Opened {
        let (parentPath, _) = try StagingDirectory.split(staging.destination)
        let parentFD = Foundation.open(parentPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard parentFD >= 0 else { throw fail("cannot open \(parentPath)", errno) }
        // Something moved the directory staging was made in, or put a link on the way, while the
        // job ran: the path leads elsewhere now, where nothing of this restore belongs.
        var parentStat = stat()
        guard fstat(parentFD, &parentStat) == 0 else {
            let e = errno
            Foundation.close(parentFD)
            throw fail("cannot inspect \(parentPath)", e)
        }
        guard FileIdentity(parentStat) == staging.parentIdentity else {
            Foundation.close(parentFD)
            let now = FileSystem.lstatKind(parentPath) == .symlink ? "it is a symbolic link now" : "a directory on its way was moved or replaced"
            throw fail("the destination's parent \(parentPath) is no longer the directory this restore staged in (\(now)); nothing was committed")
        }
        let areaFD: Int32
        do {
            areaFD = try OwnDirectory.enter(StagingDirectory.areaName, in: parentFD, path: staging.area, create: false)
        } catch {
            Foundation.close(parentFD)
            throw error
        }
        let stagingFD = openat(areaFD, staging.name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        var st = stat()
        guard stagingFD >= 0, fstat(stagingFD, &st) == 0, FileIdentity(st) == staging.identity else {
            let e = errno
            if stagingFD >= 0 { Foundation.close(stagingFD) }
            Foundation.close(areaFD)
            Foundation.close(parentFD)
            throw stagingFD < 0 ? fail("cannot open the staging directory \(staging.path)", e)
                                : fail("the staging directory \(staging.path) is not the one this restore created")
        }
        return Opened(parent: parentFD, area: areaFD, staging: stagingFD)
    }

    func run(quarantineName: String?, onStep: (CommitStep) throws -> Void) throws -> CommitResult {
        if let quarantineName, !StagingDirectory.isComponent(quarantineName) {
            throw fail("the quarantine name \(String(reflecting: quarantineName)) is not a single path component")
        }
        let (parentPath, destinationName) = try StagingDirectory.split(staging.destination)
        // 1. Durable (`makeDurable`), and still the staging tree that was made durable.
        let opened = try openStaging()
        defer { opened.close() }
        let parentFD = opened.parent, areaFD = opened.area
        try onStep(.stagingDurable)

        // 2. Into place. A failure after a rename (a sync that reports an I/O error, a quarantine
        // that cannot be made) undoes what was done, so a failed job leaves the destination as it
        // was; failures thrown by `onStep` stop the commit where it is (a crash, as tests inject).
        let rc = lifeboat_renameat2(areaFD, staging.name, parentFD, destinationName, UInt32(LIFEBOAT_RENAME_NOREPLACE))
        if rc == 0 {
            do {
                try syncRename(into: parentFD, "the move of \(staging.path) to \(staging.destination)")
            } catch {
                throw undo(error, parentFD: parentFD, areaFD: areaFD, destinationName: destinationName, exchanged: false)
            }
            try onStep(.swapped)
            return CommitResult(destination: staging.destination, quarantinePath: nil, identity: staging.identity)
        }
        guard errno == EEXIST else {
            throw fail("cannot move \(staging.path) to \(staging.destination)", errno)
        }
        guard let quarantineName else {
            throw fail("the destination \(staging.destination) exists; it must not")
        }
        // The destination exists: swap atomically, so at every instant it holds either the old
        // or the new data.
        guard lifeboat_renameat2(areaFD, staging.name, parentFD, destinationName, UInt32(LIFEBOAT_RENAME_EXCHANGE)) == 0 else {
            let e = errno
            throw fail("cannot exchange \(staging.path) with \(staging.destination)"
                       + (e == EINVAL ? " (the filesystem does not support RENAME_EXCHANGE)" : ""), e)
        }
        do {
            try syncRename(into: parentFD, "the exchange of \(staging.path) with \(staging.destination)")
        } catch {
            throw undo(error, parentFD: parentFD, areaFD: areaFD, destinationName: destinationName, exchanged: true)
        }
        try onStep(.swapped)

        // 3. The displaced data (now at the staging path) goes to quarantine.
        let quarantineArea = (parentPath == "/" ? "" : parentPath) + "/" + QuarantineArea.name
        let quarantined: FileIdentity
        do {
            quarantined = try moveToQuarantine(area: quarantineArea, name: quarantineName, parentFD: parentFD, areaFD: areaFD)
        } catch {
            throw undo(error, parentFD: parentFD, areaFD: areaFD, destinationName: destinationName, exchanged: true)
        }
        try onStep(.quarantined)
        return CommitResult(destination: staging.destination, quarantinePath: quarantineArea + "/" + quarantineName,
                            identity: staging.identity, quarantinedIdentity: quarantined)
    }

    /// Moves the displaced data from the staging path to `<area>/<name>` and syncs the move. If
    /// the sync fails, the data is moved back before throwing. Returns its identity there.
    private func moveToQuarantine(area: String, name: String, parentFD: Int32, areaFD: Int32) throws -> FileIdentity {
        let quarantineFD = try OwnDirectory.enter(QuarantineArea.name, in: parentFD, path: area)
        defer { close(quarantineFD) }
        guard lifeboat_renameat2(areaFD, staging.name, quarantineFD, name, UInt32(LIFEBOAT_RENAME_NOREPLACE)) == 0 else {
            throw fail("cannot move the data it replaced from \(staging.path) to quarantine \(area)/\(name)", errno)
        }
        do {
            guard let moved = FileIdentity(name, in: quarantineFD) else {
                throw fail("cannot inspect the data moved to quarantine \(area)/\(name)", errno)
            }
            try syncRename(into: quarantineFD, "the move to quarantine \(area)/\(name)")
            return moved
        } catch {
            guard lifeboat_renameat2(quarantineFD, name, areaFD, staging.name, UInt32(LIFEBOAT_RENAME_NOREPLACE)) == 0 else {
                let e = errno
                throw fail("\((error as? ArchiveError)?.detail ?? "\(error)"); the data it replaced is in quarantine \(area)/\(name), "
                           + "but the restored data is at \(staging.destination) and could not be taken back out "
                           + "(moving the quarantined data back failed: \(SystemError.describe(e)))", (error as? ArchiveError)?.errno)
            }
            throw error
        }
    }

    /// Takes a commit back after a failure: the restored data returns to the staging path (and is
    /// discarded with it) and the destination holds what it held before. The error says which.
    private func undo(_ error: any Error, parentFD: Int32, areaFD: Int32, destinationName: String, exchanged: Bool) -> ArchiveError {
        let original = error as? ArchiveError ?? fail("\(error)")
        let flags = UInt32(exchanged ? LIFEBOAT_RENAME_EXCHANGE : LIFEBOAT_RENAME_NOREPLACE)
        guard lifeboat_renameat2(parentFD, destinationName, areaFD, staging.name, flags) == 0 else {
            let e = errno
            var stuck = original
            stuck.detail += "; the restored data is at \(staging.destination)"
                + (exchanged ? " and the data it replaced is at \(staging.path)" : "")
                + ", and undoing the commit failed too (\(SystemError.describe(e))); nothing was deleted"
            return stuck
        }
        // Best effort: the undo is itself a rename whose durability the failed sync put in doubt.
        _ = fsync(parentFD)
        _ = fsync(areaFD)
        var undone = original
        undone.detail += "; the commit was undone: " + (exchanged ? "\(staging.destination) holds its previous data again"
                                                                  : "nothing was left at \(staging.destination)")
        return undone
    }

    /// Makes a rename durable: an `fsync` of the directory it went into, as PostgreSQL's
    /// `durable_rename` does. The journal transaction that commits holds the whole rename (the
    /// entry gone from where it came from too), and commits finishing together share it; an
    /// `fsync` of the other directory would find it committed and still flush the device again.
    /// Not a `syncfs`: that also writes back, and waits for, the data every other job is writing
    /// on the filesystem (the 10,000-job run took 10% longer with it).
    private func syncRename(into fd: Int32, _ what: String) throws {
        do throws(SystemCallError) {
            try FileSystemCalls.fsync(fd)
        } catch {
            throw fail("cannot make \(what) durable (fsync)", error.errno)
        }
    }

    private func fail(_ detail: String, _ code: Int32? = nil) -> ArchiveError {
        ArchiveError(.commitFailed, detail, errno: code)
    }
}

/// Where displaced data is kept: `<destination's parent>/.lifeboat-quarantine/`.
public enum QuarantineArea {
    public static let name = ".lifeboat-quarantine"

    /// The name of one job's displaced data: unique per (run, site, product, attempt) wherever
    /// the quarantine directory sits (`/srv/{product}/{site}` puts every site's in one).
    public static func entryName(run: String, site: String, product: String, attempt: Int) -> String {
        "\(run).\(site).\(product).\(attempt)"
    }

    /// The name of the data a rollback moved out of a destination that was empty before.
    public static func rollbackName(run: String, site: String, product: String) -> String {
        "\(run).\(site).\(product).rollback"
    }

    /// `<destination's parent>/.lifeboat-quarantine`.
    public static func directory(for destination: String) throws -> String {
        let (parent, _) = try StagingDirectory.split(destination)
        return (parent == "/" ? "" : parent) + "/" + name
    }
}
