import Foundation

/// The daemon's read-only answers, built once and served both on the control socket (the CLI's
/// `--json`) and over HTTP (`/api/v1/`), so the two always carry the same data.
public struct RunQueries: Sendable {
    public let context: DaemonContext

    public init(context: DaemonContext) { self.context = context }

    /// `status`: the daemon, runs going, throughput.
    public func status() async throws -> ControlHandler.Status {
        var runs: [ControlHandler.RunStatus] = []
        // Runs going on here are answered from memory (the board); queued ones from the ledger.
        let board = context.runs.engine.environment.board
        for active in context.runs.activeRuns {
            let run: RunRecord
            let counts: [JobState: Int]
            if let live = board.run(active.id) {
                (run, counts) = live
            } else {
                guard let recorded = try await context.ledger.run(id: active.id) else { continue }
                run = recorded
                counts = try await context.ledger.jobCounts(runId: active.id)
            }
            let total = counts.values.reduce(0, +)
            let done = counts.filter { $0.key.isFinal }.values.reduce(0, +)
            runs.append(ControlHandler.RunStatus(id: run.id, plan: run.plan, mode: run.mode, state: run.state, jobs: total, done: done,
                                                 counts: Dictionary(uniqueKeysWithValues: counts.map { ($0.key.rawValue, $0.value) }), note: run.note,
                                                 forecast: RTOForecast(run: run, totalJobs: total, finishedJobs: done, now: context.clock.now()),
                                                 waiting: context.runs.wait(of: run.id)))
        }
        let now = context.clock.now()
        // Throughput: this daemon's from memory; with a shared ledger, the fleet's.
        let minuteAgo = now.addingTimeInterval(-60)
        let recent = context.ledger is any SharedLedger ? try await context.ledger.bytesRestored(since: minuteAgo) : board.bytesRestored(since: minuteAgo)
        var hosts: [HostRecord]?
        if let shared = context.ledger as? any SharedLedger { hosts = try await shared.hosts() }
        return ControlHandler.Status(version: LifeboatVersion.string, pid: getpid(), startedAt: context.startedAt,
                                     uptimeSeconds: now.timeIntervalSince(context.startedAt), socket: context.config.socket.path,
                                     ledger: context.config.ledgerDescription, plans: context.plans.plans.count, planProblems: context.plans.problems,
                                     runs: runs, bytesPerSecond: Double(recent) / 60,
                                     host: hosts == nil ? nil : context.config.hostName, hosts: hosts)
    }

    /// `run.list`: recent runs, newest first.
    public func runs(limit: Int) async throws -> [RunRecord] {
        try await context.ledger.runs(limit: max(1, min(limit, 10_000)))
    }

    func run(_ runId: String) async throws -> RunRecord {
        guard let run = try await context.ledger.run(id: runId) else { throw ControlError(.notFound, "no run \(runId) in the ledger; see `lifeboat runs`") }
        return run
    }

    /// `run.show`: a run with all its jobs and its summary.
    public func detail(_ runId: String) async throws -> ControlHandler.RunDetail {
        let run = try await run(runId)
        let jobs = try await context.ledger.jobs(runId: runId)
        return ControlHandler.RunDetail(run: run, jobs: jobs, summary: RunSummary(run: run, jobs: jobs), active: context.runs.isActive(runId),
                                        waiting: context.runs.wait(of: runId))
    }

    /// `run.sites`: every site of a run, its state, products done and restored-at or ETA.
    public func sites(_ runId: String) async throws -> SiteReport {
        let run = try await run(runId)
        return SiteReport(run: run, jobs: try await context.ledger.jobs(runId: runId), now: context.clock.now())
    }

    /// One page of a run's jobs, optionally of one state.
    public struct JobPage: Codable, Sendable {
        public var run: String
        /// Jobs matching the filter, over all pages.
        public var total: Int
        public var offset: Int
        public var limit: Int
        public var jobs: [JobRecord]
    }

    public static let maxPage = 500

    public func jobs(_ runId: String, offset: Int, limit: Int, state: JobState?) async throws -> JobPage {
        _ = try await run(runId)
        var jobs = try await context.ledger.jobs(runId: runId)
        if let state { jobs = jobs.filter { $0.state == state } }
        let offset = max(0, offset), limit = max(1, min(limit, Self.maxPage))
        let page = offset < jobs.count ? Array(jobs[offset..<min(jobs.count, offset + limit)]) : []
        return JobPage(run: runId, total: jobs.count, offset: offset, limit: limit, jobs: page)
    }

    /// A run's ledger events after an id (0: from the start); `next` is the id to ask after next.
    public struct EventPage: Codable, Sendable {
        public var run: String
        public var after: Int64
        public var next: Int64
        public var events: [LedgerEvent]
    }

    public func events(_ runId: String, after: Int64, limit: Int) async throws -> EventPage {
        _ = try await run(runId)
        let events = try await context.ledger.events(runId: runId, afterId: max(0, after), limit: max(1, min(limit, Self.maxPage)))
        return EventPage(run: runId, after: after, next: events.last?.id ?? after, events: events)
    }

    /// What the live page shows at a glance, without every job: verdict, waves and gates,
    /// progress per product, throughput, forecast, and the first failures with their reasons.
    public func overview(_ runId: String) async throws -> RunOverview {
        let run = try await run(runId)
        let jobs = try await context.ledger.jobs(runId: runId)
        return RunOverview(run: run, jobs: jobs, plan: context.plans.plan(named: run.plan), active: context.runs.isActive(runId),
                           now: context.clock.now())
    }

    /// The report's timeline (one bar per job, grouped by wave, the RTO objective as a line).
    public func timelineSVG(_ runId: String) async throws -> String {
        let report = try await ReportBuilder.build(runId: runId, ledger: context.ledger, now: context.clock.now())
        return TimelineSVG(report.document, layout: TimelineLayout(report.document)).render()
    }
}
