import Foundation
import Synchronization
import Testing
@testable import LifeboatKit

/// Staging, durability and the atomic commit with quarantine.
@Suite struct CommitTests {
    static func archive(_ content: String) -> TarBuilder {
        var tar = TarBuilder()
        tar.directory("docs", mode: 0o555)
        tar.file("docs/readme", content)
        tar.file("top", "new top")
        tar.end()
        return tar
    }

    static let t0 = Date(timeIntervalSince1970: 1_764_000_000)

    /// A one-product plan, a restore run of it and its job for `scene`'s destination, as the
    /// engine would hand them to the executor.
    static func job(in scene: RestoreScene, plan more: String = "") throws -> (Plan, RunRecord, JobRecord) {
        let plan = try PlanLoader.load(text: """
            name: p
            snapshots: \(scene.dir.sub("store"))
            target: \(scene.dir.sub("t"))/{site}/{product}
            products: [{ name: jira }]
            \(more)
            """, file: "p.yaml", baseDirectory: scene.dir.path)
        let run = RunRecord(id: "20261125-101132-0001", plan: "p", planPath: nil, mode: .restore, declaredAt: t0, incidentAt: t0, asOf: t0,
                            createdAt: t0, startedBy: "test", rtoObjectiveSeconds: nil, rpoObjectiveSeconds: nil, totalWaves: 1)
        let job = JobRecord(runId: run.id, site: "dest", product: "jira", wave: 0, priority: 0, productOrder: 0, destination: scene.destination)
        return (plan, run, job)
    }

    @Test func commitIntoANewDestination() async throws {
        let scene = try RestoreScene()
        try scene.write(Self.archive("v2"))
        var steps: [CommitStep] = []
        var result: CommitResult?
        let archive = scene.archive
        try await withStagingDirectory(for: scene.destination + "/deeper", name: "job") { staging in
            _ = try extractArchive(at: archive, into: staging.path)
            result = try commitStaging(staging.makeDurable(), quarantineName: "q") { steps.append($0) }
        }
        #expect(steps == [.stagingDurable, .swapped])
        #expect(result?.quarantinePath == nil)
        #expect(result?.identity == FileIdentity(path: scene.destination + "/deeper"))
        #expect(readText(scene.destination + "/deeper/docs/readme") == "v2")
        // The staging area is gone once empty.
        #expect(!FileManager.default.fileExists(atPath: scene.destination + "/" + StagingDirectory.areaName))
    }

