import Foundation

/// The daemon's read-only answers, built once and served both on the control socket (the CLI's
/// `--json`) and over HTTP (`/api/v1/`), so the two always carry the same data.
public struct RunQueries: Sendable {
    public let services: ControlServices

    public init(services: ControlServices) { self.services = services }

    /// `status`: the daemon, runs going, throughput. With a shared ledger that does not answer
    /// this host (or not within `statusPatience`), it answers from this host's memory and says so.
    public func status() async throws -> DaemonStatus {
        guard let shared = services.ledger as? any SharedLedger else {
            // One host's SQLite ledger reads on while its writes wait (locked, its disk full): said.
            var status = try await status(ledger: services.ledger)
            status.ledgerProblem = (services.ledger as? SQLiteLedger)?.problem
            return status
        }
        if let problem = shared.problem { return status(without: problem) }
        let started = Date()
        if let answer = try await valueWithin(seconds: Self.statusPatience, { try await self.status(ledger: shared) }) { return answer }
        return status(without: shared.problem
            ?? LedgerProblem(since: started, reason: "status's reads had no answer within \(Int(Self.statusPatience)) s, "
                             + "while the database answers other calls (a lock held by another session?)"))
    }

    /// How long `status` waits for the ledger before it answers without it.
    static let statusPatience = 3.0

    private func status(ledger: any Ledger) async throws -> DaemonStatus {
        var runs: [DaemonStatus.RunStatus] = []
        let shared = ledger as? any SharedLedger
        // Runs going on here are answered from memory (the board); queued ones from the ledger.
        let board = services.runtime.engine.environment.board
        let here = services.runs.activeRuns
        for active in here {
            var status: DaemonStatus.RunStatus
            if let live = board.run(active.id) {
                status = runStatus(live.run, counts: live.counts)
            } else if let recorded = try await ledger.run(id: active.id) {
                status = runStatus(recorded, counts: try await ledger.jobCounts(runId: active.id))
            } else {
                continue
            }
            if shared != nil { status.coordinator = services.identity.host }
            runs.append(status)
        }
        // The ledger's other unfinished runs: with a shared ledger, the fleet's, and who
        // coordinates each; on one host, those it could not resume (their note says why).
        let ids = Set(here.map(\.id))
        for run in try await ledger.unfinishedRuns() where !ids.contains(run.id) {
            var status = runStatus(run, counts: try await ledger.jobCounts(runId: run.id))
            if let shared { status.coordinator = try await shared.coordinator(of: run.id) }
            runs.append(status)
        }
        // Throughput: this daemon's from memory; with a shared ledger, the fleet's.
        let minuteAgo = services.clock.now().addingTimeInterval(-60)
        let recent = shared == nil ? board.bytesRestored(since: minuteAgo) : try await ledger.bytesRestored(since: minuteAgo)
        return daemonStatus(runs: runs, bytesPerSecond: Double(recent) / 60, hosts: try await shared?.hosts(), ledgerProblem: nil)
    }

    /// What this host knows without the ledger: the runs going on here, its own throughput.
    func status(without problem: LedgerProblem?) -> DaemonStatus {
        let board = services.runtime.engine.environment.board
        let runs = services.runs.activeRuns.compactMap { active in board.run(active.id).map { runStatus($0.run, counts: $0.counts) } }
        let recent = board.bytesRestored(since: services.clock.now().addingTimeInterval(-60))
        return daemonStatus(runs: runs, bytesPerSecond: Double(recent) / 60, hosts: nil, ledgerProblem: problem)
    }

    private func runStatus(_ run: RunRecord, counts: [JobState: Int]) -> DaemonStatus.RunStatus {
        let total = counts.values.reduce(0, +)
        let done = counts.filter { $0.key.isFinal }.values.reduce(0, +)
        return DaemonStatus.RunStatus(id: run.id, plan: run.plan, mode: run.mode, state: run.state, jobs: total, done: done,
                                      counts: Dictionary(uniqueKeysWithValues: counts.map { ($0.key.rawValue, $0.value) }), note: run.note,
                                      forecast: RTOForecast(run: run, totalJobs: total, finishedJobs: done, now: services.clock.now()),
                                      waiting: services.runs.wait(of: run.id))
    }

