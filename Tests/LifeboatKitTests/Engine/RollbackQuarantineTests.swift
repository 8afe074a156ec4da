import CLinux
import Foundation
import Testing
@testable import LifeboatKit

@Suite struct RollbackQuarantineTests {
    @Test func rollbackRestoresTheExactPreviousData() async throws {
        let fx = try await DRFixture()
        fx.dir.write("out/acme/jira/notes.txt", "the data before the restore")
        fx.dir.write("out/acme/jira/sub/deep.bin", String(repeating: "z", count: 5_000))
        let before = try fx.tree("out/acme/jira")
        let (run, _) = try await fx.run(.restore)
        #expect(run.state == .succeeded)
        #expect(try fx.tree("out/acme/jira") != before)

        let outcomes = try await Rollback(ledger: fx.ledger, clock: fx.clock).rollback(runId: run.id, site: "acme", product: "jira", by: "test")
        #expect(outcomes.count == 1)
        #expect(try fx.tree("out/acme/jira") == before)
        // The restored data is kept, in quarantine.
        #expect(FileManager.default.fileExists(atPath: outcomes[0].quarantined + "/manifest.json"))
        // A second rollback finds nothing to do.
        await #expect(throws: Rollback.Refusal.self) {
            _ = try await Rollback(ledger: fx.ledger, clock: fx.clock).rollback(runId: run.id, site: "acme", product: "jira", by: "test")
        }
        let events = try await fx.ledger.events(runId: run.id, afterId: 0, limit: 1_000)
        #expect(events.contains { $0.kind == "rollback" && $0.message.contains("acme/jira rolled back by test") })
    }

    @Test func rollbackOfAFreshDestinationMovesTheRestoreOut() async throws {
        let fx = try await DRFixture()
        let (run, _) = try await fx.run(.restore, sites: ["globex"])
        let outcomes = try await Rollback(ledger: fx.ledger, clock: fx.clock).rollback(runId: run.id, site: "globex", product: nil, by: "test")
        #expect(outcomes.count == 2 && outcomes.allSatisfy(\.destinationRemoved))
        #expect(!FileManager.default.fileExists(atPath: fx.dir.file("out/globex/contacts")))
    }

    /// A rollback stopped part-way — one site first on purpose, or a crash between a job's
    /// exchange and its records — is finished by the same command: what is done is said and left,
    /// what a crash left unrecorded is recognised by identity and recorded, the rest is done.
    @Test func aRollbackStoppedPartWayIsFinishedByTheSameCommand() async throws {
        let fx = try await DRFixture(sites: 3)
        for site in ["acme", "globex"] { fx.dir.write("out/\(site)/jira/notes.txt", "\(site)'s data before the restore") }
        let (run, _) = try await fx.run(.restore)
        let rollback = Rollback(ledger: fx.ledger, clock: fx.clock)
        _ = try await rollback.rollback(runId: run.id, site: "acme", product: nil, by: "test")
        // globex/jira's rollback died right after its exchange: the data is swapped, nothing recorded.
        let displaced = try #require(try await fx.ledger.quarantine(includePurged: false).first { $0.site == "globex" && $0.product == "jira" && $0.reason == "restore" })
        let destination = fx.dir.file("out/globex/jira")
        #expect(lifeboat_renameat2(AT_FDCWD, displaced.path, AT_FDCWD, destination, UInt32(LIFEBOAT_RENAME_EXCHANGE)) == 0)

        let outcomes = try await rollback.rollback(runId: run.id, site: nil, product: nil, by: "test")
        #expect(outcomes.count == 6)
        #expect(Set(outcomes.filter { $0.alreadyDone == true }.map { "\($0.site)/\($0.product)" }) == ["acme/contacts", "acme/jira"])
        for site in ["acme", "globex"] {
            #expect(try String(contentsOfFile: fx.dir.file("out/\(site)/jira/notes.txt"), encoding: .utf8) == "\(site)'s data before the restore")
        }
        #expect(!FileManager.default.fileExists(atPath: fx.dir.file("out/initech/contacts")), "initech's restore moved out")
        let open = try await fx.ledger.quarantine(includePurged: false)
        #expect(!open.contains { $0.reason == "restore" }, "every displaced entry is closed: its data is back")
        #expect(open.filter { $0.reason == "rollback" }.count == 6 && open.filter { $0.reason == "rollback" }.allSatisfy { FileSystem.isDirectory($0.path) })
        let events = try await fx.ledger.events(runId: run.id, afterId: 0, limit: 1_000)
        #expect(events.contains { $0.kind == "rollback" && $0.message.contains("globex/jira: found rolled back") })
        // Once all is done, the command says so.
        let again = try await #require(throws: Rollback.Refusal.self) { _ = try await rollback.rollback(runId: run.id, site: nil, product: nil, by: "test") }
        #expect(again.message.contains("already rolled back: "), "\(again.message)")
    }

    /// A quarantine directory replaced by a link is refused as the operator's request, not
    /// reported as a fault of the daemon (the control socket said `internal`).
    @Test func aQuarantineReplacedByALinkRefusesTheRollback() async throws {
        let fx = try await DRFixture()
        fx.dir.write("out/acme/jira/notes.txt", "before")
        let (run, _) = try await fx.run(.restore)
        let area = fx.dir.file("out/acme/.lifeboat-quarantine")
        try FileManager.default.moveItem(atPath: area, toPath: fx.dir.file("elsewhere"))
        try FileManager.default.createSymbolicLink(atPath: area, withDestinationPath: fx.dir.file("elsewhere"))
        let refusal = try await #require(throws: Rollback.Refusal.self) {
            _ = try await Rollback(ledger: fx.ledger, clock: fx.clock).rollback(runId: run.id, site: "acme", product: "jira", by: "test")
        }
        #expect(refusal.message.contains("symbolic link"), "\(refusal.message)")
        #expect(try String(contentsOfFile: fx.dir.file("elsewhere") + "/" + (try FileManager.default.contentsOfDirectory(atPath: fx.dir.file("elsewhere")).first ?? "") + "/notes.txt", encoding: .utf8) == "before")
    }

    @Test func rollbackRefusesWhenTheDestinationChanged() async throws {
        let fx = try await DRFixture()
        let (run, _) = try await fx.run(.restore)
        // Someone replaced the destination since.
        try FileManager.default.moveItem(atPath: fx.dir.file("out/acme/jira"), toPath: fx.dir.file("elsewhere"))
        fx.dir.write("out/acme/jira/new.txt", "written after the restore")
        await #expect(throws: Rollback.Refusal.self) {
            _ = try await Rollback(ledger: fx.ledger, clock: fx.clock).rollback(runId: run.id, site: "acme", product: "jira", by: "test")
        }
        #expect(try String(contentsOfFile: fx.dir.file("out/acme/jira/new.txt"), encoding: .utf8) == "written after the restore")
    }

    @Test func purgeRefusesEntriesInsideRetention() async throws {
        let fx = try await DRFixture()
        fx.dir.write("out/acme/jira/old.txt", "old")
        _ = try await fx.run(.restore)
        let manager = QuarantineManager(ledger: fx.ledger, clock: fx.clock)
        let entries = try await manager.list()
        #expect(entries.count == 1 && !entries[0].purgeable && entries[0].bytes == 3)
        // Inside the 7-day retention: nothing goes, even when asked for "older than 0s".
        let early = try await manager.purge(olderThan: DurationSpec(seconds: 0), dryRun: false, by: "test")
        #expect(early.purged.isEmpty && early.kept == 1 && early.keptInsideRetention == 1 && early.keptYounger == 0)
        #expect(FileManager.default.fileExists(atPath: entries[0].path))
        // Past retention: a dry run removes nothing, a real purge removes it and records it.
        fx.clock.advance(by: 8 * 86_400)
        let dry = try await manager.purge(olderThan: nil, dryRun: true, by: "test")
        #expect(dry.purged.count == 1 && FileManager.default.fileExists(atPath: entries[0].path))
        let real = try await manager.purge(olderThan: DurationSpec(seconds: 30 * 86_400), dryRun: false, by: "test")
        // Past retention, but younger than --older-than: kept, and not called "inside retention".
        #expect(real.purged.isEmpty && real.kept == 1 && real.keptYounger == 1 && real.keptInsideRetention == 0)
        let done = try await manager.purge(olderThan: nil, dryRun: false, by: "test")
        #expect(done.purged.count == 1)
        #expect(!FileManager.default.fileExists(atPath: entries[0].path))
        #expect(try await manager.list().isEmpty)
    }

    /// Past retention, an entry of a run that has not ended (a delete halted at its gate after its
    /// canary, whose hold ended with its job) stays: the run may yet be rolled back.
    @Test func purgeKeepsTheEntriesOfARunNotEnded() async throws {
        let fx = try await DRFixture()
        fx.dir.write("out/acme/jira/old.txt", "old")
        var (run, _) = try await fx.run(.restore)
        run.state = .halted
        try await fx.ledger.updateRun(run)
        fx.clock.advance(by: 8 * 86_400)
        let manager = QuarantineManager(ledger: fx.ledger, clock: fx.clock)
        let kept = try await manager.purge(olderThan: nil, dryRun: false, by: "test")
        #expect(kept.purged.isEmpty && kept.keptInUse == 1)
        run.state = .succeeded
        try await fx.ledger.updateRun(run)
        #expect(try await manager.purge(olderThan: nil, dryRun: false, by: "test").purged.count == 1)
    }

    /// An entry whose data is gone is closed; one that cannot be looked at (its whole place not
    /// there, as on a volume not mounted) is kept, and said why.
    @Test func aPurgeClosesWhatIsGoneAndKeepsWhatItCannotSee() async throws {
        let fx = try await DRFixture()
        fx.dir.write("out/acme/jira/old.txt", "old")
        fx.dir.write("out/globex/jira/old.txt", "old")
        let (run, _) = try await fx.run(.restore)
        #expect(run.state == .succeeded)
        let manager = QuarantineManager(ledger: fx.ledger, clock: fx.clock)
        let entries = try await manager.list()
        let acme = try #require(entries.first { $0.site == "acme" }), globex = try #require(entries.first { $0.site == "globex" })
        // acme's whole quarantine directory removed by hand; globex's site moved away (unmounted).
        try FileManager.default.removeItem(atPath: (acme.path as NSString).deletingLastPathComponent)
        try FileManager.default.moveItem(atPath: fx.dir.file("out/globex"), toPath: fx.dir.file("elsewhere"))
        fx.clock.advance(by: 8 * 86_400)
        let result = try await manager.purge(olderThan: nil, dryRun: false, by: "test")
        #expect(result.gone == 1 && result.purged.isEmpty && result.keptInUse == 1, "\(result)")
        #expect(try await manager.list().map(\.path) == [globex.path])
        let events = try await fx.ledger.events(runId: run.id, afterId: 0, limit: 1_000)
        #expect(events.contains { $0.kind == "quarantine.kept" && $0.message.contains("a volume not mounted?") })
    }

    /// A mount inside a displaced tree (it moved into quarantine with it) is never crossed by a
    /// purge; that entry is kept and said so, and the others are purged all the same.
    @Test(.enabled(if: geteuid() == 0, "mounting needs root (CI runs as root)"))
    func aPurgeLeavesAMountInsideAnEntryAndGoesOn() async throws {
        let fx = try await DRFixture()
        fx.dir.write("out/acme/jira/old.txt", "old")
        fx.dir.write("out/acme/contacts/old.txt", "old")
        try FileManager.default.createDirectory(atPath: fx.dir.file("out/acme/jira/uploads"), withIntermediateDirectories: true)
        fx.dir.write("foreign/theirs.txt", "theirs")
        let (run, _) = try await fx.run(.restore, sites: ["acme"])
        #expect(run.state == .succeeded)
        let manager = QuarantineManager(ledger: fx.ledger, clock: fx.clock)
        let entries = try await manager.list()
        let jira = try #require(entries.first { $0.path.contains("jira") })
        let mounted = try runProcess("/bin/mount", ["--bind", fx.dir.file("foreign"), jira.path + "/uploads"])
        try #require(mounted.status == 0, "\(mounted.output)")
        defer { _ = try? runProcess("/bin/umount", [jira.path + "/uploads"]) }
        fx.clock.advance(by: 8 * 86_400)
        // The dry run says what the purge does: that entry kept.
        let preview = try await manager.purge(olderThan: nil, dryRun: true, by: "test")
        #expect(preview.purged.count == entries.count - 1 && preview.keptInUse == 1)
        let result = try await manager.purge(olderThan: nil, dryRun: false, by: "test")
        #expect(result.purged.count == entries.count - 1 && result.keptInUse == 1)
        #expect(try String(contentsOfFile: fx.dir.file("foreign/theirs.txt"), encoding: .utf8) == "theirs")
        // Kept whole, not emptied up to the mount (found by a soft-delete probe: the files beside
        // the mount were gone while the purge said the entry was kept).
        #expect(try String(contentsOfFile: jira.path + "/old.txt", encoding: .utf8) == "old")
        let events = try await fx.ledger.events(runId: run.id, afterId: 0, limit: 1_000)
        #expect(events.contains { $0.kind == "quarantine.kept" && $0.message.contains("\(jira.path)/uploads is a mount point")
                    && $0.message.contains("nothing of it was removed") }, "\(events.map(\.message))")
    }

    @Test func exerciseNeverTouchesProduction() async throws {
        let fx = try await DRFixture(sites: 3)
        fx.dir.write("out/acme/jira/prod.txt", "production data")
        fx.dir.write("out/globex/contacts/prod.txt", "more production data")
        let before = try fx.tree("out")
        let (run, jobs) = try await fx.run(.exercise, scale: 2)
        #expect(run.state == .succeeded)
        #expect(Set(jobs.map(\.site)).count == 2)
        #expect(run.seed != nil)
        #expect(jobs.allSatisfy { $0.destination.hasPrefix(fx.dir.file("sandbox/\(run.id)/")) })
        #expect(try fx.tree("out") == before)
        #expect(!FileManager.default.fileExists(atPath: fx.dir.file("out/acme/.lifeboat-quarantine")))
    }

    /// A site whose directory is a link into another site's data (or above it) is refused: its
    /// commit would displace that data, with the other site's `.lifeboat-quarantine`, into an
    /// entry of its own (found by a soft-delete probe: a delete of one plan carried another's
    /// quarantine away, and a purge under the shorter retention removed it).
    @Test func aDestinationThatNestsWithAnotherIsRefused() async throws {
        let fx = try await DRFixture(sites: 3)
        let sites = try FileManager.default.contentsOfDirectory(atPath: fx.dir.file("store")).filter { !$0.hasPrefix(".") }.sorted()
        try #require(sites.count == 3)
        let (owner, below, above) = (sites[0], sites[1], sites[2])
        fx.dir.write("out/\(owner)/jira/contacts/theirs.txt", "the owner's data")
        fx.dir.write("out/\(owner)/.lifeboat-quarantine/kept/old.txt", "the owner's soft-deleted data")
        // One site inside the owner's jira data, one at the top of the target tree.
        try FileManager.default.createSymbolicLink(atPath: fx.dir.file("out/\(below)"), withDestinationPath: fx.dir.file("out/\(owner)/jira"))
        try FileManager.default.createSymbolicLink(atPath: fx.dir.file("out/\(above)"), withDestinationPath: fx.dir.file("out"))
        let before = try fx.tree("out/\(owner)")
        for (site, words) in [(below, "inside \(fx.dir.file("out/\(owner)/jira")), where plan dr's target puts a site's data"),
                              (above, "a directory above where plan dr's target puts a site's data")] {
            let refusal = await #expect(throws: SafetyRefusal.self) { try await fx.run(.restore, sites: [site]) }
            #expect(refusal?.message.contains(words) == true, "\(refusal?.message ?? "")")
        }
        #expect(try fx.tree("out/\(owner)") == before)
        // The same rule where the link is made after the run took its destinations: the job,
        // resolving again, touches nothing.
        try FileManager.default.removeItem(atPath: fx.dir.file("out/\(below)"))
        let (run, jobs) = try await fx.runAfterLinking(site: below, to: fx.dir.file("out/\(owner)/jira"))
        #expect(run.state != .succeeded)
        #expect(jobs.contains { $0.error?.contains("destinations must not nest") == true }, "\(jobs.map { $0.error ?? "" })")
        #expect(try fx.tree("out/\(owner)") == before)
    }

    @Test func sandboxSymlinkedIntoProductionIsRefused() async throws {
        let fx = try await DRFixture()
        try FileManager.default.createDirectory(atPath: fx.dir.file("out"), withIntermediateDirectories: true)
        // The sandbox directory is a symlink into the production tree.
        try FileManager.default.createSymbolicLink(atPath: fx.dir.file("sandbox"), withDestinationPath: fx.dir.file("out"))
        // Refused before anything starts, naming where the sandbox really is.
        let refusal = await #expect(throws: SafetyRefusal.self) { try await fx.run(.exercise) }
        #expect(refusal?.message.contains("inside production of plan dr") == true)
        #expect(refusal?.message.contains(fx.dir.file("out")) == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: fx.dir.file("out")).isEmpty)
        #expect(try await fx.ledger.runs(limit: 10).isEmpty)
    }
}
