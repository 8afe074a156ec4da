import Foundation
import Logging
import Prometheus
import ServiceLifecycle
import Synchronization

/// A metric `<name>_<unit>` with its help text.
private func metric(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
    MetricNameDescriptor(metricName: name, unitName: unit, helpText: help)
}

/// Restore metrics, fed from the run event bus into a Prometheus registry.
public final class LifeboatMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let ledger: any Ledger
    /// The runs this process executes, counted in memory: what a host is at right now.
    private let board: RunBoard
    private let clock: any LifeboatClock
    /// When each run's forecast was last computed: at most once a second per run, so a
    /// 10,000-job run does not queue 10,000 ledger reads behind its own writes.
    private let lastForecast = Mutex<[String: Date]>([:])
    /// Each run's mode, read once: a delete's moved bytes are not restored bytes.
    private let modes = Mutex<[String: RunMode]>([:])
    /// Runs counted in `lifeboat_runs_rto_missed_total`: a retried run that ends again is the
    /// same run (counted once per process, as a counter restarts with it).
    private let countedMisses = Mutex<Set<String>>([])
    /// The runs whose series are exported now: those this process has active (with several
    /// hosts, those it coordinates). A run that leaves without its end here (another host took
    /// it over, or ended it) has its series dropped at the next refresh.
    private let shown = Mutex<[String: RunRecord]>([:])
    /// `host="…"` on every series when several hosts share a ledger (each is scraped on its own);
    /// none on a single host, whose series stay as they were.
    private let hostLabel: [(String, String)]
    /// This host's name when several share a ledger: its job series count the jobs it ran (a
    /// coordinator also hears of the jobs other hosts run; they count them themselves).
    private let host: String?
    /// With a shared ledger, what this host's worker is at (the jobs it claimed and restored).
    private let hostWork: (@Sendable () -> HostWork)?

    init(ledger: any Ledger, board: RunBoard, clock: any LifeboatClock, host: String? = nil, hostWork: (@Sendable () -> HostWork)? = nil) {
        self.ledger = ledger
        self.board = board
        self.clock = clock
        self.host = host
        self.hostWork = hostWork
        hostLabel = host.map { [("host", $0)] } ?? []
        // Families appear on the first scrape even before any run.
        for state in JobState.allCases where state.isFinal { _ = jobsCounter(state, .restore) }
        _ = runsActive
        _ = rtoMissedRuns
    }

    private var runsActive: Gauge { registry.makeGauge(descriptor: metric("lifeboat_runs", "active", "Runs not ended: queued, running, halted"), labels: hostLabel) }
    private var rtoMissedRuns: Counter {
        registry.makeCounter(descriptor: metric("lifeboat_runs_rto_missed", "total", "Runs that ended with their RTO objective missed (a job late or not restored)"), labels: hostLabel)
    }

    /// The per-run series (forecast, objective, forecast miss), on the host that coordinates the
    /// run; removed when the run ends or leaves.
    private func runGauges(_ run: RunRecord) -> (forecast: Gauge, objective: Gauge, miss: Gauge) {
        let labels = [("run", run.id), ("plan", run.plan)]
        return (registry.makeGauge(descriptor: metric("lifeboat_run_forecast_rto", "seconds", "Forecast RTO of a run's last job from its measured pace"), labels: labels + hostLabel),
                registry.makeGauge(descriptor: metric("lifeboat_run_rto_objective", "seconds", "The run's RTO objective"), labels: labels + hostLabel),
                registry.makeGauge(descriptor: metric("lifeboat_run_forecast", "miss", "1 while the run is forecast to miss its RTO objective"), labels: labels + hostLabel))
    }

    /// Runs not ended, what this host is at, and the runs' forecasts, afresh: a run whose jobs
    /// are slow (or halted) has no job events to recompute them from, and a host whose runs
    /// ended has none to say that it is idle.
    func refresh(active: [String]) async {
        runsActive.set(Double(active.count))
        for run in shown.withLock({ shown in Array(shown.values.filter { !active.contains($0.id) }) }) { unshow(run) }
        measureWork(active: active)
        // Reads that would wait out a ledger that does not answer are left until it does.
        if (ledger as? any SharedLedger)?.problem != nil { return }
        for id in active {
            if let run = try? await ledger.run(id: id) { await forecast(run) }
        }
    }

    // The job series carry the run's mode (restore, exercise, delete): an exercise's sub-second
    // RTOs (declared at its own start) and sandbox bytes must not blend into an incident's.

    private func jobsCounter(_ state: JobState, _ mode: RunMode) -> Counter {
        registry.makeCounter(descriptor: metric("lifeboat_jobs", "total", "Job endings, by final state and run mode (a job retried after it ended counts again when it ends again)"),
                             labels: [("state", state.rawValue), ("mode", mode.rawValue)] + hostLabel)
    }

    private func bytes(_ mode: RunMode) -> Counter {
        registry.makeCounter(descriptor: metric("lifeboat_restored_bytes", "total", "File bytes restored by succeeded jobs, by run mode"), labels: [("mode", mode.rawValue)] + hostLabel)
    }
    private func entries(_ mode: RunMode) -> Counter {
        registry.makeCounter(descriptor: metric("lifeboat_restored_entries", "total", "Archive entries restored by succeeded jobs, by run mode"), labels: [("mode", mode.rawValue)] + hostLabel)
    }
    private var throughput: Gauge { registry.makeGauge(descriptor: metric("lifeboat_restore_throughput", "bytes_per_second", "Bytes restored per second over the last minute"), labels: hostLabel) }
    /// Succeeded restore and exercise jobs by where their data came from.
    private func sourceCounter(_ source: String, _ mode: RunMode) -> Counter {
        registry.makeCounter(descriptor: metric("lifeboat_jobs_by_source", "total", "Succeeded restore jobs by the source of their data: snapshot, or quarantine (a soft delete's data renamed back)"),
                             labels: [("source", source), ("mode", mode.rawValue)] + hostLabel)
    }
    private var softDeleted: Counter {
        registry.makeCounter(descriptor: metric("lifeboat_soft_deleted_targets", "total", "Targets moved into quarantine by delete runs"), labels: hostLabel)
    }

    private func mode(of runId: String) async -> RunMode? {
        if let mode = modes.withLock({ $0[runId] }) { return mode }
        guard let mode = try? await ledger.run(id: runId)?.mode else { return nil }
        modes.withLock { $0[runId] = mode }
        return mode
    }

    private var running: Gauge { registry.makeGauge(descriptor: metric("lifeboat_jobs", "running", "Jobs restoring, verifying or committing"), labels: hostLabel) }
    private func rto(_ mode: RunMode) -> ValueHistogram {
        registry.makeValueHistogram(descriptor: metric("lifeboat_job_rto", "seconds", "RTO of succeeded jobs: finished − incident declared, by run mode"), labels: [("mode", mode.rawValue)] + hostLabel,
                                    buckets: [60, 300, 900, 1_800, 3_600, 7_200, 14_400, 28_800, 86_400, 259_200])
    }
    private func rpo(_ mode: RunMode) -> ValueHistogram {
        registry.makeValueHistogram(descriptor: metric("lifeboat_job_rpo", "seconds", "RPO of restored jobs: incident − snapshot taken-at, by run mode"), labels: [("mode", mode.rawValue)] + hostLabel,
                                    buckets: [900, 3_600, 14_400, 43_200, 86_400, 172_800, 604_800])
    }

    /// Applies one bus event. `active`: the runs not ended (the one finishing may still be there).
    func observe(_ event: RunEvent, active: [String]) async {
        if event.kind != .finished { runsActive.set(Double(active.count)) }
        guard event.kind == .job, let job = event.job else {
            if event.kind == .finished, let run = event.run { await ended(run, active: active) }
            // A halt (or a resume) changes what can be forecast at once, not at the next refresh.
            if event.kind == .run, let run = event.run, !run.state.isFinal, active.contains(run.id) { await forecast(run) }
            return
        }
        guard job.state.isFinal, host == nil || job.host == nil || job.host == host else { return }
        let mode = await mode(of: job.runId) ?? .restore
        jobsCounter(job.state, mode).increment()
        if mode == .delete {
            if job.state == .succeeded { softDeleted.increment() }
            return
        }
        if job.state == .succeeded {
            sourceCounter(job.source ?? JobRecord.sourceSnapshot, mode).increment()
            bytes(mode).increment(by: job.bytes)
            entries(mode).increment(by: job.entries)
            if let value = job.rtoSeconds { rto(mode).record(value) }
            if let value = job.rpoSeconds { rpo(mode).record(value) }
        }
        let now = clock.now()
        let due = lastForecast.withLock { last -> Bool in
            guard now.timeIntervalSince(last[job.runId] ?? .distantPast) >= 1 else { return false }
            last[job.runId] = now
            return true
        }
        if due, active.contains(job.runId), let run = try? await ledger.run(id: job.runId) { await forecast(run) }
    }

    /// Drops a run's series.
    private func unshow(_ run: RunRecord) {
        _ = shown.withLock { $0.removeValue(forKey: run.id) }
        let gauges = runGauges(run)
        for gauge in [gauges.forecast, gauges.objective, gauges.miss] { registry.unregisterGauge(gauge) }
    }

    /// A run ended: its series go (a finished run has nothing to forecast), and a missed RTO
    /// objective is counted, by the report's verdict.
    private func ended(_ run: RunRecord, active: [String]) async {
        runsActive.set(Double(active.filter { $0 != run.id }.count))
        _ = lastForecast.withLock { $0.removeValue(forKey: run.id) }
        _ = modes.withLock { $0.removeValue(forKey: run.id) }
        guard run.state.isFinal else { return } // interrupted by a shutdown: it resumes
        unshow(run)
        if let jobs = try? await ledger.jobs(runId: run.id), ReportVerdict(run: run, jobs: jobs, now: clock.now()).rto == .missed,
           countedMisses.withLock({ $0.insert(run.id).inserted }) {
            rtoMissedRuns.increment()
        }
    }

    /// Jobs at work and bytes restored over the last minute, for the whole host (every run it
    /// executes; with a shared ledger, the jobs it claimed and restored, as `status` lists hosts).
    private func measureWork(active: [String]) {
        if let hostWork {
            let work = hostWork()
            running.set(Double(work.jobs))
            throughput.set(work.bytesPerSecond)
            return
        }
        let working = active.compactMap { board.run($0) }.reduce(0) { sum, run in
            sum + run.counts.filter { $0.key.isActive }.values.reduce(0, +)
        }
        running.set(Double(working))
        throughput.set(Double(board.bytesRestored(since: clock.now().addingTimeInterval(-60))) / 60)
    }

    /// Forecast finish versus objective, per run.
    private func forecast(_ run: RunRecord) async {
        guard let counts = try? await ledger.jobCounts(runId: run.id) else { return }
        let total = counts.values.reduce(0, +)
        let finished = counts.filter { $0.key.isFinal }.values.reduce(0, +)
        // An ended run's series are gone (`ended`); a late read must not bring them back.
        guard !run.state.isFinal else { return }
        let forecast = RTOForecast(run: run, totalJobs: total, finishedJobs: finished, now: clock.now())
        shown.withLock { $0[run.id] = run }
        let gauges = runGauges(run)
        // No forecast (none yet, or halted at a gate): no series, rather than a stale one.
        if let seconds = forecast.rtoSeconds { gauges.forecast.set(seconds) } else { registry.unregisterGauge(gauges.forecast) }
        if let objective = run.rtoObjectiveSeconds {
            gauges.objective.set(objective)
            gauges.miss.set(forecast.missesObjective ? 1.0 : 0.0)
        }
    }
}

/// Feeds the Prometheus registry from the event bus. The registry is served as `GET /metrics`
/// by the daemon's HTTP listener (`HTTPService`), on `http.listen` (or its alias `metrics.listen`).
public final class MetricsService: Service {
    let metrics: LifeboatMetrics
    let events: AsyncStream<RunEvent>
    let activeRuns: @Sendable () -> [String]

    init(metrics: LifeboatMetrics, events: AsyncStream<RunEvent>, activeRuns: @escaping @Sendable () -> [String]) {
        self.metrics = metrics
        self.events = events
        self.activeRuns = activeRuns
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await event in self.events.cancelOnGracefulShutdown() {
                    await self.metrics.observe(event, active: self.activeRuns())
                }
            }
            group.addTask {
                while !Task.isCancelled, !Task.isShuttingDownGracefully {
                    await self.metrics.refresh(active: self.activeRuns())
                    try? await Task.sleep(for: .seconds(2))
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }
}
