import CLinux
import Foundation

extension Rollback {
    /// Undelete: the rollback of a delete run renames each soft-deleted target back from
    /// quarantine. Refuses, with the reason, a target re-created since the delete, unless
    /// `forceAside` moves the new data to quarantine first (kept there, recorded). Each target's
    /// tree is compared with the one deleted, and the time the rename took is its RTO.
    func undelete(_ run: RunRecord, site: String?, product: String?, forceAside: Bool, by who: String) async throws -> [Outcome] {
        let runId = run.id
        let jobs = try await ledger.jobs(runId: runId).filter { $0.state == .succeeded }
            .filter { site == nil || $0.site == site }.filter { product == nil || $0.product == product }
        let quarantine = try await ledger.quarantine(includePurged: true).filter { $0.runId == runId && $0.reason == "delete" }
        var plan: [(job: JobRecord, entry: QuarantineRecord, aside: FileIdentity?, deleted: FileIdentity?)] = []
        // Renamed back by an undelete that died before recording it: recorded now.
        var foundBack: [(job: JobRecord, entry: QuarantineRecord)] = []
        var problems: [String] = []
        var outcomes: [Outcome] = []
        for job in jobs {
            guard let entry = quarantine.first(where: { $0.jobId == job.id }) else {
                problems.append("\(job.name): no quarantine record of its deleted data")
                continue
            }
            // The deleted tree, as moved into quarantine: anything else at its slot is not put in place.
            let deleted = (entry.identity ?? job.commitIdentity).flatMap(FileIdentity.init(parsing:))
            guard entry.purgedAt == nil, FileSystem.exists(entry.path) else {
                // Back in place means the very tree deleted (its identity) is at the target: a
                // tree that only looks the same (restored from the archives) is not it.
                if let deleted, FileIdentity(path: job.destination) == deleted {
                    if entry.purgedAt == nil {
                        foundBack.append((job, entry))
                    } else {
                        var outcome = Outcome(site: job.site, product: job.product, destination: job.destination, quarantined: entry.path, destinationRemoved: false)
                        outcome.alreadyDone = true
                        outcomes.append(outcome)
                    }
                } else {
                    problems.append("\(job.name): its deleted data is no longer in quarantine at \(entry.path) (purged, or moved outside Lifeboat), and \(job.destination) is not the tree deleted")
                }
                continue
            }
            if let deleted, let found = FileIdentity(path: entry.path), found != deleted {
                problems.append("\(job.name): \(entry.path) is not the data deleted (\(deleted) then, \(found) now: moved or replaced outside Lifeboat); nothing of it is put back")
                continue
            }
            // What was made at the target since (moved aside with --force-aside: that and only that).
            let recreated = FileIdentity(path: job.destination)
            if recreated != nil, !forceAside {
                problems.append("\(job.name): \(job.destination) was re-created since the delete; undeleting would displace that new data: "
                                + "add --force-aside to move it to quarantine first (it is kept there), or leave it")
                continue
            }
            plan.append((job, entry, recreated, deleted))
        }
        guard !plan.isEmpty || !foundBack.isEmpty else {
            let scope = [site.map { "site \($0)" }, product.map { "product \($0)" }].compactMap { $0 }.joined(separator: ", ")
            let done = outcomes.map { "\($0.site)/\($0.product)" }
            throw Refusal(message: "nothing to undelete in delete run \(runId)\(scope.isEmpty ? "" : " for \(scope)")"
                          + (problems.isEmpty ? "" : ": " + problems.joined(separator: "; "))
                          + (done.isEmpty ? "" : "\(problems.isEmpty ? ":" : ";") already back in place: " + done.joined(separator: ", ")))
        }
        guard problems.isEmpty else {
            throw Refusal(message: "refusing to undelete run \(runId) partly: " + problems.joined(separator: "; ") + ". Narrow it with --site/--product.")
        }
        for (job, entry) in foundBack {
            let now = clock.now()
            var closed = entry
            closed.purgedAt = now
            try await ledger.updateQuarantine(closed)
            var outcome = Outcome(site: job.site, product: job.product, destination: job.destination, quarantined: entry.path, destinationRemoved: false)
            outcome.seconds = 0
            outcome.identical = true
            ledger.postEvent(LedgerEvent(runId: runId, jobId: job.id, at: now, kind: "undelete",
                                         message: "\(job.name): found back at \(job.destination), identical to the tree deleted (an undelete stopped before recording it); recorded by \(who)"))
            outcomes.append(outcome)
        }
        for (job, entry, aside, deleted) in plan {
            let started = clock.now()
            let startedMono = ContinuousClock.now
            var asidePath: String?
            if let aside {
                // The re-created data goes to quarantine first, never unlinked.
                let slot = QuarantineArea.rollbackName(run: runId, site: job.site, product: job.product)
                let (path, identity) = try SoftDeleteExecutor.moveToQuarantine(job.destination, slot: slot, job: job.name, expected: aside)
                asidePath = path
                let retention = entry.retainUntil.timeIntervalSince(entry.createdAt)
                _ = try await ledger.addQuarantine(QuarantineRecord(
                    runId: runId, jobId: job.id, site: job.site, product: job.product, path: path,
                    originalPath: job.destination, createdAt: started, retainUntil: started.addingTimeInterval(retention), reason: "undelete-aside",
                    identity: identity), updating: nil)
            }
            do {
                try Self.renameBack(entry.path, to: job.destination, expected: deleted)
            } catch {
                // The data set aside stays where it went; say where.
                guard let asidePath else { throw error }
                throw Refusal(message: "\(job.name): \(error); the data that was at \(job.destination) is kept at \(asidePath): move it back if it is wanted there")
            }
            CrashPoint.afterUndeleteRename.hit()
            let elapsed = ContinuousClock.now - startedMono
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let now = clock.now()
            var closed = entry
            closed.purgedAt = now
            try await ledger.updateQuarantine(closed)
            let identical = job.treeDigest.map { TreeDigest.of(job.destination) == $0 }
            var outcome = Outcome(site: job.site, product: job.product, destination: job.destination, quarantined: entry.path, destinationRemoved: false)
            outcome.seconds = seconds
            outcome.identical = identical
            outcome.aside = asidePath
            ledger.postEvent(LedgerEvent(runId: runId, jobId: job.id, at: now, kind: "undelete",
                                         message: "\(job.name) undeleted by \(who): \(entry.path) back at \(job.destination) in \(String(format: "%.3f", seconds)) s (undelete RTO)"
                                             + (identical == true ? "; tree identical to the one deleted" : identical == false ? "; the tree DIFFERS from the one deleted" : "")
                                             + (asidePath.map { "; the data re-created there meanwhile is kept at \($0) (--force-aside)" } ?? "")))
            outcomes.append(outcome)
        }
        try await ledger.flush()
        return outcomes
    }

