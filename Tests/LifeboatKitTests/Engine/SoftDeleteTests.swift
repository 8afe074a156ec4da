import Foundation
import Logging
import Testing
@testable import LifeboatKit

/// Soft deletes in-process with the real executor: the selection's id checks and token, the
/// delete run, undelete and a restore that starts from the soft-deleted data.
@Suite struct SoftDeleteTests {
    /// A fixture with every site restored into production (the targets a delete works on).
    func restored(sites: Int = 3, planExtra: String = "", name: String = #function) async throws -> DRFixture {
        let fx = try await DRFixture(sites: sites, planExtra: planExtra, name: name)
        let (run, _) = try await fx.run(.restore)
        #expect(run.state == .succeeded)
        return fx
    }

    func select(_ fx: DRFixture, _ sites: [String], products: [String]? = nil, plan: Plan? = nil) throws -> DeleteSelection {
        try DeleteSelection.resolve(plan: plan ?? fx.plan, sites: sites, products: products, protected: nil)
    }

    @Test func unknownIdsRefuseTheWholeRequestWithHints() async throws {
        let fx = try await restored()
        let ids = ["acme", "jira", "20261125-101132-a3f9", "4711", "ACME", "nosuch"]
        let refusal = try #require(throws: DeleteRefusal.self) { try select(fx, ids) }
        #expect(refusal.code == .unknownIDs)
        let why = Dictionary(uniqueKeysWithValues: refusal.unknown.map { ($0.id, $0.why) })
        // acme is a real target; every other id is listed, each with what it looks like.
        #expect(Set(why.keys) == ["jira", "20261125-101132-a3f9", "4711", "ACME", "nosuch"], "\(refusal.unknown)")
        #expect(why["jira"]?.contains("is a product") == true)
        #expect(why["20261125-101132-a3f9"]?.contains("run id") == true)
        #expect(why["4711"]?.contains("numeric id") == true)
        #expect(why["ACME"]?.contains("acme?") == true)
        #expect(why["nosuch"]?.contains("nothing in the store either") == true)
        #expect(refusal.message.contains("nothing was moved"))
        // Nothing moved.
        #expect(FileSystem.isDirectory(fx.dir.file("out/acme/contacts")))
    }

    @Test func unknownProductsAndMissingTargetsAreListed() async throws {
        let fx = try await restored()
        let refusal = try #require(throws: DeleteRefusal.self) { try select(fx, ["acme"], products: ["contacts", "globex", "jria"]) }
        #expect(refusal.unknown.map(\.id).sorted() == ["globex", "jria"])
        #expect(refusal.unknown.first { $0.id == "globex" }?.why.contains("it names a site") == true)
        // A site whose target of one asked product is gone: that pair is unknown.
        try FileManager.default.removeItem(atPath: fx.dir.file("out/globex/jira"))
        let missing = try #require(throws: DeleteRefusal.self) { try select(fx, ["globex"], products: ["contacts", "jira"]) }
        #expect(missing.unknown.map(\.id) == ["globex/jira"])
        // Without --products, the products with data there are taken.
        #expect(try select(fx, ["globex"]).targets.map(\.product) == ["contacts"])
    }

    @Test func theTokenCoversSelectionPlanAndContent() async throws {
        let fx = try await restored()
        let first = try select(fx, ["acme", "globex"])
        #expect(first.token.hasPrefix("del-"))
        #expect(first.sites == ["acme", "globex"] && first.targets.count == 4 && first.files > 0 && first.bytes > 0)
        // Same selection (with a duplicate): same token. In another order the canary is another
        // site: another token.
        #expect(try select(fx, ["acme", "globex", "acme"]).token == first.token)
        #expect(try select(fx, ["globex", "acme"]).token != first.token)
        // Another selection: another token.
        #expect(try select(fx, ["acme"]).token != first.token)
        #expect(try select(fx, ["acme", "globex"], products: ["contacts"]).token != first.token)
        // Another plan version: another token.
        var edited = fx.plan
        edited.version = "sha256:another"
        #expect(try select(fx, ["acme", "globex"], plan: edited).token != first.token)
        // A target's content changed: another token.
        fx.dir.write("out/globex/jira/late.txt", "written after the dry run")
        #expect(try select(fx, ["acme", "globex"]).token != first.token)
    }

