import Foundation
import Testing
@testable import LifeboatKit

/// The CLI's client reads what the daemon writes however it is cut into reads: a line far larger
/// than one read, lines split across reads, several lines in one; each answer decoded straight from
/// its line, a refusal thrown as the daemon's error.
@Suite struct ControlClientTests {
    @Test func answersAreReadWholeHoweverTheyArrive() throws {
        // About 250 KB: several of the client's 64 KiB reads.
        let plans = (0..<20_000).map { "plan-\($0)" }
        let big = ControlResponse.success(id: .number(1), ReloadResult(plans: plans, problems: []))
        let problem = PlanRegistry.Problem(file: "/etc/lifeboat/plans/x.yaml", errors: ["line 3: bad"], keptPrevious: "x")
        let small = ControlResponse.success(id: .number(2), ReloadResult(plans: ["one"], problems: [problem]))
        let refusal = ControlResponse.failure(id: .number(3), ControlError(.notFound, "no run x in the ledger"))
        let misfit = ControlResponse.success(id: .number(4), ["plans": 7])
        // The big line in 1,000-byte writes but its last byte, which goes with the whole small
        // line and the first half of the refusal; then the rest.
        var pieces = stride(from: 0, to: big.count - 1, by: 1_000).map { big[$0..<min($0 + 1_000, big.count - 1)] }
        pieces.append(big.suffix(1) + small + refusal.prefix(refusal.count / 2))
        pieces.append(refusal.dropFirst(refusal.count / 2) + misfit)
        let daemon = try OneConnectionDaemon(writing: pieces.map { Data($0) })

        let client = try ControlClient(path: daemon.path)
        #expect(try client.call(Control.Reload()).plans == plans)
        let second = try client.call(Control.Reload())
        #expect(second.plans == ["one"])
        #expect(second.problems == [problem])
        #expect { try client.call(Control.Reload()) } throws: { error in
            let refused = error as? ControlClient.Refused
            return refused?.error.code == .notFound && refused?.error.message == "no run x in the ledger"
        }
        // A result of another shape is an error, not a result made up: not lifeboatd's answer.
        #expect { try client.call(Control.Reload()) } throws: { error in
            (error as? ControlClient.Unreachable)?.reason.contains("the answer does not read as lifeboatd's") == true
        }
    }
}

/// A watcher that left the final line's jobs out uses its own only when they sum up to the
/// daemon's summary: a state missed (another host's job, an event not seen) asks `run.show`.
@Suite struct WatchCompletionTests {
    @Test func keptJobsCountOnlyWhenTheySumUpToTheSummary() {
        let t0 = Date(timeIntervalSince1970: 1_700_000_000)
        let run = RunRecord(id: "r1", plan: "p", planPath: nil, mode: .restore, declaredAt: t0, incidentAt: t0, asOf: t0, createdAt: t0,
                            startedBy: "test", rtoObjectiveSeconds: nil, rpoObjectiveSeconds: nil, totalWaves: 1)
        let jobs = (1...4).map { i -> JobRecord in
            var job = JobRecord(runId: "r1", site: "s\(i)", product: i % 2 == 0 ? "jira" : "contacts", wave: 0, priority: 0, productOrder: 0, destination: "/d/\(i)")
            job.id = Int64(i)
            job.state = i == 4 ? .failed : .succeeded
            job.bytes = Int64(100 * i)
            job.rtoSeconds = Double(i)
            return job
        }
        let done = RunDetail(run: run, jobs: [], summary: RunSummary(run: run, jobs: jobs), active: false)
        #expect(done.completed(with: jobs.reversed())?.jobs == jobs)
        var stale = jobs
        stale[1].state = .restoring
        #expect(done.completed(with: stale) == nil)
        #expect(done.completed(with: jobs.dropLast()) == nil)
        var changed = jobs
        changed[2].rtoSeconds = 3.5
        #expect(done.completed(with: changed) == nil)
    }
}

/// A stand-in for the daemon on a Unix socket: takes one connection and writes `pieces` to it,
/// a little apart, so that the client's reads end where the pieces do.
private final class OneConnectionDaemon: Sendable {
    let path: String
    private let directory: URL

    init(writing pieces: [Data]) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("lifeboat-client-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("sock").path
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0, var address = UnixAddress(path),
              address.withSockaddr({ bind(listener, $0, $1) }) == 0, listen(listener, 1) == 0 else {
            throw POSIXError(.init(rawValue: errno) ?? .EIO)
        }
        Thread.detachNewThread {
            let connection = accept(listener, nil, nil)
            close(listener)
            guard connection >= 0 else { return }
            for piece in pieces {
                piece.withUnsafeBytes { raw in
                    var offset = 0
                    while offset < raw.count {
                        let n = send(connection, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                        if n <= 0 { return }
                        offset += n
                    }
                }
                usleep(500)
            }
            // Held open until the client is done with it.
            var byte: UInt8 = 0
            while recv(connection, &byte, 1, 0) > 0 {}
            close(connection)
        }
    }

    deinit { try? FileManager.default.removeItem(at: directory) }
}
