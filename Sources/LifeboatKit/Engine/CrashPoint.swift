import Foundation

/// Named steps where fault tests make the process die (`LIFEBOAT_CRASH_AT=<step>`), to prove that
/// a restart finishes the run with nothing lost and nothing committed twice. Unset in production:
/// the check is one environment lookup at start-up.
public enum CrashPoint: String, Sendable, CaseIterable {
    /// The staging tree is extracted and durable, nothing committed yet.
    case afterStaging = "after-staging"
    /// The commit record (committing + identity) is in the ledger.
    case afterCommitRecord = "after-commit-record"
    /// The destination holds the restored data; the displaced data is still at the staging path.
    case afterSwap = "after-swap"
    /// The displaced data is in quarantine; the ledger does not know yet.
    case afterQuarantine = "after-quarantine"
    /// Everything is on disk; the job's success is not yet in the ledger.
    case beforeLedgerCommit = "before-ledger-commit"
    /// The job's success is in the ledger.
    case afterLedgerCommit = "after-ledger-commit"
    /// An exercise ended and is recorded so, its sandbox cleanup not yet done.
    case beforeExerciseCleanup = "before-exercise-cleanup"
    /// An undelete renamed a target back into place; the ledger does not know yet.
    case afterUndeleteRename = "after-undelete-rename"

    static let armed: CrashPoint? = ProcessInfo.processInfo.environment["LIFEBOAT_CRASH_AT"].flatMap(CrashPoint.init(rawValue:))

    /// Dies on the spot (as `kill -9` would leave things) when this step is armed.
    public func hit() {
        guard Self.armed == self else { return }
        StandardOutput.write(Data("lifeboat: crash point \(rawValue) reached; exiting\n".utf8), to: STDERR_FILENO)
        _exit(86)
    }
}
