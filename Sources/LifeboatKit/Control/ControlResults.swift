import Foundation

// The results of the control protocol's commands, as the daemon encodes them and the CLI reads
// them (snake_case keys, ISO-8601 times). `/api/v1/` serves the same types.

/// `status`: the daemon, its runs going, throughput.
public struct DaemonStatus: Codable, Sendable {
    /// One run going.
    public struct RunStatus: Codable, Sendable {
        public var id: String
        public var plan: String
        public var mode: RunMode
        public var state: RunState
        public var jobs: Int
        public var done: Int
        public var counts: [String: Int]
        public var note: String?
        /// When the run will finish at its measured pace, and whether that misses the RTO objective.
        public var forecast: RTOForecast
        /// Why it waits for a run slot (queued behind which runs, the limit), when it does.
        public var waiting: RunWait?
        /// With a shared ledger: the host that coordinates the run (nil while none does).
        public var coordinator: String?
    }

    public var version: String
    public var pid: Int32
    public var startedAt: Date
    public var uptimeSeconds: Double
    public var socket: String
    public var ledger: String
    public var plans: Int
    public var planProblems: [PlanRegistry.Problem]
    public var runs: [RunStatus]
    /// Bytes restored in the last minute, per second.
    public var bytesPerSecond: Double
    /// With a shared (PostgreSQL) ledger: this daemon's host name and every host of the fleet.
    public var host: String?
    public var hosts: [HostRecord]?
    /// With a shared ledger that does not answer this host: since when and why (the rest of the
    /// answer is then this host's own: its runs, its throughput; no hosts).
    public var ledgerProblem: LedgerProblem?
    /// Since when the daemon drains its runs to stop (SIGTERM); it changes nothing more, and its
    /// runs are recorded interrupted, to resume at its next start.
    public var stoppingSince: Date?
}

/// `plans`: the loaded plans and the problems with plan files.
public struct PlansResult: Codable, Sendable {
    /// One loaded plan.
    public struct PlanInfo: Codable, Sendable {
        public var name: String
        public var file: String
        public var description: String?
        public var products: [String]
        public var waves: Int
        public var snapshots: String
        public var target: String
        public var sandbox: String?
        public var schedule: String?
        public var nextExercise: Date?
        /// Every setting as it takes effect, defaults included.
        public var settings: PlanSettings
    }

    public var plans: [PlanInfo]
    public var problems: [PlanRegistry.Problem]
}

/// `plan.check`: whether the plan is valid, its errors, and its settings as they take effect.
public struct PlanCheckResult: Codable, Sendable {
    public var ok: Bool
    public var plan: String?
    public var errors: [Diagnostic]
    public var settings: PlanSettings?
}

/// `reload`: the plans now served and the problems found.
public struct ReloadResult: Codable, Sendable {
    public var plans: [String]
    public var problems: [PlanRegistry.Problem]
}

/// `run.show`: a run with all its jobs and its summary.
public struct RunDetail: Codable, Sendable {
    public var run: RunRecord
    public var jobs: [JobRecord]
    public var summary: RunSummary
    public var active: Bool
    /// Why it waits for a run slot (queued behind which runs, the limit), when it does.
    public var waiting: RunWait?

    /// This detail with `jobs` (a watcher's latest state of each, from the events) when they sum
    /// up to exactly its summary's groups; nil when they do not (a state missed: ask `run.show`).
    /// (Its wall time comes from the run's times, which the wire gives to the millisecond.)
    public func completed(with jobs: some Collection<JobRecord>) -> RunDetail? {
        let sorted = jobs.sorted { ($0.id ?? 0) < ($1.id ?? 0) }
        let theirs = RunSummary(run: run, jobs: sorted)
        guard theirs.overall == summary.overall, theirs.products == summary.products, theirs.waves == summary.waves else { return nil }
        var detail = self
        detail.jobs = sorted
        return detail
    }
}

extension RunDetail: LongArrayResult {
    var spliceParts: (shell: RunDetail, path: [String], elements: [JobRecord])? {
        guard !jobs.isEmpty else { return nil }
        var shell = self
        shell.jobs = []
        return (shell, ["jobs"], jobs)
    }
}

/// One line of `run.watch`: the opening snapshot, an event, or the end with the final state.
public struct WatchEvent: Codable, Sendable {
    public var snapshot: RunDetail?
    public var event: RunEvent?
    public var done: RunDetail?

    init(snapshot: RunDetail) { self.snapshot = snapshot }
    init(event: RunEvent) { self.event = event }
    init(done: RunDetail) { self.done = done }
}

extension WatchEvent: LongArrayResult {
    var spliceParts: (shell: WatchEvent, path: [String], elements: [JobRecord])? {
        if let parts = snapshot?.spliceParts { return (WatchEvent(snapshot: parts.shell), ["snapshot"] + parts.path, parts.elements) }
        if let parts = done?.spliceParts { return (WatchEvent(done: parts.shell), ["done"] + parts.path, parts.elements) }
        return nil
    }
}

/// A result with a run's worth of elements (every job), which the wire encodes a chunk at a
/// time (``JSONSplice``): a watcher's opening snapshot of a 10,000-job run encoded whole took
/// the daemon 45 MiB.
protocol LongArrayResult: Encodable {
    associatedtype Element: Encodable
    /// The result with the long array emptied, that array's key path in it (as on the wire), and
    /// the array; nil when there is nothing worth splicing.
    var spliceParts: (shell: Self, path: [String], elements: [Element])? { get }
}

/// `run.cancel` and `run.resume`: the run and the state it goes to; when another host
/// coordinates the run, that host and what happens (the command went through the shared ledger).
public struct RunStateChange: Codable, Sendable {
    public var run: String
    public var state: String
    public var forwardedTo: String?
    public var note: String?

    init(run: String, state: String, forwarded: Forwarded?) {
        self.run = run
        self.state = state
        guard let forwarded else { return }
        forwardedTo = forwarded.host
        note = "run \(run) is coordinated by " + (forwarded.host.map { "host \($0)" } ?? "no live host right now (the next to take it over applies it)")
            + "; the command went through the shared ledger and applies within \(forwarded.withinSeconds) s"
    }
}

/// `report`: a run's report rendered in one format.
public struct ReportResult: Codable, Sendable {
    public var run: String
    public var format: String
    public var content: String
}

/// What `run.start` with mode `delete` answers: the resolved selection (with its token), and
/// the run when it was started (not for `dry_run`).
public struct DeleteAnswer: Codable, Sendable {
    public var dryRun: Bool
    public var selection: DeleteSelection
    public var run: RunRecord?
}
