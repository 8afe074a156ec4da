import Foundation

/// An earlier run of the same plan, for an exercise report's trend.
///
/// The caller passes them newest first (e.g. from `Ledger.runs(plan:mode:limit:)`); ``RunReport``
/// ignores any that belong to another plan, are the reported run itself, or were declared after it.
public struct PreviousRun: Sendable, Codable, Hashable {
    public var run: RunRecord
    public var summary: RunSummary
    /// Distinct sites in the run (the exercise's scale); `nil` when unknown.
    public var sites: Int?

    public init(run: RunRecord, summary: RunSummary, sites: Int? = nil) {
        self.run = run
        self.summary = summary
        self.sites = sites
    }

    /// Summarises a run from its jobs, as read from the ledger.
    public init(run: RunRecord, jobs: [JobRecord]) {
        self.init(run: run, summary: RunSummary(run: run, jobs: jobs), sites: Set(jobs.map(\.site)).count)
    }
}
