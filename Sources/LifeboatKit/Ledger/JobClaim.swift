import Foundation

/// A job held by one host under a lease (DESIGN "Several hosts"). The token fences: every claim
/// of a job gets a larger one, and a write carrying an older token is refused (`LeaseLost`), so
/// a host that was presumed dead cannot record (or commit) over the host that took over.
public struct JobClaim: Sendable, Hashable {
    public var jobId: Int64
    public var runId: String
    public var host: String
    public var token: Int64
    /// When the lease runs out unless renewed (the database's clock).
    public var expiresAt: Date
    /// The job as the ledger had it when claimed. An active state (restoring, verifying,
    /// committing) means a host that is gone left it mid-flight: the taker applies the crash
    /// recovery rules (a recorded commit identity found in place = committed, not redone).
    public var job: JobRecord

    /// Another host had it (its lease expired): recover before redoing.
    public var isTakeover: Bool { job.state.isActive }
}

/// What a claim must respect, for the whole fleet: the plan's limits and order.
public struct ClaimRules: Sendable, Hashable {
    /// The run's `concurrency`: jobs of the run held at once across all hosts.
    public var runConcurrency: Int
    /// Each product's `concurrency`, where the plan sets one.
    public var productConcurrency: [String: Int]
    /// Each product's `after`: a site's job of that product is ready once the site's jobs of
    /// these products succeeded.
    public var after: [String: [String]]

    public init(runConcurrency: Int, productConcurrency: [String: Int] = [:], after: [String: [String]] = [:]) {
        self.runConcurrency = runConcurrency
        self.productConcurrency = productConcurrency
        self.after = after
    }

    public init(plan: Plan) {
        self.init(runConcurrency: plan.concurrency,
                  productConcurrency: Dictionary(plan.products.compactMap { p in p.concurrency.map { (p.name, $0) } }, uniquingKeysWith: { a, _ in a }),
                  after: Dictionary(plan.products.map { ($0.name, $0.after) }, uniquingKeysWith: { a, _ in a }))
    }
}

/// This host's lease on a job is gone (expired, or with too little left to write, taken over or
/// released): it must not record or commit the job.
public struct LeaseLost: LifeboatError {
    public var jobId: Int64
    public var host: String
    public var token: Int64
    public var exitCode: CLIExit { .failed }
    public var description: String {
        "host \(host) lost its lease on job \(jobId) (claim token \(token)): it ran out (the ledger did not answer in time) or another host took the job over; this host's work on it is discarded"
    }
}

/// This host's own count of a claim's lease ran out before the ledger confirmed it again
/// (`ClaimDeadline`): the job's destination is left as it is.
public struct ClaimExpired: LifeboatError {
    public var jobId: Int64
    public var host: String
    public var exitCode: CLIExit { .failed }
    public var description: String {
        "host \(host) could not confirm its lease on job \(jobId) in time (the ledger did not answer): it changes nothing more; another host may take the job over"
    }
}
