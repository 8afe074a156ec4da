import Foundation

/// Everything one job needs to restore its data.
public struct JobContext: Sendable {
    public var job: JobRecord
    public var run: RunRecord
    public var plan: Plan
    /// The archive to restore (nil: the job fails with `no snapshot`).
    public var snapshot: Snapshot?
    /// Opens the snapshot's store (a directory or a bucket).
    public var stores: SnapshotStores
    /// The real path of the destination's parent directory as checked against the protected
    /// trees when the job started (nil: not checked). Staging is made only in that directory.
    public var checkedParent: String?
    /// Whether the job goes on when another process holds its destination: with a shared ledger,
    /// where the job's claim decides (a host that lost it holds on until it notices, or while it
    /// is frozen, and commits nothing past its claim). Otherwise it is refused.
    public var proceedsIfHeldElsewhere = false

    public init(job: JobRecord, run: RunRecord, plan: Plan, snapshot: Snapshot?, stores: SnapshotStores = SnapshotStores()) {
        self.job = job
        self.run = run
        self.plan = plan
        self.snapshot = snapshot
        self.stores = stores
    }

    /// The archive to restore, or the `no-snapshot` error that fails the job.
    public func requiredSnapshot() throws -> Snapshot {
        guard let snapshot else { throw JobError(.noSnapshot, "no snapshot of \(job.name) taken at or before \(Timestamp.iso(run.asOf))") }
        return snapshot
    }

    /// Template values for paths and hook commands.
    public var templateValues: [TemplateVariable: String] {
        [.site: job.site, .product: job.product, .run: run.id, .path: job.destination]
    }
}

/// What a finished job reports.
public struct JobResult: Sendable, Hashable {
    public var bytes: Int64
    public var entries: Int64
    public var archiveBytes: Int64
    public var skippedEntries: Int
    public var quarantinePath: String?
    public var hookOutput: String?
    /// Set when the data was committed but `post_restore` failed: the job fails, the data stays.
    public var postRestoreError: String?
    /// The committed tree's fingerprint (`TreeDigest`), for rollback.
    public var treeDigest: String?

    public init(bytes: Int64 = 0, entries: Int64 = 0, archiveBytes: Int64 = 0, skippedEntries: Int = 0,
                quarantinePath: String? = nil, hookOutput: String? = nil, postRestoreError: String? = nil) {
        self.bytes = bytes
        self.entries = entries
        self.archiveBytes = archiveBytes
        self.skippedEntries = skippedEntries
        self.quarantinePath = quarantinePath
        self.hookOutput = hookOutput
        self.postRestoreError = postRestoreError
    }
}

/// The engine's side of a job in progress: the executor reports state changes through it.
/// `reserved` and `willCommit` are durable when they return, so after a crash the engine knows
/// which staging directory is the job's and whether its commit happened.
public protocol JobObserver: Sendable {
    /// The staging directory's path, before it is created; durable when it returns.
    func reserved(stagingPath: String) async throws
    /// The staging directory exists with this identity (`dev:ino`), which the destination will
    /// have once committed. Recorded with the next durable write (at the latest `willCommit`).
    func staged(identity: String) async throws
    /// The staged data is being checked.
    func verifying() async throws
    /// Compressed bytes of the archive read so far.
    func progress(archiveBytesRead: Int64)
    /// The destination is about to change; durable when it returns.
    func willCommit() async throws
    /// Right before the destination changes (after `willCommit` and whatever sync follows):
    /// throws when this host may no longer change it (its claim's lease ran out by its own clock).
    func mayCommit() throws
    /// Another process holds the destination, and the job goes on (`proceedsIfHeldElsewhere`).
    func proceedingThoughHeld(_ destination: String)
    /// Records data displaced into quarantine, with its identity there (what a purge may remove);
    /// durable when it returns.
    func didQuarantine(path: String, originalPath: String, identity: FileIdentity?) async throws
}

/// Restores one job's data: select → stream → verify → sync → commit (DESIGN.md "One job").
public protocol JobExecutor: Sendable {
    func execute(_ context: JobContext, observer: any JobObserver) async throws -> JobResult

    /// After a crash: whether the job's commit already happened, completing a half-done commit
    /// (old data not yet in quarantine) and removing leftover staging Lifeboat created.
    func recover(_ context: JobContext, observer: any JobObserver) async throws -> RecoveryOutcome
}

public enum RecoveryOutcome: Sendable, Hashable {
    /// The data is in place: the job's commit happened before the crash. `postRestore`: the
    /// product's `post_restore` hook, run now (the crash or the drain came before it ended).
    case committed(quarantinePath: String?, postRestore: PostRestoreRun? = nil)
    /// Nothing was committed; leftovers removed; run the job again.
    case restart
}

/// An error of a job, classified for retries and reports.
public struct JobError: LifeboatError, Sendable {
    public enum Code: String, Sendable, Codable {
        case noSnapshot = "no-snapshot"
        case integrity, unsafeEntry = "unsafe-entry", limit, io, verify, hook, sandbox, cancelled, dependency, internalError = "internal"
    }

    public var code: Code
    public var message: String
    /// Transient I/O errors are retried; integrity and safety errors never are.
    public var isTransient: Bool

    public init(_ code: Code, _ message: String, transient: Bool = false) {
        self.code = code
        self.message = message
        self.isTransient = transient
    }

    public var exitCode: CLIExit { .failed }
    public var description: String { message }
}

/// A `post_restore` hook's run: what it printed, and why the job fails if it did.
public struct PostRestoreRun: Sendable, Hashable {
    public var output: String
    public var error: String?

    public init(output: String, error: String?) {
        self.output = output
        self.error = error
    }
}

/// A drain (not a cancel) stopped `post_restore` after the commit: the job is left as recorded
/// (committing, its commit recorded), and the next start finds the commit and runs the hook again.
public struct PostRestoreInterrupted: Error {
    /// The job's outcome had the stop been a cancel.
    public var result: JobResult
}
