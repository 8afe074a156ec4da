import Foundation

/// One command of the control protocol (DESIGN.md "Control socket"): the value is the command's
/// parameters (sent as `params`, keys in snake_case), with the command's wire name and the type
/// of its result. The CLI sends commands (`ControlClient.call`); the daemon decodes a request line
/// into one and answers it (`ControlHandler`), so both sides share one definition.
public protocol ControlCommand: Codable, Sendable {
    associatedtype Result: Encodable & Sendable
    /// The wire name, e.g. `run.show`.
    static var name: String { get }
    /// Whether this call changes something, and so needs an admin. Default: false.
    var isMutating: Bool { get }
    /// Reads this call's result from the wire. Default: decodes `Result`.
    func decodeResult(_ answer: ControlClient.Answer) throws -> Result
    /// How long the CLI waits for the answer before it calls the daemon unreachable (a frozen or
    /// stopped process, something else on the socket). Default: a minute for a read, as long as
    /// it takes for a change (a purge of large trees, a rollback of many jobs).
    var answerWithin: Duration? { get }
}

extension ControlCommand {
    public var isMutating: Bool { false }
    public var answerWithin: Duration? { isMutating ? nil : .seconds(60) }
}

extension ControlCommand where Result: Decodable {
    public func decodeResult(_ answer: ControlClient.Answer) throws -> Result { try answer.decode(Result.self) }
}

/// What a command that names one run, and nothing else, does (``Control/RunCommand``): `show`,
/// `sites`, `watch`, `cancel`, `resume`. The command's wire name is `run.` and the verb's name
/// in lower case (`Control.Show` is `run.show`).
public protocol RunVerb: Sendable {
    associatedtype Result: Codable & Sendable
    static var name: String { get }
    /// Default: false.
    static var isMutating: Bool { get }
}

extension RunVerb {
    public static var name: String { "run." + String(describing: Self.self).lowercased() }
    public static var isMutating: Bool { false }
}

/// The commands of the control protocol, named after their wire names (`run.show` is `RunShow`).
public enum Control {
    /// `status`: the daemon, its runs going, throughput.
    public struct Status: ControlCommand {
        public typealias Result = DaemonStatus
        public static let name = "status"
        /// The daemon answers within 3 s even when its ledger does not (monitoring polls this).
        public var answerWithin: Duration? { .seconds(15) }
        public init() {}
    }

    /// `plans`: the loaded plans and the problems with plan files.
    public struct Plans: ControlCommand {
        public typealias Result = PlansResult
        public static let name = "plans"
        public init() {}
    }

    /// `plan.check`: checks a plan's YAML (`text`) or a loaded plan (`plan`) as the daemon sees it.
    public struct PlanCheck: ControlCommand {
        public typealias Result = PlanCheckResult
        public static let name = "plan.check"
        public var text: String?
        /// The file name errors are reported under (with `text`).
        public var file: String?
        public var plan: String?

        public init(text: String? = nil, file: String? = nil, plan: String? = nil) {
            (self.text, self.file, self.plan) = (text, file, plan)
        }
    }

    /// `run.list`: recent runs, newest first.
    public struct RunList: ControlCommand {
        public typealias Result = [RunRecord]
        public static let name = "run.list"
        public var limit: Int?

        public init(limit: Int? = nil) { self.limit = limit }
    }

    /// A command that names one run and nothing else; its verb says what it does and answers.
    public struct RunCommand<Verb: RunVerb>: ControlCommand {
        public typealias Result = Verb.Result
        public static var name: String { Verb.name }
        public var isMutating: Bool { Verb.isMutating }
        public var run: String

        public init(run: String) { self.run = run }
    }

    /// `run.show`: a run with all its jobs and its summary.
    public typealias RunShow = RunCommand<Show>
    /// `run.sites`: every site of a run, its state, products done and restored-at or ETA.
    public typealias RunSites = RunCommand<Sites>
    /// `run.watch`: a run's events until it ends, one line each (the opening snapshot, the
    /// events, then the final state, which is the call's last line).
    public struct RunWatch: ControlCommand {
        public typealias Result = WatchEvent
        public static let name = "run.watch"
        public var run: String
        /// False: the final line's `jobs` is left empty (its `summary` is whole). A watcher that
        /// kept each job's latest state from the events has them already; if its own summary of
        /// them differs, it asks `run.show`. Saves a run of 10,000 jobs a 7 MB line at its end.
        public var doneJobs: Bool?

        public init(run: String, doneJobs: Bool? = nil) { (self.run, self.doneJobs) = (run, doneJobs) }
    }
    /// `run.cancel`: no new jobs; running jobs stop within 2 s; destinations untouched.
    public typealias RunCancel = RunCommand<Cancel>
    /// `run.resume`: a run halted by a wave gate goes on.
    public typealias RunResume = RunCommand<Resume>