    @Test func maxSitesCapsOneDelete() async throws {
        let fx = try await restored(planExtra: "delete: { max_sites: 2 }")
        #expect(fx.plan.delete.maxSites == 2)
        let refusal = try #require(throws: DeleteRefusal.self) { try select(fx, ["acme", "globex", "initech"]) }
        #expect(refusal.code == .tooMany && refusal.message.contains("at most 2"))
        #expect(try select(fx, ["acme", "globex"]).sites.count == 2)
    }

    /// A site linked to another's directory: the dry run refuses (it listed the directory twice,
    /// counted twice, and gave a token the confirmation then refused).
    @Test func twoSitesThatAreOneDirectoryAreRefusedAtTheDryRun() async throws {
        let fx = try await restored()
        try FileManager.default.moveItem(atPath: fx.dir.file("out/globex"), toPath: fx.dir.file("globex-aside"))
        try FileManager.default.createSymbolicLink(atPath: fx.dir.file("out/globex"), withDestinationPath: fx.dir.file("out/acme"))
        let refusal = try #require(throws: DeleteRefusal.self) { try select(fx, ["acme", "globex"]) }
        #expect(refusal.code == .unsafe && refusal.message.contains("acme/contacts and globex/contacts are one directory"), "\(refusal.message)")
        #expect(try select(fx, ["acme"]).targets.count == 2)
    }

    @Test func aTargetThatIsALinkIsNeverMoved() async throws {
        let fx = try await restored()
        try FileManager.default.moveItem(atPath: fx.dir.file("out/acme/jira"), toPath: fx.dir.file("real-jira"))
        try FileManager.default.createSymbolicLink(atPath: fx.dir.file("out/acme/jira"), withDestinationPath: fx.dir.file("real-jira"))
        let refusal = try #require(throws: DeleteRefusal.self) { try select(fx, ["acme"]) }
        #expect(refusal.code == .unsafe && refusal.message.contains("symbolic link"))
    }

