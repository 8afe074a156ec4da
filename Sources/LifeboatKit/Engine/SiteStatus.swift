import Foundation

/// One site of a run, as the people who tell customers need it: is it back, how far along, and
/// when (restored at, or an estimate from the run's measured pace).
public struct SiteStatus: Sendable, Codable, Hashable {
    public enum State: String, Sendable, Codable, CaseIterable {
        /// No product of the site has started.
        case waiting
        /// Some product started and not every product has ended.
        case restoring
        /// Every product of the site succeeded.
        case restored
        /// Every product ended and at least one was not restored (failed, skipped or cancelled),
        /// or, in a delete run, not moved to quarantine.
        case failed
        /// A delete run's: some product started and not every product has ended.
        case deleting
        /// A delete run's: every product of the site was moved to quarantine (soft-deleted).
        case deleted

        public var isFinal: Bool { self == .restored || self == .failed || self == .deleted }

        /// The states a site of a run of `mode` goes through, in order.
        public static func states(of mode: RunMode) -> [State] {
            mode == .delete ? [.waiting, .deleting, .deleted, .failed] : [.waiting, .restoring, .restored, .failed]
        }
    }

    /// A product of the site that was not restored, and why.
    public struct Failure: Sendable, Codable, Hashable {
        public var product: String
        public var job: Int64?
        public var state: JobState
        public var error: String?
    }

    public var site: String
    public var state: State
    public var productsDone: Int
    public var productsTotal: Int
    public var productsFailed: Int
    /// When the last product succeeded (state `restored`).
    public var restoredAt: Date?
    /// When the last product ended (states `restored`, `deleted` and `failed`).
    public var finishedAt: Date?
    /// Estimated time the site's last product finishes, from the run's pace (jobs finished per
    /// second so far) and how many jobs go before it; nil until a job finished, or once ended,
    /// or while the run is not running (halted at a gate, interrupted).
    public var eta: Date?
    public var failures: [Failure]

    /// Every site of a run, in site order. `jobs` are the run's jobs; `now` the current time.
    public static func all(run: RunRecord, jobs: [JobRecord], now: Date) -> [SiteStatus] {
        // Queue order of what is left: jobs at work first, then as the scheduler picks them
        // (wave, priority, declared product order, site).
        let remaining = jobs.filter { !$0.state.isFinal }.sorted { a, b in
            if a.state.isActive != b.state.isActive { return a.state.isActive }
            return (a.wave, a.priority, a.productOrder, a.site, a.id ?? 0) < (b.wave, b.priority, b.productOrder, b.site, b.id ?? 0)
        }
        var position: [Int64: Int] = [:]
        for (index, job) in remaining.enumerated() { if let id = job.id { position[id] = index + 1 } }
        let finished = jobs.count - remaining.count
        var secondsPerJob: Double?
        if run.state == .running, let worked = run.workedSeconds(now: now), finished > 0 {
            secondsPerJob = max(0.001, worked) / Double(finished)
        }
        return Dictionary(grouping: jobs, by: \.site).map { site, jobs in
            var status = status(site: site, jobs: jobs, position: position, secondsPerJob: secondsPerJob, now: now)
            // A delete moves sites into quarantine: those telling customers must never read
            // "restored" for it.
            if run.mode == .delete {
                if status.state == .restoring { status.state = .deleting }
                if status.state == .restored { status.state = .deleted }
                status.restoredAt = nil
            }
            return status
        }.sorted { $0.site < $1.site }
    }

    static func status(site: String, jobs: [JobRecord], position: [Int64: Int], secondsPerJob: Double?, now: Date) -> SiteStatus {
        let done = jobs.count { $0.state == .succeeded }
        let ended = jobs.filter(\.state.isFinal)
        let failures = ended.filter { $0.state != .succeeded }.sorted { $0.productOrder < $1.productOrder }
            .map { Failure(product: $0.product, job: $0.id, state: $0.state, error: $0.error) }
        let state: State
        if ended.count == jobs.count {
            state = failures.isEmpty ? .restored : .failed
        } else if ended.isEmpty && !jobs.contains(where: \.state.isActive) {
            state = .waiting
        } else {
            state = .restoring
        }
        let last = state.isFinal ? ended.compactMap(\.finishedAt).max() : nil
        var eta: Date?
        if !state.isFinal, let secondsPerJob {
            let ahead = jobs.compactMap { $0.id.flatMap { position[$0] } }.max() ?? 0
            eta = now.addingTimeInterval(secondsPerJob * Double(ahead))
        }
        return SiteStatus(site: site, state: state, productsDone: done, productsTotal: jobs.count, productsFailed: failures.count,
                          restoredAt: state == .restored ? last : nil, finishedAt: last, eta: eta, failures: failures)
    }
}

/// `run.sites` and `/api/v1/runs/RUN/sites`: every site of a run with its status.
public struct SiteReport: Sendable, Codable {
    public var run: String
    public var runState: RunState
    public var mode: RunMode
    /// Sites by state: `waiting`, `restoring`, `restored`, `failed`; for a delete run `waiting`,
    /// `deleting`, `deleted`, `failed`.
    public var counts: [String: Int]
    public var sites: [SiteStatus]

    public init(run: RunRecord, jobs: [JobRecord], now: Date) {
        self.run = run.id
        runState = run.state
        mode = run.mode
        sites = SiteStatus.all(run: run, jobs: jobs, now: now)
        var counts: [String: Int] = [:]
        for state in SiteStatus.State.states(of: run.mode) { counts[state.rawValue] = 0 }
        for site in sites { counts[site.state.rawValue, default: 0] += 1 }
        self.counts = counts
    }
}
