import Foundation

/// p50, p95 and max of a set of durations (seconds).
public struct Percentiles: Sendable, Codable, Hashable {
    public var count: Int
    public var p50: Double?
    public var p95: Double?
    public var max: Double?

    public init(_ values: [Double]) {
        let sorted = values.sorted()
        count = sorted.count
        p50 = Self.percentile(sorted, 0.50)
        p95 = Self.percentile(sorted, 0.95)
        max = sorted.last
    }

    /// Nearest-rank percentile.
    static func percentile(_ sorted: [Double], _ q: Double) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let rank = Int((q * Double(sorted.count)).rounded(.up))
        return sorted[Swift.max(0, Swift.min(sorted.count - 1, rank - 1))]
    }
}

/// A run's outcome in numbers: per product and overall, RPO and RTO percentiles, counts by state,
/// objectives met, throughput.
public struct RunSummary: Sendable, Codable, Hashable {
    public struct Group: Sendable, Codable, Hashable {
        public var jobs: Int
        public var states: [String: Int]
        public var rpo: Percentiles
        public var rto: Percentiles
        public var rpoMissed: Int
        public var rtoMissed: Int
        public var bytes: Int64
        public var entries: Int64
    }

    public var overall: Group
    public var products: [String: Group]
    /// Per wave, keyed by the wave's number ("1", "2", …).
    public var waves: [String: Group]
    /// Restored bytes per second of the time the run worked (`workedSeconds`).
    public var bytesPerSecond: Double?
    /// From the run's start to its end (or its last job), pauses included.
    public var wallSeconds: Double?
    /// The wall time less the run's pauses (halted at gates, ended until a retry reopened it):
    /// what its throughput is measured over.
    public var workedSeconds: Double?

    public init(run: RunRecord, jobs: [JobRecord]) {
        // One pass, keeping numbers only: a 10,000-job run's records are not copied per group
        // (filtered copies of them were most of the daemon's peak memory at a run's end).
        var overall = Tally(), products: [String: Tally] = [:], waves: [Int: Tally] = [:]
        for job in jobs {
            overall.add(job)
            products[job.product, default: Tally()].add(job)
            waves[job.wave + 1, default: Tally()].add(job)
        }
        self.overall = overall.group
        self.products = products.mapValues(\.group)
        self.waves = Dictionary(uniqueKeysWithValues: waves.map { ("\($0.key)", $0.value.group) })
        if let started = run.startedAt {
            let end = run.finishedAt ?? jobs.lazy.compactMap(\.finishedAt).max() ?? started
            let wall = end.timeIntervalSince(started)
            wallSeconds = wall
            workedSeconds = max(0, wall - run.paused(until: end))
            if let worked = workedSeconds, worked > 0 { bytesPerSecond = Double(self.overall.bytes) / worked }
        }
    }

    /// A group's numbers, gathered one job at a time.
    private struct Tally {
        var jobs = 0
        var states: [String: Int] = [:]
        var rpo: [Double] = []
        var rto: [Double] = []
        var rpoMissed = 0
        var rtoMissed = 0
        var bytes: Int64 = 0
        var entries: Int64 = 0

        mutating func add(_ job: JobRecord) {
            jobs += 1
            states[job.state.rawValue, default: 0] += 1
            // RPO is known once a job's snapshot is chosen: counted for the jobs restored or
            // still going, not for those that ended without restoring it (nothing was recovered).
            if job.state == .succeeded || !job.state.isFinal {
                if let seconds = job.rpoSeconds { rpo.append(seconds) }
                if job.rpoMet == false { rpoMissed += 1 }
            }
            if job.state == .succeeded, let seconds = job.rtoSeconds { rto.append(seconds) }
            if job.rtoMet == false { rtoMissed += 1 }
            bytes += job.bytes
            entries += job.entries
        }

        var group: Group {
            Group(jobs: jobs, states: states, rpo: Percentiles(rpo), rto: Percentiles(rto),
                  rpoMissed: rpoMissed, rtoMissed: rtoMissed, bytes: bytes, entries: entries)
        }
    }
}
