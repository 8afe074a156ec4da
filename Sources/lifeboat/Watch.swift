import Foundation
import LifeboatKit

/// `watch` and `--follow`: streams a run's events and draws its progress — redrawn in place on a
/// terminal, one line per change otherwise.
enum Watch {
    /// Follows a run to its end. Throws exit 1 when it did not succeed (with `--json`, said as
    /// JSON on standard error, as every failure is).
    /// A gate's halt is said at once, in words, and following goes on (a colleague may resume from
    /// another terminal); `exitOnHalt` ends there with exit 4 instead.
    /// `quiet` prints nothing at all (the demo's setup run).
    static func follow(_ runId: String, client: ControlClient, json: Bool, quiet: Bool = false, exitOnHalt: Bool = false) throws {
        // A terminal that cannot move its cursor (`TERM=dumb`: an editor's shell, some CI) gets
        // the one-line-per-event form a file gets.
        let interactive = isatty(STDOUT_FILENO) == 1 && ProcessInfo.processInfo.environment["TERM"] != "dumb" && !json && !quiet
        let plain = !interactive && !json && !quiet
        var view: WatchView?
        var final: RunDetail?
        var lastDraw = Date.distantPast
        var toldHalt = false
        var stoppedAtHalt = false
        var askShow = false
        // The final line without its jobs, unless printed as it is: the events gave each job's
        // latest state, checked against the final summary below.
        do {
            try stream(Control.RunWatch(run: runId, doneJobs: json ? nil : false), client: client, quiet: quiet) { line, wire in
                if json && !quiet { try printJSONLine(try wire()) }
                if let snapshot = line.snapshot {
                    view = WatchView(detail: snapshot)
                    if plain, let waiting = snapshot.waiting { Swift.print("\(Timestamp.iso(Date()))  waiting   \(waiting.message)") }
                } else if let event = line.event {
                    view?.apply(event)
                    if plain { ProgressLines.print(event) }
                } else if var done = line.done {
                    if done.jobs.isEmpty, done.summary.overall.jobs > 0 {
                        // Each job's latest state, as the events left it: whole if it sums up to the
                        // daemon's summary (another host's jobs may not show in this one's events).
                        if let whole = done.completed(with: view?.jobs.values ?? [:].values) { done = whole } else { askShow = true }
                    }
                    final = done
                    if askShow { view?.run = done.run } else { view?.replace(with: done) }
                }
                // Said once per halt; a resume ends it, and a later gate may halt again.
                let halted = line.done == nil && view?.run.state == .halted
                if halted, !toldHalt, let view {
                    if plain {
                        for text in HaltNotice.lines(run: view.run, jobs: Array(view.jobs.values)) { Swift.print(text) }
                        if !exitOnHalt { Swift.print("  (still following: a resume or cancel from any terminal shows here)") }
                    }
                    if exitOnHalt { stoppedAtHalt = true }
                }
                toldHalt = halted
                if interactive, view != nil, stoppedAtHalt || line.done != nil || Date().timeIntervalSince(lastDraw) > 0.2 {
                    view!.draw()
                    lastDraw = Date()
                }
                return line.done == nil && !stoppedAtHalt
            }
        } catch let error as ControlClient.Unreachable where error.closed && view != nil {
            // The daemon ends its streams when it stops: where the run stands then is what a
            // follower needs, not a connection error.
            throw CLIFailure(code: .unreachable, message: "lifeboatd closed the stream before run \(runId) ended, as it does when it stops or restarts; "
                             + "a run a stop interrupts is recorded interrupted and resumes at the daemon's next start (with a ledger several hosts share, "
                             + "it goes on on the other hosts): follow it again then, or on another host (lifeboat watch \(runId)), "
                             + "or see where it stands (lifeboat show \(runId))")
        }
        if stoppedAtHalt {
            throw CLIFailure(code: .halted, message: quiet ? "" : "run \(runId) is halted at a wave gate (--exit-on-halt); it waits for `lifeboat resume \(runId)` or `lifeboat cancel \(runId)`")
        }
        // A stop drains its runs and tells its followers so before it closes their streams.
        if let final, final.run.state == .interrupted {
            throw CLIFailure(code: .unreachable, message: quiet ? "" : "run \(runId) interrupted by lifeboatd's stop; it resumes at the daemon's next start: "
                             + "follow it again then (lifeboat watch \(runId)), or see where it stands (lifeboat show \(runId))")
        }
        guard var final, !quiet else { return }
        if askShow { final = try client.call(Control.RunShow(run: runId)) }
        if !json { SummaryPrinter.print(run: final.run, jobs: final.jobs) }
        if final.run.state != .succeeded {
            throw CLIFailure(code: .failed, message: "run \(runId) \(final.run.state.rawValue)")
        }
    }

