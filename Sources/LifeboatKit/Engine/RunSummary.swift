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
        func group(_ jobs: [JobRecord]) -> Group {
            var states: [String: Int] = [:]
            for job in jobs { states[job.state.rawValue, default: 0] += 1 }
            let succeeded = jobs.filter { $0.state == .succeeded }
            // RPO is known once a job's snapshot is chosen: counted for the jobs restored or
            // still going, not for those that ended without restoring it (nothing was recovered).
            let restoring = jobs.filter { $0.state == .succeeded || !$0.state.isFinal }
            return Group(jobs: jobs.count, states: states,
                         rpo: Percentiles(restoring.compactMap(\.rpoSeconds)),
                         rto: Percentiles(succeeded.compactMap(\.rtoSeconds)),
                         rpoMissed: restoring.filter { $0.rpoMet == false }.count,
                         rtoMissed: jobs.filter { $0.rtoMet == false }.count,
                         bytes: jobs.reduce(0) { $0 + $1.bytes }, entries: jobs.reduce(0) { $0 + $1.entries })
        }
        overall = group(jobs)
        products = Dictionary(grouping: jobs, by: \.product).mapValues(group)
        waves = Dictionary(grouping: jobs, by: { "\($0.wave + 1)" }).mapValues(group)
        if let started = run.startedAt {
            let end = run.finishedAt ?? jobs.compactMap(\.finishedAt).max() ?? started
            let wall = end.timeIntervalSince(started)
            wallSeconds = wall
            workedSeconds = max(0, wall - run.paused(until: end))
            if let worked = workedSeconds, worked > 0 { bytesPerSecond = Double(overall.bytes) / worked }
        }
    }
}
