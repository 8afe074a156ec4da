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
        /// True when the restored tree had been changed since the restore (rolled back with
        /// `--force`): those changes are in `quarantined` too.
        public var changedSinceRestore = false
        /// Undelete (rollback of a delete run): how long putting the data back took (its RTO).
        public var seconds: Double?
        /// Undelete: whether the tree back in place is identical to the one deleted (`TreeDigest`).
        public var identical: Bool?
        /// Undelete with `--force-aside`: where the data re-created at the target since went.
        public var aside: String?
        /// Rolled back (or undeleted) before this command: left as it is, said so. A rollback
        /// stopped part-way (a crash, or `--site` first) is finished by the same command again.
        public var alreadyDone: Bool?
    }

    public struct Refusal: LifeboatError {
        public var message: String
        public var exitCode: CLIExit { .rejected }
        public var description: String { message }
    }

    /// - Parameter force: roll back trees that changed since the restore too (the changed data
    ///   goes to quarantine like any restored data, and the outcome says so).
    public func rollback(runId: String, site: String?, product: String?, force: Bool = false, by who: String) async throws -> [Outcome] {
        do {
            return try await rollbackOrUndelete(runId: runId, site: site, product: product, force: force, by: who)
        } catch let refused as ArchiveError where refused.errno == nil {
            // Lifeboat's own directory is not what it should be (a link put in its place): a
            // refusal of the operator's request, not a fault of the daemon.
            throw Refusal(message: "\(refused.description); nothing more was moved")
        }
    }

    private func rollbackOrUndelete(runId: String, site: String?, product: String?, force: Bool, by who: String) async throws -> [Outcome] {
        guard let run = try await ledger.run(id: runId) else { throw Refusal(message: "no run \(runId) in the ledger") }
        if run.mode == .delete { return try await undelete(run, site: site, product: product, forceAside: force, by: who) }
        guard run.mode == .restore else { throw Refusal(message: "run \(runId) is a\(run.mode == .exercise ? "n exercise" : " dry run"); only restores and deletes can be rolled back") }
        let jobs = try await ledger.jobs(runId: runId).filter {
            $0.state == .succeeded || ($0.state == .failed && $0.errorCode == JobError.Code.hook.rawValue) // committed, post_restore failed
        }.filter { site == nil || $0.site == site } .filter { product == nil || $0.product == product }
        let quarantine = try await ledger.quarantine(includePurged: true).filter { $0.runId == runId }
        var plan: [(job: JobRecord, displaced: QuarantineRecord?, committed: FileIdentity)] = []
        var problems: [String] = []
        var changed: Set<Int64> = []
        var outcomes: [Outcome] = []
        // Rolled back by a rollback that died between its rename and its records: recorded now.
        var foundBack: [(job: JobRecord, displaced: QuarantineRecord?, committed: FileIdentity)] = []
        for job in jobs {
            let displaced = quarantine.first { $0.jobId == job.id && $0.reason == "restore" }
            if let earlier = quarantine.first(where: { $0.jobId == job.id && $0.reason == "rollback" }) {
                var outcome = Outcome(site: job.site, product: job.product, destination: job.destination, quarantined: earlier.path,
                                      destinationRemoved: displaced == nil)
                outcome.alreadyDone = true
                outcomes.append(outcome)
                continue
            }
            guard let identity = job.commitIdentity.flatMap(FileIdentity.init(parsing:)) else {
                problems.append("\(job.name): no committed tree recorded; refusing to touch \(job.destination)")
                continue
            }
            let found = FileIdentity(path: job.destination)
            guard found == identity else {
                if Self.wasRolledBack(job, displaced: displaced, committed: identity, runId: runId, found: found) {
                    foundBack.append((job, displaced, identity))
                } else {
                    problems.append("\(job.name): \(job.destination) changed since the restore (or is gone); refusing to touch it")
                }
                continue
            }
            if let displaced {
                guard displaced.purgedAt == nil, FileSystem.exists(displaced.path) else {
                    problems.append("\(job.name): the displaced data \(displaced.path) was purged; nothing to put back")
                    continue
                }
            }
            // The same directory may hold other contents than the restore left: files written,
            // added or removed since. Those are not the restore's to move silently.
            if let recorded = job.treeDigest, TreeDigest.of(job.destination) != recorded {
                if !force {
                    problems.append("\(job.name): \(job.destination) was changed after the restore (files written, added or removed); "
                                    + "rolling back would move those changes to quarantine: add --force to do so (they are kept there), or leave it")
                    continue
                }
                if let id = job.id { changed.insert(id) }
            }
            plan.append((job, displaced, identity))
        }
        guard !plan.isEmpty || !foundBack.isEmpty else {
            let scope = [site.map { "site \($0)" }, product.map { "product \($0)" }].compactMap { $0 }.joined(separator: ", ")
            let done = outcomes.map { "\($0.site)/\($0.product)" }
            throw Refusal(message: "nothing to roll back in run \(runId)\(scope.isEmpty ? "" : " for \(scope)")"
                          + (problems.isEmpty ? "" : ": " + problems.joined(separator: "; "))
                          + (done.isEmpty ? "" : "\(problems.isEmpty ? ":" : ";") already rolled back: " + done.joined(separator: ", ")))
        }
        guard problems.isEmpty else {
            throw Refusal(message: "refusing to roll back run \(runId) partly: " + problems.joined(separator: "; ") + ". Narrow it with --site/--product.")
        }
        let now = clock.now()
        for (job, displaced, committed) in foundBack {
            let quarantined = try displaced?.path ?? QuarantineArea.directory(for: job.destination) + "/" + QuarantineArea.rollbackName(run: runId, site: job.site, product: job.product)
            let outcome = Outcome(site: job.site, product: job.product, destination: job.destination, quarantined: quarantined, destinationRemoved: displaced == nil)
            try await record(outcome, job: job, displaced: displaced, committed: committed, runId: runId, at: now,
                             event: "\(job.name): found rolled back (a rollback stopped before recording it); recorded by \(who); restored data kept at \(quarantined)")
            outcomes.append(outcome)
        }
        for (job, displaced, committed) in plan {
            var outcome: Outcome
            let (parent, name) = try StagingDirectory.split(job.destination)
            let parentFD = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard parentFD >= 0 else { throw FileSystemError(path: parent, operation: "open", errno: errno) }
            defer { close(parentFD) }
            // What is moved is the tree the restore committed, found through the directory
            // opened (a parent swapped since the check leads elsewhere: refused).
            // A refusal part-way says which jobs were rolled back before it.
            func stop(_ message: String) -> Refusal {
                let before = outcomes.filter { $0.alreadyDone != true }
                return Refusal(message: message + (before.isEmpty ? "" : "; rolled back before it: " + before.map { "\($0.site)/\($0.product)" }.joined(separator: ", ")))
            }
            guard FileIdentity(name, in: parentFD) == committed else {
                throw stop("\(job.name): \(job.destination) is no longer the tree the restore committed (\(committed)): it was moved or replaced since the check; nothing of it was touched")
            }
            let area = try QuarantineArea.directory(for: job.destination)
            if let displaced {
                // Swap: the old data back into place, the restored data into its quarantine slot.
                // The quarantine directory is entered without following a link.
                let (displacedArea, displacedName) = try StagingDirectory.split(displaced.path)
                let areaFD = try OwnDirectory.enter(path: displacedArea, create: false)
                defer { close(areaFD) }
                if let expected = displaced.identity.flatMap(FileIdentity.init(parsing:)), FileIdentity(displacedName, in: areaFD) != expected {
                    throw stop("\(job.name): \(displaced.path) is not the data the restore displaced (\(expected)): moved or replaced outside Lifeboat; nothing of it was touched")
                }
                guard lifeboat_renameat2(areaFD, displacedName, parentFD, name, UInt32(LIFEBOAT_RENAME_EXCHANGE)) == 0 else {
                    throw FileSystemError(path: job.destination, operation: "exchange with \(displaced.path)", errno: errno)
                }
                // What the rename moved must be the committed tree (one swapped in between the
                // check and the rename goes back).
                let moved = FileIdentity(displacedName, in: areaFD)
                if moved != committed {
                    let undone = lifeboat_renameat2(areaFD, displacedName, parentFD, name, UInt32(LIFEBOAT_RENAME_EXCHANGE)) == 0
                    throw stop("\(job.name): \(job.destination) was replaced (\(moved.map(\.description) ?? "unreadable")) as it was rolled back; "
                               + (undone ? "the exchange was undone, both are where they were" : "undoing the exchange failed: the data now at \(displaced.path) is what was at \(job.destination)"))
                }
                try Self.sync(areaFD, displacedArea)
                try Self.sync(parentFD, parent)
                outcome = Outcome(site: job.site, product: job.product, destination: job.destination, quarantined: displaced.path, destinationRemoved: false)
            } else {
                // Nothing was there before: the restored data goes to quarantine.
                let areaFD = try OwnDirectory.enter(QuarantineArea.name, in: parentFD, path: area)
                defer { close(areaFD) }
                let slot = QuarantineArea.rollbackName(run: runId, site: job.site, product: job.product)
                guard lifeboat_renameat2(parentFD, name, areaFD, slot, UInt32(LIFEBOAT_RENAME_NOREPLACE)) == 0 else {
                    throw FileSystemError(path: job.destination, operation: "move to \(area)/\(slot)", errno: errno)
                }
                let moved = FileIdentity(slot, in: areaFD)
                if moved != committed {
                    let undone = lifeboat_renameat2(areaFD, slot, parentFD, name, UInt32(LIFEBOAT_RENAME_NOREPLACE)) == 0
                    throw stop("\(job.name): \(job.destination) was replaced (\(moved.map(\.description) ?? "unreadable")) as it was rolled back; "
                               + (undone ? "it was put back" : "putting it back failed: it is at \(area)/\(slot)"))
                }
                try Self.sync(areaFD, area)
                try Self.sync(parentFD, parent)
                outcome = Outcome(site: job.site, product: job.product, destination: job.destination, quarantined: area + "/" + slot, destinationRemoved: true)
            }
            outcome.changedSinceRestore = job.id.map(changed.contains) ?? false
            try await record(outcome, job: job, displaced: displaced, committed: committed, runId: runId, at: now,
                             event: "\(job.name) rolled back by \(who): \(outcome.destinationRemoved ? "restored data moved out (nothing was there before)" : "previous data back in place"); restored data kept at \(outcome.quarantined)"
                                 + (outcome.changedSinceRestore ? " (with the changes made to it since the restore; --force)" : ""))
            outcomes.append(outcome)
        }
        try await ledger.flush()
        return outcomes
    }

    /// Records a job rolled back: the restored data is now the quarantined party (its retention
    /// starts now), and the displaced data's entry is closed (it is back in place).
    private func record(_ outcome: Outcome, job: JobRecord, displaced: QuarantineRecord?, committed: FileIdentity, runId: String, at now: Date,
                        event: String) async throws {
        let retention = displaced.map { $0.retainUntil.timeIntervalSince($0.createdAt) } ?? 30 * 86_400
        _ = try await ledger.addQuarantine(QuarantineRecord(
            runId: runId, jobId: job.id, site: job.site, product: job.product, path: outcome.quarantined,
            originalPath: job.destination, createdAt: now, retainUntil: now.addingTimeInterval(retention), reason: "rollback",
            identity: committed), updating: nil)
        if var displaced {
            displaced.purgedAt = now
            try await ledger.updateQuarantine(displaced)
        }
        ledger.postEvent(LedgerEvent(runId: runId, jobId: job.id, at: now, kind: "rollback", message: event))
    }

    /// Whether a rollback of `job` happened without its records (it died after the rename): the
    /// committed tree is where the rollback puts it, and what the restore displaced (or nothing)
    /// is back at the destination — both by identity.
    static func wasRolledBack(_ job: JobRecord, displaced: QuarantineRecord?, committed: FileIdentity, runId: String, found: FileIdentity?) -> Bool {
        if let displaced {
            guard displaced.purgedAt == nil, let previous = displaced.identity.flatMap(FileIdentity.init(parsing:)), found == previous else { return false }
            return FileIdentity(path: displaced.path) == committed
        }
        guard found == nil, let area = try? QuarantineArea.directory(for: job.destination) else { return false }
        return FileIdentity(path: area + "/" + QuarantineArea.rollbackName(run: runId, site: job.site, product: job.product)) == committed
    }

    static func sync(_ fd: Int32, _ path: String) throws {
        guard fsync(fd) == 0 else { throw FileSystemError(path: path, operation: "sync", errno: errno) }
    }
}
