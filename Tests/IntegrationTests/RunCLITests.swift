import Foundation
import LifeboatTestSupport
import Testing

/// `lifeboat run` end to end on generated fleets: data at every destination, RPO/RTO in the
/// ledger, and crash resume after `kill -9`.
@Suite(.serialized, .ownThread) struct RunCLITests {
    /// A fleet and a plan over it in a temporary directory.
    func makeScene(sites: Int = 4, size: String = "256KiB", concurrency: Int = 4, extraPlan: String = "", name: String = #function) throws -> TempDir {
        let dir = TempDir(name)
        let gen = try run(Binaries.lifeboat, ["fleet", "generate", dir.file("store"), "--sites", "\(sites)",
                                             "--products", "contacts,jira", "--size", size, "--now", "2026-11-25T10:00:00Z"])
        #expect(gen.status == 0, "\(gen.stderr)")
        dir.write("plan.yaml", """
            name: it
            snapshots: store
            target: out/{site}/{product}
            sandbox: sandbox/{run}/{site}/{product}
            products:
              - name: contacts
              - name: jira
                after: [contacts]
            concurrency: \(concurrency)
            objectives: { rto: 1h, rpo: 24h }
            \(extraPlan)
            """)
        return dir
    }



    @Test func restoreEveryDestinationWithRPOAndRTO() throws {
        let dir = try makeScene()
        // Existing data at one destination goes to quarantine, not away.
        dir.write("out/acme/jira/old.txt", "before the restore")
        let result = try run(Binaries.lifeboat, ["run", dir.file("plan.yaml"), "--ledger", dir.file("ledger.sqlite"),
                                                "--incident-at", "2026-11-25T10:00:00Z", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let jobs = try #require(json["jobs"] as? [[String: Any]])
        #expect(jobs.count == 8)
        for job in jobs {
            let site = try #require(job["site"] as? String), product = try #require(job["product"] as? String)
            #expect(job["state"] as? String == "succeeded")
            try expectSameAsTar(try newestArchive(dir, site, product), dir.file("out/\(site)/\(product)"), in: dir)
            // RPO = incident − taken-at (newest snapshot is within the day before 10:00).
            let rpo = try #require(job["rpo_seconds"] as? Double)
            #expect(rpo > 0 && rpo < 86_400)
            #expect(job["rpo_met"] as? Bool == true)
            #expect((job["rto_seconds"] as? Double ?? -1) >= 0)
        }
        // Archives without a `./` entry restore to an ordinary directory, not staging's 0700.
        let mode = try FileManager.default.attributesOfItem(atPath: dir.file("out/globex/jira"))[.posixPermissions] as? Int
        #expect(mode == 0o755)
        let quarantine = try FileManager.default.contentsOfDirectory(atPath: dir.file("out/acme/.lifeboat-quarantine"))
        #expect(quarantine.count == 1)
        #expect(try String(contentsOfFile: dir.file("out/acme/.lifeboat-quarantine/\(quarantine[0])/old.txt"), encoding: .utf8) == "before the restore")
        // The ledger is readable with sqlite3-style SQL.
        let rows = try run("/usr/bin/env", ["python3", "-c", """
            import sqlite3; db = sqlite3.connect('\(dir.file("ledger.sqlite"))')
            print(db.execute("select count(*), sum(rpo_seconds > 0), sum(rto_seconds >= 0) from jobs where state = 'succeeded'").fetchone())
            """])
        #expect(rows.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "(8, 8, 8)")
    }

    @Test func failedJobExitsOneAndNamesTheProblem() throws {
        let dir = try makeScene(sites: 2)
        // Corrupt one archive: its checksum no longer matches the sidecar.
        let archive = try newestArchive(dir, "globex", "contacts")
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: archive))
        try handle.seek(toOffset: 100)
        try handle.write(contentsOf: Data([0xFF, 0x00, 0xFF]))
        try handle.close()
        let result = try run(Binaries.lifeboat, ["run", dir.file("plan.yaml"), "--ledger", dir.file("ledger.sqlite")])
        #expect(result.status == 1)
        // The job is named once, then the reason (the error's own copy of the name is not repeated).
        #expect(result.stdout.contains("failed    globex/contacts  \(archive)"))
        #expect(result.stdout.contains("skipped   globex/jira  skipped: dependency contacts of globex failed"))
        #expect(!FileManager.default.fileExists(atPath: dir.file("out/globex/contacts")))
        #expect(FileManager.default.fileExists(atPath: dir.file("out/acme/jira/manifest.json")))
    }