    /// Renames quarantined data back to `destination` (which must not exist), entering the
    /// quarantine directory without following a link, and syncs both directories.
    /// - Parameter expected: what must be at `quarantined` (the data moved there), if known.
    static func renameBack(_ quarantined: String, to destination: String, expected: FileIdentity?) throws {
        let (parent, name) = try StagingDirectory.split(destination)
        let parentFD = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard parentFD >= 0 else { throw FileSystemError(path: parent, operation: "open", errno: errno) }
        defer { close(parentFD) }
        let (area, slot) = try StagingDirectory.split(quarantined)
        let areaFD = try OwnDirectory.enter(path: area, create: false)
        defer { close(areaFD) }
        if let expected {
            guard let found = FileIdentity(slot, in: areaFD) else {
                throw FileSystemError(path: quarantined, operation: "find the quarantined data", errno: errno)
            }
            guard found == expected else {
                throw Refusal(message: "\(quarantined) is not the data quarantined there (\(expected) then, \(found) now: moved or replaced outside Lifeboat); nothing was moved back to \(destination)")
            }
        }
        guard lifeboat_renameat2(areaFD, slot, parentFD, name, UInt32(LIFEBOAT_RENAME_NOREPLACE)) == 0 else {
            throw FileSystemError(path: destination, operation: "move back from \(quarantined)", errno: errno)
        }
        try sync(parentFD, parent)
        try sync(areaFD, area)
    }
}