    /// A staging name that cannot be recorded (the job's claim lost, its run cancelled) stages
    /// nothing and leaves no empty staging area behind; one that another job stages in stays.
    @Test func aRefusedReservationLeavesNoStagingArea() async throws {
        struct Refused: Error {}
        let scene = try RestoreScene()
        let area = scene.destination + "/" + StagingDirectory.areaName
        var reserved: [String] = []
        await #expect(throws: Refused.self) {
            try await withStagingDirectory(for: scene.destination + "/jira", name: "job", reserve: { reserved.append($0); throw Refused() }) { _ in
                Issue.record("nothing is staged once the reservation is refused")
            }
        }
        #expect(reserved.count == 1 && reserved[0].hasPrefix(area + "/job."))
        #expect(!FileManager.default.fileExists(atPath: area))
        try await withStagingDirectory(for: scene.destination + "/contacts", name: "other") { other in
            await #expect(throws: Refused.self) {
                try await withStagingDirectory(for: scene.destination + "/jira", name: "job", reserve: { _ in throw Refused() }) { _ in }
            }
            #expect(FileManager.default.fileExists(atPath: other.path))
        }
        #expect(!FileManager.default.fileExists(atPath: area))
    }

    /// A job killed after its commit renamed the staging directory into place (or after its
    /// staging name was recorded, before the directory was made) leaves an empty staging area:
    /// recovery, which finds the commit (or nothing) there, removes it. No later job of the same
    /// parent may come to do so (a host killed on a site's last product, in the three-host test).
    @Test func recoveryRemovesTheEmptyStagingAreaACrashLeft() async throws {
        struct Observer: JobObserver {
            func reserved(stagingPath: String) async throws {}
            func staged(identity: String) async throws {}
            func verifying() async throws {}
            func progress(archiveBytesRead: Int64) {}
            func willCommit() async throws {}
            func mayCommit() throws {}
            func proceedingThoughHeld(_ destination: String) {}
            func didQuarantine(path: String, originalPath: String, identity: FileIdentity?) async throws {}
        }
        let scene = try RestoreScene()
        try scene.write(Self.archive("v2"))
        let area = scene.restoreParent + "/" + StagingDirectory.areaName
        var (plan, run, job) = try Self.job(in: scene)
        job.state = .committing

        // Killed right after the commit's rename: the staging directory is the destination now.
        let staging = try await StagingDirectory.create(for: scene.destination, name: "job")
        _ = try extractArchive(at: scene.archive, into: staging.path)
        let committed = try commitStaging(staging.makeDurable(), quarantineName: "q")
        // As the kernel does for a killed process: the hold is let go, its file left behind.
        staging.hold.release(in: nil)
        #expect(FileManager.default.fileExists(atPath: area + "/" + DestinationHold.fileName))
        job.stagingPath = staging.path
        job.commitIdentity = committed.identity.description
        let recovered = try await RestoreExecutor().recover(JobContext(job: job, run: run, plan: plan, snapshot: nil), observer: Observer())
        #expect(recovered == .committed(quarantinePath: nil))
        #expect(!FileManager.default.fileExists(atPath: area))
        #expect(readText(scene.destination + "/docs/readme") == "v2")

        // Killed between the staging name's record and the directory's creation.
        try FileManager.default.createDirectory(atPath: area, withIntermediateDirectories: false)
        job.stagingPath = area + "/job.5eed"
        job.commitIdentity = nil
        job.state = .restoring
        let restarted = try await RestoreExecutor().recover(JobContext(job: job, run: run, plan: plan, snapshot: nil), observer: Observer())
        #expect(restarted == .restart)
        #expect(!FileManager.default.fileExists(atPath: area))
        #expect(readText(scene.destination + "/docs/readme") == "v2")
    }

    /// A job's commit record and its staging tree's sync go on at once; the rename waits for
    /// both, and for the record's success. A record the ledger refuses, before the sync is done
    /// or after it, leaves the destination as it was and no staging behind; a slow one still
    /// commits, once it was made.
    @Test(arguments: [(false, 0), (false, 300), (true, 0), (true, 300)])
    func theRenameWaitsForTheCommitRecord(refused: Bool, delayMilliseconds: Int) async throws {
        struct Refused: Error {}
        final class Observer: JobObserver, @unchecked Sendable {
            let destination: String, refused: Bool, delay: Duration
            let recordDone = Mutex(false)
            /// What went wrong where no test could hear it (on a blocking thread).
            let wrongs = Mutex<[String]>([])
            init(destination: String, refused: Bool, delay: Duration) { (self.destination, self.refused, self.delay) = (destination, refused, delay) }
            func reserved(stagingPath: String) async throws {}
            func staged(identity: String) async throws {}
            func verifying() async throws {}
            func progress(archiveBytesRead: Int64) {}
            func willCommit() async throws {
                try await Task.sleep(for: delay)
                if readText(destination + "/docs/readme") != "v1" { wrongs.withLock { $0.append("the destination changed before its commit was recorded") } }
                if refused { throw Refused() }
                recordDone.withLock { $0 = true }
            }
            func mayCommit() throws {
                if !recordDone.withLock({ $0 }) { wrongs.withLock { $0.append("the commit went ahead without its record") } }
            }
            func proceedingThoughHeld(_ destination: String) {}
            func didQuarantine(path: String, originalPath: String, identity: FileIdentity?) async throws {}
        }
        let scene = try RestoreScene()
        try scene.write(Self.archive("v1"))
        try await scene.restore()
        try scene.write(Self.archive("v2"))
        let area = scene.restoreParent + "/" + StagingDirectory.areaName
        var (plan, run, job) = try Self.job(in: scene, plan: "verify: { checksum: off }")
        job.id = 7
        job.attempt = 1
        job.state = .restoring
        let size = try #require(try FileManager.default.attributesOfItem(atPath: scene.archive)[.size] as? Int)
        let snapshot = Snapshot(site: "dest", product: "jira", takenAt: Self.t0, path: scene.archive, size: Int64(size), sidecarPath: nil)
        let observer = Observer(destination: scene.destination, refused: refused, delay: .milliseconds(delayMilliseconds))
        let context = JobContext(job: job, run: run, plan: plan, snapshot: snapshot)

        if refused {
            await #expect(throws: Refused.self) { try await RestoreExecutor().execute(context, observer: observer) }
            #expect(readText(scene.destination + "/docs/readme") == "v1")
            #expect(!FileManager.default.fileExists(atPath: scene.restoreParent + "/" + QuarantineArea.name))
        } else {
            let result = try await RestoreExecutor().execute(context, observer: observer)
            #expect(readText(scene.destination + "/docs/readme") == "v2")
            let displaced = try #require(result.quarantinePath)
            #expect(readText(displaced + "/docs/readme") == "v1")
        }
        #expect(!FileManager.default.fileExists(atPath: area), "staging was left behind")
        #expect(observer.wrongs.withLock { $0 } == [])
    }

    /// A symbolic link on the way to the destination that is swapped between the job's check
    /// and its staging (towards a snapshot store, say) is refused: nothing is staged there, nor
    /// committed, nor displaced.
    @Test func aParentSwappedSinceTheCheckIsRefused() async throws {
        let scene = try RestoreScene()
        let fm = FileManager.default
        let real = scene.dir.sub("real"), store = scene.dir.sub("store")
        try fm.createDirectory(atPath: real, withIntermediateDirectories: true)
        try fm.createDirectory(atPath: store + "/jira", withIntermediateDirectories: true)
        try Data("backup".utf8).write(to: URL(fileURLWithPath: store + "/jira/snapshot.tar.gz"))
        let link = scene.dir.sub("site")
        try fm.createSymbolicLink(atPath: link, withDestinationPath: real)
        // As the job runner takes it: the parent staging opens, resolved.
        let checked = ResolvedPath.of(try StagingDirectory.split(link + "/jira").parent)
        #expect(checked == real)
        // Swapped after the check.
        try fm.removeItem(atPath: link)
        try fm.createSymbolicLink(atPath: link, withDestinationPath: store)
        await #expect(throws: ArchiveError.self) {
            try await withStagingDirectory(for: link + "/jira", name: "job", parentResolvesTo: checked) { _ in
                Issue.record("staged in the swapped directory")
            }
        }
        #expect(try fm.contentsOfDirectory(atPath: store).sorted() == ["jira"])
        #expect(readText(store + "/jira/snapshot.tar.gz") == "backup")
        // Unchanged since the check: staged as usual.
        try fm.removeItem(atPath: link)
        try fm.createSymbolicLink(atPath: link, withDestinationPath: real)
        try await withStagingDirectory(for: link + "/jira", name: "job", parentResolvesTo: checked) { staging in
            #expect(staging.path.hasPrefix(link + "/" + StagingDirectory.areaName + "/"))
        }
        // A destination that is itself a link (`current -> releases/42`) stages beside it.
        try fm.createDirectory(atPath: real + "/releases/42", withIntermediateDirectories: true)
        try fm.createSymbolicLink(atPath: real + "/current", withDestinationPath: "releases/42")
        let beside = ResolvedPath.of(try StagingDirectory.split(link + "/current").parent)
        try await withStagingDirectory(for: link + "/current", name: "job", parentResolvesTo: beside) { staging in
            #expect(staging.path.hasPrefix(link + "/" + StagingDirectory.areaName + "/"))
        }
    }

    @Test func commitIntoAnExistingDestinationQuarantinesTheOldData() async throws {
        let scene = try RestoreScene()
        try FileManager.default.createDirectory(atPath: scene.destination + "/old", withIntermediateDirectories: true)
        try Data("customer data".utf8).write(to: URL(fileURLWithPath: scene.destination + "/old/file"))
        let oldTree = snapshotTree(scene.destination)
        try scene.write(Self.archive("v2"))
        var result: CommitResult?
        var steps: [CommitStep] = []
        let archive = scene.archive, destination = scene.destination
        try await withStagingDirectory(for: destination, name: "job") { staging in
            _ = try extractArchive(at: archive, into: staging.path)
            result = try commitStaging(staging.makeDurable(), quarantineName: "run1-acme-jira") { steps.append($0) }
        }
        #expect(steps == [.stagingDurable, .swapped, .quarantined])
        let quarantine = scene.restoreParent + "/.lifeboat-quarantine/run1-acme-jira"
        #expect(result?.quarantinePath == quarantine)
        #expect(snapshotTree(quarantine) == oldTree)   // nothing lost
        #expect(readText(scene.destination + "/docs/readme") == "v2")
        #expect(result?.identity == FileIdentity(path: scene.destination))

        // A second restore with the same quarantine name must not overwrite the first.
        try scene.write(Self.archive("v3"))
        await #expect(throws: ArchiveError.self) {
            try await withStagingDirectory(for: destination, name: "job") { staging in
                _ = try extractArchive(at: archive, into: staging.path)
                _ = try commitStaging(staging.makeDurable(), quarantineName: "run1-acme-jira")
            }
        }
        #expect(snapshotTree(quarantine) == oldTree)
    }

    @Test func aFailureMidExtractLeavesTheDestinationAsItWas() async throws {
        let scene = try RestoreScene()
        try FileManager.default.createDirectory(atPath: scene.destination, withIntermediateDirectories: true)
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: scene.destination + "/file"))
        var tar = TarBuilder()
        for i in 0..<20 { tar.file("f\(i)", "new data \(i)") }
        tar.entry(Array("corrupt".utf8), data: [1], badChecksum: true)
        tar.end()
        let error = try await scene.expectRejected(tar)
        #expect(error?.code == .corrupt)
        #expect(readText(scene.destination + "/file") == "keep me")
        #expect(!FileManager.default.fileExists(atPath: scene.restoreParent + "/.lifeboat-quarantine"))
    }

    @Test func aCrashAfterTheSwapNeverLosesTheDisplacedData() async throws {
        struct Crash: Error {}
        let scene = try RestoreScene()
        try FileManager.default.createDirectory(atPath: scene.destination, withIntermediateDirectories: true)
        try Data("old".utf8).write(to: URL(fileURLWithPath: scene.destination + "/file"))
        try scene.write(Self.archive("v2"))
        let archive = scene.archive, destination = scene.destination
        var stagingPath = ""
        var stagingIdentity: FileIdentity?
        await #expect(throws: Crash.self) {
            try await withStagingDirectory(for: destination, name: "job") { staging in
                stagingPath = staging.path
                stagingIdentity = staging.identity
                _ = try extractArchive(at: archive, into: staging.path)
                _ = try commitStaging(staging.makeDurable(), quarantineName: "q") { if $0 == .swapped { throw Crash() } }
            }
        }
        // Committed (the destination is the staging directory) and the old data is still at the
        // staging path: cleanup recognised it was not its own and left it.
        #expect(FileIdentity(path: destination) == stagingIdentity)
        #expect(readText(stagingPath + "/file") == "old")
    }

    @Test func removingStagingHandlesDeepReadOnlyTreesWithoutFollowingLinks() async throws {
        let scene = try RestoreScene()
        var tar = TarBuilder()
        let deep = (1...300).map { _ in "d" }.joined(separator: "/")
        tar.gnuLong(deep + "/f")
        tar.file(deep + "/f", "x")
        tar.directory("ro", mode: 0o500)
        tar.file("ro/f", "x")
        tar.symlink("up", to: ".")
        for i in 0..<1100 { tar.directory("wide/\(i)") }
        tar.end()
        try scene.write(tar)
        let archive = scene.archive
        try await withStagingDirectory(for: scene.destination, name: "job") { staging in
            _ = try extractArchive(at: archive, into: staging.path)
            // Not committed: the scope removes it.
        }
        #expect((try? FileManager.default.contentsOfDirectory(atPath: scene.restoreParent)) == [])
        #expect(snapshotTree(scene.sentinel).count == 4)
    }

    @Test func checksumPolicies() async throws {
        let scene = try RestoreScene()
        try scene.write(Self.archive("v"))
        let required = ExtractOptions(checksum: .required)
        #expect(try await scene.expectRejectedArchive(required)?.code == .checksumMissing)

        // if-present without a sidecar: fine, nothing checked.
        let report = try verifyArchive(at: scene.archive, options: ExtractOptions(checksum: .ifPresent))
        #expect(report.sha256 == nil && !report.checksumVerified)

        #expect(try run(["sh", "-c", "cd \"$0\" && sha256sum -b a.tar.gz > a.tar.gz.sha256", scene.dir.path]) == 0)
        let checked = try verifyArchive(at: scene.archive, options: required)
        #expect(checked.checksumVerified)
        #expect(checked.sha256.map { readText(scene.archive + ".sha256")?.hasPrefix($0) } == true)

        try Data((String(repeating: "0", count: 64) + "  a.tar.gz\n").utf8).write(to: URL(fileURLWithPath: scene.archive + ".sha256"))
        #expect(try await scene.expectRejectedArchive(required)?.code == .checksumMismatch)
        #expect(try await scene.expectRejectedArchive(ExtractOptions(checksum: .ifPresent))?.code == .checksumMismatch)
        #expect(try verifyArchive(at: scene.archive, options: ExtractOptions(checksum: .off)).entries == 3)

        try Data("not a checksum\n".utf8).write(to: URL(fileURLWithPath: scene.archive + ".sha256"))
        #expect(try await scene.expectRejectedArchive(required)?.code == .checksumMissing)

        // A FIFO where the sidecar goes is refused at once (opening it used to wait for a writer
        // for ever, deaf to cancel); so is a directory.
        for (kind, make) in [("a FIFO", { (path: String) in mkfifo(path, 0o644) }), ("a directory", { (path: String) in mkdir(path, 0o755) })] {
            try FileManager.default.removeItem(atPath: scene.archive + ".sha256")
            #expect(make(scene.archive + ".sha256") == 0)
            for policy in [ChecksumPolicy.required, .ifPresent] {
                let refused = try await scene.expectRejectedArchive(ExtractOptions(checksum: policy))
                #expect(refused?.code == .checksumMissing && refused?.description.contains("is \(kind), not a regular file") == true, "\(String(describing: refused))")
            }
        }
    }
}

