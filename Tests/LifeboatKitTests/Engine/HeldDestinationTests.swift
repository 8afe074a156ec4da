import Foundation
import Testing
@testable import LifeboatKit

/// A run that reaches its destinations while another run holds them (two runs recorded before
/// either started, as after a restart) does nothing and says why, job by job.
@Suite struct HeldDestinationTests {
    @Test func aRunWhoseDestinationsAnotherRunHoldsFailsEveryJobWithTheReason() async throws {
        let fx = try await DRFixture()
        let holds = DestinationHolds()
        let guarded = Engine(environment: RunEnvironment(ledger: fx.ledger, executor: RestoreExecutor(), clock: fx.clock, bus: fx.bus,
                                                         guardrails: Guardrails(holds: holds)))
        let first = try await guarded.create(RunRequest(plan: fx.plan, mode: .restore))
        // Recorded through an engine that never saw the first run's holds.
        let second = try await fx.engine.create(RunRequest(plan: fx.plan, mode: .restore))
        let final = try await guarded.execute(runId: second.run.id, plan: fx.plan)
        #expect(final.state == .failed)
        #expect(final.note?.contains("held by job") == true && final.note?.contains("run \(first.run.id)") == true, "\(final.note ?? "")")
        let jobs = try await fx.ledger.jobs(runId: second.run.id)
        #expect(!jobs.isEmpty)
        for job in jobs {
            #expect(job.state == .failed && job.errorCode == "sandbox", "\(job)")
            #expect((job.error ?? "").contains("not started") && (job.error ?? "").contains(first.run.id), "\(job.error ?? "")")
        }
        #expect(!FileManager.default.fileExists(atPath: fx.dir.file("out")))
        // Once the first run is done, its destinations are free again.
        let done = try await guarded.execute(runId: first.run.id, plan: fx.plan)
        #expect(done.state == .succeeded)
        #expect(holds.holder(of: ResolvedPath.of(fx.dir.file("out/acme/contacts"))) == nil)
    }
}
