import Foundation

/// Gathers what a report needs from the ledger: the run, its jobs, all its events, and for
/// exercises the plan's earlier exercises (for the trend).
public enum ReportBuilder {
    public static func build(runId: String, ledger: any Ledger, now: Date) async throws -> RunReport {
        guard let run = try await ledger.run(id: runId) else { throw ControlError(.notFound, "no run \(runId) in the ledger; see `lifeboat runs`") }
        let jobs = try await ledger.jobs(runId: runId)
        var events: [LedgerEvent] = []
        var after: Int64 = 0
        while true {
            let page = try await ledger.events(runId: runId, afterId: after, limit: 5_000)
            events += page
            guard page.count == 5_000, let last = page.last?.id else { break }
            after = last
        }
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
        try report.render(.html).write(toFile: html, atomically: true, encoding: .utf8)
        try writeJSON(report, to: "\(directory)/\(runId).json")
        return html
    }

    /// The JSON report written as it is rendered, a megabyte at a time, into a temporary file
    /// renamed over `path` at the end (as `atomically:` does): neither the encoder's tree of the
    /// whole document nor its text is ever in memory at once.
    static func writeJSON(_ report: RunReport, to path: String) throws {
        let temporary = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: nil),
              let file = FileHandle(forWritingAtPath: temporary) else {
            throw FileSystemError(path: temporary, operation: "create", errno: errno)
        }
        do {
            var buffer = ""
            try report.renderJSON { piece in
                buffer += piece
                if buffer.utf8.count >= 1 << 20 {
                    try file.write(contentsOf: Data(buffer.utf8))
                    buffer = ""
                }
            }
            try file.write(contentsOf: Data(buffer.utf8))
            try file.close()
            guard rename(temporary, path) == 0 else { throw FileSystemError(path: path, operation: "rename", errno: errno) }
        } catch {
            try? file.close()
            unlink(temporary)
            throw error
        }
    }
}
