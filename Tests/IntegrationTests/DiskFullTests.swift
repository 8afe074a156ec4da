import Foundation
import Testing

extension FaultSuite {
    /// A restore that runs out of space (a 2 MiB tmpfs) or into a file-size limit (`ulimit -f`) fails
    /// with an error that says so and names the job and path; the destination keeps its old data, the
    /// daemon stays healthy, and the ledger records the failure.
    @Suite(.serialized) struct DiskFullTests {
        @Test(.enabled(if: canMountTmpfs, "needs root and `mount -t tmpfs` (a size-limited filesystem)"))
        func noSpaceFailsTheJobAndLeavesTheDestinationAndDaemonHealthy() async throws {
            let daemon = try DaemonHarness(sites: 2, size: "3MiB")
            // acme's products live on a 2 MiB filesystem; its 3 MiB archives cannot fit.
            let mount = try TmpfsMount(at: daemon.dir.file("out/acme"), size: "2m")
            defer { mount.unmount() }
            do {
                let scene = try FaultScene(dir: daemon.dir, displaced: [("acme", "contacts")])
                try daemon.start()
                let runId = try daemon.startRestore(["--sites", "acme"])
                #expect(try await daemon.waitForRun(runId, timeout: 60) == "failed", "\(daemon.daemonLog.suffix(3_000))")
                let jobs = try daemon.jobs(runId)
                let contacts = try #require(jobs.first { $0["product"] as? String == "contacts" })
                let error = contacts["error"] as? String ?? ""
                #expect(contacts["state"] as? String == "failed")
                #expect(error.contains("No space left on device") && error.contains("free space there, then run the job again: lifeboat retry \(runId) "), "\(error)")
                #expect(error.contains("acme/contacts"), "the error names the job: \(error)")
                #expect(error.contains(daemon.dir.file("out/acme")), "the error names where it was writing: \(error)")
                #expect(jobs.first { $0["product"] as? String == "jira" }?["state"] as? String == "skipped")
                // The ledger has the failure, readable with SQL.
                let rows = try ledgerRows(daemon.ledger, "select state, error from jobs where run_id = '\(runId)' and product = 'contacts'")
                #expect(rows.first?["state"] as? String == "failed")
                #expect(text(rows.first, "error").contains("No space left on device"))
                // Nothing changed where the restore was going: old data intact, no staging, no quarantine.
                try scene.expectDisplacedUntouched()
                #expect(try scene.stagingLeftovers().isEmpty)
                #expect(scene.quarantineOnDisk().isEmpty)
                #expect(!FileManager.default.fileExists(atPath: scene.destination("acme", "jira")))
                // The space a failed restore used is given back.
                let df = try run("/bin/df", ["--output=used", "-B1", daemon.dir.file("out/acme")])
                let used = Int(df.stdout.split(separator: "\n").last?.trimmingCharacters(in: .whitespaces) ?? "") ?? .max
                #expect(used < 512 << 10, "the tmpfs still holds \(used) bytes: \(df.stdout)")
                // The daemon is healthy: it answers and restores elsewhere.
                #expect(try daemon.cli(["status"]).status == 0)
                let other = try daemon.startRestore(["--sites", "globex"])
                #expect(try await daemon.waitForRun(other, timeout: 60) == "succeeded", "\(daemon.daemonLog.suffix(3_000))")
                for product in ["contacts", "jira"] { try scene.expectSameAsTar("globex", product) }
                #expect(daemon.stop() == 0)
            }
        }

        /// A filesystem out of inodes refuses the directories an archive implies: the error says
        /// so (not that the directory was missing after), and nothing is left behind.
        @Test(.enabled(if: canMountTmpfs, "needs root and `mount -t tmpfs` (a size-limited filesystem)"))
        func runningOutOfInodesNamesTheDirectoryItCouldNotMake() throws {
            let dir = TempDir()
            let archive = dir.file("dirs.tar.gz")
            let made = try run("/usr/bin/env", ["python3", "-c", """
                import tarfile, io
                with tarfile.open('\(archive)', 'w:gz') as t:
                    for i in range(200):
                        info = tarfile.TarInfo(f'd{i}/f'); info.size = 1
                        t.addfile(info, io.BytesIO(b'x'))
                """])
            try #require(made.status == 0, "\(made.stderr)")
            let mount = try TmpfsMount(at: dir.file("m"), size: "4m", inodes: 64)
            defer { mount.unmount() }
            let result = try run(Binaries.lifeboat, ["snapshot", "extract", archive, "--into", dir.file("m/out"), "--checksum", "off"])
            #expect(result.status != 0)
            #expect(result.stderr.contains("(mkdirat)") && result.stderr.contains("No space left on device"), "\(result.stderr)")
            #expect(result.stderr.contains("entry \"d"), "the error names the entry: \(result.stderr)")
            let left = (try? FileManager.default.contentsOfDirectory(atPath: dir.file("m"))) ?? []
            #expect(left.filter { $0 != ".lifeboat-staging" }.isEmpty, "left behind: \(left)")
            #expect((try? FileManager.default.contentsOfDirectory(atPath: dir.file("m/.lifeboat-staging"))) ?? [] == [], "staging left")
        }

