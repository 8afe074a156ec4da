import Foundation

/// Data displaced by restores and rollbacks, kept until an operator purges it past retention.
/// Purge is the only place Lifeboat deletes data it did not create, and only on request.
public struct QuarantineManager: Sendable {
    public let ledger: any Ledger
    public let clock: any LifeboatClock

    public init(ledger: any Ledger, clock: any LifeboatClock) {
        self.ledger = ledger
        self.clock = clock
    }

    public struct Entry: Sendable, Codable {
        public var id: Int64
        public var run: String
        public var site: String
        public var product: String
        public var path: String
        public var originalPath: String
        public var reason: String
        public var createdAt: Date
        public var retainUntil: Date
        public var bytes: Int64?
        public var ageSeconds: Double
        public var purgeable: Bool
        /// False when the quarantined data is no longer where the ledger says.
        public var present: Bool
    }

    public func list() async throws -> [Entry] { entries(try await ledger.quarantine(includePurged: false)) }

    /// The ledger's records of quarantined data, with what is on disk now.
    func entries(_ records: [QuarantineRecord]) -> [Entry] {
        let now = clock.now()
        return records.map { record in
            let present = FileSystem.exists(record.path)
            return Entry(id: record.id ?? 0, run: record.runId, site: record.site, product: record.product, path: record.path,
                         originalPath: record.originalPath, reason: record.reason, createdAt: record.createdAt,
                         retainUntil: record.retainUntil, bytes: present ? TreeSize.bytes(record.path) : nil,
                         ageSeconds: now.timeIntervalSince(record.createdAt), purgeable: now >= record.retainUntil,
                         present: present)
        }
    }

    public struct PurgeResult: Sendable, Codable {
        public var purged: [Entry]
        /// Entries kept: `keptInsideRetention` + `keptYounger`.
        public var kept: Int
        /// Kept because they are inside their retention.
        public var keptInsideRetention: Int
        /// Kept although past retention: younger than the `older_than` asked for.
        public var keptYounger: Int
        /// Kept although past retention: a going run holds the place it came from, or a mount is
        /// inside it.
        public var keptInUse: Int = 0
        /// Kept although past retention: what is at their paths is not the data quarantined there
        /// (moved or replaced outside Lifeboat); left alone, for an operator to look at.
        public var replaced: [Entry] = []
        /// Past retention, but their data was no longer there: their entries are closed (not
        /// counted as purged or kept).
        public var gone: Int = 0
        /// Of those kept inside retention, how many are soft-deleted sites (`delete` runs).
        public var keptSoftDeleted: Int = 0
        public var dryRun: Bool
    }

    /// Removes entries past retention (and, if given, older than `olderThan`). Never touches an
    /// entry inside its retention.
    /// Entries kept less than this were displaced under a short retention: purging them asks for
    /// a confirmation (`--yes`), since that data may still be wanted back.
    public static let shortRetention: TimeInterval = 86_400

    /// - Parameter inUse: whether a going run holds an entry's original path (kept then). An
    ///   entry of a run that has not ended is kept too.
    public func purge(inUse: @Sendable (String) -> Bool = { _ in false }, olderThan: DurationSpec?, dryRun: Bool, confirmed: Bool = false,
                      by who: String) async throws -> PurgeResult {
        let now = clock.now()
        var purged: [Entry] = []
        var insideRetention = 0, younger = 0, busy = 0, softDeleted = 0, gone = 0
        var replaced: [Entry] = []
        let records = try await ledger.quarantine(includePurged: false)
        let entries = try await list()
        let due = zip(records, entries).filter { _, entry in
            entry.purgeable && (olderThan.map { entry.ageSeconds >= Double($0.seconds) } ?? true)
        }
        let short = due.filter { record, _ in record.retainUntil.timeIntervalSince(record.createdAt) < Self.shortRetention }
        if !dryRun, !confirmed, !short.isEmpty {
            throw Rollback.Refusal(message: "\(short.count) quarantine entr\(short.count == 1 ? "y was" : "ies were") kept under a day (a retention below 1d): "
                                   + short.prefix(10).map { "\($0.0.site)/\($0.0.product) at \($0.0.path)" }.joined(separator: ", ")
                                   + "; purging deletes that data for good: look with --dry-run, then confirm with --yes")
        }
        var going: [String: Bool] = [:]
        func runGoing(_ id: String) async throws -> Bool {
            if let known = going[id] { return known }
            let answer = try await ledger.run(id: id).map { !$0.state.isFinal } ?? false
            going[id] = answer
            return answer
        }
        for (record, entry) in zip(records, entries) {
            let oldEnough = olderThan.map { entry.ageSeconds >= Double($0.seconds) } ?? true
            guard entry.purgeable else {
                insideRetention += 1
                if record.reason == "delete" { softDeleted += 1 }
                continue
            }
            guard oldEnough else { younger += 1; continue }
            guard !inUse(record.originalPath) else { busy += 1; continue }
            // An entry of a run still going (a delete halted at a gate, say) stays with its run:
            // the run may yet be rolled back once it ends.
            guard try await !runGoing(record.runId) else { busy += 1; continue }
            let removal: Removal
            do {
                removal = try Self.remove(record, dryRun: dryRun)
            } catch let error as ArchiveError {
                // A mount inside the displaced tree (it moved with it) is never crossed, and an
                // entry that cannot be looked at is not called gone: kept, as in use, and the
                // other entries are purged all the same.
                busy += 1
                let why = error.errno == EXDEV ? "\(error.detail), then purge again"
                    : "\(record.path) kept: \(error.description)"
                if !dryRun { ledger.postEvent(LedgerEvent(runId: record.runId, jobId: record.jobId, at: now, kind: "quarantine.kept", message: why)) }
                continue
            }
            switch removal {
            case .replaced(let found):
                replaced.append(entry)
                if dryRun { continue }
                ledger.postEvent(LedgerEvent(runId: record.runId, jobId: record.jobId, at: now, kind: "quarantine.kept",
                                             message: "\(record.path) is not the data quarantined there (\(record.identity ?? "?") then, \(found) now: moved or replaced outside Lifeboat); left alone: "
                                                 + "look at it and remove it yourself if it is not wanted, and a later purge closes the entry"))
                continue
            case .missing:
                gone += 1
                if dryRun { continue }
                var record = record
                record.purgedAt = now
                try await ledger.updateQuarantine(record)
                ledger.postEvent(LedgerEvent(runId: record.runId, jobId: record.jobId, at: now, kind: "quarantine.gone",
                                             message: "\(record.path) (\(record.site)/\(record.product)) was no longer there (removed or moved outside Lifeboat); its entry is closed by \(who)"))
                continue
            case .removed where !dryRun:
                var record = record
                record.purgedAt = now
                try await ledger.updateQuarantine(record)
                ledger.postEvent(LedgerEvent(runId: record.runId, jobId: record.jobId, at: now, kind: "quarantine.purged",
                                             message: "\(record.path) (\(record.site)/\(record.product), displaced by \(record.reason)) purged by \(who)"))
            case .removed:
                break
            }
            purged.append(entry)
        }
        try await ledger.flush()
        var result = PurgeResult(purged: purged, kept: insideRetention + younger + busy + replaced.count, keptInsideRetention: insideRetention,
                                 keptYounger: younger, dryRun: dryRun)
        result.keptInUse = busy
        result.keptSoftDeleted = softDeleted
        result.replaced = replaced
        result.gone = gone
        return result
    }

