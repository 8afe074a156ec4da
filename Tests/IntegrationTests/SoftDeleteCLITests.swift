import Foundation
import LifeboatKit
import LifeboatTestSupport
import Testing

/// Soft deletes the way an operator runs them: `lifeboat delete … --dry-run`, then the same with
/// `--confirm TOKEN`, through the real daemon; undelete with `rollback`; every refusal.
@Suite(.serialized, .ownThread) struct SoftDeleteCLITests {
    /// A daemon over `sites` sites with every site restored into production.
    func restoredDaemon(sites: Int = 3, planExtra: String = "", config: String = "", name: String = #function) throws -> DaemonHarness {
        let daemon = try DaemonHarness(sites: sites, size: "64KiB", planExtra: planExtra, name: name)
        if !config.isEmpty {
            let base = try String(contentsOfFile: daemon.dir.file("lifeboatd.yaml"), encoding: .utf8)
            daemon.dir.write("lifeboatd.yaml", base + "\n" + config + "\n")
        }
        try daemon.start()
        let restore = try daemon.cli(["restore", "main", "--follow"])
        #expect(restore.status == 0, "\(restore.stdout)\(restore.stderr)")
        return daemon
    }

    func parseToken(_ output: String) -> String? {
        output.split(separator: "\n").first { $0.hasPrefix("token: ") }.map { String($0.dropFirst("token: ".count)) }
    }

    func dryRunToken(_ daemon: DaemonHarness, _ args: [String], as user: String? = nil) throws -> String {
        let dry = try daemon.cli(["delete", "main"] + args + ["--dry-run"], as: user)
        #expect(dry.status == 0, "\(dry.stdout)\(dry.stderr)")
        return try #require(parseToken(dry.stdout), "no token in \(dry.stdout)")
    }

    func digest(_ daemon: DaemonHarness, _ site: String, _ product: String) -> String? {
        TreeDigest.of(daemon.dir.file("out/\(site)/\(product)"))
    }

    func exists(_ daemon: DaemonHarness, _ relative: String) -> Bool { FileManager.default.fileExists(atPath: daemon.dir.file(relative)) }

    func detail(_ daemon: DaemonHarness, _ run: String) throws -> [String: Any] {
        let show = try daemon.cli(["show", run, "--json"])
        return (try? JSONSerialization.jsonObject(with: Data(show.stdout.utf8)) as? [String: Any]) ?? [:]
    }