    /// The watch's stream. A shared ledger that does not answer this host (a restart, a
    /// failover) is waited for, as the run waits for it: said once, asked again every second on
    /// a new connection, and said when the daemon answers again.
    private static func stream(_ watch: Control.RunWatch, client: ControlClient, quiet: Bool,
                               onResult: (WatchEvent, _ wire: () throws -> JSONValue) throws -> Bool) throws {
        var client = client
        var waitSaid = false
        while true {
            do {
                try client.stream(watch) { line, wire in
                    if waitSaid, !quiet { FileHandle.standardError.write(Data("lifeboat: following run \(watch.run) again\n".utf8)) }
                    waitSaid = false
                    return try withoutActuallyEscaping(wire) { try onResult(line, $0) }
                }
                return
            } catch let refused as ControlClient.Refused where refused.error.code == .unavailable {
                if !waitSaid, !quiet {
                    FileHandle.standardError.write(Data("lifeboat: \(refused.error.message); waiting to follow run \(watch.run) (Ctrl-C stops watching, not the run)\n".utf8))
                }
                waitSaid = true
                Thread.sleep(forTimeInterval: 1)
                client = try ControlClient(path: client.path)
            }
        }
    }

    static func printJSONLine(_ value: JSONValue) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        try writeOutput(try encoder.encode(value) + Data("\n".utf8))
    }
}

/// The state a watcher draws: jobs by id, the run, progress.
struct WatchView {
    var run: RunRecord
    var jobs: [Int64: JobRecord]
    var readBytes: [Int64: Int64] = [:]
    var linesDrawn = 0
    /// Why the run waits for a slot, as its snapshot said; gone once it starts.
    var waiting: RunWait?

    init(detail: RunDetail) {
        run = detail.run
        waiting = detail.waiting
        jobs = Dictionary(detail.jobs.compactMap { job in job.id.map { ($0, job) } }, uniquingKeysWith: { $1 })
    }

    mutating func replace(with detail: RunDetail) {
        let drawn = linesDrawn
        self = WatchView(detail: detail)
        linesDrawn = drawn
    }

    mutating func apply(_ event: RunEvent) {
        if let run = event.run { self.run = run }
        if run.state != .pending { waiting = nil }
        if let job = event.job, let id = job.id {
            jobs[id] = job
            if let read = event.archiveBytesRead { readBytes[id] = read }
            if job.state.isFinal { readBytes[id] = nil }
        }
    }

    func bar(_ done: Int, _ total: Int, width: Int = 24) -> String {
        let filled = total == 0 ? width : min(width, done * width / max(total, 1))
        return "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "]"
    }

    /// Renders the current state (without moving the cursor).
    func render(now: Date = Date()) -> [String] {
        let all = Array(jobs.values)
        let done = all.filter { $0.state.isFinal }
        let failed = all.filter { $0.state == .failed || $0.state == .skipped }.count
        var lines = ["run \(run.id) — \(run.mode.rawValue) of \(run.plan) — \(run.state.rawValue)" + (run.note.map { ": \($0)" } ?? "")]
        lines += HaltNotice.lines(run: run, jobs: all, maxJobs: 5)
        if let waiting { lines.append("  " + waiting.message) }
        for wave in Set(all.map(\.wave)).sorted() {
            let jobsOfWave = all.filter { $0.wave == wave }
            let finished = jobsOfWave.filter { $0.state.isFinal }.count
            let bad = jobsOfWave.filter { $0.state == .failed || $0.state == .skipped }.count
            lines.append("  wave \(wave + 1)".padding(toLength: 16, withPad: " ", startingAt: 0)
                         + "\(bar(finished, jobsOfWave.count)) \(finished)/\(jobsOfWave.count)" + (bad > 0 ? "  \(bad) failed" : ""))
        }
        for product in Set(all.map(\.product)).sorted() {
            let jobsOfProduct = all.filter { $0.product == product }
            let finished = jobsOfProduct.filter { $0.state.isFinal }.count
            let running = jobsOfProduct.filter { $0.state.isActive }.count
            lines.append("  \(product)".padding(toLength: 16, withPad: " ", startingAt: 0)
                         + "\(bar(finished, jobsOfProduct.count)) \(finished)/\(jobsOfProduct.count)" + (running > 0 ? "  \(running) restoring" : ""))
        }
        // Throughput, and the finish forecast from the pace so far against the RTO objective.
        let bytes = done.reduce(Int64(0)) { $0 + $1.bytes }
        // A halted run makes no progress: a finish forecast would mislead.
        if let started = run.startedAt, run.state != .halted {
            let elapsed = max(0.001, now.timeIntervalSince(started))
            var line = "  \(ByteSize.format(Int64(Double(bytes) / elapsed)))/s, \(done.count)/\(all.count) jobs, \(failed) failed"
            let forecast = RTOForecast(run: run, totalJobs: all.count, finishedJobs: done.count, now: now)
            if forecast.remainingJobs > 0, let finish = forecast.finishAt {
                line += ", ETA \(DurationSpec.format(seconds: finish.timeIntervalSince(now)))"
                if forecast.objectiveSeconds != nil { line += forecast.missesObjective ? " — RTO FORECAST MISS" : " — RTO on track" }
            }
            lines.append(line)
            if forecast.remainingJobs > 0, forecast.finishAt != nil { lines.append("  " + forecast.summary) }
        }
        return lines
    }

    /// Redraws in place: moves up over the previous drawing and clears each line.
    mutating func draw() {
        let lines = render()
        var out = ""
        if linesDrawn > 0 { out += "\u{1B}[\(linesDrawn)F" }
        for line in lines { out += "\u{1B}[2K" + line + "\n" }
        // Clear whatever an earlier, longer drawing left below.
        out += "\u{1B}[J"
        StandardOutput.write(Data(out.utf8))
        linesDrawn = lines.count
    }
}