@Suite struct StagingVerificationTests {
    @Test func aFailingVerifyCommandVetoesTheCommit() async throws {
        let scene = try RestoreScene()
        try scene.write(CommitTests.archive("v"))
        let archive = scene.archive
        await #expect(throws: ArchiveError.self) {
            try await withStagingDirectory(for: scene.destination, name: "job") { staging in
                _ = try extractArchive(at: archive, into: staging.path)
                // Passes only if a file that the archive lacks exists.
                try await staging.verify(with: ["test", "-e", staging.path + "/missing"], timeout: .seconds(10))
                _ = try commitStaging(staging.makeDurable(), quarantineName: "q")
            }
        }
        #expect(!FileManager.default.fileExists(atPath: scene.destination))
        #expect((try? FileManager.default.contentsOfDirectory(atPath: scene.restoreParent)) == [])

        try await withStagingDirectory(for: scene.destination, name: "job") { staging in
            _ = try extractArchive(at: archive, into: staging.path)
            try await staging.verify(with: ["test", "-f", staging.path + "/docs/readme"], timeout: .seconds(10))
            _ = try commitStaging(staging.makeDurable(), quarantineName: "q")
        }
        #expect(readText(scene.destination + "/docs/readme") == "v")
    }
}

/// Removing a tree Lifeboat made never crosses into a mount someone put inside it.
@Suite(.serialized) struct TreeRemoverMountTests {
    @Test(.enabled(if: geteuid() == 0, "mounting needs root (CI runs as root)"))
    func aBindMountInsideATreeIsNotEmptied() throws {
        let dir = TestDirectory()
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir.file("foreign/sub"), withIntermediateDirectories: true)
        try Data("theirs".utf8).write(to: URL(fileURLWithPath: dir.file("foreign/a.txt")))
        try Data("theirs".utf8).write(to: URL(fileURLWithPath: dir.file("foreign/sub/b.txt")))
        try fm.createDirectory(atPath: dir.file("ours/deep/mnt"), withIntermediateDirectories: true)
        try Data("ours".utf8).write(to: URL(fileURLWithPath: dir.file("ours/deep/file")))
        let mount = try runProcess("/bin/mount", ["--bind", dir.file("foreign"), dir.file("ours/deep/mnt")])
        try #require(mount.status == 0, "\(mount.output)")
        defer { _ = try? runProcess("/bin/umount", [dir.file("ours/deep/mnt")]) }
        let identity = try #require(FileIdentity(path: dir.file("ours")))
        let refused = #expect(throws: ArchiveError.self) { try TreeRemover.remove(path: dir.file("ours"), ifIdentity: identity, removeEmptyParent: false) }
        // The error names the mount point and says what to do.
        #expect(refused?.detail.contains("\(dir.file("ours/deep/mnt")) is a mount point") == true, "\(refused?.detail ?? "")")
        #expect(refused?.detail.hasSuffix("unmount it") == true)
        #expect(readText(dir.file("foreign/a.txt")) == "theirs")
        #expect(readText(dir.file("foreign/sub/b.txt")) == "theirs")
    }
}

