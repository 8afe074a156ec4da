import CLinux
import Foundation

/// A delete run's job: the target moves into quarantine beside it (`.lifeboat-quarantine`, the
/// same filesystem) with one atomic rename, made durable (both directories synced) and recorded
/// before the job succeeds. Nothing is ever unlinked: the way back is a rename (`rollback`).
///
/// Crash safety: the target's identity (`dev:ino`) is recorded durably before the rename
/// (`willCommit`); after a crash, where that identity is (in place or in the job's quarantine
/// slot) tells whether the move happened, so each target ends either in place or in quarantine,
/// never both and never lost.
public struct SoftDeleteExecutor: Sendable {
    public init() {}

    public func execute(_ context: JobContext, observer: any JobObserver) async throws -> JobResult {
        let job = context.job
        let destination = job.destination
        var st = stat()
        guard lstat(destination, &st) == 0 else {
            throw JobError(.io, "\(job.name): nothing at \(destination) to delete (moved or deleted since the request); nothing was moved")
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw JobError(.sandbox, "\(job.name): \(destination) is \((st.st_mode & S_IFMT) == S_IFLNK ? "a symbolic link" : "not a directory"); a delete moves only a directory that is really there; nothing was moved")
        }
        let identity = FileIdentity(st)
        // Walking the tree is blocking I/O: off Swift concurrency's few threads.
        let (bytes, files, digest) = try await runBlocking(flag: CancellationFlag()) {
            let (bytes, files) = TreeSize.bytesAndFiles(destination)
            return (bytes, files, TreeDigest.of(destination))
        }
        // A delete's job carries what its confirmation covered of the target: a target changed
        // since (written to, or replaced while a gate held the run) was not what was confirmed.
        if let confirmed = job.treeDigest, confirmed != digest.map({ DeleteSelection.confirmedState(digest: $0, st) }) {
            throw JobError(.sandbox, "\(job.name): \(destination) changed since the delete was confirmed (its names, sizes, modes or times differ from what the token covered); nothing was moved. Check it, then delete it with a new --dry-run and --confirm if it should still go")
        }
        try await observer.staged(identity: identity.description)
        // Durable before anything moves: a restart finds the identity in place or in quarantine.
        try await observer.willCommit()
        CrashPoint.afterCommitRecord.hit()
        let slot = QuarantineArea.entryName(run: context.run.id, site: job.site, product: job.product, attempt: job.attempt)
        let checked = context.checkedParent
        let (quarantined, moved) = try await runBlocking(flag: CancellationFlag()) {
            try observer.mayCommit()
            return try Self.moveToQuarantine(destination, slot: slot, job: job.name, expected: identity, parentResolvesTo: checked)
        }
        CrashPoint.afterQuarantine.hit()
        try await observer.didQuarantine(path: quarantined, originalPath: destination, identity: moved)
        CrashPoint.beforeLedgerCommit.hit()
        var result = JobResult(bytes: bytes, entries: files, quarantinePath: quarantined)
        result.treeDigest = digest
        return result
    }

    /// Renames `destination` to `<its parent>/.lifeboat-quarantine/<slot>` (never replacing
    /// anything; the quarantine directory is never entered through a link) and syncs both
    /// directories. Returns the quarantine path and the identity of what moved there.
    /// - Parameters:
    ///   - expected: what must be at `destination` (checked through the parent's descriptor
    ///     before the rename, and at the slot after it: anything else is put back and refused).
    ///   - checked: the real path the parent had when the job started; it must still lead there.
    static func moveToQuarantine(_ destination: String, slot: String, job: String, expected: FileIdentity? = nil,
                                 parentResolvesTo checked: String? = nil) throws -> (path: String, identity: FileIdentity) {
        let (parent, name) = try StagingDirectory.split(destination)
        let parentFD = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard parentFD >= 0 else { throw JobError(.io, "\(job): cannot open \(parent): \(SystemError.describe(errno))") }
        defer { close(parentFD) }
        if let why = FileSystemCalls.changedSinceCheck(parentFD, parent: parent, checked: checked) {
            throw JobError(.sandbox, "\(job): \(why); nothing was moved")
        }
        if let expected, FileIdentity(name, in: parentFD) != expected {
            throw JobError(.sandbox, "\(job): \(destination) is no longer the directory checked when the job started (\(expected)): it was moved or replaced meanwhile; nothing was moved")
        }
        let area = try QuarantineArea.directory(for: destination)
        let areaFD: Int32
        do {
            areaFD = try OwnDirectory.enter(QuarantineArea.name, in: parentFD, path: area)
        } catch let error as ArchiveError {
            throw JobError(.io, "\(job): \(error.description); nothing was moved")
        }
        defer { close(areaFD) }
        guard lifeboat_renameat2(parentFD, name, areaFD, slot, UInt32(LIFEBOAT_RENAME_NOREPLACE)) == 0 else {
            let e = errno
            throw JobError(.io, "\(job): cannot move \(destination) to quarantine \(area)/\(slot): \(SystemError.describe(e)); nothing was moved",
                           transient: e == EINTR || e == EAGAIN || e == EIO)
        }
        guard let moved = FileIdentity(slot, in: areaFD) else {
            throw JobError(.io, "\(job): moved \(destination) to \(area)/\(slot) but cannot inspect it there: \(SystemError.describe(errno)); the data is in quarantine")
        }
        if let expected, moved != expected {
            // Replaced between the check and the rename: what moved is not the target. Back it goes.
            guard lifeboat_renameat2(areaFD, slot, parentFD, name, UInt32(LIFEBOAT_RENAME_NOREPLACE)) == 0 else {
                throw JobError(.sandbox, "\(job): \(destination) was replaced as it was moved, and what moved (\(moved), not the target \(expected)) "
                               + "could not be put back: it is at \(area)/\(slot); move it back to \(destination) by hand")
            }
            throw JobError(.sandbox, "\(job): \(destination) was replaced as it was moved (\(moved), not the target \(expected)); it was put back; nothing was deleted")
        }
        // Durable: the entry is in quarantine and gone from the parent, on disk.
        guard fsync(areaFD) == 0, fsync(parentFD) == 0 else {
            throw JobError(.io, "\(job): moved \(destination) to \(area)/\(slot) but could not sync the directories: \(SystemError.describe(errno)); the data is in quarantine")
        }
        return (area + "/" + slot, moved)
    }

