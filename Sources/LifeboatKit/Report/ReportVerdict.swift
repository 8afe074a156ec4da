import Foundation

/// The answer a person under pressure reads first: did we recover, within the objectives?
public struct ReportVerdict: Sendable, Codable, Hashable {
    public enum Status: String, Sendable, Codable {
        /// Every job restored and every objective met.
        case ok
        /// Something was not restored, an objective was missed, or the run failed or was cancelled.
        case attention
        /// The run has not finished (pending, running, halted at a gate, interrupted).
        case inProgress = "in-progress"
    }

    /// One objective's outcome over the whole run.
    public enum Outcome: String, Sendable, Codable {
        case met, missed
        /// Not decided yet: jobs are still going and the deadline has not passed.
        case pending
        /// The plan sets no such objective.
        case none
    }

    public var status: Status
    /// One line: `3 of 40 jobs not restored · RTO 4h missed · RPO 24h met`.
    public var headline: String
    public var rto: Outcome
    public var rpo: Outcome
    public var jobs: Int
    public var succeeded: Int
    public var failed: Int
    public var skipped: Int
    public var cancelled: Int
    public var unfinished: Int
    /// Jobs restored after the RTO objective.
    public var rtoMissed: Int
    /// Jobs restored or going whose snapshot is older than the RPO objective allows.
    public var rpoMissed: Int
    /// The run's state when the verdict was made.
    public var runState: RunState
    /// A delete run's verdict: its jobs soft-delete, and recovery objectives do not apply.
    var isDelete = false

    /// Decides the verdict. `now` matters only for a run still going: past the RTO deadline, an
    /// unfinished job has already missed it.
    public init(run: RunRecord, jobs: [JobRecord], now: Date) {
        self.jobs = jobs.count
        runState = run.state
        isDelete = run.mode == .delete
        succeeded = jobs.count { $0.state == .succeeded }
        failed = jobs.count { $0.state == .failed }
        skipped = jobs.count { $0.state == .skipped }
        cancelled = jobs.count { $0.state == .cancelled }
        unfinished = jobs.count { !$0.state.isFinal }
        rtoMissed = jobs.count { $0.rtoMet == false }
        rpoMissed = jobs.count { ($0.state == .succeeded || !$0.state.isFinal) && $0.rpoMet == false }
        let notRestored = failed + skipped + cancelled

        if run.rtoObjectiveSeconds == nil || isDelete {
            rto = .none
        } else if rtoMissed > 0 || notRestored > 0 {
            // A site that was not restored was not recovered within the objective either.
            rto = .missed
        } else if unfinished > 0 {
            let deadline = run.declaredAt.addingTimeInterval(run.rtoObjectiveSeconds!)
            rto = now > deadline ? .missed : .pending
        } else {
            rto = .met
        }
        if run.rpoObjectiveSeconds == nil || isDelete {
            rpo = .none
        } else {
            // RPO is known as soon as a snapshot is chosen. A job that ended without restoring
            // its snapshot lost all its data (for now): that misses any objective.
            rpo = rpoMissed > 0 || notRestored > 0 ? .missed : .met
        }

        if run.state == .halted {
            // A failed wave gate waits for an operator: that is a call to act, not progress.
            status = .attention
        } else if !run.state.isFinal {
            status = .inProgress
        } else if notRestored > 0 || unfinished > 0 || rto == .missed || rpo == .missed || run.state != .succeeded {
            status = .attention
        } else {
            status = .ok
        }

        var parts: [String] = []
        // A delete's jobs move data into quarantine: never call that "restored".
        let done = run.mode == .delete ? "soft-deleted" : "restored"
        if self.jobs == 0 {
            parts.append(run.mode == .delete && run.note?.hasPrefix("refused") == true ? "refused: nothing moved" : "no jobs")
        } else if notRestored > 0 {
            parts.append("\(notRestored) of \(self.jobs) jobs not \(done)")
        } else if unfinished > 0 {
            parts.append("\(succeeded) of \(self.jobs) jobs \(done), \(unfinished) to go")
        } else {
            parts.append("all \(self.jobs) jobs \(done)")
        }
        if let objective = run.rtoObjectiveSeconds, !isDelete {
            parts.append("RTO \(DurationSpec.format(seconds: objective)) \(rto.rawValue)")
        }
        if let objective = run.rpoObjectiveSeconds, !isDelete {
            parts.append("RPO \(DurationSpec.format(seconds: objective)) \(rpo.rawValue)")
        }
        headline = parts.joined(separator: " · ")
    }

    /// Jobs that ended without being restored.
    public var notRestored: Int { failed + skipped + cancelled }

    /// `MISSED (2 late, 3 not restored)`, `met`, `pending`: the RTO outcome in words, as the
    /// report says it (`show` and `--follow` print this, so they never disagree with it).
    public var rtoText: String { ReportText.outcome(rto, late: rtoMissed, notRestored: notRestored) }

    /// The RPO outcome in words.
    public var rpoText: String {
        var causes: [String] = []
        if rpoMissed > 0 { causes.append("\(rpoMissed) snapshot(s) older than it") }
        if notRestored > 0 { causes.append("\(notRestored) not restored") }
        return ReportText.outcome(rpo) + (rpo == .missed && !causes.isEmpty ? " (\(causes.joined(separator: ", ")))" : "")
    }

    /// The first words of the page: `OBJECTIVES MET`, `ATTENTION: OBJECTIVES MISSED`, …
    public var title: String {
        switch status {
        case .ok where isDelete: return "SOFT-DELETED: EVERY TARGET IN QUARANTINE"
        case .attention where isDelete && runState != .halted && notRestored > 0: return "NOT FULLY SOFT-DELETED"
        case .ok: return "RECOVERED: OBJECTIVES MET"
        case .inProgress: return "IN PROGRESS"
        case .attention:
            if runState == .halted { return "HALTED AT A WAVE GATE" }
            if rto == .missed || rpo == .missed { return "OBJECTIVES MISSED" }
            return notRestored > 0 ? "NOT FULLY RESTORED" : "NEEDS ATTENTION"
        }
    }
    enum CodingKeys: String, CodingKey {
        case status, headline, rto, rpo, jobs, succeeded, failed, skipped, cancelled, unfinished, rtoMissed = "rto_missed", rpoMissed = "rpo_missed", runState = "run_state"
    }
}
