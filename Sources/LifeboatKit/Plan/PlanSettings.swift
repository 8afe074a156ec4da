import Foundation

/// A plan's settings as they take effect, its defaults filled in: what `plans --json` and
/// `plan check --json` show, so that no default (retry, limits, verify…) has to be guessed.
/// Durations are in seconds and sizes in bytes.
public struct PlanSettings: Codable, Sendable, Hashable {
    public struct Product: Codable, Sendable, Hashable {
        public var name: String
        public var priority: Int
        public var after: [String]
        public var concurrency: Int?
        public var postRestore: [String]?
    }

    public struct Wave: Codable, Sendable, Hashable {
        /// `10%`, `5` or `rest`.
        public var sites: String
        public var maxFailures: Int?
        public var maxFailureRatio: Double?
    }

    public struct Retry: Codable, Sendable, Hashable {
        public var attempts: Int
        public var backoffSeconds: Int64
    }

    public struct Verify: Codable, Sendable, Hashable {
        public var checksum: ChecksumPolicy
        public var command: [String]?
    }

    public struct Limits: Codable, Sendable, Hashable {
        public var maxBytes: Int64
        public var maxEntries: Int
    }

    /// `schedule:` beside its expression: how exercises grow, and what each also rehearses.
    public struct ScheduleScale: Codable, Sendable, Hashable {
        public var start: Int
        public var factor: Double
    }

    public var name: String
    public var snapshots: String
    public var target: String
    public var sandbox: String?
    public var sitesInclude: [String]
    public var sitesExclude: [String]
    public var products: [Product]
    public var concurrency: Int
    public var rtoSeconds: Int64?
    public var rpoSeconds: Int64?
    public var waves: [Wave]
    public var retry: Retry
    public var verify: Verify
    public var limits: Limits
    public var unsafeEntries: UnsafeEntryPolicy
    public var preserveOwnership: Bool
    public var hookTimeoutSeconds: Int64
    public var quarantineRetentionSeconds: Int64
    public var schedule: String?
    public var scheduleScale: ScheduleScale?
    public var scheduleRehearse: String?
    public var notify: [String]?
    /// `delete.max_sites`: at most this many sites in one soft delete (nil: no cap).
    public var deleteMaxSites: Int?

    public init(_ plan: Plan) {
        name = plan.name
        snapshots = plan.snapshots
        target = plan.target.text
        sandbox = plan.sandbox?.text
        sitesInclude = plan.sites.include
        sitesExclude = plan.sites.exclude
        products = plan.products.map { Product(name: $0.name, priority: $0.priority, after: $0.after, concurrency: $0.concurrency, postRestore: $0.postRestore) }
        concurrency = plan.concurrency
        rtoSeconds = plan.objectives.rto?.seconds
        rpoSeconds = plan.objectives.rpo?.seconds
        waves = plan.waves.map { Wave(sites: $0.sites.description, maxFailures: $0.gate.maxFailures, maxFailureRatio: $0.gate.maxFailureRatio) }
        retry = Retry(attempts: plan.retry.attempts, backoffSeconds: plan.retry.backoff.seconds)
        verify = Verify(checksum: plan.verify.checksum, command: plan.verify.command)
        limits = Limits(maxBytes: plan.limits.maxBytes.bytes, maxEntries: plan.limits.maxEntries)
        unsafeEntries = plan.unsafeEntries
        preserveOwnership = plan.preserveOwnership
        hookTimeoutSeconds = plan.hookTimeout.seconds
        quarantineRetentionSeconds = plan.quarantine.retention.seconds
        schedule = plan.schedule?.exercise.text
        scheduleScale = plan.schedule.map { ScheduleScale(start: $0.scale.start, factor: $0.scale.factor) }
        scheduleRehearse = plan.schedule?.rehearse
        notify = plan.notify
        deleteMaxSites = plan.delete.maxSites
    }

    /// One line for people: `concurrency 8, retry 3 × 10s, checksum required, limits 500 GiB / 10000000 entries, …`.
    public var summary: String {
        "concurrency \(concurrency), retry \(retry.attempts) × \(DurationSpec.format(seconds: Double(retry.backoffSeconds))), "
            + "checksum \(verify.checksum.rawValue), limits \(ByteSize.format(limits.maxBytes)) / \(limits.maxEntries) entries, "
            + "unsafe_entries \(unsafeEntries.rawValue), hook_timeout \(DurationSpec.format(seconds: Double(hookTimeoutSeconds))), "
            + "retention \(DurationSpec.format(seconds: Double(quarantineRetentionSeconds)))"
    }
}