    /// Between a delete job's check and its rename the tree is measured, which takes a while
    /// for a big site: a parent relinked or a target replaced meanwhile is refused, not moved.
    @Test func aTargetReplacedOrAParentRelinkedSinceTheCheckIsNeverMoved() throws {
        let dir = TestDirectory(#function)
        dir.write("srv/acme/jira/data.txt", "tenant data")
        dir.write("other/acme/jira/data.txt", "someone else's")
        let fm = FileManager.default
        let target = dir.file("srv/acme/jira")
        let checked = ResolvedPath.of(dir.file("srv/acme"))
        let identity = try #require(FileIdentity(path: target))
        // The parent now leads elsewhere, to a directory with an entry of the same name.
        try fm.moveItem(atPath: dir.file("srv/acme"), toPath: dir.file("srv/acme.moved"))
        try fm.createSymbolicLink(atPath: dir.file("srv/acme"), withDestinationPath: dir.file("other/acme"))
        let relinked = try #require(throws: JobError.self) {
            try SoftDeleteExecutor.moveToQuarantine(target, slot: "s1", job: "acme/jira", expected: identity, parentResolvesTo: checked)
        }
        #expect(relinked.message.contains("no longer leads to \(checked)"), "\(relinked.message)")
        // Without the parent check, the entry found is still not the target checked.
        let elsewhere = try #require(throws: JobError.self) {
            try SoftDeleteExecutor.moveToQuarantine(target, slot: "s1", job: "acme/jira", expected: identity)
        }
        #expect(elsewhere.message.contains("no longer the directory checked"), "\(elsewhere.message)")
        #expect(fm.contents(atPath: dir.file("other/acme/jira/data.txt")) == Data("someone else's".utf8))
        #expect(!fm.fileExists(atPath: dir.file("other/acme/.lifeboat-quarantine/s1")))
        // Back in place, the target moves, and what moved is the target.
        try fm.removeItem(atPath: dir.file("srv/acme"))
        try fm.moveItem(atPath: dir.file("srv/acme.moved"), toPath: dir.file("srv/acme"))
        let (path, moved) = try SoftDeleteExecutor.moveToQuarantine(target, slot: "s1", job: "acme/jira", expected: identity, parentResolvesTo: checked)
        #expect(moved == identity && path == dir.file("srv/acme/.lifeboat-quarantine/s1"))
        #expect(fm.contents(atPath: path + "/data.txt") == Data("tenant data".utf8) && !fm.fileExists(atPath: target))
    }

    /// Deleted data moved or replaced in quarantine since is neither undeleted nor restored from:
    /// only the very tree deleted is put back (its recorded identity), and nothing re-created at
    /// the target is set aside for it.
    @Test func aQuarantineSlotReplacedSinceTheDeleteIsNotPutBack() async throws {
        let fx = try await restored()
        let selection = try select(fx, ["acme"], products: ["jira"])
        let created = try await fx.engine.createDelete(selection, request: RunRequest(plan: fx.plan, mode: .delete, startedBy: "uid 0 (pid 1)"))
        let run = try await fx.engine.execute(runId: created.run.id, plan: fx.plan)
        #expect(run.state == .succeeded)
        let entry = try #require(try await fx.ledger.quarantine(includePurged: false).first { $0.reason == "delete" })
        #expect(entry.identity == FileIdentity(path: entry.path)?.description)
        let fm = FileManager.default
        try fm.moveItem(atPath: entry.path, toPath: fx.dir.file("kept-by-hand"))
        fx.dir.write(String(entry.path.dropFirst(fx.dir.path.count + 1)) + "/planted.txt", "not the deleted data")
        fx.dir.write("out/acme/jira/new.txt", "made since the delete")
        let refusal = await #expect(throws: Rollback.Refusal.self) {
            _ = try await Rollback(ledger: fx.ledger, clock: fx.clock).rollback(runId: run.id, site: nil, product: nil, force: true, by: "test")
        }
        #expect(refusal?.message.contains("is not the data deleted") == true, "\(refusal?.message ?? "")")
        #expect(fm.contents(atPath: fx.dir.file("out/acme/jira/new.txt")) == Data("made since the delete".utf8))
        // A restore of the site reads the archives, not the planted tree.
        try fm.removeItem(atPath: fx.dir.file("out/acme/jira"))
        let (restore, jobs) = try await fx.run(.restore, sites: ["acme"])
        #expect(restore.state == .succeeded)
        #expect(jobs.first { $0.product == "jira" }?.source == JobRecord.sourceSnapshot)
        #expect(!fm.fileExists(atPath: fx.dir.file("out/acme/jira/planted.txt")))
    }

    @Test func deleteUndeleteAndRestoreFromQuarantine() async throws {
        let fx = try await restored()
        let before = try fx.tree("out/acme")
        let digest = TreeDigest.of(fx.dir.file("out/acme/jira"))
        let acmeToken = try select(fx, ["acme"]).token
        let selection = try select(fx, ["acme", "globex"])
        #expect(selection.waves == [["acme"], ["globex"]], "a canary wave of one site first")
        var request = RunRequest(plan: fx.plan, mode: .delete, startedBy: "uid 0 (pid 1)")
        request.reason = "ticket OPS-1"
        let created = try await fx.engine.createDelete(selection, request: request)
        let run = try await fx.engine.execute(runId: created.run.id, plan: fx.plan)
        #expect(run.state == .succeeded && run.reason == "ticket OPS-1" && run.mode == .delete)
        #expect(!FileManager.default.fileExists(atPath: fx.dir.file("out/acme/jira")))
        let entries = try await fx.ledger.quarantine(includePurged: false).filter { $0.reason == "delete" }
        #expect(entries.count == 4 && entries.allSatisfy { FileSystem.isDirectory($0.path) })
        let jobs = try await fx.ledger.jobs(runId: run.id)
        #expect(jobs.allSatisfy { $0.state == .succeeded && $0.entries > 0 && $0.treeDigest != nil })

        // Undelete acme: byte-identical.
        let outcomes = try await Rollback(ledger: fx.ledger, clock: fx.clock).rollback(runId: run.id, site: "acme", product: nil, by: "test")
        #expect(outcomes.count == 2 && outcomes.allSatisfy { $0.identical == true && $0.seconds != nil })
        #expect(try fx.tree("out/acme") == before)
        #expect(TreeDigest.of(fx.dir.file("out/acme/jira")) == digest)
        // The same tree back, renamed: a token of before the delete confirms no second one.
        #expect(try select(fx, ["acme"]).token != acmeToken)
        // Again: nothing to undelete.
        await #expect(throws: Rollback.Refusal.self) {
            _ = try await Rollback(ledger: fx.ledger, clock: fx.clock).rollback(runId: run.id, site: "acme", product: nil, by: "test")
        }

        // A re-created target refuses the undelete of globex/contacts, unless forced aside.
        fx.dir.write("out/globex/contacts/new.txt", "re-created")
        let refused = try await #require(throws: Rollback.Refusal.self) {
            _ = try await Rollback(ledger: fx.ledger, clock: fx.clock).rollback(runId: run.id, site: "globex", product: "contacts", by: "test")
        }
        #expect(refused.message.contains("re-created since the delete") && refused.message.contains("--force-aside"))
        #expect(try String(contentsOfFile: fx.dir.file("out/globex/contacts/new.txt"), encoding: .utf8) == "re-created")

        // A restore of globex takes jira from quarantine (RPO 0) and contacts (re-created:
        // present, so not from quarantine) from the archive.
        let (restore, restoreJobs) = try await fx.run(.restore, sites: ["globex"])
        #expect(restore.state == .succeeded, "\(restoreJobs.map { $0.error ?? "" })")
        let jira = try #require(restoreJobs.first { $0.product == "jira" })
        #expect(jira.source == JobRecord.sourceQuarantine && jira.rpoSeconds == 0)
        #expect(restoreJobs.first { $0.product == "contacts" }?.source == JobRecord.sourceSnapshot)
        #expect(FileSystem.isDirectory(fx.dir.file("out/globex/jira")))
        let open = try await fx.ledger.quarantine(includePurged: false).filter { $0.reason == "delete" }
        #expect(open.map(\.product) == ["contacts"], "the jira entry is closed: its data is back")
    }

    /// An undelete stopped part-way is finished by the same command; "back in place" means the
    /// very tree deleted (its identity), never a tree restored from the archives that only looks
    /// the same while the deleted data is elsewhere.
    @Test func anUndeleteFinishesWhatIsLeftAndKnowsTheTreeDeleted() async throws {
        let fx = try await restored()
        let selection = try select(fx, ["acme", "globex", "initech"])
        let created = try await fx.engine.createDelete(selection, request: RunRequest(plan: fx.plan, mode: .delete, startedBy: "uid 0 (pid 1)"))
        let run = try await fx.engine.execute(runId: created.run.id, plan: fx.plan)
        #expect(run.state == .succeeded)
        let rollback = Rollback(ledger: fx.ledger, clock: fx.clock)
        _ = try await rollback.rollback(runId: run.id, site: "acme", product: nil, by: "test")
        // initech's soft-deleted data is moved away outside Lifeboat; initech is restored from
        // the archives (the same names, sizes and times as the tree deleted).
        try FileManager.default.moveItem(atPath: fx.dir.file("out/initech/.lifeboat-quarantine"), toPath: fx.dir.file("initech-quarantine-aside"))
        let (restore, _) = try await fx.run(.restore, sites: ["initech"])
        #expect(restore.state == .succeeded)
        let refused = try await #require(throws: Rollback.Refusal.self) { _ = try await rollback.rollback(runId: run.id, site: nil, product: nil, by: "test") }
        #expect(refused.message.contains("initech/contacts: its deleted data is no longer in quarantine"), "\(refused.message)")
        #expect(!refused.message.contains("acme"), "acme, undeleted before, is no problem: \(refused.message)")
        // Without initech, the rest is undeleted; acme is said to be done already.
        let outcomes = try await rollback.rollback(runId: run.id, site: "globex", product: nil, by: "test")
        #expect(outcomes.count == 2 && outcomes.allSatisfy { $0.identical == true && $0.alreadyDone == nil })
        let again = try await #require(throws: Rollback.Refusal.self) { _ = try await rollback.rollback(runId: run.id, site: "acme", product: nil, by: "test") }
        #expect(again.message.contains("already back in place: acme/contacts, acme/jira"), "\(again.message)")
        #expect(try await fx.ledger.quarantine(includePurged: false).contains { $0.site == "initech" && $0.reason == "delete" },
                "initech's entries stay open: its deleted data was never put back")
    }

    /// A delete moves what its token covered: a target written to, or replaced, after the
    /// confirmation (a gate may hold later waves for hours) fails its job with nothing moved.
    @Test func aTargetChangedSinceTheConfirmationIsNotMoved() async throws {
        let fx = try await restored()
        let selection = try select(fx, ["acme", "globex", "initech"])
        let created = try await fx.engine.createDelete(selection, request: RunRequest(plan: fx.plan, mode: .delete, startedBy: "uid 0 (pid 1)"))
        // After the confirmation: a file added to one target, another target replaced.
        fx.dir.write("out/globex/jira/fresh.txt", "written after the dry run")
        try FileManager.default.moveItem(atPath: fx.dir.file("out/initech/contacts"), toPath: fx.dir.file("initech-contacts-aside"))
        fx.dir.write("out/initech/contacts/other.txt", "another directory")
        let run = try await fx.engine.execute(runId: created.run.id, plan: fx.plan)
        #expect(run.state == .failed)
        let jobs = try await fx.ledger.jobs(runId: run.id)
        for name in ["globex/jira", "initech/contacts"] {
            let job = try #require(jobs.first { $0.name == name })
            #expect(job.state == .failed && job.error?.contains("changed since the delete was confirmed") == true, "\(name): \(job.error ?? "")")
        }
        #expect(FileSystem.isDirectory(fx.dir.file("out/globex/jira")) && FileSystem.isDirectory(fx.dir.file("out/initech/contacts")))
        #expect(try String(contentsOfFile: fx.dir.file("out/globex/jira/fresh.txt"), encoding: .utf8) == "written after the dry run")
        #expect(jobs.filter { $0.state == .succeeded }.map(\.name).sorted() == ["acme/contacts", "acme/jira", "globex/contacts"])
        #expect(jobs.first { $0.name == "initech/jira" }?.state == .skipped, "after contacts, which failed")
    }

    /// `--rehearse delete` moves only the trees the exercise committed: a sandbox folder swapped
    /// for a link into production leads to production's trees, which are not those, and stay.
    @Test func aRehearsalNeverMovesWhatASandboxLinkLeadsTo() async throws {
        let fx = try await restored(sites: 2)
        let (exercise, jobs) = try await fx.run(.exercise, scale: 2)
        #expect(exercise.state == .succeeded && jobs.count == 4)
        let production = fx.dir.file("out/acme/contacts")
        let before = try #require(FileIdentity(path: production))
        let content = try fx.tree("out/acme")
        // A rename there and back keeps the identity and content, not the change time.
        func changed() -> timespec { var st = stat(); _ = lstat(production, &st); return st.st_ctim }
        let changedBefore = changed()
        // The exercise's acme folder in the sandbox becomes a link to production's acme.
        let sandboxSite = URL(fileURLWithPath: try #require(jobs.first { $0.site == "acme" }).destination).deletingLastPathComponent().path
        try FileManager.default.moveItem(atPath: sandboxSite, toPath: sandboxSite + ".moved")
        try FileManager.default.createSymbolicLink(atPath: sandboxSite, withDestinationPath: fx.dir.file("out/acme"))

        let outcome = await DeleteRehearsal.run(exercise, plan: fx.plan, ledger: fx.ledger)
        #expect(FileIdentity(path: production) == before)
        #expect(try fx.tree("out/acme") == content)
        #expect(changed().tv_sec == changedBefore.tv_sec && changed().tv_nsec == changedBefore.tv_nsec, "production's tree was moved")
        #expect(!FileManager.default.fileExists(atPath: fx.dir.file("out/acme/.lifeboat-quarantine")))
        #expect(outcome.targets == 2 && outcome.identical == 2, "globex's trees are rehearsed: \(outcome)")
        #expect(outcome.problems.count == 2 && outcome.problems.allSatisfy { $0.contains("acme/") && $0.contains("nothing was moved") }, "\(outcome.problems)")
    }

    /// A rehearsal a crash stopped (a tree soft-deleted, not yet put back, nothing recorded) is
    /// done again at the next start: the tree is put back by its identity, the rehearsal runs and
    /// is recorded, and the sandbox is cleaned with nothing left in it.
    @Test func aRehearsalACrashStoppedIsDoneAgainAtTheNextStart() async throws {
        let fx = try await restored(sites: 2)
        let (ended, jobs) = try await fx.run(.exercise, scale: 2)
        var exercise = ended
        exercise.rehearse = "delete"
        exercise.cleanup = RunRecord.cleanupPending
        try await fx.ledger.updateRun(exercise)
        // The crash: acme/jira's sandbox tree is in the rehearsal's slot.
        let job = try #require(jobs.first { $0.name == "acme/jira" })
        let area = try QuarantineArea.directory(for: job.destination)
        try FileSystem.createDirectories(area)
        try FileManager.default.moveItem(atPath: job.destination, toPath: area + "/" + DeleteRehearsal.slot(exercise, job))

        let finisher = RunFinisher(ledger: fx.ledger, reportsDirectory: fx.dir.file("reports"), logger: Logger(label: "test"))
        let resumed = await finisher.resume(exercise, plan: fx.plan)
        #expect(resumed.state == .succeeded && resumed.cleanup == RunRecord.cleanupDone, "\(resumed)")
        #expect(resumed.note?.contains("rehearsal of delete passed: 4 target(s) byte-identical") == true, "\(resumed.note ?? "")")
        let events = try await fx.ledger.events(runId: exercise.id, afterId: 0, limit: 1_000)
        #expect(events.contains { $0.kind == "rehearsal.passed" })
        #expect(events.contains { $0.kind == "exercise.cleaned" && $0.message.contains("4 job(s)") }, "\(events.map(\.message))")
        let sandbox = URL(fileURLWithPath: job.destination).deletingLastPathComponent().deletingLastPathComponent().path
        #expect(!FileManager.default.fileExists(atPath: sandbox), "nothing left of the run's sandbox")
    }

    @Test func deletersAreTheirOwnRole() {
        let authorizer = Authorizer(admins: .init(uids: [1000]), deleters: .init(uids: [2000]), daemonUID: 3000)
        func peer(_ uid: UInt32) -> PeerCredentials { PeerCredentials(pid: 1, uid: uid, gid: 65534) }
        #expect(authorizer.mayMutate(peer(1000)) && !authorizer.mayDelete(peer(1000)), "an admin is not a deleter")
        #expect(!authorizer.mayMutate(peer(2000)) && authorizer.mayDelete(peer(2000)))
        #expect(authorizer.mayMutate(peer(3000)) && !authorizer.mayDelete(peer(3000)), "nor is the daemon's own user")
        #expect(authorizer.mayDelete(peer(0)))
        #expect(!authorizer.mayDelete(peer(4000)))
    }

    @Test func planKeysOfSoftDeletes() throws {
        let base = "name: p\nsnapshots: /s\ntarget: /t/{site}/{product}\nsandbox: /x/{run}/{site}/{product}\nproducts: [{ name: a }]\n"
        let plan = try PlanLoader.load(text: base + "delete: { max_sites: 3 }\nschedule: { exercise: \"@weekly\", rehearse: delete }\n",
                                       file: "p.yaml", baseDirectory: "/")
        #expect(plan.delete.maxSites == 3 && plan.schedule?.rehearse == "delete" && !plan.wavesDeclared)
        #expect(plan.waveSpecs(for: .delete).count == 2 && plan.waveSpecs(for: .restore).count == 1)
        #expect(throws: DiagnosticsError.self) {
            _ = try PlanLoader.load(text: base + "schedule: { exercise: \"@weekly\", rehearse: restore }\n", file: "p.yaml", baseDirectory: "/")
        }
        #expect(throws: DiagnosticsError.self) {
            _ = try PlanLoader.load(text: base + "delete: { max_sites: 0 }\n", file: "p.yaml", baseDirectory: "/")
        }
        // A token changes with the plan's text.
        let other = try PlanLoader.load(text: base + "delete: { max_sites: 4 }\n", file: "p.yaml", baseDirectory: "/")
        #expect(other.version != plan.version && other.version.hasPrefix("sha256:"))
    }

    /// Data soft-deleted after the incident may hold the damage, as a snapshot taken after it
    /// may: a restore as of the incident takes the newest snapshot before it instead, with that
    /// snapshot's RPO, never the deleted data with an RPO of 0.
    @Test func dataDeletedAfterTheIncidentIsNotTakenFromQuarantine() async throws {
        let fx = try await restored(sites: 1)
        let selection = try select(fx, ["acme"], products: ["jira"])
        let created = try await fx.engine.createDelete(selection, request: RunRequest(plan: fx.plan, mode: .delete))
        _ = try await fx.engine.execute(runId: created.run.id, plan: fx.plan)
        let deletedAt = try #require(try await fx.ledger.quarantine(includePurged: false).first { $0.reason == "delete" }?.createdAt)
        var request = RunRequest(plan: fx.plan, mode: .restore, sites: ["acme"])
        request.incidentAt = deletedAt.addingTimeInterval(-60)
        let before = try #require(try await fx.engine.dryRun(request).jobs.first { $0.product == "jira" })
        #expect(before.source == JobRecord.sourceSnapshot && before.snapshot?.hasSuffix(".tar.gz") == true, "\(before)")
        #expect((before.rpoSeconds ?? 0) > 0 && before.snapshotTakenAt! <= request.incidentAt!)
        // An incident at the deletion itself: the deleted data comes back, renamed.
        request.incidentAt = deletedAt
        let at = try #require(try await fx.engine.dryRun(request).jobs.first { $0.product == "jira" })
        #expect(at.source == JobRecord.sourceQuarantine && at.rpoSeconds == 0)
    }

    @Test func fromSnapshotsIgnoresTheQuarantine() async throws {
        let fx = try await restored(sites: 1)
        let selection = try select(fx, ["acme"], products: ["jira"])
        let created = try await fx.engine.createDelete(selection, request: RunRequest(plan: fx.plan, mode: .delete))
        _ = try await fx.engine.execute(runId: created.run.id, plan: fx.plan)
        var request = RunRequest(plan: fx.plan, mode: .restore, sites: ["acme"])
        request.fromSnapshots = true
        let dry = try await fx.engine.dryRun(request)
        #expect(dry.jobs.allSatisfy { $0.source == JobRecord.sourceSnapshot })
        request.fromSnapshots = false
        let fromQuarantine = try await fx.engine.dryRun(request)
        #expect(fromQuarantine.jobs.first { $0.product == "jira" }?.source == JobRecord.sourceQuarantine)
    }
}
