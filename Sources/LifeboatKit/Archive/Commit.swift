import CLinux
import Foundation

/// The points of a commit, reported to `commitStaging`'s `onStep` as each is reached (durable),
/// so the engine can record progress and fault tests can inject crashes.
public enum CommitStep: String, Sendable, Codable {
    /// Every file, directory and the staging tree itself are on disk (one `syncfs`).
    case stagingDurable = "staging-durable"
    /// The destination now holds the restored data (renamed or exchanged, parents synced).
    case swapped
    /// The displaced data is in quarantine (parents synced).
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
}

/// Makes a staging directory durable and moves it into place atomically (DESIGN.md "One job,
/// step by step", 5–6).
///
/// - If the destination does not exist: `renameat2(RENAME_NOREPLACE)`.
/// - If it exists: `renameat2(RENAME_EXCHANGE)` swaps it with staging in one step, then the old
///   data (now at the staging path) moves to `<destination's parent>/.lifeboat-quarantine/<quarantineName>`
///   with `RENAME_NOREPLACE`. Nothing is ever deleted.
///
/// Nothing is reported committed over unsynced data: a failing `syncfs` fails the commit before
/// any rename. After each rename the affected directories are fsynced.
///
/// - Parameters:
///   - quarantineName: one path component, unique per commit; nil when the destination must not
///     exist (`snapshot extract --into`), which makes an existing destination an error.
///   - onStep: called at each durable step; throwing from it stops the commit there.
public func commitStaging(
    _ staging: StagingDirectory, quarantineName: String?, onStep: (CommitStep) throws -> Void = { _ in }
) throws -> CommitResult {
    try StagingCommit(staging: staging).run(quarantineName: quarantineName, onStep: onStep)
}

/// The steps of `commitStaging`, with the directory descriptors they share.
private struct StagingCommit {
    let staging: StagingDirectory

    func run(quarantineName: String?, onStep: (CommitStep) throws -> Void) throws -> CommitResult {
        if let quarantineName, !StagingDirectory.isComponent(quarantineName) {
            throw fail("the quarantine name \(String(reflecting: quarantineName)) is not a single path component")
        }
        let (parentPath, destinationName) = try StagingDirectory.split(staging.destination)
        let areaFD = try openDirectory(staging.area)
        defer { close(areaFD) }
        let parentFD = try openDirectory(parentPath)
        defer { close(parentFD) }

        // 1. Durable: the staging tree must be the one created and entirely on disk.
        let stagingFD = openat(areaFD, staging.name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard stagingFD >= 0 else { throw fail("cannot open the staging directory \(staging.path)", errno) }
        defer { close(stagingFD) }
        var st = stat()
        guard fstat(stagingFD, &st) == 0, FileIdentity(st) == staging.identity else {
            throw fail("the staging directory \(staging.path) is not the one this restore created")
        }
        // One syncfs flushes every file and directory of the tree; since Linux 5.8 it reports
        // writeback errors that happened since stagingFD's filesystem was opened.
        guard lifeboat_syncfs(stagingFD) == 0 else {
            throw fail("cannot make the staging directory \(staging.path) durable (syncfs)", errno)
        }
        try onStep(.stagingDurable)

        // 2. Into place.
        let rc = lifeboat_renameat2(areaFD, staging.name, parentFD, destinationName, UInt32(LIFEBOAT_RENAME_NOREPLACE))
        if rc == 0 {
            try sync(parentFD, parentPath)
            try sync(areaFD, staging.area)
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
        try sync(parentFD, parentPath)
        try sync(areaFD, staging.area)
        try onStep(.swapped)

        // 3. The displaced data (now at the staging path) goes to quarantine.
        let quarantineArea = (parentPath == "/" ? "" : parentPath) + "/" + QuarantineArea.name
        if mkdirat(parentFD, QuarantineArea.name, 0o700) == 0 {
            try sync(parentFD, parentPath)
        } else if errno != EEXIST {
            throw fail("cannot create the quarantine directory \(quarantineArea)", errno)
        }
        let quarantineFD = try openDirectory(quarantineArea)
        defer { close(quarantineFD) }
        guard lifeboat_renameat2(areaFD, staging.name, quarantineFD, quarantineName, UInt32(LIFEBOAT_RENAME_NOREPLACE)) == 0 else {
            throw fail("the restored data is in place, but the data it replaced could not be moved from \(staging.path) to quarantine \(quarantineArea)/\(quarantineName); it is still at \(staging.path)", errno)
        }
        try sync(quarantineFD, quarantineArea)
        try sync(areaFD, staging.area)
        try onStep(.quarantined)
        return CommitResult(destination: staging.destination, quarantinePath: quarantineArea + "/" + quarantineName,
                            identity: staging.identity)
    }

    private func openDirectory(_ path: String) throws -> Int32 {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw fail("cannot open \(path)", errno) }
        return fd
    }

    private func sync(_ fd: Int32, _ path: String) throws {
        do {
            try FileSystemCalls.fsync(fd)
        } catch {
            throw fail("cannot sync the directory \(path)", error.errno)
        }
    }

    private func fail(_ detail: String, _ code: Int32? = nil) -> ArchiveError {
        ArchiveError(.commitFailed, detail, errno: code)
    }
}

/// Where displaced data is kept: `<destination's parent>/.lifeboat-quarantine/`.
public enum QuarantineArea {
    public static let name = ".lifeboat-quarantine"
}
