import Foundation
import LifeboatTestSupport
import Testing

/// "Destroying nothing", tried adversarially with the real binaries: symbolic links at every
/// level of targets, sandboxes and Lifeboat's own directories, overlapping trees, colliding
/// templates, concurrent runs, layouts that share a quarantine directory, changed trees, short
/// retention, an in-process runner beside the daemon, a kill between an exercise's end and its
/// cleanup. Each asserts that no byte outside a job's own destination and Lifeboat's own
/// directories changed, and that what a job displaced is listed in quarantine and restorable.
@Suite(.serialized, .ownThread) struct DataSafetyTests {
    /// Every entry under `root` (not following links): relative path → type, mode, size, content
    /// digest or link target.
    static func tree(_ root: String) -> [String: String] {
        var result: [String: String] = [:]
        var stack = [""]
        while let relative = stack.popLast() {
            let directory = relative.isEmpty ? root : root + "/" + relative
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
                let path = relative.isEmpty ? name : relative + "/" + name
                var st = stat()
                guard lstat(root + "/" + path, &st) == 0 else { continue }
                switch st.st_mode & S_IFMT {
                case S_IFDIR:
                    result[path] = "dir \(String(st.st_mode & 0o7777, radix: 8))"
                    stack.append(path)
                case S_IFLNK:
                    result[path] = "link -> " + ((try? FileManager.default.destinationOfSymbolicLink(atPath: root + "/" + path)) ?? "?")
                default:
                    let data = FileManager.default.contents(atPath: root + "/" + path) ?? Data()
                    result[path] = "file \(String(st.st_mode & 0o7777, radix: 8)) \(data.count) \(data.hashValue)"
                }
            }
        }
        return result
    }

    func json(_ result: ProcessResult) -> Any? { try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) }

    func writePlan(_ daemon: DaemonHarness, _ name: String = "main", target: String = "../out/{site}/{product}",
                   sandbox: String = "../sandbox/{run}/{site}/{product}", extra: String = "") {
        daemon.dir.write("plans/\(name).yaml", """
            name: \(name)
            snapshots: ../store
            target: \(target)
            sandbox: \(sandbox)
            products:
              - name: contacts
              - name: jira
                after: [contacts]
            \(extra)
            """)
    }

    /// The plan `main` with a verify command that marks `hold.sh.<product>` when it starts and
    /// then waits (at most 60 s) for `letHeldJobsGo`.
    func writeHeldPlan(_ daemon: DaemonHarness) {
        let dir = daemon.dir
        dir.write("hold.sh", "#!/bin/sh\ntouch \"$0.$1\"\nfor i in $(seq 600); do [ -e \"$0.go\" ] && exit 0; sleep 0.1; done\nexit 1\n")
        chmod(dir.file("hold.sh"), 0o755)
        writePlan(daemon, extra: "verify: { command: [\"\(dir.file("hold.sh"))\", \"{product}\"] }")
    }

    /// Waits (at most 60 s) until a job of `product` is held in its verify command.
    func waitUntilHeld(_ dir: TempDir, _ product: String) async throws {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, !FileManager.default.fileExists(atPath: dir.file("hold.sh.\(product)")) {
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    func letHeldJobsGo(_ dir: TempDir) { dir.write("hold.sh.go", "") }

    // MARK: 1. Exercises never write into production, whatever the symbolic links

    @Test func exerciseThroughTenantSymlinksIsRefusedAndProductionUntouched() async throws {
        let daemon = try DaemonHarness(sites: 3, size: "64KiB")
        defer { _ = daemon.stop() }
        let dir = daemon.dir
        // Production lives on a volume; the target reaches it through per-tenant links.
        dir.write("vol/acme/contacts/prod.txt", "acme production")
        dir.write("vol/globex/jira/prod.txt", "globex production")
        try FileManager.default.createDirectory(atPath: dir.file("srv"), withIntermediateDirectories: true)
        for site in ["acme", "globex"] {
            try FileManager.default.createSymbolicLink(atPath: dir.file("srv/\(site)"), withDestinationPath: dir.file("vol/\(site)"))
        }
        // The sandbox has the same kind of links, planted at three different levels.
        try FileManager.default.createDirectory(atPath: dir.file("sandbox/acme"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir.file("sandbox/acme/contacts"), withDestinationPath: dir.file("vol/acme/contacts"))
        try FileManager.default.createSymbolicLink(atPath: dir.file("sandbox/globex"), withDestinationPath: dir.file("vol/globex"))
        try FileManager.default.createSymbolicLink(atPath: dir.file("sandbox2"), withDestinationPath: dir.file("vol/acme"))
        writePlan(daemon, target: "../srv/{site}/{product}", sandbox: "../sandbox/{site}/{product}")
        writePlan(daemon, "rooted", target: "../srv/{site}/{product}", sandbox: "../sandbox2/{run}/{site}/{product}")
        let before = Self.tree(dir.file("vol"))
        try daemon.start()

        for (plan, site, why) in [("main", "acme", "inside production of plan"), ("main", "globex", "inside production of plan"),
                                  ("rooted", "acme", "inside production of plan")] {
            let result = try daemon.cli(["exercise", plan, "--sites", site])
            #expect(result.status == 2, "\(plan)/\(site): \(result.stdout)\(result.stderr)")
            #expect(result.stderr.contains(why) && result.stderr.contains(dir.file("vol/\(site)")), "\(result.stderr)")
        }
        // A sandbox level that is a link but not into production is refused at creation too:
        // nothing below the sandbox root is created through a link.
        try FileManager.default.createDirectory(atPath: dir.file("elsewhere"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir.file("sandbox/initech"), withDestinationPath: dir.file("elsewhere"))
        let start = try daemon.cli(["exercise", "main", "--sites", "initech", "--json"])
        #expect(start.status == 0, "\(start.stderr)")
        let runId = try #require((json(start) as? [String: Any])?["id"] as? String)
        #expect(try await daemon.waitForRun(runId) == "failed")
        let failed = try daemon.jobs(runId).first { $0["state"] as? String == "failed" }
        #expect(text(failed, "error").contains("is a symbolic link"), "\(failed ?? [:])")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("elsewhere")).isEmpty)

        #expect(Self.tree(dir.file("vol")) == before)
        #expect((json(try daemon.cli(["quarantine", "list", "--json"])) as? [Any])?.isEmpty == true)
    }

    // MARK: 2. Exercises never displace anything

    @Test func exerciseNeverDisplacesWhatSitsAtItsSandbox() async throws {
        let daemon = try DaemonHarness(sites: 2, size: "64KiB")
        defer { _ = daemon.stop() }
        let dir = daemon.dir
        // A sandbox without {run}: a user's files already sit at one destination.
        writePlan(daemon, sandbox: "../sandbox/{site}/{product}", extra: "quarantine: { retention: 1s }")
        dir.write("sandbox/acme/contacts/notes.txt", "not Lifeboat's")
        let before = Self.tree(dir.file("sandbox"))
        try daemon.start()
        let start = try daemon.cli(["exercise", "main", "--sites", "acme", "--json"])
        #expect(start.status == 0, "\(start.stderr)")
        let runId = try #require((json(start) as? [String: Any])?["id"] as? String)
        #expect(try await daemon.waitForRun(runId) == "failed")
        let jobs = try daemon.jobs(runId)
        let contacts = jobs.first { $0["product"] as? String == "contacts" }
        #expect(text(contacts, "error_code") == "sandbox")
        #expect(text(contacts, "error").contains("already exists and this exercise did not create it"), "\(contacts ?? [:])")
        #expect(jobs.first { $0["product"] as? String == "jira" }?["state"] as? String == "skipped")
        // Nothing moved, nothing quarantined: a purge has nothing to destroy.
        #expect(Self.tree(dir.file("sandbox")) == before)
        try await Task.sleep(for: .milliseconds(1_200))
        let purge = try daemon.cli(["quarantine", "purge", "--yes", "--json"])
        #expect(purge.status == 0 && ((json(purge) as? [String: Any])?["purged"] as? [Any])?.isEmpty == true, "\(purge.stdout)\(purge.stderr)")
        #expect(FileManager.default.contents(atPath: dir.file("sandbox/acme/contacts/notes.txt")) == Data("not Lifeboat's".utf8))
    }

    // MARK: 3. Plans that must be errors, and destinations held by one run at a time

    @Test func overlappingTreesAndCollidingTemplatesAreRefusedWithTheirLine() throws {
        let dir = TempDir()
        func check(_ body: String, stateDir: String = "/var/lib/lifeboat-test-state") throws -> ProcessResult {
            let file = dir.write("plans/p.yaml", body)
            return try run(Binaries.lifeboat, ["plan", "check", file, "--state-dir", stateDir])
        }
        let base = "name: p\nsnapshots: /backups/store\ntarget: TARGET\nsandbox: SANDBOX\nproducts:\n  - name: contacts\n"
        func plan(target: String = "/srv/{site}/{product}", sandbox: String = "/sandbox/{run}/{site}/{product}") -> String {
            base.replacingOccurrences(of: "TARGET", with: target).replacingOccurrences(of: "SANDBOX", with: sandbox)
        }
        let cases: [(String, String, String)] = [
            (plan(target: "/srv/{site}-{product}"), ":3:1: target \"/srv/{site}-{product}\" renders the same path for", "colliding"),
            (plan(target: "/srv/{site}.{product}/data"), ":3:1: target \"/srv/{site}.{product}/data\" renders the same path for", "colliding dot"),
            (plan(target: "/backups/store/x/{site}/{product}"), ":3:1: target \"/backups/store/x/{site}/{product}\" could resolve inside snapshots", "target in store"),
            (plan(target: "/backups/{site}/{product}"), ":3:1: target \"/backups/{site}/{product}\" could resolve inside snapshots \"/backups/store\"", "store in target"),
            (plan(target: "/backups/store/{site}/{product}"), ":3:1: target \"/backups/store/{site}/{product}\" could resolve inside snapshots", "target under store"),
            (plan(target: "/b/{site}/{product}").replacingOccurrences(of: "/backups/store", with: "/b/acme/jira/store"), ":3:1: snapshots \"/b/acme/jira/store\" could resolve inside target", "store deep in target"),
            (plan(sandbox: "/backups/store/{run}/{site}/{product}"), ":4:1: sandbox \"/backups/store/{run}/{site}/{product}\" could resolve inside snapshots", "sandbox in store"),
            (plan(sandbox: "/srv/sandbox/{run}/{site}/{product}"), ":4:1: sandbox \"/srv/sandbox/{run}/{site}/{product}\" could resolve inside target", "sandbox in target"),
        ]
        for (body, expected, label) in cases {
            let result = try check(body)
            #expect(result.status == 2, "\(label): \(result.stdout)\(result.stderr)")
            #expect(result.stderr.contains(dir.file("plans/p.yaml") + expected), "\(label): \(result.stderr)")
        }
        // The state directory, resolved: a target under it is refused.
        let inState = try check(plan(target: "/var/lib/lifeboat-test-state/sites/{site}/{product}"))
        #expect(inState.status == 2 && inState.stderr.contains("could resolve inside the state directory"), "\(inState.stderr)")
        // Two plans checked together: a sandbox in the other's production.
        let a = dir.write("plans/a.yaml", plan().replacingOccurrences(of: "name: p", with: "name: a"))
        let b = dir.write("plans/b.yaml", plan(target: "/srv/b/{site}/{product}", sandbox: "/srv/x/{run}/{site}/{product}").replacingOccurrences(of: "name: p", with: "name: b"))
        let both = try run(Binaries.lifeboat, ["plan", "check", a, b, "--state-dir", "/var/lib/lifeboat-test-state"])
        #expect(both.status == 2)
        #expect(both.stdout.contains("a.yaml: ok"), "\(both.stdout)")
        #expect(both.stderr.contains(b + ":4:1: plan b's sandbox \"/srv/x/{run}/{site}/{product}\" could resolve inside plan a's target"), "\(both.stderr)")
    }

    @Test func daemonRefusesAPlanWhoseSandboxIsAnotherPlansProduction() throws {
        let daemon = try DaemonHarness(sites: 2, size: "64KiB")
        defer { _ = daemon.stop() }
        writePlan(daemon, "drill", target: "../elsewhere/{site}/{product}", sandbox: "../out/{site}/{product}")
        try daemon.start()
        let plans = try daemon.cli(["plans"])
        #expect(plans.stdout.contains("main") && !plans.stdout.contains("drill"), "\(plans.stdout)")
        #expect(plans.stderr.contains("drill.yaml") && plans.stderr.contains("could resolve inside plan main's target"), "\(plans.stderr)")
        let exercise = try daemon.cli(["exercise", "drill"])
        #expect(exercise.status == 2, "\(exercise.stdout)\(exercise.stderr)")
    }

    @Test func concurrentRunsOnOneDestinationAreRefusedNamingTheHolder() async throws {
        let daemon = try DaemonHarness(sites: 2, size: "64KiB")
        defer { _ = daemon.stop() }
        // Slow jobs, so the first run is still going when the others ask.
        daemon.dir.write("slow.sh", "#!/bin/sh\nsleep 2\n")
        chmod(daemon.dir.file("slow.sh"), 0o755)
        writePlan(daemon, extra: "verify: { command: [\"\(daemon.dir.file("slow.sh"))\", \"{path}\"] }")
        // Another plan whose target reaches the same directories through a link.
        try FileManager.default.createSymbolicLink(atPath: daemon.dir.file("alias"), withDestinationPath: daemon.dir.file("out"))
        writePlan(daemon, "other", target: "../alias/{site}/{product}", sandbox: "../sandbox2/{run}/{site}/{product}")
        try daemon.start()
        let first = try daemon.startRestore(["--sites", "acme"])
        for (plan, sites) in [("main", "acme"), ("other", "acme,globex")] {
            let second = try daemon.cli(["restore", plan, "--sites", sites])
            #expect(second.status == 2, "\(plan): \(second.stdout)\(second.stderr)")
            #expect(second.stderr.contains("held by job acme/") && second.stderr.contains("run \(first)"), "\(second.stderr)")
        }
        // Another site goes at once; the same site once the first run is done.
        let globex = try daemon.startRestore(["--sites", "globex"])
        #expect(try await daemon.waitForRun(first, timeout: 90) == "succeeded")
        #expect(try await daemon.waitForRun(globex, timeout: 90) == "succeeded")
        let again = try daemon.startRestore(["--sites", "acme"])
        #expect(try await daemon.waitForRun(again, timeout: 90) == "succeeded")
    }

    /// Two daemons with their own state directories — a test instance pointed at production's
    /// plans — restore one site at the same moment: the second's job is refused, naming why and
    /// what to do, and displaces nothing; so is an extract into the same destination. Once the
    /// first is done, the second's retry goes (and displaces the first's data into quarantine, as
    /// any later restore does).
    @Test func aSecondDaemonOnTheSameDestinationIsRefused() async throws {
        let first = try DaemonHarness(sites: 2, size: "64KiB")
        defer { _ = first.stop() }
        let dir = first.dir
        writeHeldPlan(first)
        let second = try DaemonHarness(sites: 1, size: "8KiB")
        defer { _ = second.stop() }
        second.dir.write("lifeboatd.yaml", """
            plans_dir: \(dir.file("plans"))
            state_dir: state
            socket: { path: lifeboatd.sock, mode: "0666" }
            """)
        try first.start()
        try second.start()
        let going = try first.startRestore(["--sites", "acme"])
        try await waitUntilHeld(dir, "contacts")
        let refusedRun = try second.startRestore(["--sites", "acme"])
        #expect(try await second.waitForRun(refusedRun, timeout: 60) == "failed", "\(second.daemonLog.suffix(3_000))")
        let contacts = try #require(try second.jobs(refusedRun).first { $0["product"] as? String == "contacts" })
        let error = contacts["error"] as? String ?? ""
        #expect(error.contains("destination \(dir.file("out/acme/contacts")) is being restored by another process right now"), "\(error)")
        #expect(error.hasSuffix("let it finish, then run this job again: lifeboat retry \(refusedRun) acme/contacts"), "\(error)")
        // An extract into it is refused too.
        let archive = try #require(FileManager.default.subpathsOfDirectory(atPath: dir.file("store/acme/contacts")).first { $0.hasSuffix(".tar.gz") })
        let extract = try run(Binaries.lifeboat, ["snapshot", "extract", dir.file("store/acme/contacts/" + archive), "--into", dir.file("out/acme/contacts")])
        #expect(extract.status == 1 && extract.stderr.contains("is being restored by another process right now")
                && extract.stderr.contains("let it finish, or extract somewhere else"), "\(extract.status) \(extract.stdout)\(extract.stderr)")

        letHeldJobsGo(dir)
        #expect(try await first.waitForRun(going, timeout: 90) == "succeeded", "\(first.daemonLog.suffix(3_000))")
        // Nothing displaced the first's data; no staging (nor hold file) is left.
        let quarantined = { (daemon: DaemonHarness) -> Int in ((try? daemon.cli(["quarantine", "list", "--json"])).flatMap(json) as? [Any])?.count ?? -1 }
        #expect(quarantined(first) == 0 && quarantined(second) == 0)
        #expect(!FileManager.default.fileExists(atPath: dir.file("out/acme/.lifeboat-staging")))
        let retried = try second.cli(["retry", refusedRun, "\(contacts["id"] as? Int ?? 0)"])
        #expect(retried.status == 0, "\(retried.stdout)\(retried.stderr)")
        #expect(try await second.waitForRun(refusedRun, timeout: 90) == "succeeded", "\(second.daemonLog.suffix(3_000))")
        #expect(quarantined(second) == 2)
        #expect(!FileManager.default.fileExists(atPath: dir.file("out/acme/.lifeboat-staging")))
    }

    /// The directory a job staged in is moved aside, and a link to another tenant put in its
    /// place, while the job verifies: nothing is committed through the link, the job says why, and
    /// its staging directory is removed from where the directory was moved to.
    @Test func aParentSwappedForALinkMidJobGetsNothingAndKeepsNoStaging() async throws {
        let daemon = try DaemonHarness(sites: 2, size: "64KiB")
        defer { _ = daemon.stop() }
        let dir = daemon.dir
        writeHeldPlan(daemon)
        dir.write("elsewhere/acme/keep.txt", "another tenant")
        try daemon.start()
        let runId = try daemon.startRestore(["--sites", "acme"])
        try await waitUntilHeld(dir, "contacts")
        try FileManager.default.moveItem(atPath: dir.file("out/acme"), toPath: dir.file("aside"))
        try FileManager.default.createSymbolicLink(atPath: dir.file("out/acme"), withDestinationPath: dir.file("elsewhere/acme"))
        let elsewhere = Self.tree(dir.file("elsewhere"))
        letHeldJobsGo(dir)
        #expect(try await daemon.waitForRun(runId, timeout: 90) == "failed", "\(daemon.daemonLog.suffix(3_000))")
        let contacts = try #require(try daemon.jobs(runId).first { $0["product"] as? String == "contacts" })
        let error = contacts["error"] as? String ?? ""
        #expect(contacts["state"] as? String == "failed")
        #expect(error.contains("\(dir.file("out/acme")) is no longer the directory this restore staged in (it is a symbolic link now)"), "\(error)")
        // The other tenant's directory is as it was; the moved directory keeps no staging.
        #expect(Self.tree(dir.file("elsewhere")) == elsewhere)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("aside")).filter { $0.hasPrefix(".lifeboat-") } == [])
    }

    // MARK: 4. Quarantine and rollback names never collide

    @Test func productFirstLayoutQuarantinesEachSiteApartAndRollsBack() async throws {
        let daemon = try DaemonHarness(sites: 3, size: "64KiB")
        defer { _ = daemon.stop() }
        writePlan(daemon, target: "../out/{product}/{site}")
        for site in ["acme", "globex", "initech"] {
            daemon.dir.write("out/contacts/\(site)/old.txt", "old contacts of \(site)")
            daemon.dir.write("out/jira/\(site)/old.txt", "old jira of \(site)")
        }
        let before = Self.tree(daemon.dir.file("out"))
        try daemon.start()
        let runId = try daemon.startRestore()
        #expect(try await daemon.waitForRun(runId, timeout: 90) == "succeeded", "\(daemon.daemonLog)")
        let list = try daemon.cli(["quarantine", "list", "--json"])
        let entries = (json(list) as? [[String: Any]]) ?? []
        #expect(entries.count == 6)
        #expect(Set(entries.compactMap { $0["path"] as? String }).count == 6)
        for entry in entries {
            let path = try #require(entry["path"] as? String)
            #expect(FileManager.default.contents(atPath: path + "/old.txt") != nil, "\(path)")
        }
        let rollback = try daemon.cli(["rollback", runId])
        #expect(rollback.status == 0, "\(rollback.stdout)\(rollback.stderr)")
        // Everything as it was, plus Lifeboat's own directories.
        let after = Self.tree(daemon.dir.file("out")).filter { !$0.key.contains(".lifeboat-") }
        #expect(after == before)
    }

    // MARK: 6. Lifeboat's own directories are never entered through a link

    @Test func linksPlantedAtLifeboatsOwnDirectoriesAreRefused() async throws {
        let daemon = try DaemonHarness(sites: 2, size: "64KiB")
        defer { _ = daemon.stop() }
        let dir = daemon.dir
        dir.write("out/acme/contacts/prod.txt", "acme production")
        dir.write("out/globex/contacts/prod.txt", "globex production")
        try FileManager.default.createDirectory(atPath: dir.file("trap-q"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir.file("trap-s"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir.file("out/acme/.lifeboat-quarantine"), withDestinationPath: dir.file("trap-q"))
        try FileManager.default.createSymbolicLink(atPath: dir.file("out/globex/.lifeboat-staging"), withDestinationPath: dir.file("trap-s"))
        let before = Self.tree(dir.file("out"))
        try daemon.start()
        let runId = try daemon.startRestore()
        #expect(try await daemon.waitForRun(runId, timeout: 90) == "failed")
        let jobs = try daemon.jobs(runId)
        for (site, own) in [("acme", ".lifeboat-quarantine"), ("globex", ".lifeboat-staging")] {
            let job = jobs.first { $0["site"] as? String == site && $0["product"] as? String == "contacts" }
            #expect(job?["state"] as? String == "failed")
            #expect(text(job, "error").contains(dir.file("out/\(site)/\(own)")) && text(job, "error").contains("symbolic link"), "\(job ?? [:])")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("trap-q")).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("trap-s")).isEmpty)
        // Production as it was (the failed commit was undone), apart from the jobs that had no data.
        let after = Self.tree(dir.file("out"))
        for (path, state) in before { #expect(after[path] == state, "\(path)") }
    }

    // MARK: 7. Rollback tells a changed tree

    @Test func rollbackRefusesATreeChangedSinceTheRestoreUnlessForced() async throws {
        let daemon = try DaemonHarness(sites: 1, size: "64KiB")
        defer { _ = daemon.stop() }
        daemon.dir.write("out/acme/contacts/old.txt", "before the restore")
        try daemon.start()
        let runId = try daemon.startRestore()
        #expect(try await daemon.waitForRun(runId, timeout: 90) == "succeeded")
        // Someone writes into the restored tree.
        daemon.dir.write("out/acme/contacts/written-later.txt", "new work")
        let refused = try daemon.cli(["rollback", runId])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("acme/contacts") && refused.stderr.contains("changed after the restore") && refused.stderr.contains("--force"), "\(refused.stderr)")
        #expect(FileManager.default.fileExists(atPath: daemon.dir.file("out/acme/contacts/written-later.txt")))
        let forced = try daemon.cli(["rollback", runId, "--force", "--json"])
        #expect(forced.status == 0, "\(forced.stderr)")
        let outcomes = (json(forced) as? [[String: Any]]) ?? []
        let contacts = outcomes.first { $0["product"] as? String == "contacts" }
        #expect(contacts?["changed_since_restore"] as? Bool == true, "\(outcomes)")
        let kept = try #require(contacts?["quarantined"] as? String)
        #expect(FileManager.default.contents(atPath: kept + "/written-later.txt") == Data("new work".utf8))
        #expect(FileManager.default.contents(atPath: daemon.dir.file("out/acme/contacts/old.txt")) == Data("before the restore".utf8))
    }

    // MARK: 8. Short retention

    @Test func purgeOfShortRetentionAsksForYes() async throws {
        let daemon = try DaemonHarness(sites: 1, size: "64KiB")
        defer { _ = daemon.stop() }
        writePlan(daemon, extra: "quarantine: { retention: 1s }")
        let check = try run(Binaries.lifeboat, ["plan", "check", daemon.dir.file("plans/main.yaml"), "--state-dir", daemon.dir.file("state")])
        #expect(check.status == 0 && check.stderr.contains("warning: quarantine.retention 1s is under a day"), "\(check.stderr)")
        daemon.dir.write("out/acme/contacts/old.txt", "before")
        try daemon.start()
        let runId = try daemon.startRestore()
        #expect(try await daemon.waitForRun(runId, timeout: 90) == "succeeded")
        try await Task.sleep(for: .milliseconds(1_500))
        let unconfirmed = try daemon.cli(["quarantine", "purge"])
        #expect(unconfirmed.status != 0 && unconfirmed.stderr.contains("--yes"), "\(unconfirmed.stdout)\(unconfirmed.stderr)")
        let entries = (json(try daemon.cli(["quarantine", "list", "--json"])) as? [[String: Any]]) ?? []
        let path = try #require(entries.first?["path"] as? String)
        #expect(FileManager.default.fileExists(atPath: path))
        let confirmed = try daemon.cli(["quarantine", "purge", "--yes"])
        #expect(confirmed.status == 0, "\(confirmed.stderr)")
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    /// A purge removes only the data it moved into quarantine (its recorded identity): what an
    /// operator or a script put at an entry's path since is left alone and named, and an entry
    /// whose data is already gone is closed, not called purged.
    @Test func purgeRemovesOnlyWhatItQuarantined() async throws {
        let daemon = try DaemonHarness(sites: 1, size: "64KiB")
        defer { _ = daemon.stop() }
        writePlan(daemon, extra: "quarantine: { retention: 1s }")
        daemon.dir.write("out/acme/contacts/old.txt", "before")
        daemon.dir.write("out/acme/jira/old.txt", "before")
        try daemon.start()
        let runId = try daemon.startRestore()
        #expect(try await daemon.waitForRun(runId, timeout: 90) == "succeeded")
        let entries = (json(try daemon.cli(["quarantine", "list", "--json"])) as? [[String: Any]]) ?? []
        let contacts = try #require(entries.first { $0["product"] as? String == "contacts" }?["path"] as? String)
        let jira = try #require(entries.first { $0["product"] as? String == "jira" }?["path"] as? String)
        // The displaced contacts data is moved out and something else takes its name; jira's is removed by hand.
        try FileManager.default.moveItem(atPath: contacts, toPath: daemon.dir.file("kept-by-hand"))
        try FileManager.default.createDirectory(atPath: contacts, withIntermediateDirectories: false)
        try Data("someone else's".utf8).write(to: URL(fileURLWithPath: contacts + "/theirs.txt"))
        try FileManager.default.removeItem(atPath: jira)
        try await Task.sleep(for: .milliseconds(1_500))

        let dry = try daemon.cli(["quarantine", "purge", "--dry-run"])
        #expect(dry.status == 0 && dry.stdout.contains("left alone \(contacts)") && dry.stdout.contains("0 would be purged"), "\(dry.stdout)\(dry.stderr)")
        let purge = try daemon.cli(["quarantine", "purge", "--yes"])
        #expect(purge.status == 0, "\(purge.stderr)")
        #expect(purge.stdout.contains("left alone \(contacts)") && purge.stdout.contains("not the data quarantined there"), "\(purge.stdout)")
        #expect(purge.stdout.contains("0 purged, 1 kept") && purge.stdout.contains("1 entry's data already gone"), "\(purge.stdout)")
        #expect(FileManager.default.contents(atPath: contacts + "/theirs.txt") == Data("someone else's".utf8))
        #expect(FileManager.default.contents(atPath: daemon.dir.file("kept-by-hand/old.txt")) == Data("before".utf8))
        let left = (json(try daemon.cli(["quarantine", "list", "--json"])) as? [[String: Any]]) ?? []
        #expect(left.compactMap { $0["path"] as? String } == [contacts], "\(left)")
        let events = try ledgerRows(daemon.ledger, "select kind || ' ' || message as line from events where kind like 'quarantine.%'")
            .compactMap { $0["line"] as? String }
        #expect(events.contains { $0.hasPrefix("quarantine.kept \(contacts) is not the data quarantined there") }, "\(events)")
        #expect(events.contains { $0.hasPrefix("quarantine.gone \(jira)") }, "\(events)")
        #expect(!events.contains { $0.hasPrefix("quarantine.purged") }, "\(events)")
        // Once the operator removed it, a purge closes the entry.
        try FileManager.default.removeItem(atPath: contacts)
        let closing = try daemon.cli(["quarantine", "purge", "--yes"])
        #expect(closing.status == 0 && closing.stdout.contains("1 entry's data already gone"), "\(closing.stdout)\(closing.stderr)")
        #expect((json(try daemon.cli(["quarantine", "list", "--json"])) as? [[String: Any]])?.isEmpty == true)
    }

    // MARK: 9. The in-process runner beside the daemon

    @Test func inProcessRunRefusesWhileTheDaemonHoldsTheStateDirectory() throws {
        let daemon = try DaemonHarness(sites: 1, size: "64KiB")
        defer { _ = daemon.stop() }
        try daemon.start()
        let pid = try #require(daemon.process?.processIdentifier)
        let refused = try run(Binaries.lifeboat, ["run", daemon.dir.file("plans/main.yaml"), "--state-dir", daemon.dir.file("state")])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("another lifeboatd (pid \(pid))"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: daemon.dir.file("out/acme")))
        _ = daemon.stop()
        // Without the daemon it runs, in a ledger of its own: the daemon's ledger never sees it.
        let ran = try run(Binaries.lifeboat, ["run", daemon.dir.file("plans/main.yaml"), "--state-dir", daemon.dir.file("state")])
        #expect(ran.status == 0, "\(ran.stdout)\(ran.stderr)")
        #expect(FileManager.default.fileExists(atPath: daemon.dir.file("state/in-process/ledger.sqlite")))
        #expect(try ledgerRows(daemon.ledger, "select id from runs").isEmpty)
    }

    // MARK: 5. A kill between an exercise's end and its cleanup

    @Test func killBeforeExerciseCleanupIsResumedAtStart() async throws {
        let daemon = try DaemonHarness(sites: 2, size: "64KiB")
        defer { _ = daemon.stop() }
        try daemon.start(environment: ["LIFEBOAT_CRASH_AT": "before-exercise-cleanup"])
        let start = try daemon.cli(["exercise", "main", "--json"])
        #expect(start.status == 0, "\(start.stderr)")
        let runId = try #require((json(start) as? [String: Any])?["id"] as? String)
        #expect(try await daemon.waitForExit(timeout: 60) == 86, "\(daemon.daemonLog)")
        // The run ended, its cleanup is owed, the sandbox data is still there.
        let rows = try ledgerRows(daemon.ledger, "select state, cleanup from runs where id = '\(runId)'")
        #expect(text(rows.first, "state") == "succeeded" && text(rows.first, "cleanup") == "pending", "\(rows)")
        #expect(FileManager.default.fileExists(atPath: daemon.dir.file("sandbox/\(runId)")))
        try daemon.start()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, FileManager.default.fileExists(atPath: daemon.dir.file("sandbox/\(runId)")) {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(!FileManager.default.fileExists(atPath: daemon.dir.file("sandbox/\(runId)")))
        // Resumed once the daemon serves (a large sandbox takes minutes): recorded right after.
        var show: [String: Any]?
        while Date() < deadline {
            show = (json(try daemon.cli(["show", runId, "--json"])) as? [String: Any])?["run"] as? [String: Any]
            if show?["cleanup"] as? String == "done" { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(show?["cleanup"] as? String == "done", "\(show ?? [:])")
        let events = try ledgerRows(daemon.ledger, "select kind from events where run_id = '\(runId)'").map { text($0, "kind") }
        #expect(events.contains("exercise.cleaned"))
    }

    /// Data an exercise committed that is no longer where it was committed when the cleanup
    /// comes (a link planted on the way, other data put in its place) is left alone, and the
    /// record says so, naming each job and why, instead of calling the sandbox removed.
    @Test func aCleanupNamesTheDataNoLongerWhereItWasCommitted() async throws {
        let daemon = try DaemonHarness(sites: 2, size: "64KiB")
        defer { _ = daemon.stop() }
        let dir = daemon.dir
        try daemon.start(environment: ["LIFEBOAT_CRASH_AT": "before-exercise-cleanup"])
        let start = try daemon.cli(["exercise", "main", "--json"])
        #expect(start.status == 0, "\(start.stderr)")
        let runId = try #require((json(start) as? [String: Any])?["id"] as? String)
        #expect(try await daemon.waitForExit(timeout: 60) == 86, "\(daemon.daemonLog)")
        // While the daemon is down: acme's sandbox folder is moved aside and a link to
        // production put in its place; globex/jira is replaced by a directory of someone else's.
        dir.write("out/acme/contacts/prod.txt", "acme production")
        try FileManager.default.moveItem(atPath: dir.file("sandbox/\(runId)/acme"), toPath: dir.file("aside"))
        try FileManager.default.createSymbolicLink(atPath: dir.file("sandbox/\(runId)/acme"), withDestinationPath: dir.file("out/acme"))
        try FileManager.default.moveItem(atPath: dir.file("sandbox/\(runId)/globex/jira"), toPath: dir.file("aside-jira"))
        dir.write("sandbox/\(runId)/globex/jira/theirs.txt", "someone else's")
        let production = Self.tree(dir.file("out")), aside = Self.tree(dir.file("aside"))
        try daemon.start()
        var cleanup = ""
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let run = (json(try daemon.cli(["show", runId, "--json"])) as? [String: Any])?["run"] as? [String: Any]
            cleanup = run?["cleanup"] as? String ?? ""
            if cleanup != "pending" && !cleanup.isEmpty { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(cleanup.hasPrefix("incomplete: the data of 3 job(s) is no longer where the exercise committed it"), "\(cleanup)")
        for job in ["acme/contacts", "acme/jira"] {
            #expect(cleanup.contains("\(job) (\(dir.file("sandbox/\(runId)/acme")) is a symbolic link now)"), "\(cleanup)")
        }
        #expect(cleanup.contains("globex/jira (\(dir.file("sandbox/\(runId)/globex/jira")) holds other data now)"), "\(cleanup)")
        let show = try daemon.cli(["show", runId])
        #expect(show.stdout.contains("sandbox data removed, except: the data of 3 job(s)"), "\(show.stdout)")
        // What was left alone is as it was; what was still in place is gone.
        #expect(Self.tree(dir.file("out")) == production && Self.tree(dir.file("aside")) == aside)
        #expect(try String(contentsOfFile: dir.file("sandbox/\(runId)/globex/jira/theirs.txt"), encoding: .utf8) == "someone else's")
        #expect(!FileManager.default.fileExists(atPath: dir.file("sandbox/\(runId)/globex/contacts")))
    }

    /// A stop while `post_restore` runs after a commit — a drain (SIGTERM) or a crash (kill -9) —
    /// is no failure of the job: the next start finds the commit, runs the hook again (its outcome
    /// is the job's), and the run goes on to the products that come after. No one cancelled.
    @Test(arguments: [SIGTERM, SIGKILL])
    func aStopDuringPostRestoreRunsItAgainAtTheNextStart(signal: Int32) async throws {
        let daemon = try DaemonHarness(sites: 1, size: "64KiB")
        defer { _ = daemon.stop() }
        let dir = daemon.dir
        // The first time, the hook waits to be stopped; once `again` exists it passes.
        dir.write("hook.sh", "#!/bin/sh\necho \"$1\" >> \"$0.log\"\n[ -e \"$0.again\" ] && exit 0\nexec sleep 60\n")
        chmod(dir.file("hook.sh"), 0o755)
        dir.write("plans/main.yaml", """
            name: main
            snapshots: ../store
            target: ../out/{site}/{product}
            products:
              - name: contacts
                post_restore: ["\(dir.file("hook.sh"))", "{site}/{product}"]
              - name: jira
                after: [contacts]
            """)
        try daemon.start()
        let runId = try daemon.startRestore()
        let log = dir.file("hook.sh.log")
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, !((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("acme/contacts") {
            try await Task.sleep(for: .milliseconds(50))
        }
        dir.write("hook.sh.again", "")
        if signal == SIGKILL { daemon.kill9() } else { #expect(daemon.stop() == 0) }
        try daemon.start()
        #expect(try await daemon.waitForRun(runId, timeout: 60) == "succeeded", "\(daemon.daemonLog.suffix(3_000))")
        let jobs = try daemon.jobs(runId)
        #expect(jobs.count == 2 && jobs.allSatisfy { $0["state"] as? String == "succeeded" }, "\(jobs)")
        #expect(jobs.first { $0["product"] as? String == "contacts" }?["attempt"] as? Int == 1, "the commit is not redone: \(jobs)")
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "acme/contacts\nacme/contacts\n")
        let recovered = try ledgerRows(daemon.ledger, "select message from events where run_id = '\(runId)' and kind = 'job.recovered'")
        #expect(recovered.contains { text($0, "message").contains("acme/contacts: commit found in place after restart; not redone; post_restore run again and passed") },
                "\(recovered)")
    }

    /// `exercise --follow` returns only once the sandbox is gone, and says so.
    @Test func exerciseFollowEndsAfterCleanup() throws {
        let daemon = try DaemonHarness(sites: 2, size: "64KiB")
        defer { _ = daemon.stop() }
        try daemon.start()
        let follow = try daemon.cli(["exercise", "main", "--follow"])
        #expect(follow.status == 0, "\(follow.stdout)\(follow.stderr)")
        #expect(follow.stdout.contains("sandbox data removed"), "\(follow.stdout)")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: daemon.dir.file("sandbox"))) ?? []
        #expect(left.isEmpty, "\(left)")
    }
}
