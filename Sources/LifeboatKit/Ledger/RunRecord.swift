import Foundation

/// How a run treats destinations.
public enum RunMode: String, Sendable, Codable, CaseIterable {
    /// Destination = the plan's `target` (production).
    case restore
    /// Destination = the plan's `sandbox`; production is never touched.
    case exercise
    /// Resolves everything and forecasts; writes nothing.
    case dryRun = "dry-run"
    /// Soft delete: each selected target moves into quarantine (DESIGN.md "Soft deletes").
    case delete
}

public enum RunState: String, Sendable, Codable, CaseIterable {
    case pending, running
    /// A wave gate failed: waiting for `resume` or `cancel`.
    case halted
    /// Stopped by a drain (SIGTERM); resumed on the next start.
    case interrupted
    case succeeded, failed, cancelled

    public var isFinal: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// One execution of a plan, as recorded in the ledger (`runs` table).
public struct RunRecord: Sendable, Codable, Hashable {
    /// `20261125-101132-a3f9`: sortable, and a valid id for `{run}` in paths.
    public var id: String
    public var plan: String
    /// The plan file the run was started from.
    public var planPath: String?
    /// The version (`sha256:…` of its text) of the plan the run was started with: every host
    /// works the run under that version or not at all (nil: recorded before versions were).
    public var planVersion: String?
    public var mode: RunMode
    public var state: RunState
    /// When the incident was declared (RTO is measured from here).
    public var declaredAt: Date
    /// When the data loss happened (RPO is measured to here).
    public var incidentAt: Date
    /// Snapshots are selected at or before this time.
    public var asOf: Date
    public var createdAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    /// Cancelled, with hosts of the fleet still stopping its jobs (a shared ledger's cancel is
    /// recorded first, so that no host claims more; the run ends when its jobs have stopped).
    public var isCancelling: Bool { state == .cancelled && finishedAt == nil }
    /// Succeeded, failed or cancelled, with nothing left to stop.
    public var hasEnded: Bool { state.isFinal && !isCancelling }
    /// Marks the run cancelling, its note naming who cancelled it (`cancellingBy` reads it back).
    public mutating func beginCancelling(by who: String) {
        state = .cancelled
        finishedAt = nil
        note = Self.cancellingPrefix + who + Self.cancellingSuffix
    }
    /// Who cancelled a cancelling run, as its note says (hosts stopping its jobs record it).
    public var cancellingBy: String? {
        guard isCancelling, let note, note.hasPrefix(Self.cancellingPrefix), note.hasSuffix(Self.cancellingSuffix) else { return nil }
        return String(note.dropFirst(Self.cancellingPrefix.count).dropLast(Self.cancellingSuffix.count))
    }
    private static let cancellingPrefix = "cancelled by "
    private static let cancellingSuffix = "; hosts are stopping its jobs"
    /// Who started it: `uid 1000 (pid 4242)`, `scheduler`, `cli`.
    public var startedBy: String
    /// Objectives copied from the plan at creation (seconds).
    public var rtoObjectiveSeconds: Double?
    public var rpoObjectiveSeconds: Double?
    public var totalWaves: Int
    /// The wave being run (0-based).
    public var currentWave: Int
    /// Exercise sampling seed (recorded so the sample can be repeated).
    public var seed: Int64?
    /// Keep exercise sandbox data after the report.
    public var keepSandbox: Bool
    /// A short reason for the state (gate failure, cancel by whom, error).
    public var note: String?
    /// An exercise's sandbox cleanup after its report: `pending` (a restart resumes it), `done`,
    /// `failed: why`, or nil when there is none (restores, kept sandboxes).
    public var cleanup: String?
    /// Why the operator started it (`delete --reason`), as given.
    public var reason: String?
    /// An exercise's rehearsal after its restore: `delete` (soft-delete and undelete the sandbox
    /// targets, proving the trees byte-identical).
    public var rehearse: String?
    /// Seconds the run spent paused before now: halted at wave gates (and queued for a slot
    /// again after a resume), or ended until an operator's retry reopened it. Nothing goes on
    /// then, so it is no part of the run's pace (nil: none).
    public var pausedSeconds: Double?
    /// Since when the run is paused (halted at a gate, or ended), while it is.
    public var pausedAt: Date?

    /// Seconds the run worked, from its start to `now` (or its end), its pauses left out: what
    /// its pace, forecasts and throughput are measured over.
    public func workedSeconds(now: Date) -> Double? {
        guard let startedAt else { return nil }
        let end = finishedAt ?? now
        return max(0, end.timeIntervalSince(startedAt) - paused(until: end))
    }

    /// Seconds paused up to `end`: the pauses ended, and the one still open (halted now, or
    /// cancelled while halted) until `end`.
    public func paused(until end: Date) -> Double {
        (pausedSeconds ?? 0) + (pausedAt.map { max(0, end.timeIntervalSince($0)) } ?? 0)
    }

    /// A pause begins now (kept if one already had: a restart while halted).
    public mutating func pause(at now: Date) {
        if pausedAt == nil { pausedAt = now }
    }

    /// The pause ends now: its time joins `pausedSeconds`.
    public mutating func endPause(at now: Date) {
        guard let since = pausedAt else { return }
        pausedSeconds = (pausedSeconds ?? 0) + max(0, now.timeIntervalSince(since))
        pausedAt = nil
    }

    public init(id: String, plan: String, planPath: String?, planVersion: String? = nil, mode: RunMode, state: RunState = .pending,
                declaredAt: Date, incidentAt: Date, asOf: Date, createdAt: Date, startedBy: String,
                rtoObjectiveSeconds: Double?, rpoObjectiveSeconds: Double?, totalWaves: Int,
                seed: Int64? = nil, keepSandbox: Bool = false) {
        self.id = id
        self.plan = plan
        self.planPath = planPath
        self.planVersion = planVersion
        self.mode = mode
        self.state = state
        self.declaredAt = declaredAt
        self.incidentAt = incidentAt
        self.asOf = asOf
        self.createdAt = createdAt
        self.startedBy = startedBy
        self.rtoObjectiveSeconds = rtoObjectiveSeconds
        self.rpoObjectiveSeconds = rpoObjectiveSeconds
        self.totalWaves = totalWaves
        self.currentWave = 0
        self.seed = seed
        self.keepSandbox = keepSandbox
    }

    public static let cleanupPending = "pending"
    public static let cleanupDone = "done"
    /// Done, except for data no longer where its job committed it (the rest of the value says which).
    public static let cleanupIncomplete = "incomplete: "

    /// A new run id from the creation time and a random suffix.
    public static func makeID(at date: Date) -> String {
        let stamp = Timestamp.formatBasic(date) // 20261125T101132Z
        let digits = stamp.filter(\.isNumber)
        let suffix = String(UInt16.random(in: 0...UInt16.max), radix: 16)
        return "\(digits.prefix(8))-\(digits.dropFirst(8))-\(String(repeating: "0", count: 4 - suffix.count))\(suffix)"
    }
}
