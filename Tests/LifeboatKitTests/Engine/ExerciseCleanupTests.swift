import Foundation
import Logging
import Testing
@testable import LifeboatKit

@Suite struct ExerciseCleanupTests {
    /// An exercise job whose archive failed its checks committed nothing: the cleanup is done, not
    /// "incomplete … for you to find and remove" data that never existed.
    @Test func aJobThatFailedItsChecksLeavesNothingToFind() async throws {
        let fx = try await DRFixture(sites: 2)
        let archive = try #require(try SnapshotStore(scanning: fx.dir.file("store")).snapshots(site: "globex", product: "contacts").first)
        try Data((String(repeating: "0", count: 64) + "  x\n").utf8).write(to: URL(fileURLWithPath: try #require(archive.sidecarPath)))
        let (run, jobs) = try await fx.run(.exercise, scale: 2)
        let failed = try #require(jobs.first { $0.name == "globex/contacts" })
        #expect(failed.state == .failed && failed.errorCode == JobError.Code.integrity.rawValue && !failed.committed, "\(failed)")
        #expect(jobs.filter(\.committed).count == 2, "acme's two jobs committed")

        let finisher = RunFinisher(ledger: fx.ledger, reportsDirectory: fx.dir.file("reports"), logger: Logger(label: "test"))
        let cleaned = await finisher.cleanUp(run, plan: fx.plan)
        #expect(cleaned.cleanup == RunRecord.cleanupDone, "\(cleaned.cleanup ?? "nil")")
        for job in jobs { #expect(!FileManager.default.fileExists(atPath: job.destination), "\(job.name) left in the sandbox") }
    }

    /// A hook's output ends the job's error without the blank lines it printed: the error is one
    /// line in the follower's log.
    @Test func aRejectingVerifyCommandsOutputEndsItsErrorOnOneLine() async throws {
        let fx = try await DRFixture(sites: 1, planExtra: #"verify: { command: ["/bin/sh", "-c", "printf 'checksum of customer data differs\\n\\n\\n'; exit 3"] }"#)
        let (_, jobs) = try await fx.run(.restore)
        let error = try #require(jobs.first { $0.product == "contacts" }?.error)
        #expect(error.hasSuffix("its output: checksum of customer data differs"), "\(error.debugDescription)")
    }
}
