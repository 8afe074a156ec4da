import Crypto
import Foundation

/// `exercise PLAN --rehearse delete`: once the exercise restored its sample into the sandbox,
/// its targets there are soft-deleted wave by wave (the same rename into `.lifeboat-quarantine`
/// as a delete run) and undeleted (the same rename back as `rollback`), and each tree's content
/// is compared before and after. Only the sandbox is touched: the exercise's own data.
enum DeleteRehearsal {
    struct Outcome: Sendable {
        var targets = 0
        var identical = 0
        var undeleteSeconds: [Double] = []
        var problems: [String] = []
    }

    /// Waves as a delete of the same sites would have them (`Plan.waveSpecs(for: .delete)`).
    static func run(_ run: RunRecord, plan: Plan?, ledger: any Ledger) async -> Outcome {
        var outcome = Outcome()
        let jobs: [JobRecord]
        do {
            jobs = try await ledger.jobs(runId: run.id).filter { $0.state == .succeeded && FileSystem.isDirectory($0.destination) }
        } catch {
            outcome.problems.append("cannot read the run's jobs: \(error)")
            return outcome
        }
        let sites = Set(jobs.map(\.site)).sorted()
        let siteWaves = plan.map { RunPlanner.assignWaves(sites: sites, waves: $0.waveSpecs(for: .delete)) } ?? [sites]
        let waves = siteWaves.enumerated().map { wave, sites in (key: wave, value: jobs.filter { sites.contains($0.site) }) }
        var moved: [(job: JobRecord, slot: (path: String, identity: FileIdentity), before: String)] = []
        for (wave, waveJobs) in waves {
            for job in waveJobs {
                // Only the tree the exercise committed moves, found by its identity through the
                // sandbox path as it is now: a folder on that path swapped for a link (into
                // production, say) leads to a directory that is not it, and nothing moves.
                guard let committed = job.commitIdentity.flatMap(FileIdentity.init(parsing:)) else {
                    outcome.problems.append("\(job.name): no committed tree recorded; not rehearsed")
                    continue
                }
                guard let before = ContentDigest.of(job.destination) else {
                    outcome.problems.append("\(job.name): cannot read \(job.destination)")
                    continue
                }
                do {
                    let slot = try SoftDeleteExecutor.moveToQuarantine(job.destination, slot: Self.slot(run, job),
                                                                       job: job.name, expected: committed)
                    moved.append((job, slot, before))
                } catch {
                    outcome.problems.append("\(job.name): soft delete failed: \(error)")
                }
            }
            ledger.postEvent(LedgerEvent(runId: run.id, at: Date(), kind: "rehearsal.deleted",
                                         message: "rehearsal: wave \(wave + 1): \(waveJobs.count) sandbox target(s) soft-deleted into quarantine"))
        }
        outcome.targets = moved.count
        for (job, slot, before) in moved {
            let started = ContinuousClock.now
            do {
                try Rollback.renameBack(slot.path, to: job.destination, expected: slot.identity)
            } catch {
                outcome.problems.append("\(job.name): undelete failed: \(error); the data is at \(slot.path)")
                continue
            }
            let elapsed = ContinuousClock.now - started
            outcome.undeleteSeconds.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            if ContentDigest.of(job.destination) == before {
                outcome.identical += 1
            } else {
                outcome.problems.append("\(job.name): the tree undeleted differs from the one deleted")
            }
            // The quarantine folder the rehearsal made in the sandbox goes when empty.
            if let area = try? QuarantineArea.directory(for: job.destination) { rmdir(area) }
        }
        let maxRTO = outcome.undeleteSeconds.max() ?? 0
        let message = "rehearsal of delete: \(outcome.targets) target(s) soft-deleted in \(waves.count) wave(s) and undeleted; "
            + "\(outcome.identical) of \(outcome.targets) byte-identical (content digest before and after); "
            + String(format: "undelete RTO max %.3f s, total %.3f s", maxRTO, outcome.undeleteSeconds.reduce(0, +))
            + (outcome.problems.isEmpty ? "" : "; PROBLEMS: " + outcome.problems.joined(separator: "; "))
        ledger.postEvent(LedgerEvent(runId: run.id, at: Date(), kind: outcome.problems.isEmpty ? "rehearsal.passed" : "rehearsal.failed", message: message))
        return outcome
    }
}

extension DeleteRehearsal {
    /// The quarantine slot a rehearsal moves a job's tree to.
    static func slot(_ run: RunRecord, _ job: JobRecord) -> String {
        "\(run.id).\(job.site).\(job.product).rehearsal"
    }

    /// After a crash mid-rehearsal: each tree the rehearsal had soft-deleted and not yet put back
    /// (the committed tree, by identity, in its slot) is renamed back to its sandbox destination.
    static func putBack(_ run: RunRecord, ledger: any Ledger) async {
        guard let jobs = try? await ledger.jobs(runId: run.id) else { return }
        for job in jobs where job.state == .succeeded {
            guard let committed = job.commitIdentity.flatMap(FileIdentity.init(parsing:)), FileIdentity(path: job.destination) == nil,
                  let area = try? QuarantineArea.directory(for: job.destination) else { continue }
            let slot = area + "/" + Self.slot(run, job)
            guard FileIdentity(path: slot) == committed else { continue }
            do {
                try Rollback.renameBack(slot, to: job.destination, expected: committed)
                rmdir(area)
            } catch {
                ledger.postEvent(LedgerEvent(runId: run.id, jobId: job.id, at: Date(), kind: "rehearsal.leftover",
                                             message: "\(job.name): could not put the rehearsal's tree back from \(slot): \(error)"))
            }
        }
    }
}

/// SHA-256 over a tree's relative names, types and the bytes of every file (link targets for
/// links), in name order, never following a link: equal digests mean byte-identical trees.
enum ContentDigest {
    static func of(_ root: String) -> String? {
        var hasher = SHA256()
        var stack = [""]
        while let relative = stack.popLast() {
            let dir = relative.isEmpty ? root : root + "/" + relative
            guard let entries = try? FileSystem.directoryEntries(dir) else { return nil }
            for entry in entries.sorted(by: { $0.name < $1.name }).reversed() {
                let name = relative.isEmpty ? entry.name : relative + "/" + entry.name
                let path = root + "/" + name
                hasher.update(data: Data("\(entry.kind)\u{0}\(name)\u{0}".utf8))
                switch entry.kind {
                case .directory: stack.append(name)
                case .symlink: hasher.update(data: Data(((try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "?").utf8))
                case .regular:
                    // Streamed: bounded memory whatever the file's size.
                    let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
                    guard fd >= 0 else { return nil }
                    defer { close(fd) }
                    var buffer = [UInt8](repeating: 0, count: 1 << 16)
                    while true {
                        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                        if n < 0 { return nil }
                        if n == 0 { break }
                        hasher.update(data: buffer[..<n])
                    }
                case .other: break
                }
            }
        }
        return hasher.finalize().hexDigits
    }
}
