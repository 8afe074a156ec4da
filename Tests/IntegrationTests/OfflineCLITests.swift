import Foundation
import LifeboatTestSupport
import Testing

/// The offline commands of the real `lifeboat` binary, checked the way an operator would.
@Suite(.ownThread) struct OfflineCLITests {
    @Test func examplePlansPass() throws {
        let plans = try FileManager.default.contentsOfDirectory(atPath: Binaries.packageRoot + "/plans")
            .filter { $0.hasSuffix(".yaml") }.map { Binaries.packageRoot + "/plans/" + $0 }
        #expect(plans.count >= 2)
        let result = try run(Binaries.lifeboat, ["plan", "check"] + plans)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.components(separatedBy: ": ok").count - 1 == plans.count)
    }

    @Test func brokenPlanExitsTwoWithPosition() throws {
        let dir = TempDir()
        let plan = dir.write("broken.yaml", """
            snapshots: store
            target: /srv/{site}/{product}
            products:
              - name: contacts
              - name: jira
                after: [contacts, jria]
            concurrency: lots
            """)
        let result = try run(Binaries.lifeboat, ["plan", "check", plan])
        #expect(result.status == 2)
        #expect(result.stderr.contains("\(plan):6:23: products[1].after names unknown product \"jria\" (did you mean \"jira\"?)"))
        #expect(result.stderr.contains("\(plan):7:14: concurrency must be an integer, found \"lots\""))
    }

    /// A store that is not there (an unmounted volume, a typo) passes, since it may be mounted by
    /// the time a run starts, but is named as a warning where the plan says it.
    @Test func aStoreThatIsNotThereIsWarnedAbout() throws {
        let dir = TempDir()
        let missing = dir.write("missing.yaml", "target: /srv/{site}/{product}\nsnapshots: \(dir.file("no-store"))\nproducts: [{name: a}]\n")
        let result = try run(Binaries.lifeboat, ["plan", "check", missing])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("\(missing):2:1: warning: snapshots \(dir.file("no-store")) does not exist here"), "\(result.stderr)")
        _ = dir.write("no-store", "a file")
        #expect(try run(Binaries.lifeboat, ["plan", "check", missing]).stderr.contains("is not a directory here"))
        try FileManager.default.removeItem(atPath: dir.file("no-store"))
        try FileManager.default.createDirectory(atPath: dir.file("no-store"), withIntermediateDirectories: false)
        let present = try run(Binaries.lifeboat, ["plan", "check", missing])
        #expect(present.status == 0 && !present.stderr.contains("warning"), "\(present.stderr)")
    }

    /// A schedule is shown with its next fires, so that a typo in a cron line (a month for a day)
    /// is seen before the daemon arms it.
    @Test func aScheduleIsShownWithItsNextFires() throws {
        let dir = TempDir()
        try FileManager.default.createDirectory(atPath: dir.file("store"), withIntermediateDirectories: false)
        let plan = dir.write("yearly.yaml", """
            target: /srv/{site}/{product}
            sandbox: /var/tmp/sandbox/{run}/{site}/{product}
            snapshots: \(dir.file("store"))
            products: [{name: a}]
            schedule: {exercise: "@yearly", scale: {start: 5, factor: 1.5}}

            """)
        var utc = Calendar(identifier: .gregorian)
        utc.timeZone = TimeZone(identifier: "UTC")!
        let year = utc.component(.year, from: Date())
        let newYears = (1...3).map { "\(year + $0)-01-01T00:00:00Z" }
        let human = try run(Binaries.lifeboat, ["plan", "check", plan])
        #expect(human.status == 0, "\(human.stderr)")
        #expect(human.stdout.contains("  schedule (UTC): exercise \"@yearly\" next \(newYears.joined(separator: ", ")); 5 site(s) first, × 1.5 each time"),
                "\(human.stdout)")
        let json = try run(Binaries.lifeboat, ["plan", "check", plan, "--json"])
        let results = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        #expect(results.first?["next_fires"] as? [String] == newYears, "\(json.stdout)")
        // Without a schedule, there is nothing to show.
        let unscheduled = dir.write("plain.yaml", "target: /srv/{site}/{product}\nsnapshots: \(dir.file("store"))\nproducts: [{name: a}]\n")
        let plain = try run(Binaries.lifeboat, ["plan", "check", unscheduled, "--json"])
        #expect(plain.status == 0 && !plain.stdout.contains("next_fires"), "\(plain.stdout)")
        #expect(try !run(Binaries.lifeboat, ["plan", "check", unscheduled]).stdout.contains("schedule"))
        // A file named twice is one plan (a probe found it refused as two plans of one name).
        let twice = try run(Binaries.lifeboat, ["plan", "check", unscheduled, dir.path + "/./plain.yaml"])
        #expect(twice.status == 0 && twice.stdout.components(separatedBy: ": ok").count == 2, "\(twice.stdout)\(twice.stderr)")
        // Waves that leave sites over have a last wave for them, shown and warned about.
        let waves = dir.write("waves.yaml", "target: /srv/{site}/{product}\nsnapshots: \(dir.file("store"))\nproducts: [{name: a}]\n"
                                            + "waves: [{sites: 1%}, {sites: 10%}]\n")
        let three = try run(Binaries.lifeboat, ["plan", "check", waves])
        #expect(three.status == 0 && three.stdout.contains("3 wave(s)"), "\(three.stdout)")
        #expect(three.stderr.contains("\(waves):4:1: warning: waves do not end with { sites: rest }"), "\(three.stderr)")
    }

    /// `--into` relative to the working directory, a one-character name too (Foundation's path
    /// functions trapped on it).
    @Test func extractIntoARelativeName() throws {
        let dir = TempDir()
        let gen = try run(Binaries.lifeboat, ["fleet", "generate", dir.file("store"), "--sites", "1", "--products", "jira",
                                             "--size", "16KiB", "--now", "2026-11-25T10:00:00Z"])
        #expect(gen.status == 0, "\(gen.stderr)")
        let archive = try #require(try FileManager.default.subpathsOfDirectory(atPath: dir.file("store")).first { $0.hasSuffix(".tar.gz") })
        for name in ["o", "./p", "q/"] {
            let result = try run(Binaries.lifeboat, ["snapshot", "extract", dir.file("store/" + archive), "--into", name], cwd: dir.path)
            #expect(result.status == 0, "\(name): \(result.stderr)")
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: dir.file(name))) ?? []
            #expect(!entries.isEmpty, "\(name) holds nothing")
        }
        let missingParent = try run(Binaries.lifeboat, ["snapshot", "extract", dir.file("store/" + archive), "--into", "no/such/x"], cwd: dir.path)
        #expect(missingParent.status == 2 && missingParent.stderr.contains("parent directory"), "\(missingParent.stderr)")
    }

    /// An extract stopped by Ctrl-C or a TERM removes its partial extraction; one killed outright
    /// leaves it, and the next extract beside it names it (with its size) for the operator.
    @Test func anInterruptedExtractLeavesNothingAndAKilledOneIsNamed() async throws {
        let dir = TempDir()
        // 30,000 files: long enough to be interrupted mid-way.
        let archive = dir.file("many.tar.gz")
        let made = try run("/usr/bin/env", ["python3", "-c", """
            import tarfile, io
            with tarfile.open('\(archive)', 'w:gz', compresslevel=1) as t:
                for i in range(30000):
                    info = tarfile.TarInfo(f'd{i // 1000}/f{i}')
                    info.size = 3
                    t.addfile(info, io.BytesIO(b'abc'))
            """])
        try #require(made.status == 0, "\(made.stderr)")
        let area = dir.file(".lifeboat-staging")
        /// An extract into `name`, once it has staged a few files (beside `already` staging dirs).
        func started(into name: String, already: Int = 0) async throws -> (Process, Pipe) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Binaries.lifeboat)
            process.arguments = ["snapshot", "extract", archive, "--into", dir.file(name), "--checksum", "off"]
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline, process.isRunning {
                let staged = ((try? FileManager.default.contentsOfDirectory(atPath: area)) ?? []).filter { $0.hasPrefix("extract.") }
                if staged.count > already, staged.allSatisfy({ ((try? FileManager.default.contentsOfDirectory(atPath: area + "/" + $0)) ?? []).count > 1 }) { break }
                try await Task.sleep(for: .milliseconds(5))
            }
            return (process, errors)
        }
        func extract(into name: String, stoppedWith signal: Int32) async throws -> (Int32, String) {
            let (process, errors) = try await started(into: name)
            kill(process.processIdentifier, signal)
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
        }
        let (status, stderr) = try await extract(into: "interrupted", stoppedWith: SIGINT)
        #expect(status == 1 && stderr.contains("interrupted: nothing was extracted into \(dir.file("interrupted"))"), "\(status) \(stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("interrupted")))
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: area)) ?? []).isEmpty)

        _ = try await extract(into: "killed", stoppedWith: SIGKILL)
        // While another extract works beside it, what is staged there may be live work: no note
        // invites anyone to remove it.
        let (live, _) = try await started(into: "live", already: 1)
        try #require(live.isRunning, "the live extract ended before the one beside it started")
        let beside = try run(Binaries.lifeboat, ["snapshot", "extract", archive, "--into", dir.file("beside"), "--checksum", "off"])
        #expect(beside.status == 0 && !beside.stderr.contains("partial extraction"), "\(beside.stderr)")
        kill(live.processIdentifier, SIGINT)
        live.waitUntilExit()
        let next = try run(Binaries.lifeboat, ["snapshot", "extract", archive, "--into", dir.file("whole"), "--checksum", "off"])
        #expect(next.status == 0, "\(next.stderr)")
        #expect(next.stderr.contains("note: \(area) holds 1 partial extraction(s) of ") && next.stderr.contains("rm -rf \(area)/extract.*"), "\(next.stderr)")
    }

    /// As a user other than root, a rejected archive's staging is removed even when its
    /// directories' final modes (000, 0311) shut that user out of listing them: the failure
    /// (trailing garbage) is found after the modes were set (found by a hostile-archive review).
    @Test(.enabled(if: geteuid() == 0, "needs root, to run the extraction as another user"))
    func aRejectedArchiveLeavesNoStagingForAnUnprivilegedUser() throws {
        let dir = TempDir()
        chmod(dir.path, 0o755)
        let tree = dir.file("tree")
        for sub in ["locked/inner", "wx/inner", "open"] {
            try FileManager.default.createDirectory(atPath: tree + "/" + sub, withIntermediateDirectories: true)
            _ = dir.write("tree/\(sub)/file", "data")
        }
        let archive = dir.file("a.tar.gz")
        #expect(try run("/bin/sh", ["-c", "chmod 000 locked/inner locked && chmod 311 wx && tar -czf \"$0\" locked wx open && printf junk >> \"$0\"", archive],
                        cwd: tree).status == 0)
        chmod(archive, 0o644)
        let work = dir.file("work")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: false)
        #expect(chown(work, 65534, 65534) == 0)
        let result = try run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", Binaries.lifeboat,
                                                  "snapshot", "extract", archive, "--into", work + "/out", "--checksum", "off"])
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains("trailing garbage"), "\(result.stderr)")
        let left = (FileManager.default.enumerator(atPath: work)?.allObjects as? [String]) ?? []
        #expect(left.isEmpty, "left behind in \(work): \(left)")
    }

    /// An archive of more directories than wait for their final modes (65,536: then they are
    /// settled early) restores like a small one for a user without the privilege to override
    /// modes: directories entered again after they were settled — read-only ones, ones the
    /// owner cannot open, ones getting a new subdirectory or a link at the end — get their
    /// entries, modes and times (found by a hostile review of early settling).
    @Test(.enabled(if: geteuid() == 0, "needs root, to run the extraction as another user"))
    func directoriesSettledEarlyTakeLaterEntriesForAnUnprivilegedUser() throws {
        let dir = TempDir()
        chmod(dir.path, 0o755)
        let archive = dir.file("dirs.tar.gz")
        let made = try run("/usr/bin/env", ["python3", "-c", """
            import tarfile, io
            def entry(t, name, mode, mtime, data=None, link=None, kind=tarfile.REGTYPE):
                info = tarfile.TarInfo(name); info.mode = mode; info.mtime = mtime
                if link is not None: info.type = kind; info.linkname = link
                if data is not None: info.size = len(data)
                if name.endswith('/'): info.type = tarfile.DIRTYPE
                t.addfile(info, io.BytesIO(data) if data is not None else None)
            with tarfile.open('\(archive)', 'w:gz', compresslevel=1) as t:
                entry(t, 'ro/', 0o555, 1_000_000_001)
                entry(t, 'ro/f1', 0o444, 1_000_000_002, b'one')
                entry(t, 'nor/', 0o300, 1_000_000_003)
                entry(t, 'nox/', 0o600, 1_000_000_004)
                for i in range(70_000):
                    entry(t, f'many/d{i // 1000}/e{i}/', 0o755, 1_000_000_100)
                entry(t, 'ro/f2', 0o444, 1_000_000_005, b'two')
                entry(t, 'ro/new/f3', 0o444, 1_000_000_006, b'three')
                entry(t, 'nor/f', 0o444, 1_000_000_007, b'four')
                entry(t, 'nox/sub/f', 0o444, 1_000_000_008, b'five')
                entry(t, 'ro/link', 0o777, 1_000_000_009, link='f1', kind=tarfile.SYMTYPE)
                entry(t, 'nox/hard', 0o444, 1_000_000_002, link='ro/f1', kind=tarfile.LNKTYPE)
                entry(t, 'ro/hard', 0o444, 1_000_000_008, link='nox/sub/f', kind=tarfile.LNKTYPE)
                entry(t, 'many/d0/e0/late', 0o444, 1_000_000_010, b'late')
            """])
        try #require(made.status == 0, "\(made.stderr)")
        chmod(archive, 0o644)
        // On tmpfs where there is one: 70,000 directories on a shared disk take a while.
        let scratch = FileManager.default.isWritableFile(atPath: "/dev/shm") ? TempDir(in: "/dev/shm") : dir
        let work = scratch.file("work")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: false)
        #expect(chown(work, 65534, 65534) == 0)
        let out = work + "/out"
        let result = try run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", Binaries.lifeboat,
                                                  "snapshot", "extract", archive, "--into", out, "--checksum", "off"])
        #expect(result.status == 0, "\(result.stderr)")
        func mode(_ path: String) -> String {
            var st = stat()
            guard lstat(out + "/" + path, &st) == 0 else { return "missing" }
            return String(st.st_mode & 0o7777, radix: 8) + " @\(st.st_mtim.tv_sec)"
        }
        #expect(mode("ro") == "555 @1000000001")
        #expect(mode("nor") == "300 @1000000003")
        #expect(mode("nox") == "600 @1000000004")
        #expect(mode("ro/new").hasPrefix("755 "))
        #expect(mode("many/d0/e0") == "755 @1000000100" && mode("many/d69/e69999") == "755 @1000000100")
        for (path, content) in [("ro/f2", "two"), ("ro/new/f3", "three"), ("nor/f", "four"), ("nox/sub/f", "five"),
                                ("ro/link", "one"), ("nox/hard", "one"), ("ro/hard", "five"), ("many/d0/e0/late", "late")] {
            #expect((try? String(contentsOfFile: out + "/" + path, encoding: .utf8)) == content, "\(path)")
        }
    }

    @Test func planCheckJSON() throws {
        let dir = TempDir()
        let plan = dir.write("p.yaml", "snapshots: s\ntarget: /srv/{site}/{product}\nproducts: [{name: a}]\nbogus: 1\n")
        let result = try run(Binaries.lifeboat, ["plan", "check", "--json", plan])
        #expect(result.status == 2)
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]]
        let errors = json?.first?["errors"] as? [[String: Any]]
        #expect(errors?.first?["line"] as? Int == 4)
        #expect(errors?.first?["column"] as? Int == 1)
    }

    /// Two files with one plan name are both refused for it, and the rules across plans are
    /// checked among the others: an error about one file's text is never pinned on the other.
    @Test func planCheckOfTwoFilesWithOneName() throws {
        let dir = TempDir()
        let first = dir.write("a1.yaml", "name: a\nsnapshots: /lb/s1\ntarget: /lb/t1/{site}/{product}\nproducts: [{name: p}]\n")
        let second = dir.write("a2.yaml", "name: a\nsnapshots: /lb/s2\ntarget: /lb/d/{site}/{product}\nproducts: [{name: p}]\n")
        let other = dir.write("d.yaml", "name: d\nsnapshots: /lb/d\ntarget: /lb/t3/{site}/{product}\nproducts: [{name: p}]\n")
        let result = try run(Binaries.lifeboat, ["plan", "check", "--json", first, second, other])
        #expect(result.status == 2)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
        let messages = json.map { (($0["errors"] as? [[String: Any]]) ?? []).compactMap { $0["message"] as? String } }
        #expect(messages.count == 3)
        #expect(messages[0].count == 1 && messages[0].first?.contains("plan name \"a\" is also used by") == true, "\(messages[0])")
        #expect(messages[1].count == 1 && messages[1].first?.contains("plan name \"a\" is also used by") == true, "\(messages[1])")
        #expect(messages[2].isEmpty, "\(messages[2])")
    }

    @Test func usageErrorsExitTwo() throws {
        #expect(try run(Binaries.lifeboat, ["no-such-command"]).status == 2)
        #expect(try run(Binaries.lifeboat, ["fleet", "generate", "/tmp/x", "--sites", "0", "--products", "a"]).status == 2)
        #expect(try run(Binaries.lifeboat, ["snapshot", "list", "/nonexistent"]).status == 2)
    }

    @Test func fleetGenerateThenSnapshotList() throws {
        let dir = TempDir()
        let gen = try run(Binaries.lifeboat, ["fleet", "generate", dir.file("store"), "--sites", "4", "--products", "contacts,jira",
                                             "--size", "64KiB", "--snapshots", "3", "--now", "2026-11-25T10:00:00Z"])
        #expect(gen.status == 0, "\(gen.stderr)")
        #expect(gen.stdout.contains("wrote 24 archive(s) for 4 site(s) × 2 product(s)"))
        let list = try run(Binaries.lifeboat, ["snapshot", "list", dir.file("store"), "--as-of", "2026-11-25T10:00:00Z", "--json"])
        #expect(list.status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [String: Any])
        let rows = try #require(json["rows"] as? [[String: Any]])
        #expect(rows.count == 8)
        #expect(rows.allSatisfy { ($0["snapshots"] as? Int) == 3 && $0["newest"] != nil })
        // Far in the past nothing qualifies.
        let old = try run(Binaries.lifeboat, ["snapshot", "list", dir.file("store"), "--as-of", "2020-01-01T00:00:00Z"])
        #expect(old.stdout.contains("none at or before as-of"))
    }
}
