import CLinux
import Foundation

/// Puts back what a restore displaced: for each committed job, the quarantined data and the
/// destination trade places atomically (`RENAME_EXCHANGE`), so the restored data goes to
/// quarantine in turn. Refuses where the destination changed since the restore.
public struct Rollback: Sendable {
    public let ledger: any Ledger
    public let clock: any LifeboatClock

    public init(ledger: any Ledger, clock: any LifeboatClock) {
        self.ledger = ledger
        self.clock = clock
    }

    public struct Outcome: Sendable, Codable {
        public var site: String
        public var product: String
        public var destination: String
        /// Where the restored data went.
        public var quarantined: String
        /// True when the destination was empty before the restore (it is again).
        public var destinationRemoved: Bool
    }

    public struct Refusal: LifeboatError {
        public var message: String
        public var exitCode: CLIExit { .rejected }
        public var description: String { message }
    }

    public func rollback(runId: String, site: String?, product: String?, by who: String) async throws -> [Outcome] {
        guard let run = try await ledger.run(id: runId) else { throw Refusal(message: "no run \(runId) in the ledger") }
        guard run.mode == .restore else { throw Refusal(message: "run \(runId) is a\(run.mode == .exercise ? "n exercise" : " dry run"); only restores can be rolled back") }
        let jobs = try await ledger.jobs(runId: runId).filter {
            $0.state == .succeeded || ($0.state == .failed && $0.errorCode == JobError.Code.hook.rawValue) // committed, post_restore failed
        }.filter { site == nil || $0.site == site } .filter { product == nil || $0.product == product }
        let quarantine = try await ledger.quarantine(includePurged: true).filter { $0.runId == runId }
        var plan: [(JobRecord, QuarantineRecord?)] = []
        var problems: [String] = []
        for job in jobs {
            let displaced = quarantine.first { $0.jobId == job.id && $0.reason == "restore" }
            let restoredBack = quarantine.contains { $0.jobId == job.id && $0.reason == "rollback" }
            if restoredBack { problems.append("\(job.name): already rolled back"); continue }
            guard let identity = job.commitIdentity.flatMap(FileIdentity.init(parsing:)), FileIdentity(path: job.destination) == identity else {
                problems.append("\(job.name): \(job.destination) changed since the restore (or is gone); refusing to touch it")
                continue
            }
            if let displaced {
                guard displaced.purgedAt == nil, FileSystem.exists(displaced.path) else {
                    problems.append("\(job.name): the displaced data \(displaced.path) was purged; nothing to put back")
                    continue
                }
            }
            plan.append((job, displaced))
        }
        guard !plan.isEmpty else {
            let scope = [site.map { "site \($0)" }, product.map { "product \($0)" }].compactMap { $0 }.joined(separator: ", ")
            throw Refusal(message: "nothing to roll back in run \(runId)\(scope.isEmpty ? "" : " for \(scope)")" + (problems.isEmpty ? "" : ": " + problems.joined(separator: "; ")))
        }
        guard problems.isEmpty else {
            throw Refusal(message: "refusing to roll back run \(runId) partly: " + problems.joined(separator: "; ") + ". Narrow it with --site/--product.")
        }
        var outcomes: [Outcome] = []
        let now = clock.now()
        for (job, displaced) in plan {
            let outcome: Outcome
            if let displaced {
                // Swap: the old data back into place, the restored data into its quarantine slot.
                guard lifeboat_renameat2(AT_FDCWD, displaced.path, AT_FDCWD, job.destination, UInt32(LIFEBOAT_RENAME_EXCHANGE)) == 0 else {
                    throw FileSystemError(path: job.destination, operation: "exchange with \(displaced.path)", errno: errno)
                }
                try Self.syncParents(displaced.path, job.destination)
                outcome = Outcome(site: job.site, product: job.product, destination: job.destination, quarantined: displaced.path, destinationRemoved: false)
            } else {
                // Nothing was there before: the restored data goes to quarantine.
                let parent = URL(fileURLWithPath: job.destination).deletingLastPathComponent().path
                let area = parent + "/" + QuarantineArea.name
                try FileSystem.createDirectories(area, mode: 0o700)
                let target = area + "/\(runId).\(job.product).rollback"
                guard lifeboat_renameat2(AT_FDCWD, job.destination, AT_FDCWD, target, UInt32(LIFEBOAT_RENAME_NOREPLACE)) == 0 else {
                    throw FileSystemError(path: job.destination, operation: "move to \(target)", errno: errno)
                }
                try Self.syncParents(target, job.destination)
                outcome = Outcome(site: job.site, product: job.product, destination: job.destination, quarantined: target, destinationRemoved: true)
            }
            // The restored data is now the quarantined party; its retention starts now.
            let retention = displaced.map { $0.retainUntil.timeIntervalSince($0.createdAt) } ?? 30 * 86_400
            _ = try await ledger.addQuarantine(QuarantineRecord(
                runId: runId, jobId: job.id, site: job.site, product: job.product, path: outcome.quarantined,
                originalPath: job.destination, createdAt: now, retainUntil: now.addingTimeInterval(retention), reason: "rollback"), updating: nil)
            if var displaced {
                // The old data is back in place: its quarantine entry is closed.
                displaced.purgedAt = now
                try await ledger.updateQuarantine(displaced)
            }
            ledger.postEvent(LedgerEvent(runId: runId, jobId: job.id, at: now, kind: "rollback",
                                         message: "\(job.name) rolled back by \(who): \(outcome.destinationRemoved ? "restored data moved out (nothing was there before)" : "previous data back in place"); restored data kept at \(outcome.quarantined)"))
            outcomes.append(outcome)
        }
        try await ledger.flush()
        return outcomes
    }

    static func syncParents(_ paths: String...) throws {
        for path in paths {
            let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
            let fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            guard fsync(fd) == 0 else { throw FileSystemError(path: parent, operation: "sync", errno: errno) }
        }
    }
}
