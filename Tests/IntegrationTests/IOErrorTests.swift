import Foundation
import Testing

extension FaultSuite {
    /// System calls made to fail with `strace -e inject=` under the in-process engine
    /// (`lifeboat run --ledger`): the job fails with the system's error, the destination keeps its
    /// old data, no staging or quarantine is left, and a job is never reported succeeded over data
    /// whose sync failed.
    @Suite(.serialized) struct IOErrorTests {
        static let strace = "/usr/bin/strace"

        struct Fault: CustomTestStringConvertible, Sendable {
            var name: String
            /// strace arguments selecting and tampering the call; `{dir}` is the test's directory.
            /// strace counts calls per thread (`when=`), and the commit's steps may run on
            /// different threads: a call is singled out by the directory it works on (`-P`).
            var inject: [String]
            /// What the error says (strerror).
            var message: String
            /// Read the CLI's answer as JSON (one write at the end) rather than its lines: strace
            /// counts calls per thread, and the progress lines, written as they happen, are
            /// write(2) calls too, so a `write` fault may take one of them instead of file data.
            var json = false
            var testDescription: String { name }
        }

        static let faults: [Fault] = [
            // The syncfs that makes the staging tree durable before anything is renamed (the first
            // to fail), then the fsync after each rename of the directory it went into: the
            // exchange (the destination's parent), the move to quarantine (the ledger uses
            // fdatasync, untouched).
            Fault(name: "syncfs EIO", inject: ["-e", "trace=syncfs", "-e", "inject=syncfs:error=EIO"], message: "Input/output error"),
            Fault(name: "fsync after the exchange EIO", inject: ["-P", "{dir}/out/acme", "-e", "trace=fsync", "-e", "inject=fsync:error=EIO"],
                  message: "Input/output error"),
            Fault(name: "fsync after the quarantine move EIO",
                  inject: ["-P", "{dir}/out/acme/.lifeboat-quarantine", "-e", "trace=fsync", "-e", "inject=fsync:error=EIO"],
                  message: "Input/output error"),
            // File data goes through write(2) (SQLite uses pwrite64, untouched); an early one fails.
            Fault(name: "write ENOSPC on the 3rd call", inject: ["-e", "trace=write", "-e", "inject=write:error=ENOSPC:when=3"],
                  message: "No space left on device", json: true),
            // Into place (RENAME_NOREPLACE), the exchange, the move to quarantine.
            Fault(name: "rename into place EXDEV", inject: ["-e", "trace=rename,renameat,renameat2", "-e", "inject=rename,renameat,renameat2:error=EXDEV:when=1"],
                  message: "Invalid cross-device link"),
            Fault(name: "exchange EXDEV", inject: ["-e", "trace=renameat2", "-e", "inject=renameat2:error=EXDEV:when=2"], message: "Invalid cross-device link"),
            Fault(name: "quarantine move EXDEV", inject: ["-e", "trace=renameat2", "-e", "inject=renameat2:error=EXDEV:when=3"], message: "Invalid cross-device link"),
        ]