    @Test func dryRunTokenDeleteUndeleteAndRestoreFromQuarantine() async throws {
        let daemon = try restoredDaemon()
        let before = [digest(daemon, "acme", "contacts"), digest(daemon, "acme", "jira")]
        let dry = try daemon.cli(["delete", "main", "--sites", "acme,globex", "--dry-run"])
        #expect(dry.status == 0, "\(dry.stdout)\(dry.stderr)")
        #expect(dry.stdout.contains("would delete 2 site(s) of plan main") && dry.stdout.contains("4 target(s)"), "\(dry.stdout)")
        #expect(dry.stdout.contains("waves: 1: acme; 2: globex"), "a canary wave first: \(dry.stdout)")
        let token = try #require(parseToken(dry.stdout))
        #expect(try daemon.runs().count == 1, "a dry run records nothing")

        // A wrong token and a token of another selection are refused; nothing moves.
        let wrong = try daemon.cli(["delete", "main", "--sites", "acme,globex", "--confirm", "del-000000000000"])
        #expect(wrong.status == 2 && wrong.stderr.contains("does not match"), "\(wrong.stdout)\(wrong.stderr)")
        let other = try daemon.cli(["delete", "main", "--sites", "acme", "--confirm", token])
        #expect(other.status == 2 && other.stderr.contains("does not match"), "\(other.stderr)")
        // Without any token: the listing, and a refusal.
        let unconfirmed = try daemon.cli(["delete", "main", "--sites", "acme,globex"])
        #expect(unconfirmed.status == 2 && unconfirmed.stderr.contains("needs --confirm TOKEN"), "\(unconfirmed.stderr)")
        #expect(exists(daemon, "out/acme/jira") && exists(daemon, "out/globex/jira"))
        // A stale token: a target was written to after the dry run.
        daemon.dir.write("out/globex/jira/late.txt", "written after the dry run")
        let stale = try daemon.cli(["delete", "main", "--sites", "acme,globex", "--confirm", token])
        #expect(stale.status == 2 && stale.stderr.contains("does not match"), "\(stale.stderr)")
        // Removed again, the tree looks as it did, but its directory changed since the dry run:
        // that needs a new one (as a tree renamed away and back would).
        try FileManager.default.removeItem(atPath: daemon.dir.file("out/globex/jira/late.txt"))
        let again = try #require(parseToken(try daemon.cli(["delete", "main", "--sites", "acme,globex", "--dry-run"]).stdout))
        #expect(again != token)
        // Every refused attempt is recorded, with who.
        let refused = try daemon.runs().filter { $0["mode"] as? String == "delete" }
        #expect(refused.count == 4 && refused.allSatisfy { ($0["note"] as? String ?? "").hasPrefix("refused: ") && $0["state"] as? String == "failed" }, "\(refused)")

        let delete = try daemon.cli(["delete", "main", "--sites", "acme,globex", "--confirm", again, "--reason", "ticket OPS-1", "--follow"])
        #expect(delete.status == 0, "\(delete.stdout)\(delete.stderr)")
        let runId = try #require(delete.stdout.split(separator: "\n").first { $0.hasPrefix("started delete run ") }
            .map { String($0.split(separator: " ")[3]) })
        for site in ["acme", "globex"] {
            for product in ["contacts", "jira"] { #expect(!exists(daemon, "out/\(site)/\(product)"), "\(site)/\(product) still in place") }
        }
        #expect(exists(daemon, "out/initech/jira"), "a site not named is untouched")
        let show = try daemon.cli(["show", runId])
        #expect(show.stdout.contains("delete of main by uid 0") && show.stdout.contains("reason: ticket OPS-1"), "\(show.stdout)")
        let report = try daemon.cli(["report", runId])
        #expect(report.stdout.contains("ticket OPS-1"), "\(report.stdout)")
        // Those who tell customers never read "restored" for a delete: its sites are deleted,
        // its verdict is not a recovery, and it has no recovery figures.
        #expect(report.stdout.contains("SOFT-DELETED: EVERY TARGET IN QUARANTINE") && !report.stdout.contains("RECOVERED"), "\(report.stdout)")
        #expect(!delete.stdout.contains("RPO p50") && !delete.stdout.contains("RTO objective") && delete.stdout.contains("MOVED TO QUARANTINE"),
                "\(delete.stdout)")
        let sites = try daemon.cli(["sites", runId])
        #expect(sites.stdout.contains("2 site(s): 0 waiting, 0 deleting, 2 deleted, 0 failed") && sites.stdout.contains("DELETED / ETA")
                && !sites.stdout.contains("restored"), "\(sites.stdout)")
        let siteStates = ((jsonObject(try daemon.cli(["sites", runId, "--json"]).stdout) as? [String: Any])?["sites"] as? [[String: Any]])?
            .compactMap { $0["state"] as? String }
        #expect(siteStates == ["deleted", "deleted"], "\(String(describing: siteStates))")
        let list = try daemon.cli(["quarantine", "list"])
        #expect(list.stdout.components(separatedBy: " delete ").count - 1 == 4, "\(list.stdout)")
        let purge = try daemon.cli(["quarantine", "purge"])
        #expect(purge.stdout.contains("soft-deleted"), "\(purge.stdout)")
        #expect(exists(daemon, "out/acme/.lifeboat-quarantine"))

        // Undelete acme: the very trees, back in place.
        let undo = try daemon.cli(["rollback", runId, "--site", "acme"])
        #expect(undo.status == 0, "\(undo.stdout)\(undo.stderr)")
        #expect(undo.stdout.contains("undeleted") && undo.stdout.contains("tree identical"), "\(undo.stdout)")
        #expect([digest(daemon, "acme", "contacts"), digest(daemon, "acme", "jira")] == before)

        // globex/contacts re-created meanwhile: the undelete refuses and says why.
        daemon.dir.write("out/globex/contacts/new.txt", "written after the delete")
        let recreated = try daemon.cli(["rollback", runId, "--site", "globex"])
        #expect(recreated.status == 2 && recreated.stderr.contains("re-created since the delete"), "\(recreated.stderr)")
        #expect(try String(contentsOfFile: daemon.dir.file("out/globex/contacts/new.txt"), encoding: .utf8) == "written after the delete")

        // A restore of globex: jira comes back from quarantine (RPO 0), contacts from the archive;
        // the dry run says which.
        let plan = try daemon.cli(["dry-run", "main", "--sites", "globex"])
        #expect(plan.stdout.contains("quarantine") && plan.stdout.contains("snapshot"), "\(plan.stdout)")
        let archives = try daemon.cli(["dry-run", "main", "--sites", "globex", "--from-snapshots", "--json"])
        let planned = (try? JSONSerialization.jsonObject(with: Data(archives.stdout.utf8)) as? [String: Any])?["jobs"] as? [[String: Any]] ?? []
        #expect(planned.count == 2 && planned.allSatisfy { $0["source"] as? String == "snapshot" }, "\(archives.stdout)")
        let restore = try daemon.cli(["restore", "main", "--sites", "globex", "--json"])
        let restoreId = try #require((try JSONSerialization.jsonObject(with: Data(restore.stdout.utf8)) as? [String: Any])?["id"] as? String)
        #expect(try await daemon.waitForRun(restoreId) == "succeeded")
        let jobs = try daemon.jobs(restoreId)
        let jira = jobs.first { $0["product"] as? String == "jira" }
        #expect(jira?["source"] as? String == "quarantine" && jira?["rpo_seconds"] as? Double == 0, "\(jira ?? [:])")
        #expect(jobs.first { $0["product"] as? String == "contacts" }?["source"] as? String == "snapshot")
        #expect(try daemon.cli(["report", restoreId]).stdout.contains("soft-deleted data from quarantine: "))
        let shown = try daemon.cli(["show", restoreId]).stdout
        #expect(shown.contains("SOURCE") && shown.contains("quarantine"), "\(shown)")
        #expect(exists(daemon, "out/globex/jira/manifest.json") || exists(daemon, "out/globex/jira"))
        #expect(daemon.stop() == 0)
    }

    @Test func unknownIdsRejectTheWholeRequestAndNothingMoves() throws {
        let daemon = try restoredDaemon()
        let result = try daemon.cli(["delete", "main", "--sites", "acme,jira,4711,20261125-101132-a3f9", "--confirm", "del-000000000000"])
        #expect(result.status == 2, "\(result.stdout)\(result.stderr)")
        for id in ["jira (it is a product", "4711 (it is a number", "20261125-101132-a3f9 (it looks like a run id"] {
            #expect(result.stderr.contains(id), "\(id): \(result.stderr)")
        }
        #expect(!result.stderr.contains("acme ("), "acme is a real target")
        #expect(result.stderr.contains("nothing was moved") && result.stderr.contains("recorded as run"))
        #expect(exists(daemon, "out/acme/contacts") && exists(daemon, "out/acme/jira"))
        #expect(!exists(daemon, "out/acme/.lifeboat-quarantine"))
        // No sites named: never "every site".
        let none = try daemon.cli(["delete", "main", "--dry-run"])
        #expect(none.status == 2 && none.stderr.contains("never defaults to every site"), "\(none.stderr)")
        #expect(daemon.stop() == 0)
    }

    @Test func maxSitesCapsOneDelete() throws {
        let daemon = try restoredDaemon(planExtra: "delete: { max_sites: 1 }")
        let result = try daemon.cli(["delete", "main", "--sites", "acme,globex", "--dry-run"])
        #expect(result.status == 2 && result.stderr.contains("allows at most 1"), "\(result.stderr)")
        #expect(try daemon.cli(["delete", "main", "--sites", "acme", "--dry-run"]).status == 0)
        #expect(daemon.stop() == 0)
    }

    @Test func anAdminWhoIsNotADeleterIsRefused() throws {
        let daemon = try restoredDaemon(config: "admins: { uids: [65534] }")
        chmod(daemon.dir.path, 0o755)
        // An admin may ask for the dry run (it writes nothing) and may restore, but not delete.
        let token = try dryRunToken(daemon, ["--sites", "acme"], as: "65534")
        let refused = try daemon.cli(["delete", "main", "--sites", "acme", "--confirm", token], as: "65534")
        #expect(refused.status == 2 && refused.stderr.contains("needs a deleter"), "\(refused.stdout)\(refused.stderr)")
        #expect(exists(daemon, "out/acme/jira"))
        #expect(daemon.daemonLog.contains("delete refused"))
        let recorded = try daemon.runs().first { $0["mode"] as? String == "delete" }
        let startedBy = recorded?["started_by"] as? String ?? ""
        #expect(startedBy.hasPrefix("uid 65534"), "\(recorded ?? [:])")
        // Named a deleter, the same caller may.
        let base = try String(contentsOfFile: daemon.dir.file("lifeboatd.yaml"), encoding: .utf8)
        daemon.dir.write("lifeboatd.yaml", base + "deleters: { uids: [65534] }\n")
        #expect(try daemon.cli(["reload"]).status == 0)
        let allowed = try daemon.cli(["delete", "main", "--sites", "acme", "--confirm", token, "--follow"], as: "65534")
        #expect(allowed.status == 0, "\(allowed.stdout)\(allowed.stderr)")
        #expect(!exists(daemon, "out/acme/jira"))
        #expect(daemon.stop() == 0)
    }

    @Test func aFailingCanaryHaltsTheDelete() async throws {
        let daemon = try restoredDaemon()
        let token = try dryRunToken(daemon, ["--sites", "acme,globex,initech"])
        // acme's quarantine directory is a link: Lifeboat never enters its own directories through
        // one, so the canary's jobs fail and its gate (max_failures 0) halts the run.
        try FileManager.default.createSymbolicLink(atPath: daemon.dir.file("out/acme/.lifeboat-quarantine"), withDestinationPath: daemon.dir.file("elsewhere"))
        let delete = try daemon.cli(["delete", "main", "--sites", "acme,globex,initech", "--confirm", token, "--exit-on-halt"])
        #expect(delete.status == 4, "\(delete.stdout)\(delete.stderr)")
        let runId = try #require(delete.stdout.split(separator: "\n").first { $0.hasPrefix("started delete run ") }
            .map { String($0.split(separator: " ")[3]) })
        let run = try detail(daemon, runId)["run"] as? [String: Any]
        #expect(run?["state"] as? String == "halted", "\(run ?? [:])")
        #expect(exists(daemon, "out/acme/jira") && exists(daemon, "out/globex/jira") && exists(daemon, "out/initech/jira"))
        #expect(try daemon.cli(["cancel", runId]).status == 0)
        #expect(try await daemon.waitForRun(runId) == "cancelled")
        #expect(exists(daemon, "out/globex/contacts") && exists(daemon, "out/initech/contacts"))
        #expect(daemon.stop() == 0)
    }

    @Test func killNineMidUndeleteEndsConsistent() async throws {
        let daemon = try DaemonHarness(sites: 2, size: "64KiB", name: #function)
        // Armed from the start: only an undelete reaches this step.
        try daemon.start(environment: ["LIFEBOAT_CRASH_AT": "after-undelete-rename"])
        #expect(try daemon.cli(["restore", "main", "--follow"]).status == 0)
        let before = ["acme", "globex"].flatMap { site in ["contacts", "jira"].map { digest(daemon, site, $0) } }
        let token = try dryRunToken(daemon, ["--sites", "acme,globex"])
        let delete = try daemon.cli(["delete", "main", "--sites", "acme,globex", "--confirm", token, "--follow"])
        #expect(delete.status == 0, "\(delete.stdout)\(delete.stderr)")
        let runId = try #require(try daemon.runs().first { $0["mode"] as? String == "delete" && $0["state"] as? String == "succeeded" }?["id"] as? String)
        // The daemon dies right after the first target is back, before the ledger knew.
        let undo = try daemon.cli(["rollback", runId])
        #expect(undo.status != 0)
        #expect(try await daemon.waitForExit(timeout: 30) == 86, "\(daemon.daemonLog)")
        // Each target is in place or in quarantine, never both, never neither.
        for site in ["acme", "globex"] {
            for product in ["contacts", "jira"] {
                let inPlace = exists(daemon, "out/\(site)/\(product)")
                let quarantined = (try? FileManager.default.contentsOfDirectory(atPath: daemon.dir.file("out/\(site)/.lifeboat-quarantine")))?
                    .contains { $0.hasPrefix("\(runId).\(site).\(product).") } ?? false
                #expect(inPlace != quarantined, "\(site)/\(product): in place \(inPlace), in quarantine \(quarantined)")
            }
        }
        try daemon.start()
        let again = try daemon.cli(["rollback", runId])
        #expect(again.status == 0, "\(again.stdout)\(again.stderr)")
        let after = ["acme", "globex"].flatMap { site in ["contacts", "jira"].map { digest(daemon, site, $0) } }
        #expect(after == before)
        #expect(try daemon.cli(["rollback", runId]).status == 2, "nothing left to undelete")
        #expect(daemon.stop() == 0)
    }

    @Test func rehearsalProvesTheUndeleteInTheSandbox() throws {
        let daemon = try DaemonHarness(sites: 3, size: "64KiB", name: #function)
        try daemon.start()
        let exercise = try daemon.cli(["exercise", "main", "--scale", "2", "--seed", "5", "--rehearse", "delete", "--follow"])
        #expect(exercise.status == 0, "\(exercise.stdout)\(exercise.stderr)")
        let runId = try #require(try daemon.runs().first?["id"] as? String)
        let report = try daemon.cli(["report", runId])
        #expect(report.stdout.contains("rehearsal of delete: 4 target(s) soft-deleted in 2 wave(s) and undeleted; 4 of 4 byte-identical"), "\(report.stdout)")
        #expect(report.stdout.contains("undelete RTO max"))
        // Production was never touched, and the sandbox is cleaned as after any exercise.
        #expect(!exists(daemon, "out"))
        #expect(try daemon.cli(["exercise", "main", "--rehearse", "nonsense"]).status == 2)
        #expect(daemon.stop() == 0)
    }

    @Test func killNineMidDeleteEndsConsistent() async throws {
        let daemon = try DaemonHarness(sites: 2, size: "64KiB", planExtra: "concurrency: 1", name: #function)
        try daemon.start()
        #expect(try daemon.cli(["restore", "main", "--follow"]).status == 0)
        let token = try dryRunToken(daemon, ["--sites", "acme,globex"])
        #expect(daemon.stop() == 0)
        // The daemon dies right after a target moved, before the ledger knew.
        try daemon.start(environment: ["LIFEBOAT_CRASH_AT": "after-quarantine"])
        let delete = try daemon.cli(["delete", "main", "--sites", "acme,globex", "--confirm", token])
        #expect(delete.status == 0, "\(delete.stdout)\(delete.stderr)")
        #expect(try await daemon.waitForExit(timeout: 60) == 86, "\(daemon.daemonLog)")
        try daemon.start()
        let runId = try #require(try daemon.runs().first { $0["mode"] as? String == "delete" }?["id"] as? String)
        #expect(try await daemon.waitForRun(runId, timeout: 90) == "succeeded", "\(daemon.daemonLog)")
        // The job caught by the crash is recorded with what it moved, measured in quarantine.
        let jobs = try daemon.jobs(runId)
        #expect(jobs.count == 4 && jobs.allSatisfy { ($0["bytes"] as? Int ?? 0) > 0 && ($0["entries"] as? Int ?? 0) > 0 }, "\(jobs)")
        let shown = try daemon.cli(["report", runId]).stdout
        #expect(shown.contains("moved into quarantine (") && shown.contains("before the restart; not redone"), "\(shown.prefix(3000))")
        let list = try daemon.cli(["quarantine", "list", "--json"])
        let entries = (try? JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]]) ?? []
        for site in ["acme", "globex"] {
            for product in ["contacts", "jira"] {
                // Either in place or in quarantine: here, in quarantine exactly once, and recorded.
                #expect(!exists(daemon, "out/\(site)/\(product)"))
                let mine = entries.filter { $0["site"] as? String == site && $0["product"] as? String == product && $0["reason"] as? String == "delete" }
                #expect(mine.count == 1 && mine.first?["present"] as? Bool == true, "\(site)/\(product): \(mine)")
            }
        }
        // And the undelete puts all of it back, each tree identical to the one deleted (the job
        // the crash caught too: its fingerprint is the tree's, taken in quarantine).
        #expect(try daemon.cli(["rollback", runId]).status == 0)
        #expect(exists(daemon, "out/acme/contacts") && exists(daemon, "out/globex/jira"))
        let undeleted = try ledgerRows(daemon.ledger, "select message from events where run_id = '\(runId)' and kind = 'undelete'").map { text($0, "message") }
        #expect(undeleted.count == 4 && undeleted.allSatisfy { $0.contains("tree identical to the one deleted") }, "\(undeleted)")
        #expect(daemon.stop() == 0)
    }
}