    public enum Show: RunVerb { public typealias Result = RunDetail }
    public enum Sites: RunVerb { public typealias Result = SiteReport }

    public enum Cancel: RunVerb {
        public typealias Result = RunStateChange
        public static let isMutating = true
    }

    public enum Resume: RunVerb {
        public typealias Result = RunStateChange
        public static let isMutating = true
    }

    /// `job.retry`: a failed, cancelled or skipped job of an ended run runs again.
    public struct JobRetry: ControlCommand {
        public typealias Result = RunRecord
        public static let name = "job.retry"
        public var isMutating: Bool { true }
        public var run: String
        public var job: JobRef

        public init(run: String, job: JobRef) { (self.run, self.job) = (run, job) }
    }

    /// `rollback`: the data a restore displaced goes back (or a delete run's data is undeleted).
    public struct Rollback: ControlCommand {
        public typealias Result = [LifeboatKit.Rollback.Outcome]
        public static let name = "rollback"
        public var isMutating: Bool { true }
        public var run: String
        public var site: String?
        public var product: String?
        /// Also roll back trees changed since the restore.
        public var force: Bool?
        /// Undelete: data re-created at a target since the delete goes to quarantine first.
        public var forceAside: Bool?

        public init(run: String, site: String? = nil, product: String? = nil, force: Bool = false, forceAside: Bool = false) {
            (self.run, self.site, self.product) = (run, site, product)
            // Sent only when set, as the flags are.
            (self.force, self.forceAside) = (force ? true : nil, forceAside ? true : nil)
        }
    }

    /// `quarantine.list`: quarantined data: run, site, product, size, age, purgeable.
    public struct QuarantineList: ControlCommand {
        public typealias Result = [QuarantineManager.Entry]
        public static let name = "quarantine.list"
        public init() {}
    }

    /// `quarantine.purge`: removes quarantined data past its retention. A dry run only reads, and
    /// anyone who may read may ask what a purge would remove.
    public struct QuarantinePurge: ControlCommand {
        public typealias Result = QuarantineManager.PurgeResult
        public static let name = "quarantine.purge"
        public var isMutating: Bool { dryRun != true }
        /// A duration such as `60d`: only entries at least this old.
        public var olderThan: String?
        public var dryRun: Bool?
        /// Confirms purging entries kept under a day.
        public var yes: Bool?

        public init(olderThan: String? = nil, dryRun: Bool = false, yes: Bool = false) {
            (self.olderThan, self.dryRun, self.yes) = (olderThan, dryRun, yes ? true : nil)
        }
    }

    /// `report`: a run's report rendered in one format (default Markdown).
    public struct Report: ControlCommand {
        public typealias Result = ReportResult
        public static let name = "report"
        public var run: String
        public var format: ReportFormat?

        public init(run: String, format: ReportFormat? = nil) { (self.run, self.format) = (run, format) }
    }

    /// `reload`: re-reads the config file and plans (like SIGHUP).
    public struct Reload: ControlCommand {
        public typealias Result = ReloadResult
        public static let name = "reload"
        public var isMutating: Bool { true }
        public init() {}
    }

    /// `schedules`: scheduled exercises and their next fires.
    public struct Schedules: ControlCommand {
        public typealias Result = [Scheduler.Upcoming]
        public static let name = "schedules"
        public init() {}
    }
}

/// A job of a run as an operator names it: its id (`lifeboat show RUN`; ids are numbered across
/// runs), or `SITE/PRODUCT`. On the wire an integer or a string.
public enum JobRef: Codable, Sendable, Equatable, CustomStringConvertible {
    case id(Int64)
    case name(String)

    /// An id (digits), or `SITE/PRODUCT`; nil for anything else.
    public init?(_ text: String) {
        if let id = Int64(text) {
            self = .id(id)
        } else if text.contains("/") {
            self = .name(text)
        } else {
            return nil
        }
    }

    public init(from decoder: any Decoder) throws {
        let value = try decoder.singleValueContainer()
        if let id = try? value.decode(Int64.self) {
            self = .id(id)
        } else if let job = JobRef(try value.decode(String.self)) {
            self = job
        } else {
            throw DecodingError.dataCorruptedError(in: value, debugDescription: "not a job id or SITE/PRODUCT")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var value = encoder.singleValueContainer()
        switch self {
        case .id(let id): try value.encode(id)
        case .name(let name): try value.encode(name)
        }
    }

    public var description: String {
        switch self {
        case .id(let id): "\(id)"
        case .name(let name): name
        }
    }

    /// Whether `job` is the job this names.
    public func names(_ job: JobRecord) -> Bool {
        switch self {
        case .id(let id): job.id == id
        case .name(let name): job.name == name
        }
    }
}
