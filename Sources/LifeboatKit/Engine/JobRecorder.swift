import Foundation
import Logging

/// Records job transitions: the ledger write (compare-and-set on the state it replaces), the
/// ledger event, the followers' message and the log line. No other code writes a job's state.
struct JobRecorder: Sendable {
    let ledger: any Ledger
    let bus: EventBus
    let clock: any LifeboatClock
    let logger: Logger
    let board: RunBoard
    /// A job claimed from a shared ledger: every write is fenced by the claim, so a host that
    /// lost it records nothing more — above all, not a commit; past the claim's deadline by this
    /// host's clock, it changes nothing on disk either.
    private var claim: (queue: any SharedLedger, claim: JobClaim, deadline: ClaimDeadline)?

    init(ledger: any Ledger, bus: EventBus, clock: any LifeboatClock, logger: Logger, board: RunBoard) {
        self.ledger = ledger
        self.bus = bus
        self.clock = clock
        self.logger = logger
        self.board = board
    }

    /// This recorder, for a job held under `claim` until `deadline`.
    func fenced(by claim: JobClaim, on queue: any SharedLedger, until deadline: ClaimDeadline) -> JobRecorder {
        var fenced = self
        fenced.claim = (queue, claim, deadline)
        return fenced
    }

    /// Whether the job's claim ran out by this host's clock (false for a job not claimed).
    var claimExpired: Bool { claim?.deadline.passed() ?? false }

    /// Throws unless this host still holds the job's claim by its own clock, with a little to
    /// spare for the rename that follows.
    func checkClaim() throws {
        guard let (queue, claim, deadline) = claim else { return }
        if deadline.passed(within: .milliseconds(Int64(queue.lease * 1_000 / 20))) {
            throw ClaimExpired(jobId: claim.jobId, host: claim.host)
        }
    }

    init(_ environment: RunEnvironment) {
        self.init(ledger: environment.ledger, bus: environment.bus, clock: environment.clock, logger: environment.logger,
                  board: environment.board)
    }

    /// Applies `event` to `job` and records the transition; returns the job's new record.
    @discardableResult
    func apply(_ event: JobEvent, to job: JobRecord) async throws -> JobRecord {
        let transition = try JobLifecycle.apply(event, to: job)
        try await record(transition)
        return transition.job
    }

    func record(_ transition: JobTransition) async throws {
        switch (transition.write, claim) {
        case (.none, _): break
        case (.queued, let (queue, claim, _)?): queue.postJob(transition.job, from: transition.previous, fencedBy: claim)
        case (.durable, let (queue, claim, deadline)?):
            // The commit record needs lease to spare: enough to rename before anyone takes over
            // (counted here from when it was sent, however late the answer).
            let margin = transition.job.state == .committing ? queue.lease / 3 : 0
            let sent = ContinuousClock.now
            if transition.job.state.isFinal {
                // The job's last record here: its claim is given back in the same commit.
                defer { deadline.markGivenBack() }
                deadline.markGivingBack()
                try await queue.finishJob(transition.job, from: transition.previous, fencedBy: claim)
            } else {
                try await queue.updateJob(transition.job, from: transition.previous, fencedBy: claim, minimumLease: margin)
            }
            deadline.extend(to: sent + .milliseconds(Int64(margin * 1_000)))
        case (.queued, nil): ledger.postJob(transition.job, from: transition.previous)
        case (.durable, nil): try await ledger.updateJob(transition.job, from: transition.previous)
        }
        announce(transition)
    }

    /// Records data displaced into quarantine with the job's transition, in one ledger write.
    func record(_ transition: JobTransition, quarantine: QuarantineRecord) async throws {
        if let (queue, claim, _) = claim {
            _ = try await queue.addQuarantine(quarantine, updating: transition.job, from: transition.previous, fencedBy: claim)
        } else {
            _ = try await ledger.addQuarantine(quarantine, updating: transition.job)
        }
        announce(transition)
    }

    /// The board's count, the event, the followers' message and the log line of a transition
    /// that was written.
    func announce(_ transition: JobTransition) {
        board.record(transition)
        let job = transition.job
        if let event = transition.event {
            ledger.postEvent(LedgerEvent(runId: job.runId, jobId: job.id, at: clock.now(), kind: event.kind, message: event.message))
        }
        if transition.publish { bus.publish(RunEvent(kind: .job, runId: job.runId, at: clock.now(), job: job)) }
        if let line = transition.log {
            var metadata: Logger.Metadata = ["run.id": "\(job.runId)", "job": "\(job.name)", "state": "\(job.state.rawValue)"]
            if job.state == .succeeded {
                metadata["bytes"] = "\(job.bytes)"
                metadata["entries"] = "\(job.entries)"
            }
            if let error = job.error { metadata["error"] = "\(error)" }
            logger.log(level: line.level, "\(line.message)", metadata: metadata)
        }
    }
}