    /// What a purge did with one entry.
    enum Removal: Equatable {
        case removed
        /// Nothing was at the entry's path any more.
        case missing
        /// Something else than the data quarantined is at the path (its identity): left alone.
        case replaced(FileIdentity)
    }

    /// Removes a quarantined entry without following links, provided it is still the data moved
    /// there (its recorded identity; entries recorded before identities were kept: whatever is
    /// at their path, never through a link).
    /// With `dryRun`, what it would do.
    static func remove(_ record: QuarantineRecord, dryRun: Bool) throws -> Removal {
        let recorded = record.identity.flatMap(FileIdentity.init(parsing:))
        var st = stat()
        guard lstat(record.path, &st) == 0 else {
            // Gone only when its quarantine directory is there without it, or was removed from
            // the filesystem the data was on: an unmounted volume or a denied look is no removal.
            let e = errno
            let area = (try? StagingDirectory.split(record.path).parent) ?? "/"
            let areaParent = (try? StagingDirectory.split(area).parent) ?? "/"
            var parent = stat()
            let areaRemoved = recorded.map { stat(areaParent, &parent) == 0 && UInt64(parent.st_dev) == $0.device } ?? false
            guard e == ENOENT, FileSystem.isDirectory(area) || areaRemoved else {
                throw ArchiveError(.io, "cannot look at \(record.path)" + (e == ENOENT ? " (\(area) is not there: a volume not mounted?)" : ""), errno: e)
            }
            return .missing
        }
        let found = FileIdentity(st)
        let expected = recorded ?? found
        guard found == expected else { return .replaced(found) }
        if dryRun {
            // What the purge would meet: a mount inside keeps the entry whole.
            if let at = try TreeRemover.mountPoint(at: record.path) {
                throw TreeRemover.failure(removing: record.path, SystemCallError(call: "openat2", errno: EXDEV, at: at), removedNothing: true)
            }
            return .removed
        }
        // The remover compares the identity again on what it opens: a swap in between is left
        // alone. An entry with a mount inside is kept whole, not emptied up to the mount.
        try TreeRemover.remove(path: record.path, ifIdentity: expected, removeEmptyParent: false, wholeOrNothing: true)
        guard let now = FileIdentity(path: record.path) else { return .removed }
        // Still there: it was swapped while the remover opened it, which then left it alone.
        return .replaced(now)
    }
}

/// Sums file sizes under a directory without following links (iterative).
public enum TreeSize {
    public static func bytes(_ root: String) -> Int64 { bytesAndFiles(root).0 }

    /// Bytes of regular files and the number of entries that are not directories, without
    /// following links.
    static func bytesAndFiles(_ root: String) -> (Int64, Int64) {
        var total: Int64 = 0, files: Int64 = 0
        var stack = [root]
        while let dir = stack.popLast() {
            guard let entries = try? FileSystem.directoryEntries(dir) else { continue }
            for entry in entries {
                let path = dir + "/" + entry.name
                switch entry.kind {
                case .directory: stack.append(path)
                default:
                    files += 1
                    total += FileSystem.size(of: path) ?? 0
                }
            }
        }
        return (total, files)
    }
}
