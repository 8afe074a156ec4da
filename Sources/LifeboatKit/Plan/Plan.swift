import Foundation

/// A restoration plan: what to restore, from where, to where, in what order, how fast and with
/// which objectives (DESIGN.md "Plan file"). Decoded and validated once by `PlanLoader`.
public struct Plan: Sendable {
    /// Unique name; defaults to the file name without `.yaml`.
    public var name: String
    public var description: String?
    /// The file the plan was loaded from (absolute), if any.
    public var sourcePath: String?
    /// The snapshot store root.
    public var snapshots: String
    /// Production location of a job's data (`{site}`, `{product}`, `{run}`).
    public var target: PathTemplate
    /// Where exercises restore; nil means the plan cannot run exercises.
    public var sandbox: PathTemplate?
    public var quarantine: QuarantinePolicy
    public var sites: SiteSelector
    /// Restored products, in declared order.
    public var products: [ProductSpec]
    /// At most this many jobs at once in a run.
    public var concurrency: Int
    public var objectives: Objectives
    /// Staged rollout; one wave of everything when the plan declares none.
    public var waves: [WaveSpec]
    public var retry: RetryPolicy
    public var verify: VerifyPolicy
    public var limits: ArchiveLimits
    public var unsafeEntries: UnsafeEntryPolicy
    /// Apply the archive's uid/gid to restored files (off by default).
    public var preserveOwnership: Bool
    /// Timeout of every hook (`verify.command`, `post_restore`, `notify`).
    public var hookTimeout: DurationSpec
    public var schedule: ExerciseSchedule?
    /// Notification command (argv), run with an event as JSON on stdin.
    public var notify: [String]?
    /// Where keys were written (`snapshots`, `target`, `sandbox`, …), for errors found later
    /// across plans.
    public var marks: [String: SourceMark] = [:]
    /// What is allowed but worth a second look (a retention under a day).
    public var warnings: [Diagnostic] = []
    /// Limits on one soft delete (`delete: { max_sites: N }`).
    public var delete = DeletePolicy()
    /// `sha256:<hex>` of the plan's text as loaded: a delete's confirmation token covers it, so a
    /// plan changed between `--dry-run` and `--confirm` changes the token.
    public var version = ""
    /// Whether the plan declares `waves:` (without, a restore has one wave of everything and a
    /// delete a canary first).
    public var wavesDeclared = false

    public func product(named name: String) -> ProductSpec? { products.first { $0.name == name } }

    /// Where `key` is written: `FILE:LINE:COLUMN`, or the plan's file (its name when it has none).
    public func place(of key: String) -> String {
        (sourcePath ?? "plan \(name)") + (marks[key].map { ":\($0.line):\($0.column)" } ?? "")
    }

    /// What `plan check` says of the plan's store as this machine sees it: a local store that is
    /// not there (an unmounted volume, a typo) is allowed, since it may be there by the time a run
    /// starts, but each run is refused until it is.
    public func storeWarning() -> Diagnostic? {
        guard !S3Location.isS3(snapshots), !FileSystem.isDirectory(snapshots) else { return nil }
        let mark = marks["snapshots"] ?? SourceMark(line: 1, column: 1)
        let what = FileSystem.isReachable(snapshots) ? "is not a directory" : "does not exist"
        return Diagnostic(file: sourcePath ?? name, line: mark.line, column: mark.column,
                          message: "warning: snapshots \(snapshots) \(what) here: every run of this plan is refused while so (mount the store, or fix the path)")
    }
}

/// `delete: { max_sites: N }`: at most N sites in one soft delete (nil: no cap).
public struct DeletePolicy: Sendable, Hashable {
    public var maxSites: Int?

    public init(maxSites: Int? = nil) { self.maxSites = maxSites }
}

public struct QuarantinePolicy: Sendable, Hashable {
    /// Displaced data is kept at least this long.
    public var retention: DurationSpec = DurationSpec(seconds: 30 * 86_400)
}

/// Which sites a plan restores: globs over site ids (default: every site in the store).
public struct SiteSelector: Sendable, Hashable {
    public var include: [String] = ["*"]
    public var exclude: [String] = []