        @Test(.enabled(if: toolAvailable(strace), "needs strace (apt-get install strace)"), arguments: faults)
        func injectedFailureFailsTheJobAndLeavesTheDestination(fault: Fault) throws {
            let dir = TempDir("io-\(fault.name)")
            let gen = try run(Binaries.lifeboat, ["fleet", "generate", dir.file("store"), "--sites", "1", "--products", "contacts",
                                                 "--size", "256KiB", "--now", "2026-11-25T10:00:00Z"])
            #expect(gen.status == 0, "\(gen.stderr)")
            dir.write("plan.yaml", """
                name: io
                snapshots: store
                target: out/{site}/{product}
                products: [{ name: contacts }]
                retry: { attempts: 1, backoff: 1s }
                """)
            let scene = try FaultScene(dir: dir, displaced: [("acme", "contacts")])
            let ledger = dir.file("ledger.sqlite")
            let inject = fault.inject.map { $0.replacingOccurrences(of: "{dir}/", with: dir.file("")) }
            let result = try run(Self.strace, ["-f", "-qq", "-o", dir.file("strace.log")] + inject
                                 + [Binaries.lifeboat, "run", dir.file("plan.yaml"), "--ledger", ledger] + (fault.json ? ["--json"] : []))
            var output = result.stdout + result.stderr
            if fault.json {
                // The same facts the lines give: each job's state and error, as the CLI reports them.
                // strace counts writes per thread, so the injected failure may also hit the answer's
                // own write: then the CLI must say so and exit 1 (not crash), and the ledger tells.
                var jobs: [[String: Any]]
                if let answer = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] {
                    jobs = (answer["jobs"] as? [[String: Any]]) ?? []
                } else {
                    #expect(result.stderr.contains("cannot write to standard output: No space left on device"), "\(result.stderr)")
                    jobs = try ledgerRows(ledger, "select state, site, product, error from jobs")
                }
                output = jobs.map {
                    "\(($0["state"] as? String ?? "").padding(toLength: 9, withPad: " ", startingAt: 0)) \($0["site"] ?? "")/\($0["product"] ?? "")  \($0["error"] ?? "")"
                }.joined(separator: "\n")
            }
            let trace = (try? String(contentsOfFile: dir.file("strace.log"), encoding: .utf8)) ?? ""
            #expect(trace.contains("(INJECTED)"), "strace injected nothing: \(trace.suffix(2_000))")
            #expect(result.status == 1, "exit \(result.status): \(output)")
            #expect(output.contains("failed    acme/contacts"), "\(output)")
            #expect(output.contains(fault.message), "\(output)")
            #expect(!output.contains("succeeded acme/contacts"), "reported success over a failed sync: \(output)")
            let rows = try ledgerRows(ledger, "select state, error from jobs")
            #expect(rows.map { $0["state"] as? String } == ["failed"], "\(rows)")
            #expect(text(rows.first, "error").contains(fault.message))
            // Nothing changed: old data in place, no staging, nothing quarantined.
            try scene.expectDisplacedUntouched()
            let leftovers = try scene.stagingLeftovers()
            #expect(leftovers.isEmpty, "staging left: \(leftovers)")
            #expect(scene.quarantineOnDisk().isEmpty, "quarantine: \(scene.quarantineOnDisk())")
            // And a retry without the fault restores it properly.
            let again = try run(Binaries.lifeboat, ["run", dir.file("plan.yaml"), "--ledger", dir.file("ledger2.sqlite")])
            #expect(again.status == 0, "\(again.stdout)\(again.stderr)")
            try scene.expectSameAsTar("acme", "contacts")
            #expect(scene.quarantineOnDisk().count == 1)
        }

        /// Without an existing destination, a failed sync after the rename must not leave the
        /// unsynced data reported as restored.
        @Test(.enabled(if: toolAvailable(strace), "needs strace (apt-get install strace)"))
        func failedSyncAfterRenameIntoAnEmptyDestination() throws {
            let dir = TempDir()
            let gen = try run(Binaries.lifeboat, ["fleet", "generate", dir.file("store"), "--sites", "1", "--products", "contacts",
                                                 "--size", "64KiB", "--now", "2026-11-25T10:00:00Z"])
            #expect(gen.status == 0, "\(gen.stderr)")
            dir.write("plan.yaml", "name: io\nsnapshots: store\ntarget: out/{site}/{product}\nproducts: [{ name: contacts }]\nretry: { attempts: 1, backoff: 1s }\n")
            // The syncfs that makes staging durable goes through the staging directory; the fsync
            // after the rename into place is of the destination's parent, and only that one fails
            // (`-P`: only calls on that directory are traced and injected).
            try FileManager.default.createDirectory(atPath: dir.file("out/acme"), withIntermediateDirectories: true)
            let result = try run(Self.strace, ["-f", "-qq", "-o", dir.file("strace.log"), "-P", dir.file("out/acme"),
                                               "-e", "trace=fsync,renameat2", "-e", "inject=fsync:error=EIO",
                                               Binaries.lifeboat, "run", dir.file("plan.yaml"), "--ledger", dir.file("ledger.sqlite")])
            let trace = (try? String(contentsOfFile: dir.file("strace.log"), encoding: .utf8)) ?? ""
            #expect(trace.contains("\"contacts\", RENAME_NOREPLACE) = 0"), "the rename into place did not happen first: \(trace)")
            #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
            #expect(result.stdout.contains("Input/output error"), "\(result.stdout)")
            #expect(result.stdout.contains("the commit was undone"), "\(result.stdout)")
            #expect(try ledgerRows(dir.file("ledger.sqlite"), "select state from jobs").map { $0["state"] as? String } == ["failed"])
            #expect(!FileManager.default.fileExists(atPath: dir.file("out/acme/contacts")), "unsynced data left at the destination")
            #expect(try run("/usr/bin/find", [dir.file("out"), "-name", ".lifeboat-*"]).stdout.isEmpty)
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("out/acme")).isEmpty)
        }
    }
}