/// One destination is restored by one job at a time, whatever the process (`DestinationHold`):
/// the same destination is refused, or waited for, while another holds it; a sibling is not; the
/// hold file goes with the last holder, so no staging area is left behind.
@Suite struct DestinationHoldTests {
    @Test func aHeldDestinationIsRefusedAndItsSiblingIsNot() async throws {
        let scene = try RestoreScene()
        let area = scene.restoreParent + "/" + StagingDirectory.areaName
        let destination = scene.destination
        try await withStagingDirectory(for: destination, name: "first") { first in
            var reserved = false
            let refused = await #expect(throws: DestinationHeldElsewhere.self) {
                try await withStagingDirectory(for: destination, name: "second", reserve: { _ in reserved = true }) { _ in
                    Issue.record("nothing is staged for a destination another holds")
                }
            }
            #expect(!reserved, "a refused job records no staging name")
            #expect(refused?.description.hasPrefix("\(destination) is being restored by another process right now") == true,
                    "\(refused?.description ?? "")")
            try await withStagingDirectory(for: scene.restoreParent + "/sibling", name: "sibling") { sibling in
                #expect(FileManager.default.fileExists(atPath: sibling.path))
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: area).sorted() == [DestinationHold.fileName, first.name])
        }
        #expect(!FileManager.default.fileExists(atPath: area), "the last holder removes the hold file and the area")
    }

    /// A `.holds` that is a link or a directory (planted, or left by hand) is never followed, and
    /// the error says what to remove.
    @Test func aHoldFileThatIsNotAFileIsNamed() async throws {
        let scene = try RestoreScene()
        let area = scene.restoreParent + "/" + StagingDirectory.areaName
        try FileManager.default.createDirectory(atPath: area, withIntermediateDirectories: false)
        try FileManager.default.createSymbolicLink(atPath: area + "/" + DestinationHold.fileName, withDestinationPath: scene.sentinel + "/file")
        let error = await #expect(throws: ArchiveError.self) {
            try await withStagingDirectory(for: scene.destination, name: "job") { _ in Issue.record("nothing is staged") }
        }
        #expect(error?.detail == "\(area)/.holds is a symbolic link, not the file Lifeboat holds destinations by (never followed); nothing was staged: remove it, then run the job again",
                "\(error?.detail ?? "")")
        #expect(readText(scene.sentinel + "/file") == "precious")
    }

    /// Between hosts sharing a ledger the job's claim decides: a job that finds its destination
    /// held (by a host that lost the claim and has not noticed yet) says so and goes on.
    @Test func aJobThatMayProceedGoesOnSayingSo() async throws {
        let scene = try RestoreScene()
        try scene.write(CommitTests.archive("v"))
        let destination = scene.destination, archive = scene.archive
        try await withStagingDirectory(for: destination, name: "lost") { _ in
            var told = 0
            try await withStagingDirectory(for: destination, name: "taker", proceedIfHeldElsewhere: { told += 1 }) { staging in
                _ = try extractArchive(at: archive, into: staging.path)
                _ = try commitStaging(staging.makeDurable(), quarantineName: "q")
            }
            #expect(told == 1)
        }
        #expect(readText(destination + "/docs/readme") == "v")
        #expect(try FileManager.default.contentsOfDirectory(atPath: scene.restoreParent) == ["dest"])
    }
}