    /// A restore job whose source is soft-deleted data: rename it back from quarantine (the
    /// target must still be absent: data re-created there is never displaced by this path).
    public func restoreFromQuarantine(_ context: JobContext, observer: any JobObserver) async throws -> JobResult {
        let job = context.job
        guard let path = job.snapshotPath, let identity = FileIdentity(path: path) else {
            throw JobError(.noSnapshot, "\(job.name): the soft-deleted data at \(job.snapshotPath ?? "?") is no longer in quarantine (put back or purged meanwhile); restore it from the archives with --from-snapshots")
        }
        var st = stat()
        guard lstat(job.destination, &st) != 0 else {
            throw JobError(.sandbox, "\(job.name): \(job.destination) was re-created since the delete; the soft-deleted data stays in quarantine at \(path) and the new data is left alone: move it away, or restore with --from-snapshots")
        }
        try await observer.staged(identity: identity.description)
        try await observer.willCommit()
        CrashPoint.afterCommitRecord.hit()
        let destination = job.destination
        do {
            try await runBlocking(flag: CancellationFlag()) {
                try observer.mayCommit()
                try Rollback.renameBack(path, to: destination, expected: identity)
            }
        } catch let error as FileSystemError {
            throw JobError(.io, "\(job.name): \(error)")
        } catch let error as Rollback.Refusal {
            throw JobError(.sandbox, "\(job.name): \(error.message)")
        }
        CrashPoint.beforeLedgerCommit.hit()
        let (bytes, files, digest) = try await runBlocking(flag: CancellationFlag()) {
            let (bytes, files) = TreeSize.bytesAndFiles(destination)
            return (bytes, files, TreeDigest.of(destination))
        }
        var result = JobResult(bytes: bytes, entries: files)
        result.treeDigest = digest
        return result
    }

    /// After a crash, for a restore from quarantine: the data's identity at the target means the
    /// rename happened.
    public func recoverFromQuarantine(_ context: JobContext) -> RecoveryOutcome {
        guard let recorded = context.job.commitIdentity.flatMap(FileIdentity.init(parsing:)) else { return .restart }
        return FileIdentity(path: context.job.destination) == recorded ? .committed(quarantinePath: nil) : .restart
    }

    /// After a crash: the target's recorded identity in quarantine means the move happened
    /// (recorded now if the record was lost); in place means it did not.
    public func recover(_ context: JobContext, observer: any JobObserver) async throws -> RecoveryOutcome {
        let job = context.job
        guard let recorded = job.commitIdentity.flatMap(FileIdentity.init(parsing:)) else { return .restart }
        if FileIdentity(path: job.destination) == recorded { return .restart }
        let area = try QuarantineArea.directory(for: job.destination)
        let slot = area + "/" + QuarantineArea.entryName(run: context.run.id, site: job.site, product: job.product, attempt: job.attempt)
        if FileIdentity(path: slot) == recorded {
            if job.quarantinePath == nil { try await observer.didQuarantine(path: slot, originalPath: job.destination, identity: recorded) }
            return .committed(quarantinePath: slot)
        }
        throw JobError(.io, "\(job.name): the target (\(recorded)) is neither at \(job.destination) nor at \(slot); look for it before going on")
    }
}
