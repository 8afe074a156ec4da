import Foundation

/// Gathers what a report needs from the ledger: the run, its jobs, all its events, and for
/// exercises the plan's earlier exercises (for the trend).
public enum ReportBuilder {
    public static func build(runId: String, ledger: any Ledger, now: Date) async throws -> RunReport {
        guard let run = try await ledger.run(id: runId) else { throw ControlError(.notFound, "no run \(runId) in the ledger; see `lifeboat runs`") }
        let jobs = try await ledger.jobs(runId: runId)
        let events = try await ledger.allEvents(runId: runId)
        var previous: [PreviousRun] = []
        if run.mode == .exercise {
            for earlier in try await ledger.runs(plan: run.plan, mode: .exercise, limit: 8)
            where earlier.id != run.id && earlier.createdAt < run.createdAt && earlier.state.isFinal {
                previous.append(PreviousRun(run: earlier, jobs: try await ledger.jobs(runId: earlier.id)))
                if previous.count == 5 { break }
            }
        }
        return RunReport(run: run, jobs: jobs, events: events, previous: previous, generatedAt: now)
    }

    /// Writes `<directory>/<run>.html` and `<run>.json`; returns the HTML path.
    @discardableResult
    public static func write(runId: String, ledger: any Ledger, directory: String, now: Date) async throws -> String {
        let report = try await build(runId: runId, ledger: ledger, now: now)
        try FileSystem.createDirectories(directory, mode: 0o750)
        let html = "\(directory)/\(runId).html"
        // Each file is blocking work (for 10,000 jobs about 0.2 s of HTML and 0.5 s of JSON):
        // side by side on the blocking pool, the run's end waits for the longer only, and the
        // cooperative threads stay free for the socket meanwhile.
        let flag = CancellationFlag()
        async let json: Void = runBlocking(flag: flag) {
            try report.jsonData().write(to: URL(fileURLWithPath: "\(directory)/\(runId).json"), options: .atomic)
        }
        try await runBlocking(flag: flag) { try report.render(.html).write(toFile: html, atomically: true, encoding: .utf8) }
        try await json
        return html
    }
}
