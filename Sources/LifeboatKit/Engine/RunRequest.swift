import Foundation

/// What an operator asks for: `restore PLAN --sites … --incident-at …`, `exercise PLAN --scale N`.
public struct RunRequest: Sendable {
    public var plan: Plan
    public var mode: RunMode
    /// Narrow the plan's sites to these (each must be selected by the plan and in the store).
    public var sites: [String]?
    /// When the data loss happened; default: when the run is created.
    public var incidentAt: Date?
    /// Select snapshots at or before this; default: the incident time.
    public var asOf: Date?
    /// When the incident was declared (RTO origin); default: when the run is created.
    public var declaredAt: Date?
    /// Exercise sample size (sites); default: the plan's schedule scale, or every site.
    public var scale: Int?
    /// Exercise sampling seed; default: random (recorded).
    public var seed: Int64?
    public var keepSandbox: Bool
    public var startedBy: String
    /// Why (`delete --reason`), recorded on the run.
    public var reason: String?
    /// An exercise rehearses this after its restore (`delete`).
    public var rehearse: String?
    /// A restore takes every job's data from snapshots even where soft-deleted data is in quarantine.
    public var fromSnapshots = false
    /// Narrow the plan's products to these (a delete's default: every product with data at the site).
    public var products: [String]?
    /// Asked once the run is planned (its snapshots listed, which a slow store can make take
    /// minutes), just before it is recorded: false when whoever asked for it is gone (an
    /// operator's Ctrl-C), and then nothing is started.
    public var stillWanted: @Sendable () -> Bool = { true }

    public init(plan: Plan, mode: RunMode, sites: [String]? = nil, incidentAt: Date? = nil, asOf: Date? = nil,
                declaredAt: Date? = nil, scale: Int? = nil, seed: Int64? = nil, keepSandbox: Bool = false, startedBy: String = "cli") {
        self.plan = plan
        self.mode = mode
        self.sites = sites
        self.incidentAt = incidentAt
        self.asOf = asOf
        self.declaredAt = declaredAt
        self.scale = scale
        self.seed = seed
        self.keepSandbox = keepSandbox
        self.startedBy = startedBy
    }
}

/// A request Lifeboat refuses before anything runs.
public struct RunRequestError: LifeboatError {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var exitCode: CLIExit { .rejected }
    public var description: String { message }
}

/// The run was planned after its requester went away (the control connection closed): it was
/// not recorded, and nothing started.
public struct RunAbandoned: LifeboatError {
    public var exitCode: CLIExit { .failed }
    public var description: String { "the run was not started: whoever asked for it went away while its snapshots were being chosen" }
}
