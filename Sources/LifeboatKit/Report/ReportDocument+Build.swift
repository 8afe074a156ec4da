import Foundation

extension ReportDocument {
    /// Builds the report of `run` from its ledger records. Percentiles and throughput come from
    /// ``RunSummary`` so the report and `lifeboat show` never disagree.
    public init(run: RunRecord, jobs unsortedJobs: [JobRecord], events: [LedgerEvent], previous: [PreviousRun], generatedAt: Date) {
        // The order operators read in: wave, then site, then the plan's product order.
        let jobs = unsortedJobs.sorted {
            ($0.wave, $0.site, $0.productOrder, $0.product) < ($1.wave, $1.site, $1.productOrder, $1.product)
        }
        let summary = RunSummary(run: run, jobs: jobs)
        schema = Self.schemaVersion
        self.generatedAt = generatedAt
        self.run = Run(id: run.id, plan: run.plan, planPath: run.planPath, mode: run.mode, state: run.state,
                       startedBy: run.startedBy, declaredAt: run.declaredAt, incidentAt: run.incidentAt, asOf: run.asOf,
                       createdAt: run.createdAt, startedAt: run.startedAt, finishedAt: run.finishedAt,
                       totalWaves: run.totalWaves, seed: run.seed, keepSandbox: run.keepSandbox, note: run.note,
                       reason: run.reason)
        objectives = Objectives(rtoSeconds: run.rtoObjectiveSeconds, rpoSeconds: run.rpoObjectiveSeconds)
        verdict = ReportVerdict(run: run, jobs: jobs, now: generatedAt)
        overall = Group(name: "all", summary.overall)
        products = Self.productOrder(jobs).compactMap { product in
            summary.products[product].map { Group(name: product, product: product, $0) }
        }
        waves = summary.waves.compactMap { key, group in Int(key).map { (number: $0, group: group) } }
            .sorted { $0.number < $1.number }
            .map { Group(name: "wave \($0.number)", wave: $0.number - 1, $0.group) }

        let finished = jobs.count { $0.finishedAt != nil && $0.state.isFinal }
        throughput = Throughput(
            wallSeconds: summary.wallSeconds, bytesPerSecond: summary.bytesPerSecond,
            jobsPerMinute: summary.workedSeconds.flatMap { $0 > 0 ? Double(finished) / ($0 / 60) : nil },
            bytes: summary.overall.bytes, entries: summary.overall.entries,
            archiveBytes: jobs.reduce(0) { $0 + $1.archiveBytes }, finishedJobs: finished)

        self.jobs = jobs.map(Job.init)
        let notRestored: [JobState] = [.failed, .skipped, .cancelled]
        failures = notRestored.flatMap { state in jobs.filter { $0.state == state } }.map(Failure.init)

        trend = Self.trend(run: run, jobs: jobs, summary: summary, previous: previous)
        self.events = events
            .filter { !Self.isJobOutcome($0.kind) }
            .sorted { $0.at < $1.at }
            .map { Event(at: $0.at, kind: $0.kind, message: $0.message, jobId: $0.jobId) }
    }

    /// Products in the plan's declared order (the ledger keeps it as `productOrder`).
    private static func productOrder(_ jobs: [JobRecord]) -> [String] {
        var order: [String: Int] = [:]
        for job in jobs { order[job.product] = min(order[job.product] ?? .max, job.productOrder) }
        return order.keys.sorted { (order[$0]!, $0) < (order[$1]!, $1) }
    }

    /// `job.succeeded`, `job.failed`, …: one per job, already in the job table.
    private static func isJobOutcome(_ kind: String) -> Bool {
        guard kind.hasPrefix("job.") else { return false }
        return JobState(rawValue: String(kind.dropFirst(4))) != nil
    }

    private static func trend(run: RunRecord, jobs: [JobRecord], summary: RunSummary, previous: [PreviousRun]) -> [TrendPoint] {
        // Only earlier runs of this plan: reporting an old exercise must not compare it with later ones.
        let earlier = previous.filter { $0.run.plan == run.plan && $0.run.id != run.id && $0.run.declaredAt < run.declaredAt }
        guard !earlier.isEmpty else { return [] }
        let current = TrendPoint(run: run, summary: summary, sites: Set(jobs.map(\.site)).count, current: true)
        return [current] + earlier.map { TrendPoint(run: $0.run, summary: $0.summary, sites: $0.sites, current: false) }
    }
}

extension ReportDocument.Group {
    init(name: String, product: String? = nil, wave: Int? = nil, _ group: RunSummary.Group) {
        self.name = name
        self.product = product
        self.wave = wave
        jobs = group.jobs
        succeeded = group.states[JobState.succeeded.rawValue] ?? 0
        failed = group.states[JobState.failed.rawValue] ?? 0
        skipped = group.states[JobState.skipped.rawValue] ?? 0
        cancelled = group.states[JobState.cancelled.rawValue] ?? 0
        unfinished = group.jobs - succeeded - failed - skipped - cancelled
        rpo = group.rpo
        rto = group.rto
        rpoMissed = group.rpoMissed
        rtoMissed = group.rtoMissed
        bytes = group.bytes
        entries = group.entries
    }

    /// Jobs that ended without being restored.
    public var notRestored: Int { failed + skipped + cancelled }
}

extension ReportDocument.Job {
    init(_ job: JobRecord) {
        self.init(id: job.id, site: job.site, product: job.product, wave: job.wave, state: job.state, attempt: job.attempt,
                  destination: job.destination, snapshotPath: job.snapshotPath, snapshotTakenAt: job.snapshotTakenAt,
                  startedAt: job.startedAt, finishedAt: job.finishedAt, durationSeconds: job.duration,
                  rpoSeconds: job.rpoSeconds, rpoMet: job.rpoMet, rtoSeconds: job.rtoSeconds, rtoMet: job.rtoMet,
                  bytes: job.bytes, entries: job.entries, archiveBytes: job.archiveBytes, skippedEntries: job.skippedEntries,
                  errorCode: job.errorCode, error: job.error, quarantinePath: job.quarantinePath,
                  source: job.source)
    }

    /// `acme/jira`
    public var name: String { "\(site)/\(product)" }
}

extension ReportDocument.Failure {
    init(_ job: JobRecord) {
        let reason = job.error?.trimmingCharacters(in: .whitespacesAndNewlines)
        self.init(site: job.site, product: job.product, wave: job.wave, state: job.state, attempt: job.attempt,
                  errorCode: job.errorCode, reason: reason.flatMap { $0.isEmpty ? nil : $0 } ?? "no reason recorded",
                  snapshotPath: job.snapshotPath, finishedAt: job.finishedAt)
    }

    /// `acme/jira`
    public var name: String { "\(site)/\(product)" }
}

extension ReportDocument.TrendPoint {
    init(run: RunRecord, summary: RunSummary, sites: Int?, current: Bool) {
        let succeeded = summary.overall.states[JobState.succeeded.rawValue] ?? 0
        self.init(runId: run.id, current: current, mode: run.mode, state: run.state, declaredAt: run.declaredAt,
                  sites: sites, jobs: summary.overall.jobs, succeeded: succeeded,
                  successRate: summary.overall.jobs > 0 ? Double(succeeded) / Double(summary.overall.jobs) : nil,
                  rtoP95: summary.overall.rto.p95, rpoP95: summary.overall.rpo.p95,
                  rtoMissed: summary.overall.rtoMissed, rpoMissed: summary.overall.rpoMissed)
    }
}
