import Foundation

/// A run at a glance for the live web view (`/api/v1/runs/RUN/overview`): small whatever the
/// number of jobs, so polling it every second costs little.
public struct RunOverview: Sendable, Codable {
    public struct Progress: Sendable, Codable {
        public var name: String
        public var total: Int
        public var states: [String: Int]
        public var bytes: Int64
    }

    public struct Wave: Sendable, Codable {
        /// 1-based.
        public var wave: Int
        public var total: Int
        public var states: [String: Int]
        /// `waiting`, `running`, `passed`, `halted` or `ended`.
        public var gate: String
        /// The plan's bound, e.g. `max_failures 0`; nil when the wave has none.
        public var gateRule: String?
    }

    public struct Failure: Sendable, Codable {
        public var job: Int64?
        public var site: String
        public var product: String
        public var state: JobState
        public var attempt: Int
        public var error: String?
        /// What an operator can do about it.
        public var action: String
    }

    public var run: RunRecord
    public var active: Bool
    public var verdict: ReportVerdict
    public var verdictTitle: String
    public var jobs: Int
    public var states: [String: Int]
    public var products: [Progress]
    public var waves: [Wave]
    public var sites: [String: Int]
    public var bytes: Int64
    /// Restored bytes per second of the run's wall time.
    public var bytesPerSecond: Double?
    public var forecast: RTOForecast
    /// The largest RTO of the jobs restored so far (the run's RTO once it has ended).
    public var rtoReachedSeconds: Double?
    public var failuresTotal: Int
    /// The first failures (at most `failureLimit`); the job table pages through all of them.
    public var failures: [Failure]
    public var now: Date

    public static let failureLimit = 50

    public init(run: RunRecord, jobs: [JobRecord], plan: Plan?, active: Bool, now: Date) {
        self.run = run
        self.active = active
        self.now = now
        verdict = ReportVerdict(run: run, jobs: jobs, now: now)
        verdictTitle = verdict.title
        self.jobs = jobs.count
        func states(_ jobs: [JobRecord]) -> [String: Int] {
            var counts: [String: Int] = [:]
            for job in jobs { counts[job.state.rawValue, default: 0] += 1 }
            return counts
        }
        self.states = states(jobs)
        let order = Dictionary(jobs.map { ($0.product, $0.productOrder) }, uniquingKeysWith: min)
        products = Dictionary(grouping: jobs, by: \.product).map { name, jobs in
            Progress(name: name, total: jobs.count, states: states(jobs), bytes: jobs.reduce(0) { $0 + $1.bytes })
        }.sorted { (order[$0.name] ?? 0, $0.name) < (order[$1.name] ?? 0, $1.name) }
        let byWave = Dictionary(grouping: jobs, by: \.wave)
        waves = (0..<max(run.totalWaves, (byWave.keys.max() ?? -1) + 1)).map { index in
            let jobs = byWave[index] ?? []
            let gate: String
            if run.state.isFinal { gate = "ended" }
            else if index < run.currentWave { gate = "passed" }
            else if index == run.currentWave { gate = run.state == .halted ? "halted" : "running" }
            else { gate = "waiting" }
            var rule: [String] = []
            if let spec = plan?.waves[safe: index]?.gate {
                if let n = spec.maxFailures { rule.append("max_failures \(n)") }
                if let r = spec.maxFailureRatio { rule.append("max_failure_ratio \(r)") }
            }
            return Wave(wave: index + 1, total: jobs.count, states: states(jobs), gate: gate, gateRule: rule.isEmpty ? nil : rule.joined(separator: ", "))
        }
        var sites: [String: Int] = [:]
        for site in SiteStatus.all(run: run, jobs: jobs, now: now) { sites[site.state.rawValue, default: 0] += 1 }
        self.sites = sites
        bytes = jobs.reduce(0) { $0 + $1.bytes }
        if let started = run.startedAt {
            let end = run.finishedAt ?? now
            let wall = end.timeIntervalSince(started)
            if wall > 0 { bytesPerSecond = Double(bytes) / wall }
        }
        let finished = jobs.count { $0.state.isFinal }
        forecast = RTOForecast(run: run, totalJobs: jobs.count, finishedJobs: finished, now: now)
        rtoReachedSeconds = jobs.filter { $0.state == .succeeded }.compactMap(\.rtoSeconds).max()
        let failed = jobs.filter { $0.state == .failed || $0.state == .skipped || $0.state == .cancelled }
        failuresTotal = failed.count
        failures = failed.prefix(Self.failureLimit).map { job in
            var action = job.remedy(in: run)
            if job.state == .skipped { action = "not started: a product it depends on was not restored; fix and retry that one, then this one" }
            return Failure(job: job.id, site: job.site, product: job.product, state: job.state, attempt: job.attempt, error: job.error, action: action)
        }
    }
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