    private func daemonStatus(runs: [DaemonStatus.RunStatus], bytesPerSecond: Double, hosts: [HostRecord]?, ledgerProblem: LedgerProblem?) -> DaemonStatus {
        let identity = services.identity
        let now = services.clock.now()
        let shared = services.ledger is any SharedLedger
        return DaemonStatus(version: LifeboatVersion.string, pid: getpid(), startedAt: identity.startedAt,
                            uptimeSeconds: now.timeIntervalSince(identity.startedAt), socket: identity.socket,
                            ledger: identity.ledger, plans: services.plans.plans.count, planProblems: services.plans.problems,
                            runs: runs, bytesPerSecond: bytesPerSecond,
                            host: shared ? identity.host : nil, hosts: hosts, ledgerProblem: ledgerProblem,
                            stoppingSince: services.runs.stoppingSince)
    }

    /// A read of the ledger for an answer: refused at once while a shared ledger does not answer
    /// this host, and given up once the host finds it gone (calls failing unanswered, the server
    /// out of reach) while the read waits: a read that an outage caught in flight would wait out
    /// the connection pool, about a minute. A read that is only slow is waited for. `status`
    /// answers without it.
    func read<T: Sendable>(_ call: @escaping @Sendable (any Ledger) async throws -> T) async throws -> T {
        if let refusal = services.ledgerUnavailable { throw refusal }
        let (ledger, services) = (services.ledger, services)
        guard ledger is any SharedLedger else { return try await call(ledger) }
        return try await abandonable({ try await call(ledger) }, checkingEvery: Self.outageCheck) { services.ledgerGone }
    }

    /// How often a read of a shared ledger asks whether the host found the ledger gone.
    static let outageCheck = Duration.milliseconds(250)

    /// `run.list`: recent runs, newest first.
    public func runs(limit: Int) async throws -> [RunRecord] {
        try await read { try await $0.runs(limit: max(1, min(limit, 10_000))) }
    }

    func run(_ runId: String) async throws -> RunRecord {
        guard let run = try await read({ try await $0.run(id: runId) }) else { throw ControlError(.notFound, "no run \(runId) in the ledger; see `lifeboat runs`") }
        return run
    }

    /// `run.show`: a run with all its jobs and its summary.
    public func detail(_ runId: String) async throws -> RunDetail {
        let run = try await run(runId)
        let jobs = try await read { try await $0.jobs(runId: runId) }
        return RunDetail(run: run, jobs: jobs, summary: RunSummary(run: run, jobs: jobs), active: services.runs.isActive(runId),
                         waiting: services.runs.wait(of: runId))
    }

    /// `run.sites`: every site of a run, its state, products done and restored-at or ETA.
    public func sites(_ runId: String) async throws -> SiteReport {
        let run = try await run(runId)
        return SiteReport(run: run, jobs: try await read { try await $0.jobs(runId: runId) }, now: services.clock.now())
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
        var jobs = try await read { try await $0.jobs(runId: runId) }
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
        let events = try await read { try await $0.events(runId: runId, afterId: max(0, after), limit: max(1, min(limit, Self.maxPage))) }
        return EventPage(run: runId, after: after, next: events.last?.id ?? after, events: events)
    }

    /// What the live page shows at a glance, without every job: verdict, waves and gates,
    /// progress per product, throughput, forecast, and the first failures with their reasons.
    public func overview(_ runId: String) async throws -> RunOverview {
        let run = try await run(runId)
        let jobs = try await read { try await $0.jobs(runId: runId) }
        return RunOverview(run: run, jobs: jobs, plan: services.plans.plan(for: run), active: services.runs.isActive(runId),
                           now: services.clock.now())
    }

    /// The report's timeline (one bar per job, grouped by wave, the RTO objective as a line).
    public func timelineSVG(_ runId: String) async throws -> String {
        let now = services.clock.now()
        let report = try await read { try await ReportBuilder.build(runId: runId, ledger: $0, now: now) }
        return TimelineSVG(report.document, layout: TimelineLayout(report.document)).render()
    }
}
