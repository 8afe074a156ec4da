import Foundation
import Testing
@testable import LifeboatKit

/// `RunSummary` gathers its groups in one pass; each must hold what its definition says, worked
/// out here from the jobs of the group directly.
@Suite struct RunSummaryTests {
    @Test func everyGroupHoldsItsOwnJobsFigures() {
        var (run, jobs, _) = ReportFixtures.sample()
        run.finishedAt = nil
        // Still going, with a snapshot older than the RPO objective (1 d): counted. Failed with one:
        // not counted (nothing of it was recovered).
        jobs.append(ReportFixtures.job(run, "zeta", "jira", wave: 2, state: .restoring, start: 900, end: nil, rpo: 2 * 86_400))
        jobs.append(ReportFixtures.job(run, "omega", "jira", wave: 2, state: .failed, start: 900, end: 950, rpo: 3 * 86_400))
        let summary = RunSummary(run: run, jobs: jobs)
        #expect(summary.overall == Self.group(jobs))
        let products = Set(jobs.map(\.product))
        #expect(Set(summary.products.keys) == products)
        for product in products {
            #expect(summary.products[product] == Self.group(jobs.filter { $0.product == product }), "product \(product)")
        }
        #expect(summary.waves.keys.sorted() == ["1", "2", "3"])
        for (key, group) in summary.waves {
            #expect(group == Self.group(jobs.filter { "\($0.wave + 1)" == key }), "wave \(key)")
        }
        // The sample has each kind of job these figures tell apart.
        #expect(summary.overall.rpoMissed == 1 && summary.overall.rtoMissed > 0)
        #expect(summary.overall.rpo.count < jobs.count && summary.overall.rto.count < summary.overall.rpo.count)
        #expect(summary.overall.rpo.max == Double(2 * 86_400))
    }

    /// The definition: RPO counts the jobs restored or still going (a job that ended without
    /// restoring recovered nothing), RTO the jobs restored.
    static func group(_ jobs: [JobRecord]) -> RunSummary.Group {
        let restoring = jobs.filter { $0.state == .succeeded || !$0.state.isFinal }
        return RunSummary.Group(
            jobs: jobs.count, states: Dictionary(grouping: jobs, by: \.state.rawValue).mapValues(\.count),
            rpo: Percentiles(restoring.compactMap(\.rpoSeconds)),
            rto: Percentiles(jobs.filter { $0.state == .succeeded }.compactMap(\.rtoSeconds)),
            rpoMissed: restoring.count { $0.rpoMet == false }, rtoMissed: jobs.count { $0.rtoMet == false },
            bytes: jobs.reduce(0) { $0 + $1.bytes }, entries: jobs.reduce(0) { $0 + $1.entries })
    }
}
