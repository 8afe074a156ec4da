import Foundation
import Logging
import Testing
@testable import LifeboatKit

@Suite struct NotificationTests {
    @Test func notifyCommandReceivesEachEvent() async throws {
        let probe = TestDirectory()
        // One file per event: hooks run a few at a time, and appends to one file could interleave.
        let inbox = probe.file("events")
        try FileManager.default.createDirectory(atPath: inbox, withIntermediateDirectories: true)
        // The event on stdin, and the command's first argument (`{run}`) in a file beside it.
        let script = probe.write("notify.sh", "#!/bin/sh\nf=$(mktemp \(inbox)/event.XXXXXX)\necho \"$1\" > \"$f.arg\"\ncat > \"$f\"\n")
        func received(_ suffix: String = "") -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: inbox)) ?? []).filter { suffix.isEmpty ? !$0.hasSuffix(".arg") : $0.hasSuffix(suffix) }.compactMap {
                try? String(contentsOfFile: inbox + "/" + $0, encoding: .utf8)
            }
        }
        chmod(script, 0o755)
        let fx = try await DRFixture(sites: 3, planExtra: """
            notify: ["\(script)", "{run}"]
            objectives: { rto: 1s }
            waves:
              - { sites: 1, gate: { max_failures: 0 } }
              - { sites: rest }
            """)
        // The canary's contacts fails its checksum: job failed, gate failed.
        try Self.damageAcmeContacts(fx)
        let dispatcher = NotificationDispatcher(ledger: fx.ledger, logger: Logger(label: "test"), plan: { _ in fx.plan })
        let events = fx.bus.subscribe()
        let created = try await fx.engine.create(RunRequest(plan: fx.plan, mode: .restore))
        let control = RunControl()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await dispatcher.run(events, since: fx.clock.now()) }
            group.addTask {
                _ = try await fx.engine.execute(runId: created.run.id, plan: fx.plan, control: control)
            }
            // Past the halt: resume so the run goes on (the clock runs 10 min per job, so RTO is
            // forecast to be missed), then wait for the end.
            try await waitUntil { control.isHalted }
            fx.clock.advance(by: 600)
            control.resume()
            try await waitUntil { received().contains { $0.contains(#""event":"run.finished""#) } }
            group.cancelAll()
        }
        let lines = received()
        let kinds = Set(lines.compactMap { line -> String? in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["event"] as? String
        })
        #expect(kinds == ["run.started", "job.failed", "gate.failed", "rto.forecast-miss", "site.failed", "site.restored", "run.finished"], "\(lines)")
        #expect(lines.contains { $0.contains(#""event":"job.failed""#) && $0.contains("acme") })
        // Every event says what happened in words, run.started and run.finished included.
        for line in lines {
            let event = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(!((event["message"] as? String) ?? "").isEmpty, "\(line)")
        }
        #expect(lines.contains { $0.contains(#""event":"run.finished""#) && $0.contains(#""message":"run failed: "#) }, "\(lines)")
        // `{run}` reaches the command as the run's id.
        #expect(Set(received(".arg")) == ["\(created.run.id)\n"])
        // One site event per site: the canary acme failed (its contacts), the others are back.
        let siteEvents = lines.compactMap { line -> String? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let event = object["event"] as? String, event.hasPrefix("site."),
                  let site = (object["site"] as? [String: Any])?["site"] as? String else { return nil }
            return "\(event) \(site)"
        }.sorted()
        #expect(siteEvents == ["site.failed acme", "site.restored globex", "site.restored initech"], "\(lines)")
    }

    /// A notify command that files each event it is given on its own (hooks run a few at a time:
    /// appends to one file could interleave), and reads the site events back.
    struct Inbox {
        let probe = TestDirectory()
        var directory: String { probe.file("events") }
        let script: String

        init() throws {
            try FileManager.default.createDirectory(atPath: probe.file("events"), withIntermediateDirectories: true)
            script = probe.write("notify.sh", "#!/bin/sh\ncat > \"$(mktemp \(probe.file("events"))/event.XXXXXX)\"\n")
            chmod(script, 0o755)
        }

        /// `event site: message` of each site event received, sorted.
        func siteEvents() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).compactMap { name -> String? in
                guard let data = FileManager.default.contents(atPath: directory + "/" + name),
                      let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                      let event = object["event"] as? String, event.hasPrefix("site."),
                      let site = (object["site"] as? [String: Any])?["site"] as? String else { return nil }
                return "\(event) \(site): \(object["message"] as? String ?? "")"
            }.sorted()
        }
    }

    /// Damages acme's contacts archive (its sidecar names another digest): its job fails.
    static func damageAcmeContacts(_ fx: DRFixture) throws {
        let archive = try #require(try SnapshotStore(scanning: fx.dir.file("store")).snapshots(site: "acme", product: "contacts").first)
        try Data("0000000000000000000000000000000000000000000000000000000000000000  x\n".utf8).write(to: URL(fileURLWithPath: archive.sidecarPath!))
    }

    /// A site left unrestored by an operator's cancel is not told as a failed restore: its
    /// event says the run was cancelled (a site whose own job failed still says failed).
    @Test func aCancelledRunsSitesSayTheRunWasCancelled() async throws {
        let inbox = try Inbox()
        let fx = try await DRFixture(sites: 3, planExtra: """
            notify: ["\(inbox.script)"]
            waves:
              - { sites: 1, gate: { max_failures: 0 } }
              - { sites: rest }
            """)
        try Self.damageAcmeContacts(fx)
        let dispatcher = NotificationDispatcher(ledger: fx.ledger, logger: Logger(label: "test"), plan: { _ in fx.plan })
        let events = fx.bus.subscribe()
        let created = try await fx.engine.create(RunRequest(plan: fx.plan, mode: .restore))
        let control = RunControl()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await dispatcher.run(events, since: fx.clock.now()) }
            group.addTask { _ = try await fx.engine.execute(runId: created.run.id, plan: fx.plan, control: control) }
            try await waitUntil { control.isHalted }
            control.cancel(by: "uid 0")
            try await waitUntil { inbox.siteEvents().count == 3 }
            group.cancelAll()
        }
        #expect(inbox.siteEvents() == ["site.failed acme: site acme failed: 0 of 2 products restored",
                                       "site.failed globex: site globex not restored: the run was cancelled: 0 of 2 products restored",
                                       "site.failed initech: site initech not restored: the run was cancelled: 0 of 2 products restored"],
                "\(inbox.siteEvents())")
    }

    /// A hook that tells customers never announces an exercise's sites as restored: they were
    /// restored into the sandbox, and production is as it was.
    @Test func anExercisesSitesAreRehearsedNotRestored() async throws {
        let inbox = try Inbox()
        let fx = try await DRFixture(sites: 2, planExtra: "notify: [\"\(inbox.script)\"]")
        let dispatcher = NotificationDispatcher(ledger: fx.ledger, logger: Logger(label: "test"), plan: { _ in fx.plan })
        let events = fx.bus.subscribe()
        let created = try await fx.engine.create(RunRequest(plan: fx.plan, mode: .exercise))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await dispatcher.run(events, since: fx.clock.now()) }
            _ = try await fx.engine.execute(runId: created.run.id, plan: fx.plan, control: RunControl())
            try await waitUntil { inbox.siteEvents().count == 2 }
            group.cancelAll()
        }
        #expect(inbox.siteEvents() == ["site.rehearsed acme: exercise: site acme restored in the sandbox: 2 of 2 products; production is untouched",
                                       "site.rehearsed globex: exercise: site globex restored in the sandbox: 2 of 2 products; production is untouched"],
                "\(inbox.siteEvents())")
    }
}
