import Foundation
import Logging
import Testing
@testable import LifeboatKit

/// The daemon as `makeDaemon` wires it — runtime, run manager, control server, finisher — and the
/// runtime `lifeboat run` builds, each doing a run end to end.
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
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await daemon.group.run() }
            await daemon.server.listening.wait()
            let (final, shown, status) = try await offThread { () throws -> (RunDetail?, RunDetail?, DaemonStatus) in
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
            await daemon.group.triggerGracefulShutdown()
            try await group.waitForAll()
            #expect(status.socket == socket && status.plans == 1 && status.runs.isEmpty)
            let detail = try #require(final, "the events' jobs sum up to the final summary")
            #expect(detail.jobs == shown?.jobs && detail.summary == shown?.summary)
            #expect(detail.run.state == .succeeded, "\(detail.run)")
            #expect(detail.jobs.count == 4 && detail.jobs.allSatisfy { $0.state == .succeeded })
            #expect(!detail.active)
            #expect(fx.executor.records.count == 4)
            // The finisher is wired: the run's report was written as it ended.
            #expect(FileManager.default.fileExists(atPath: fx.config.reportsDirectory + "/\(detail.run.id).html"))
        }
        // The socket is gone with the daemon.
        #expect(!FileManager.default.fileExists(atPath: socket))
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