    @Test func dryRunWritesNothing() throws {
        let dir = try makeScene(sites: 3)
        let result = try run(Binaries.lifeboat, ["run", dir.file("plan.yaml"), "--mode", "dry-run", "--ledger", dir.file("ledger.sqlite")])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("6 job(s)"))
        #expect(!FileManager.default.fileExists(atPath: dir.file("out")))
        // Nor a ledger, a lock or a state directory (as root, a first try would have made
        // /var/lib/lifeboat/state).
        #expect(!FileManager.default.fileExists(atPath: dir.file("ledger.sqlite")))
        let state = try run(Binaries.lifeboat, ["run", dir.file("plan.yaml"), "--mode", "dry-run", "--state-dir", dir.file("state")])
        #expect(state.status == 0, "\(state.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("state")))
    }

    @Test func killedMidRunResumesWithNothingCommittedTwice() throws {
        // Many small jobs, one at a time, so a kill lands mid-run.
        let dir = try makeScene(sites: 12, size: "2MiB", concurrency: 1)
        for site in ["acme", "globex"] { dir.write("out/\(site)/contacts/precious.txt", "old \(site)") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Binaries.lifeboat)
        process.arguments = ["run", dir.file("plan.yaml"), "--ledger", dir.file("ledger.sqlite")]
        _ = FileManager.default.createFile(atPath: dir.file("first-run.log"), contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: dir.file("first-run.log")))
        process.standardOutput = log
        process.standardError = log
        try process.run()
        // Wait until some jobs committed, then kill -9.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let done = (try? FileManager.default.contentsOfDirectory(atPath: dir.file("out")))?.count ?? 0
            if done >= 4 { break }
            usleep(20_000)
        }
        #expect(process.isRunning, "the run ended before it could be killed: \((try? String(contentsOfFile: dir.file("first-run.log"), encoding: .utf8)) ?? "")")
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal)

        let resumed = try run(Binaries.lifeboat, ["run", dir.file("plan.yaml"), "--ledger", dir.file("ledger.sqlite"), "--resume"])
        #expect(resumed.status == 0, "\(resumed.stdout)\n\(resumed.stderr)")
        // Every destination is right.
        let store = try FileManager.default.contentsOfDirectory(atPath: dir.file("store")).sorted()
        for site in store {
            for product in ["contacts", "jira"] {
                try expectSameAsTar(try newestArchive(dir, site, product), dir.file("out/\(site)/\(product)"), in: dir)
            }
        }
        // Nothing lost: displaced data is in quarantine, once.
        for site in ["acme", "globex"] {
            let q = try FileManager.default.contentsOfDirectory(atPath: dir.file("out/\(site)/.lifeboat-quarantine"))
            #expect(q.count == 1, "\(site): \(q)")
            #expect(try String(contentsOfFile: dir.file("out/\(site)/.lifeboat-quarantine/\(q[0])/precious.txt"), encoding: .utf8) == "old \(site)")
        }
        // Nothing committed twice: no other site has a quarantine (a second commit would have
        // displaced the first restore), and no staging is left anywhere.
        for site in store where !["acme", "globex"].contains(site) {
            #expect(!FileManager.default.fileExists(atPath: dir.file("out/\(site)/.lifeboat-quarantine")), "\(site) was committed twice")
        }
        let leftovers = try run("/usr/bin/find", [dir.file("out"), "-name", ".lifeboat-staging"])
        #expect(leftovers.stdout.isEmpty)
    }
}
