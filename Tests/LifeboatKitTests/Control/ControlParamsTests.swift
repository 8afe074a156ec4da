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
        #expect(try ControlParams.decode(Control.JobRetry.self, from: ControlParams.encode(Control.JobRetry(run: "r1", job: .id(7)))).job == .id(7))
    }

    /// What the daemon cannot read exactly as sent it refuses, naming the parameter: a run must
    /// not start in a mode nobody chose, or for every site because `sites` was misspelt.
    @Test func aRequestIsReadExactlyOrRefused() throws {
        func refusal<C: ControlCommand>(_ type: C.Type, _ params: [String: JSONValue]) -> String? {
            do {
                _ = try ControlParams.decode(type, from: params)
                return nil
            } catch let error as ControlError {
                return error.code == .invalidParams ? error.message : "\(error.code): \(error.message)"
            } catch {
                return "\(error)"
            }
        }
        #expect(refusal(Control.RunStart.self, ["plan": .string("main")]) == "\"mode\" is required")
        let typo = refusal(Control.RunStart.self, ["plan": .string("main"), "mode": .string("dry-run"), "site": .array([.string("acme")])])
        #expect(typo?.hasPrefix("unknown parameter \"site\" for run.start (did you mean \"sites\"?); it takes ") == true, "\(typo ?? "accepted")")
        #expect(typo?.contains("\"incident_at\"") == true)
        #expect(refusal(Control.Status.self, ["verbose": .bool(true)]) == "unknown parameter \"verbose\" for status; it takes none")
        // A null is no key, whatever its name.
        #expect(refusal(Control.RunList.self, ["limit": .null]) == nil)
        #expect(refusal(Control.RunList.self, ["limti": .integer(5)])?.contains("did you mean \"limit\"") == true)
        // A job by its id or by SITE/PRODUCT, as the CLI takes it.
        #expect(try ControlParams.decode(Control.JobRetry.self, from: ["run": .string("r"), "job": .string("acme/contacts")]).job == .name("acme/contacts"))
        #expect(try ControlParams.decode(Control.JobRetry.self, from: ["run": .string("r"), "job": .string("12")]).job == .id(12))
        #expect(refusal(Control.JobRetry.self, ["run": .string("r"), "job": .string("acme")]) == "\"job\" must be a job id or SITE/PRODUCT, found \"acme\"")
        #expect(refusal(Control.JobRetry.self, ["run": .string("r"), "job": .bool(true)])?.hasPrefix("\"job\" must be a job id (an integer) or SITE/PRODUCT") == true)
    }

    /// A key given twice in one object means one thing to Foundation's reader (the first value)
    /// and another to most (the last): refused, whatever escapes spell it.
    @Test func aKeyGivenTwiceInOneObjectIsRefused() {
        func refusal(_ line: String) -> String? {
            if case .failure(let failure) = ControlRequest.parse(Array(line.utf8)) { return failure.error.message }
            return nil
        }
        #expect(refusal(#"{"id":1,"command":"status","command":"reload"}"#) == #"the request gives the key "command" twice in one object; give each key once"#)
        #expect(refusal(#"{"id":1,"command":"status","comm\u0061nd":"reload"}"#)?.contains(#""command" twice"#) == true)
        #expect(refusal(#"{"id":1,"command":"run.show","params":{"run":"a","run":"b"}}"#)?.contains(#""run" twice"#) == true)
        // The same key in two objects, or a value that reads like a key, is no repeat.
        #expect(refusal(#"{"id":{"command":1},"command":"run.start","params":{"plan":"command","sites":["plan","plan"],"mode":"restore"}}"#) == nil)
        #expect(refusal(#"{"id":1,"command":"status","x":"a\"b","params":{}}"#) == nil)
        #expect(ControlRequest.shape(of: Array(#"[[{"a":[{}]}]]"#.utf8)).depth == 5)
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
