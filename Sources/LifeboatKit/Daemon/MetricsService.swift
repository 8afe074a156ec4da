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
    private let clock: any LifeboatClock
    /// When each run's forecast was last computed: at most once a second per run, so a
    /// 10,000-job run does not queue 10,000 ledger reads behind its own writes.
    private let lastForecast = Mutex<[String: Date]>([:])

    init(ledger: any Ledger, clock: any LifeboatClock) {
        self.ledger = ledger
        self.clock = clock
        // Families appear on the first scrape even before any run.
        for state in JobState.allCases where state.isFinal { _ = jobsCounter(state) }
        _ = registry.makeGauge(descriptor: metric("lifeboat_runs", "active", "Runs queued or running"))
    }

    private func jobsCounter(_ state: JobState) -> Counter {
        registry.makeCounter(descriptor: metric("lifeboat_jobs", "total", "Jobs that ended, by final state"), labels: [("state", state.rawValue)])
    }

    private var bytes: Counter { registry.makeCounter(descriptor: metric("lifeboat_restored_bytes", "total", "File bytes restored by succeeded jobs")) }
    private var entries: Counter { registry.makeCounter(descriptor: metric("lifeboat_restored_entries", "total", "Archive entries restored by succeeded jobs")) }
    private var throughput: Gauge { registry.makeGauge(descriptor: metric("lifeboat_restore_throughput", "bytes_per_second", "Bytes restored per second over the last minute")) }
    private var running: Gauge { registry.makeGauge(descriptor: metric("lifeboat_jobs", "running", "Jobs restoring, verifying or committing")) }
    private var rto: ValueHistogram {
        registry.makeValueHistogram(descriptor: metric("lifeboat_job_rto", "seconds", "RTO of succeeded jobs: finished − incident declared"), buckets: [60, 300, 900, 1_800, 3_600, 7_200, 14_400, 28_800, 86_400, 259_200])
    }
    private var rpo: ValueHistogram {
        registry.makeValueHistogram(descriptor: metric("lifeboat_job_rpo", "seconds", "RPO of jobs: incident − snapshot taken-at"), buckets: [900, 3_600, 14_400, 43_200, 86_400, 172_800, 604_800])
    }

    /// Applies one bus event.
    func observe(_ event: RunEvent, activeRuns: Int) async {
        registry.makeGauge(descriptor: metric("lifeboat_runs", "active", "Runs queued or running")).set(Double(activeRuns))
        guard event.kind == .job, let job = event.job else {
            if event.kind == .finished, let run = event.run {
                await forecast(run)
                _ = lastForecast.withLock { $0.removeValue(forKey: run.id) }
            }
            return
        }
        guard job.state.isFinal else { return }
        jobsCounter(job.state).increment()
        if job.state == .succeeded {
            bytes.increment(by: job.bytes)
            entries.increment(by: job.entries)
            if let value = job.rtoSeconds { rto.record(value) }
        }
        if let value = job.rpoSeconds { rpo.record(value) }
        let now = clock.now()
        let due = lastForecast.withLock { last -> Bool in
            guard now.timeIntervalSince(last[job.runId] ?? .distantPast) >= 1 else { return false }
            last[job.runId] = now
            return true
        }
        if due, let run = try? await ledger.run(id: job.runId) { await forecast(run) }
    }

    /// Forecast finish versus objective, per run; and the running/throughput gauges.
    private func forecast(_ run: RunRecord) async {
        guard let counts = try? await ledger.jobCounts(runId: run.id) else { return }
        let total = counts.values.reduce(0, +)
        let finished = counts.filter { $0.key.isFinal }.values.reduce(0, +)
        running.set(Double(counts.filter { $0.key.isActive }.values.reduce(0, +)))
        if let recent = try? await ledger.bytesRestored(since: clock.now().addingTimeInterval(-60)) { throughput.set(Double(recent) / 60) }
        let labels = [("run", run.id), ("plan", run.plan)]
        let forecast = RTOForecast(run: run, totalJobs: total, finishedJobs: finished, now: clock.now())
        if let seconds = forecast.rtoSeconds {
            registry.makeGauge(descriptor: metric("lifeboat_run_forecast_rto", "seconds", "Forecast RTO of a run's last job from its measured pace"),
                               labels: labels).set(run.state.isFinal ? 0.0 : seconds)
        }
        if let objective = run.rtoObjectiveSeconds {
            registry.makeGauge(descriptor: metric("lifeboat_run_rto_objective", "seconds", "The run's RTO objective"), labels: labels).set(objective)
            registry.makeGauge(descriptor: metric("lifeboat_run_forecast", "miss", "1 while the run is forecast to miss its RTO objective"),
                               labels: labels).set(!run.state.isFinal && forecast.missesObjective ? 1.0 : 0.0)
        }
    }
}

/// Feeds the Prometheus registry from the event bus. The registry is served as `GET /metrics`
/// by the daemon's HTTP listener (`HTTPService`), on `http.listen` (or its alias `metrics.listen`).
public final class MetricsService: Service {
    let metrics: LifeboatMetrics
    let events: AsyncStream<RunEvent>
    let activeRuns: @Sendable () -> Int

    init(metrics: LifeboatMetrics, events: AsyncStream<RunEvent>, activeRuns: @escaping @Sendable () -> Int) {
        self.metrics = metrics
        self.events = events
        self.activeRuns = activeRuns
    }

    public func run() async throws {
        for await event in events.cancelOnGracefulShutdown() {
            await metrics.observe(event, activeRuns: activeRuns())
        }
    }
}
