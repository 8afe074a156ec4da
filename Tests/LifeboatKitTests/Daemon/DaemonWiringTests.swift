import Foundation
import Logging
import Testing
@testable import LifeboatKit

/// The daemon as `makeDaemon` wires it — runtime, run manager, control server, finisher — and the
/// runtime `lifeboat run` builds, each doing a run end to end. Several daemons run at once here,
/// their sockets side by side in one directory.
@Suite struct DaemonWiringTests {
    /// Runs blocking client calls on a thread of their own, off the tasks the daemon needs.
    func offThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
        }
    }

    @Test func theBuiltDaemonRestoresThroughItsSocket() async throws {
        let fx = try DaemonFixture()
        let daemon = fx.daemon
        let socket = fx.config.socket.path
        let (final, shown, status) = try await daemon.serving {
            try await offThread { () throws -> (RunDetail?, RunDetail?, DaemonStatus) in
                let client = try ControlClient(path: socket)
                let status = try client.call(Control.Status())
                guard let run = try client.call(Control.RunStart(plan: "main", mode: .restore)).run else { return (nil, nil, status) }
                // As `--follow` watches: the final line without its jobs, each job's latest state
                // kept from the snapshot and the events instead.
                var kept: [Int64: JobRecord] = [:]
                var final: RunDetail?
                try client.stream(Control.RunWatch(run: run.id, doneJobs: false)) { line, _ in
                    for job in line.snapshot?.jobs ?? [] { kept[job.id!] = job }
                    if let job = line.event?.job { kept[job.id!] = job }
                    final = line.done.flatMap { $0.jobs.isEmpty ? $0.completed(with: kept.values) : nil }
                    return line.done == nil
                }
                return (final, try client.call(Control.RunShow(run: run.id)), status)
            }
        }
        #expect(status.socket == socket && status.plans == 1 && status.runs.isEmpty)
        let detail = try #require(final, "the events' jobs sum up to the final summary")
        #expect(detail.jobs == shown?.jobs && detail.summary == shown?.summary)
        #expect(detail.run.state == .succeeded, "\(detail.run)")
        #expect(detail.jobs.count == 4 && detail.jobs.allSatisfy { $0.state == .succeeded })
        #expect(!detail.active)
        #expect(fx.executor.records.count == 4)
        // The finisher is wired: the run's report was written as it ended.
        #expect(FileManager.default.fileExists(atPath: fx.config.reportsDirectory + "/\(detail.run.id).html"))
        // The socket is gone with the daemon.
        #expect(!FileManager.default.fileExists(atPath: socket))
    }

    /// A watch holds a subscription on the daemon's event bus while it waits for news. Each one
    /// ends with its answer: a watch of an unknown or finished run subscribes for nothing, and
    /// the watch of a halted run (no news for as long as it stays halted) ends when its client
    /// hangs up, not when the run ends.
    @Test func aWatchEndsWithItsAnswerOrItsClient() async throws {
        let fx = try DaemonFixture()
        fx.dir.write("plans/main.yaml", """
            name: main
            snapshots: ../store
            target: ../out/{site}/{product}
            products: [{ name: contacts }, { name: jira, after: [contacts] }]
            waves:
              - { sites: 1, gate: { max_failures: 0 } }
              - { sites: rest }
            """)
        // Whichever site is the canary fails it: the run halts after its first wave.
        for site in ["acme", "globex"] { fx.executor.fail("\(site)/contacts", with: [JobError(.integrity, "checksum mismatch")]) }
        let daemon = fx.daemon
        let socket = fx.config.socket.path
        let bus = daemon.services.runtime.bus
        try await daemon.serving {
            let baseline = bus.subscriberCount
            /// Waits (up to 10 s) for the bus to be back at its count before the watches.
            func settled() async throws -> Int {
                for _ in 0..<200 where bus.subscriberCount != baseline { try await Task.sleep(for: .milliseconds(50)) }
                return bus.subscriberCount
            }
            // Watches the run to its first line, then hangs up (the client's socket closes).
            func watchAndHangUp(_ run: String) async throws -> String {
                try await offThread {
                    let client = try ControlClient(path: socket)
                    var first = ""
                    do {
                        try client.stream(Control.RunWatch(run: run, doneJobs: false)) { line, _ in
                            first = line.snapshot?.run.state.rawValue ?? line.done?.run.state.rawValue ?? "?"
                            return false
                        }
                    } catch {
                        first = "\(error)"
                    }
                    return first
                }
            }

            #expect(try await watchAndHangUp("no-such-run").contains("no-such-run"))
            #expect(try await settled() == baseline, "a watch of an unknown run left its subscription")

            let run = try await offThread { () throws -> String? in
                let client = try ControlClient(path: socket)
                _ = try client.call(Control.Reload())  // the plan with waves, written after the daemon loaded the first
                return try client.call(Control.RunStart(plan: "main", mode: .restore)).run?.id
            }
            let id = try #require(run)
            var state = ""
            for _ in 0..<200 where state != "halted" {
                state = try await offThread { try ControlClient(path: socket).call(Control.RunShow(run: id)).run.state.rawValue }
                if state != "halted" { try await Task.sleep(for: .milliseconds(50)) }
            }
            try #require(state == "halted")
            for _ in 0..<5 { #expect(try await watchAndHangUp(id) == "halted") }
            #expect(try await settled() == baseline, "watches of a halted run outlived their clients")

            _ = try await offThread { try ControlClient(path: socket).call(Control.RunCancel(run: id)) }
            for _ in 0..<200 where state == "halted" || state == "cancelling" {
                try await Task.sleep(for: .milliseconds(50))
                state = try await offThread { try ControlClient(path: socket).call(Control.RunShow(run: id)).run.state.rawValue }
            }
            #expect(state == "cancelled")
            #expect(try await watchAndHangUp(id) == "cancelled")
            #expect(try await settled() == baseline, "a watch of a finished run left its subscription")
        }
        // The fixture's directories (plans, state) stay until the daemon is gone.
        withExtendedLifetime(fx) {}
    }

    /// Daemons whose sockets share a directory (and, here, a process id) each bind a temporary
    /// socket of their own before publishing it: each is reached at its own path. With one
    /// temporary name per process, one daemon's bind removed the other's socket and its rename
    /// then published the other's socket under its own name.
    @Test(.timeLimit(.minutes(1))) func daemonsSharingASocketDirectoryEachServeTheirOwn() async throws {
        let fixtures = try (0..<4).map { _ in try DaemonFixture() }
        let answered = try await withThrowingTaskGroup(of: (String, String).self) { group in
            for fx in fixtures {
                group.addTask {
                    let socket = fx.config.socket.path
                    return try await fx.daemon.serving {
                        (socket, try await offThread { try ControlClient(path: socket).call(Control.Status()).socket })
                    }
                }
            }
            return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        #expect(answered.count == 4 && answered.allSatisfy { $0.key == $0.value }, "\(answered)")
        let directory = URL(fileURLWithPath: fixtures[0].config.socket.path).deletingLastPathComponent().path
        let names = Set((0..<64).map { _ in (try? SocketFile.temporaryName(for: directory + "/x.sock")) ?? "" })
        #expect(names.count == 64 && !names.contains(""))
        withExtendedLifetime(fixtures) {}
    }

    /// A daemon whose socket cannot listen stops and says why, rather than leaving whoever waits
    /// for its socket (the demo, tests) waiting for good.
    @Test(.timeLimit(.minutes(1))) func aDaemonThatCannotListenSaysWhy() async throws {
        let fx = try DaemonFixture()
        let socket = fx.config.socket.path
        _ = FileManager.default.createFile(atPath: socket, contents: Data("not a socket".utf8))
        defer { unlink(socket) }
        await #expect {
            try await fx.daemon.serving { Issue.record("served although its socket path is a file") }
        } throws: { error in
            "\(error)".contains("\(socket) exists and is not a socket")
        }
        #expect(try String(contentsOfFile: socket, encoding: .utf8) == "not a socket")
    }

    /// `lifeboat run`'s runtime: the ledger given, the bus, the finisher and the guardrails.
    @Test func theInProcessRuntimeRunsAPlan() async throws {
        let fx = try EngineFixture(sites: ["acme", "globex"], products: "  - name: contacts\n  - name: jira\n    after: [contacts]")
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        try FileSystem.createDirectories(fx.dir.file("state"), mode: 0o700)
        let runtime = try LifeboatRuntime(.init(ledger: .sqlite(path: fx.dir.file("state/ledger.sqlite")), guarded: fx.dir.file("state"),
                                                reportsDirectory: fx.dir.file("state/reports")),
                                          plans: { [fx.plan] }, executor: FakeExecutor(holdMilliseconds: 1), logger: logger)
        #expect(runtime.ledgerService == nil)
        let events = runtime.bus.subscribe()
        let created = try await runtime.engine.create(RunRequest(plan: fx.plan, mode: .restore))
        let final = try await runtime.engine.execute(runId: created.run.id, plan: fx.plan)
        #expect(final.state == .succeeded)
        #expect(try await runtime.ledger.jobs(runId: final.id).allSatisfy { $0.state == .succeeded })
        var kinds: [RunEvent.Kind] = []
        for await event in events {
            kinds.append(event.kind)
            if event.kind == .finished { break }
        }
        #expect(kinds.contains(.job) && kinds.last == .finished)
        #expect(FileManager.default.fileExists(atPath: fx.dir.file("state/reports/\(final.id).json")))
    }
}
