import Foundation
import Testing

/// What a new operator meets following the README section by section, checked on the binaries.
@Suite(.serialized) struct OperatorPathTests {
    @Test func dryRunIsForReadersAndFailsWhenJobsHaveNoSnapshot() throws {
        let daemon = try DaemonHarness(sites: 2)
        chmod(daemon.dir.path, 0o755)
        try daemon.start()
        // It writes nothing, so anyone who may read may ask for one.
        let reader = try daemon.cli(["dry-run", "main"], as: "65534")
        #expect(reader.status == 0, "\(reader.stdout)\(reader.stderr)")
        #expect(reader.stdout.contains("4 job(s)"), "\(reader.stdout)")
        #expect(try daemon.runs().isEmpty)
        // Before every snapshot: every row NONE is a failure to report, not "within the objective".
        let none = try daemon.cli(["dry-run", "main", "--as-of", "2000-01-01T00:00:00Z"])
        #expect(none.status == 1, "\(none.stdout)\(none.stderr)")
        #expect(none.stdout.contains("forecast: none, no job has a snapshot to restore"))
        #expect(!none.stdout.contains("within the RTO objective"))
        #expect(none.stderr.contains("dry run: 4 of 4 job(s) have no snapshot taken at or before 2000-01-01T00:00:00Z and would fail"), "\(none.stderr)")
        #expect(try daemon.cli(["dry-run", "main", "--as-of", "2000-01-01T00:00:00Z", "--json"]).status == 1)
        #expect(daemon.stop() == 0)
    }

    @Test func exerciseOnlyFlagsAreRefusedForRestores() throws {
        let daemon = try DaemonHarness(sites: 1)
        try daemon.start()
        for flags in [["--scale", "3"], ["--seed", "7"], ["--keep"]] {
            let restore = try daemon.cli(["restore", "main"] + flags)
            #expect(restore.status == 2, "\(flags): \(restore.stdout)\(restore.stderr)")
            #expect(restore.stderr.contains("Unknown option '\(flags[0])'"), "\(restore.stderr)")
        }
        #expect(try daemon.cli(["dry-run", "main", "--keep"]).status == 2)
        #expect(try daemon.runs().isEmpty, "a refused request recorded a run")
        // The socket refuses them too, and exercises still take them.
        let raw = try daemon.raw(Array(#"{"id":1,"command":"run.start","params":{"plan":"main","mode":"restore","keep":true}}"#.utf8) + [10])
        #expect(raw.contains("invalid-params") && raw.contains("apply to exercises only"), "\(raw)")
        let exercise = try daemon.cli(["exercise", "main", "--scale", "1", "--seed", "7", "--follow"])
        #expect(exercise.status == 0, "\(exercise.stdout)\(exercise.stderr)")
        let offline = try run(Binaries.lifeboat, ["run", daemon.dir.file("plans/main.yaml"), "--ledger", daemon.dir.file("other/ledger.sqlite"), "--seed", "1"])
        #expect(offline.status == 2 && offline.stderr.contains("--seed apply to exercises only"), "\(offline.stderr)")
        #expect(daemon.stop() == 0)
    }
}
