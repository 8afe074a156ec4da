import Foundation
import Synchronization
import Testing
@testable import LifeboatKit

/// The control handler of a daemon built by `makeDaemon`, answering request lines as the socket
/// server hands them over: what each command answers, and how bad requests are answered.
@Suite struct ControlHandlerTests {
    @Test func statusAndPlansDescribeTheDaemon() async throws {
        let fx = try DaemonFixture()
        let status = try await fx.answer(#"{"id":1,"command":"status"}"#)
        #expect(status.ok, "\(status.text)")
        #expect(status.id as? Int == 1)
        #expect(status.result["socket"] as? String == fx.config.socket.path)
        #expect(status.result["ledger"] as? String == fx.config.ledgerPath)
        #expect(status.result["plans"] as? Int == 1)
        #expect((status.result["runs"] as? [Any])?.isEmpty == true)
        let plans = try await fx.answer(#"{"id":"p","command":"plans"}"#, as: DaemonFixture.reader)
        #expect(plans.ok, "\(plans.text)")
        #expect(plans.id as? String == "p")
        let plan = try #require((plans.result["plans"] as? [[String: Any]])?.first)
        #expect(plan["name"] as? String == "main")
        #expect(plan["products"] as? [String] == ["contacts", "jira"])
    }

    /// `plan.check` of a plan's text answers as `reload` would serve it: with the plans loaded
    /// (the one of its name replaced, as by an edit) and the state directory.
    @Test func planCheckAppliesTheRulesAcrossPlans() async throws {
        let fx = try DaemonFixture()
        func check(_ text: String) async throws -> (ok: Bool, errors: String) {
            let request = try JSONSerialization.data(withJSONObject: ["id": 1, "command": "plan.check", "params": ["text": text]])
            let answer = try await fx.answer(String(decoding: request, as: UTF8.self))
            return (answer.result["ok"] as? Bool ?? false, "\(answer.result["errors"] ?? "")")
        }
        let intoMainsTarget = try await check("name: other\nsnapshots: ../store\ntarget: ../out2/{site}/{product}\nsandbox: ../out/{site}/{product}/sb/{run}\nproducts: [{ name: contacts }]\n")
        #expect(!intoMainsTarget.ok && intoMainsTarget.errors.contains("main"), "\(intoMainsTarget.errors)")
        let intoState = try await check("name: other\nsnapshots: ../store\ntarget: ../state/{site}/{product}\nproducts: [{ name: contacts }]\n")
        #expect(!intoState.ok && intoState.errors.contains("state"), "\(intoState.errors)")
        let mainEdited = try await check("name: main\nsnapshots: ../store\ntarget: ../out/{site}/{product}\nsandbox: ../sandbox/{run}/{site}/{product}\nproducts: [{ name: contacts }]\n")
        #expect(mainEdited.ok, "\(mainEdited.errors)")
    }

    @Test func aStartedRunIsShownListedAndCounted() async throws {
        let fx = try DaemonFixture()
        let started = try await fx.answer(#"{"id":2,"command":"run.start","params":{"plan":"main","mode":"restore","incident_at":"2026-11-25T10:00:00Z"}}"#)
        #expect(started.ok, "\(started.text)")
        let runId = try #require(started.result["id"] as? String)
        #expect(started.result["state"] as? String == "pending")
        #expect(started.result["incident_at"] as? String == "2026-11-25T10:00:00.000Z")
        #expect(started.result["started_by"] as? String == DaemonFixture.admin.description)
        let shown = try await fx.answer(#"{"id":3,"command":"run.show","params":{"run":"\#(runId)"}}"#)
        #expect(shown.ok, "\(shown.text)")
        #expect((shown.result["jobs"] as? [[String: Any]])?.count == 4)
        #expect(shown.result["active"] as? Bool == true)
        // Parameters may also sit at the top level of the request.
        let listed = try await fx.answer(#"{"id":4,"command":"run.list","limit":5}"#)
        #expect(listed.results.map { $0["id"] as? String } == [runId])
        let status = try await fx.answer(#"{"id":5,"command":"status"}"#)
        let going = try #require((status.result["runs"] as? [[String: Any]])?.first)
        #expect(going["id"] as? String == runId && going["jobs"] as? Int == 4 && going["done"] as? Int == 0)
    }

    /// A run whose client went away while it was planned (an operator's Ctrl-C while a slow
    /// store was listed) is not recorded and starts nothing.
    @Test func aRunWhoseClientWentAwayWhileItWasPlannedIsNotStarted() async throws {
        let fx = try DaemonFixture()
        guard case .success(let request) = ControlRequest.parse(Array(#"{"id":1,"command":"run.start","params":{"plan":"main","mode":"restore"}}"#.utf8)) else {
            Issue.record("not a request")
            return
        }
        let gone = ReadySignal()
        gone.signal()
        let answered = Mutex<[Data]>([])
        try await fx.daemon.handler.handle(request, peer: DaemonFixture.admin, hangup: gone) { line in answered.withLock { $0.append(line) } }
        let text = answered.withLock { $0.map { String(decoding: $0, as: UTF8.self) }.joined() }
        #expect(text.contains("the run was not started: whoever asked for it went away"), "\(text)")
        #expect(try await fx.daemon.services.ledger.runs(limit: 10).isEmpty)
        #expect(fx.daemon.runs.activeRuns.isEmpty)
        // Connected, the same request starts the run.
        let started = try await fx.answer(#"{"id":2,"command":"run.start","params":{"plan":"main","mode":"restore"}}"#)
        #expect(started.ok, "\(started.text)")
    }

    @Test func aDryRunIsAnsweredToAReaderAndRecordsNothing() async throws {
        let fx = try DaemonFixture()
        let dry = try await fx.answer(#"{"id":6,"command":"run.start","params":{"plan":"main","mode":"dry-run","sites":["acme"]}}"#,
                                      as: DaemonFixture.reader)
        #expect(dry.ok, "\(dry.text)")
        #expect((dry.result["jobs"] as? [[String: Any]])?.count == 2)
        #expect(try await fx.answer(#"{"id":7,"command":"run.list"}"#).results.isEmpty)
    }

    /// A refused delete is recorded as a run, but a reader cannot fill the ledger with them:
    /// past ten within ten minutes, the attempts are in the log only (found by a hostile-client
    /// review: 300 refused deletes pushed every real run off `lifeboat runs`).
    @Test func refusedDeletesOfOneCallerAreRecordedUpToABound() async throws {
        let fx = try DaemonFixture()
        let line = #"{"id":3,"command":"run.start","params":{"plan":"main","mode":"delete","sites":["acme"],"confirm":"x","reason":"r"}}"#
        var recorded = 0, logOnly = 0
        for _ in 0..<(AccessControl.recordedRefusals + 3) {
            let refused = try await fx.answer(line, as: DaemonFixture.reader)
            #expect(refused.code == "forbidden", "\(refused.text)")
            if refused.message.contains("recorded as run") { recorded += 1 }
            if refused.message.contains("in the daemon's log only") { logOnly += 1 }
        }
        #expect(recorded == AccessControl.recordedRefusals && logOnly == 3)
        #expect(try await fx.answer(#"{"id":4,"command":"run.list"}"#).results.count == AccessControl.recordedRefusals)
        // Another caller has a bound of its own.
        let other = PeerCredentials(pid: 2, uid: 4242, gid: 4242)
        #expect(try await fx.answer(line, as: other).message.contains("recorded as run"))
    }

    @Test func aReaderMayNotChangeAnything() async throws {
        let fx = try DaemonFixture()
        for line in [#"{"id":8,"command":"run.start","params":{"plan":"main","mode":"restore"}}"#,
                     #"{"id":8,"command":"run.cancel","params":{"run":"r1"}}"#,
                     #"{"id":8,"command":"quarantine.purge"}"#, #"{"id":8,"command":"quarantine.purge","params":{"dry_run":false}}"#,
                     #"{"id":8,"command":"reload"}"#] {
            let refused = try await fx.answer(line, as: DaemonFixture.reader)
            #expect(refused.code == "forbidden", "\(line): \(refused.text)")
            #expect(refused.message.contains("needs an admin") && refused.message.contains("uid 65534"), "\(refused.message)")
        }
        #expect(try await fx.answer(#"{"id":9,"command":"run.list"}"#).results.isEmpty)
        // What a purge would remove is a question anyone who may read may ask.
        let preview = try await fx.answer(#"{"id":10,"command":"quarantine.purge","params":{"dry_run":true}}"#, as: DaemonFixture.reader)
        #expect(preview.ok, "\(preview.text)")
        #expect(preview.result["dry_run"] as? Bool == true, "\(preview.text)")
    }

    @Test func anUnknownCommandIsAnsweredWithTheCommands() async throws {
        let fx = try DaemonFixture()
        let unknown = try await fx.answer(#"{"id":10,"command":"run.explode"}"#)
        #expect(!unknown.ok && unknown.code == "unknown-command")
        #expect(unknown.id as? Int == 10)
        #expect(unknown.message.contains("\"run.explode\""))
        for command in ControlHandler.commands { #expect(unknown.message.contains(command), "\(command) missing: \(unknown.message)") }
        #expect(ControlHandler.commands.count == 17)
    }

    /// A request's id comes back as it was sent: a 64-bit integer exactly (a script's random ids
    /// pass 2^53), a fraction, a string, null.
    @Test func idsAreEchoedExactly() async throws {
        let fx = try DaemonFixture()
        for id in ["9007199254740993", "-9223372036854775808", "18446744073709", "1.5", #""x""#, "null"] {
            let answer = try await fx.answer(#"{"id":\#(id),"command":"plans"}"#)
            #expect(answer.ok && answer.text.hasPrefix(#"{"id":\#(id),"#), "\(answer.text.prefix(200))")
        }
    }

    /// Every invalid parameter is answered `invalid-params` with a message that names it and says
    /// what it must be.
    @Test(arguments: [
        (#"{"command":"run.show","params":{"run":42}}"#, #""run" must be a string, found a number"#),
        (#"{"command":"run.show"}"#, #""run" is required"#),
        (#"{"command":"run.show","params":{"run":""}}"#, #""run" is required"#),
        (#"{"command":"run.show","params":{"run":null}}"#, #""run" is required"#),
        (#"{"command":"job.retry","params":{"run":"r1","job":"seven"}}"#, #""job" must be a job id or SITE/PRODUCT, found "seven""#),
        (#"{"command":"run.start","params":{"plan":"main"}}"#, #""mode" is required"#),
        (#"{"command":"run.start","params":{"plan":"main","mode":"restore","site":["acme"]}}"#,
         #"unknown parameter "site" for run.start (did you mean "sites"?)"#),
        (#"{"command":"run.list","limit":2.5}"#, #""limit" must be an integer, found a number"#),
        (#"{"command":"run.list","limit":0}"#, "limit must be a whole number ≥ 1, found 0"),
        (#"{"command":"run.start","params":{"plan":"main","mode":"sideways"}}"#,
         #""mode" must be restore, exercise, dry-run or delete, found "sideways""#),
        (#"{"command":"run.start","params":{"plan":"main","mode":"restore","sites":"acme"}}"#, #""sites" must be an array of strings, found a string"#),
        (#"{"command":"run.start","params":{"plan":"main","mode":"restore","sites":["acme",1]}}"#, #""sites" must contain only strings"#),
        (#"{"command":"run.start","params":{"plan":"main","mode":"restore","incident_at":"yesterday"}}"#,
         #""incident_at" must be an ISO-8601 time like 2026-11-24T03:15:00Z, found "yesterday""#),
        (#"{"command":"run.start","params":{"plan":"main","mode":"restore","from_snapshots":"yes"}}"#, #""from_snapshots" must be true or false, found a string"#),
        (#"{"command":"run.start","params":{"plan":"main","mode":"restore","keep":true}}"#, "apply to exercises only, not to a restore"),
        (#"{"command":"report","params":{"run":"r1","format":"pdf"}}"#, #""format" must be md, json or html, found "pdf""#),
        (#"{"command":"quarantine.purge","params":{"older_than":"soon"}}"#, #""older_than" must be a duration like 30d, found "soon""#),
    ])
    func invalidParametersAreNamed(line: String, message: String) async throws {
        let fx = try DaemonFixture()
        let answer = try await fx.answer(line)
        #expect(!answer.ok && answer.code == "invalid-params", "\(answer.text)")
        #expect(answer.message.contains(message), "\(answer.message)")
    }

    @Test func aRunNotInTheLedgerIsNotFound() async throws {
        let fx = try DaemonFixture()
        let missing = try await fx.answer(#"{"id":11,"command":"run.show","params":{"run":"nope"}}"#)
        #expect(missing.code == "not-found" && missing.message.contains("no run nope"), "\(missing.text)")
        let cancel = try await fx.answer(#"{"id":12,"command":"run.cancel","params":{"run":"nope"}}"#)
        #expect(cancel.code == "not-found" && cancel.message.contains("no run nope"), "\(cancel.text)")
    }

    /// An error no domain type foresaw (the ledger lost a table under the daemon) is answered
    /// `internal`, naming the command, and the next request is served as usual.
    @Test func anUnexpectedErrorIsAnsweredAndTheNextRequestServed() async throws {
        let fx = try DaemonFixture()
        let started = try await fx.answer(#"{"id":1,"command":"run.start","params":{"plan":"main","mode":"restore"}}"#)
        let runId = try #require(started.result["id"] as? String)
        let drop = try runProcess("/usr/bin/env", ["python3", "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('DROP TABLE jobs'); c.commit()",
                                                   fx.config.ledgerPath])
        try #require(drop.status == 0, "python3 could not drop the table: \(drop.output)")
        let failed = try await fx.answer(#"{"id":2,"command":"run.show","params":{"run":"\#(runId)"}}"#)
        #expect(!failed.ok && failed.code == "internal", "\(failed.text)")
        #expect(failed.message.contains("run.show failed inside the daemon") && failed.message.contains("no such table: jobs"), "\(failed.message)")
        let plans = try await fx.answer(#"{"id":3,"command":"plans"}"#)
        #expect(plans.ok && plans.id as? Int == 3, "\(plans.text)")
    }
}