    public init(include: [String] = ["*"], exclude: [String] = []) {
        self.include = include
        self.exclude = exclude
    }

    public func matches(_ site: String) -> Bool {
        include.contains { Glob.matches($0, site) } && !exclude.contains { Glob.matches($0, site) }
    }
}

public struct ProductSpec: Sendable, Hashable {
    public var name: String
    /// Lower goes first across all sites.
    public var priority: Int = 0
    /// Per site: this product starts when these products of the same site succeeded.
    public var after: [String] = []
    /// At most this many jobs of this product at once (nil: only the run's limit).
    public var concurrency: Int?
    /// Run after commit (argv with `{site}`, `{product}`, `{run}`, `{path}`); failure fails the job
    /// but keeps the committed data.
    public var postRestore: [String]?

    public init(name: String, priority: Int = 0, after: [String] = [], concurrency: Int? = nil, postRestore: [String]? = nil) {
        self.name = name
        self.priority = priority
        self.after = after
        self.concurrency = concurrency
        self.postRestore = postRestore
    }
}

public struct Objectives: Sendable, Hashable {
    public var rto: DurationSpec?
    public var rpo: DurationSpec?
}

public struct WaveSpec: Sendable, Hashable {
    public enum Size: Sendable, Hashable, CustomStringConvertible {
        /// A percentage of the run's sites (at least one site).
        case percent(Double)
        /// A number of sites.
        case count(Int)
        /// Every site not yet in a wave.
        case rest

        public var description: String {
            switch self {
            case .percent(let p): return p == p.rounded() ? "\(Int(p))%" : "\(p)%"
            case .count(let n): return "\(n)"
            case .rest: return "rest"
            }
        }
    }

    public var sites: Size
    public var gate: WaveGate

    public init(sites: Size, gate: WaveGate = WaveGate()) {
        self.sites = sites
        self.gate = gate
    }
}

/// After a wave, the run goes on only if its failures stay within these bounds.
public struct WaveGate: Sendable, Hashable {
    public var maxFailures: Int?
    public var maxFailureRatio: Double?

    public init(maxFailures: Int? = nil, maxFailureRatio: Double? = nil) {
        self.maxFailures = maxFailures
        self.maxFailureRatio = maxFailureRatio
    }

    /// Whether a wave with `failures` failed jobs out of `jobs` passes the gate.
    public func passes(failures: Int, jobs: Int) -> Bool {
        if let maxFailures, failures > maxFailures { return false }
        if let maxFailureRatio, jobs > 0, Double(failures) / Double(jobs) > maxFailureRatio { return false }
        return true
    }
}

/// Transient I/O errors are retried; integrity errors never are.
public struct RetryPolicy: Sendable, Hashable {
    public var attempts: Int = 3
    public var backoff: DurationSpec = DurationSpec(seconds: 10)

    /// The defaults.
    public init() {}
}

public struct VerifyPolicy: Sendable, Hashable {
    public var checksum: ChecksumPolicy = .required
    /// Run on the staging path (argv with `{path}` etc.); exit 0 = pass.
    public var command: [String]?

    /// The defaults.
    public init() {}
}

public struct ArchiveLimits: Sendable, Hashable {
    public var maxBytes: ByteSize = ByteSize(bytes: 500 << 30)
    public var maxEntries: Int = 10_000_000

    /// The defaults.
    public init() {}
}

public struct ExerciseSchedule: Sendable, Hashable {
    public var exercise: CronExpression
    public var scale: ExerciseScale
    /// `rehearse: delete`: each scheduled exercise also rehearses a soft delete and undelete.
    public var rehearse: String? = nil
}

/// Sites in the first exercise and the growth per exercise, capped at all sites.
public struct ExerciseScale: Sendable, Hashable {
    public var start: Int = 10
    public var factor: Double = 2

    /// The number of sites of exercise number `index` (0-based), capped at `total`.
    public func sites(forExercise index: Int, total: Int) -> Int {
        let grown = Double(start) * pow(factor, Double(max(0, index)))
        guard grown.isFinite, grown < Double(total) else { return total }
        return max(1, min(total, Int(grown.rounded(.up))))
    }
}