        /// The state directory's filesystem fills up while jobs run: the ledger cannot take their
        /// records, so every job waits for its next one (none is given up: the record must never
        /// fall behind what was done on disk), `status` says why, and once space is freed the run
        /// goes on and ends with every job restored once and recorded right.
        @Test(.enabled(if: canMountTmpfs, "needs root and `mount -t tmpfs` (a size-limited filesystem)"))
        func aFullLedgerFilesystemHoldsTheJobsUntilSpaceIsFreed() async throws {
            let daemon = try DaemonHarness(sites: 3, size: "64KiB", planExtra: "verify: { command: [\"/bin/sleep\", \"1\"] }")
            let mount = try TmpfsMount(at: daemon.dir.file("state"), size: "16m")
            defer { mount.unmount() }
            let scene = try FaultScene(dir: daemon.dir, displaced: [("acme", "contacts")])
            try daemon.start()
            let runId = try daemon.startRestore()
            // Filled to the last block while the first jobs verify.
            let filler = daemon.dir.file("state/filler")
            _ = try run("/bin/sh", ["-c", "dd if=/dev/zero of='\(filler)' bs=4k 2>/dev/null; true"])
            var status = ""
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline, !status.contains("LEDGER WRITES WAITING") {
                try await Task.sleep(for: .milliseconds(200))
                status = try daemon.cli(["status"]).stdout
            }
            #expect(status.contains("LEDGER WRITES WAITING for ") && status.contains("the filesystem of \(daemon.dir.file("state")) is full: free space there"),
                    "\(status)\(daemon.daemonLog.suffix(2_000))")
            #expect(daemon.daemonLog.contains("ledger writes wait: the filesystem of"))
            try FileManager.default.removeItem(atPath: filler)
            #expect(try await daemon.waitForRun(runId, timeout: 90) == "succeeded", "\(daemon.daemonLog.suffix(3_000))")
            let jobs = try daemon.jobs(runId)
            #expect(jobs.count == 6 && jobs.allSatisfy { $0["state"] as? String == "succeeded" && $0["attempt"] as? Int == 1 }, "\(jobs)")
            for site in ["acme", "globex", "initech"] {
                for product in ["contacts", "jira"] { try scene.expectSameAsTar(site, product) }
            }
            #expect(try scene.stagingLeftovers().isEmpty)
            #expect(daemon.daemonLog.contains("the ledger takes writes again"))
            #expect(!(try daemon.cli(["status"]).stdout.contains("LEDGER")))
            #expect(daemon.stop() == 0)
        }

        /// `ulimit -f` (RLIMIT_FSIZE): writes past the limit fail with EFBIG. The in-process engine
        /// must report that as a failed job, never die of SIGXFSZ.
        @Test(arguments: [true, false])
        func fileSizeLimitFailsTheJobCleanly(sigxfszIgnoredByCaller: Bool) async throws {
            let dir = TempDir("fsize-\(sigxfszIgnoredByCaller)")
            // One snapshot holding a 3 MiB file, under a 2 MiB limit (the ledger stays far below it).
            let source = dir.file("src")
            try FileManager.default.createDirectory(atPath: source + "/data", withIntermediateDirectories: true)
            try Data((0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 >> 3) }).write(to: URL(fileURLWithPath: source + "/data/big.bin"))
            dir.write("src/small.txt", "small")
            try FileManager.default.createDirectory(atPath: dir.file("store/acme/contacts"), withIntermediateDirectories: true)
            #expect(try run("/bin/tar", ["-czf", dir.file("store/acme/contacts/20261125T090000Z.tar.gz"), "-C", source, "."]).status == 0)
            dir.write("plan.yaml", """
                name: fsize
                snapshots: store
                target: out/{site}/{product}
                products: [{ name: contacts }]
                verify: { checksum: if-present }
                retry: { attempts: 1, backoff: 1s }
                """)
            let scene = try FaultScene(dir: dir, displaced: [("acme", "contacts")])
            let ledger = dir.file("ledger.sqlite")
            let trap = sigxfszIgnoredByCaller ? "trap '' XFSZ; " : ""
            let result = try run("/bin/bash", ["-c", "\(trap)ulimit -f 2048; exec \"$0\" run \"$1\" --ledger \"$2\"",
                                               Binaries.lifeboat, dir.file("plan.yaml"), ledger])
            #expect(result.status == 1, "exit \(result.status): \(result.stdout)\(result.stderr)")
            let output = result.stdout + result.stderr
            #expect(output.contains("File too large"), "\(output)")
            #expect(output.contains("acme/contacts"), "\(output)")
            try scene.expectDisplacedUntouched()
            #expect(try scene.stagingLeftovers().isEmpty)
            #expect(scene.quarantineOnDisk().isEmpty)
            let rows = try ledgerRows(ledger, "select state, error from jobs where product = 'contacts' and state != 'pending'")
            #expect(rows.contains { $0["state"] as? String == "failed" && text($0, "error").contains("File too large") }, "\(rows)")
        }
    }
}
