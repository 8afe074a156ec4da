import Foundation
import Testing
@testable import LifeboatKit

/// A command the CLI sends is the command the daemon reads: one type, one wire form.
@Suite struct ControlParamsTests {
    @Test func aRunStartCrossesTheWireWhole() throws {
        var command = Control.RunStart(plan: "main", mode: .exercise, sites: ["acme", "globex"])
        command.incidentAt = Timestamp.parse("2026-11-24T03:15:00Z")
        command.scale = 3
        command.seed = 42
        command.keep = true
        command.fromSnapshots = true
        command.rehearse = "delete"
        let params = try ControlParams.encode(command)
        // snake_case on the wire, as DESIGN.md documents the parameters.
        #expect(params["incident_at"] == .string("2026-11-24T03:15:00.000Z"))
        #expect(params["from_snapshots"] == .bool(true))
        #expect(params["mode"] == .string("exercise"))
        #expect(params["as_of"] == nil && params["confirm"] == nil)
        let read = try ControlParams.decode(Control.RunStart.self, from: params)
        #expect(read.plan == "main" && read.mode == .exercise && read.sites == ["acme", "globex"])
        #expect(read.incidentAt == command.incidentAt && read.asOf == nil)
        #expect(read.scale == 3 && read.seed == 42 && read.keep == true && read.fromSnapshots == true && read.rehearse == "delete")
    }

    @Test func flagsLeftOffAreNotSent() throws {
        let rollback = try ControlParams.encode(Control.Rollback(run: "r1"))
        #expect(rollback == ["run": .string("r1")])
        let purge = try ControlParams.encode(Control.QuarantinePurge(olderThan: "60d", dryRun: false))
        #expect(purge == ["older_than": .string("60d"), "dry_run": .bool(false)])
        #expect(try ControlParams.decode(Control.JobRetry.self, from: ControlParams.encode(Control.JobRetry(run: "r1", job: 7))).job == 7)
    }

    /// The run verbs' wire names come from the verbs' names: pinned here, as the wire is a contract.
    @Test func theCommandsKeepTheirWireNames() {
        #expect([Control.RunShow.name, Control.RunSites.name, Control.RunWatch.name, Control.RunCancel.name, Control.RunResume.name]
                == ["run.show", "run.sites", "run.watch", "run.cancel", "run.resume"])
        #expect(ControlHandler.commands == ["status", "plans", "plan.check", "run.start", "run.list", "run.show", "run.sites", "run.watch",
                                            "run.cancel", "run.resume", "job.retry", "rollback", "quarantine.list", "quarantine.purge",
                                            "report", "reload", "schedules"])
    }

    @Test func whoMayCallWhat() {
        #expect(!Control.RunStart(plan: "p", mode: .dryRun).isMutating)
        #expect(!Control.RunStart(plan: "p", mode: .delete).isMutating)
        #expect(Control.RunStart(plan: "p", mode: .restore).isMutating)
        #expect(Control.RunCancel(run: "r").isMutating && Control.Reload().isMutating)
        #expect(!Control.Status().isMutating && !Control.RunWatch(run: "r").isMutating)
    }
}
