import Foundation

/// A ledger several daemons share (PostgreSQL): besides the `Ledger` contract, it knows the hosts
/// of the fleet. The embedded SQLite ledger has one host, the daemon itself, and does not conform.
public protocol SharedLedger: Ledger {
    /// How long a host's registration, a run's coordination and a job's claim last without renewal.
    var lease: TimeInterval { get }
    /// Registers a daemon as a host. Refused (`HostNameInUse`) while another live daemon holds
    /// the name; a stopped host's or an expired registration is taken over.
    func register(_ host: HostRegistration) async throws
    /// Renews the registration. Throws `HostNameInUse` when another daemon took the name over
    /// (this one was presumed dead).
    func heartbeat(_ host: HostRegistration) async throws
    /// Marks the host stopped (a graceful shutdown): its name is free at once.
    func deregister(_ host: HostRegistration) async throws
    /// Every host that ever registered, by name, with its heartbeat age by the database's clock.
    func hosts() async throws -> [HostRecord]
    /// How many hosts are alive (as `hosts()` says `alive`), without what each is doing: a
    /// run's concurrency is shared among them.
    func liveHostCount() async throws -> Int

    /// Takes (or keeps) the coordination of a run for this host: free, expired or already this
    /// host's. Returns the host that coordinates it now (this one, or the live holder). While
    /// another host coordinates a run, this host's writes to it are refused (`RunLeaseLost`).
    func coordinate(runId: String) async throws -> String
    /// Renews this host's leases of `runIds` (the runs it works on); returns those it still
    /// holds. A lease of this host's outside them (one whose give-back got no answer) is not
    /// renewed: it runs out, and the run is any host's again.
    func renewCoordination(of runIds: Set<String>) async throws -> Set<String>
    /// Gives up the coordination of a run (nil: of every run of this host), so another host
    /// may take it over at once.
    func releaseCoordination(runId: String?) async throws
    /// The live host that coordinates a run, if any (nothing is taken).
    func coordinator(of runId: String) async throws -> String?

    /// Records an operator's command for the host that coordinates the run.
    func forward(_ command: ForwardedCommand) async throws
    /// The commands forwarded for these runs (which this host runs) that no host applied yet,
    /// oldest first. Read, not taken: a command is marked once applied (`markApplied`), so one
    /// whose answer was lost is read again rather than dropped (applying one twice is harmless).
    func forwardedCommands(runIds: [String]) async throws -> [ForwardedCommand]
    /// Records that this host applied these commands.
    func markApplied(_ commands: [ForwardedCommand]) async throws

    /// Claims up to `max` ready jobs of a running run for `host`, in priority order, within the
    /// plan's limits counted for the whole fleet (`ClaimRules`). A job left mid-flight by a host
    /// whose claim expired is claimable again (`JobClaim.isTakeover`).
    func claimJobs(runId: String, host: String, rules: ClaimRules, max: Int) async throws -> [JobClaim]
    /// Hands the slots this host's claims give back to `refiller` (nil: no more): the next ready
    /// job of the run is claimed in the transaction that gives a claim back (no round trip
    /// between one job's end and the next one's start), within the same limits as `claimJobs`.
    func refillSlots(with refiller: (any SlotRefiller)?)
    /// Extends the leases of these claims; returns the ids of the jobs still held.
    func renewClaims(_ claims: [JobClaim]) async throws -> Set<Int64>
    /// How long this host's records have been waiting for the ledger to commit the batch under
    /// way (zero when none is): a batch sent on a connection the server dropped while the
    /// network was cut may wait for ever, and with it every job of this host.
    var writesStalled: Duration { get }
    /// What keeps the database from answering this host, as its own calls found (within
    /// seconds; the connection pool itself gives up after about a minute); nil while it answers.
    var problem: LedgerProblem? { get }
    /// `problem`, once confirmed: calls fail without an answer, or the server cannot be reached
    /// at all (not one call that is slow, which a long read or a lock makes).
    var outage: LedgerProblem? { get }
    /// The ledger's schema, when a host with a newer lifeboat migrated it past this build's since
    /// this host started (its heartbeat looks): this host then claims and takes over nothing.
    var schemaAhead: SchemaMismatch? { get }
    /// Whether events of the run posted here are held back now (another session holds the lock
    /// that orders events, its transaction open): they are written within seconds of its end.
    func holdsBackEvents(runId: String) -> Bool
    /// Gives a claim up (the job ended, or this host stops): another host may take the job.
    /// Queued with the job's records, after them (`flush` to wait for it).
    func releaseClaim(_ claim: JobClaim)
    /// The live claims (of one run, or of all).
    func liveClaims(runId: String?) async throws -> [JobClaim]
    /// The run's jobs changed since `cursor` (all of them without one; a change may be seen
    /// twice, never missed), and the cursor for the next look.
    func jobChanges(runId: String, since cursor: JobChangeCursor?) async throws -> ([JobRecord], JobChangeCursor)
    /// Records a claimed job's transition only while `claim` is its live claim with at least
    /// `minimumLease` left (`LeaseLost` otherwise): fenced by the claim, not by the run's lease.
    func updateJob(_ job: JobRecord, from previous: JobState, fencedBy claim: JobClaim, minimumLease: TimeInterval) async throws
    /// A claimed job's last record (fenced like `updateJob(_:from:fencedBy:minimumLease:)`), with
    /// its claim given back right after it, in the same batch: one commit for both, and the claim
    /// is given back (if still this host's) whether the record is made or refused.
    func finishJob(_ job: JobRecord, from previous: JobState, fencedBy claim: JobClaim) async throws
    /// Queues a claimed job's transition, fenced by the claim: written with the next batch, or
    /// dropped once the claim is lost (the job's next awaited write then says so).
    func postJob(_ job: JobRecord, from previous: JobState, fencedBy claim: JobClaim)
    /// Records data a claimed job displaced into quarantine with the job's transition, fenced
    /// by the claim like `updateJob(_:from:fencedBy:minimumLease:)`.
    func addQuarantine(_ record: QuarantineRecord, updating job: JobRecord, from previous: JobState, fencedBy claim: JobClaim) async throws -> QuarantineRecord

    /// Records a scheduled exercise's fire only if no host recorded one since `previous` was read
    /// (its `exercises` count is the version): true for the one host that fires it.
    func recordFire(_ record: ScheduleRecord, replacing previous: ScheduleRecord) async throws -> Bool
}

extension SharedLedger {
    /// Whether this host's records have waited on one batch for more than a lease: its jobs
    /// cannot get on, so it renews no claim and no run coordination (`JobWorker`, `HostService`)
    /// and the other hosts take them over.
    var writesStuck: Bool { writesStalled > .seconds(lease) }
}

/// This host no longer coordinates the run (its lease expired, another host took it over): what
/// it still tries to record for the run is refused, so it cannot commit over the new coordinator.
public struct RunLeaseLost: LifeboatError {
    public var runId: String
    public var host: String
    public var exitCode: CLIExit { .failed }
    public var description: String {
        "host \(host) no longer coordinates run \(runId) (its lease ran out and another host may have taken the run over); its writes for the run are refused"
    }
}

/// An operator's cancel or resume given to a host that does not coordinate the run: recorded in
/// the shared ledger and applied by the host that does, on its next look (a third of the lease).
public struct ForwardedCommand: Sendable, Hashable {
    public enum Kind: String, Sendable { case cancel, resume }

    public var runId: String
    public var kind: Kind
    /// Who asked, as the receiving host's control socket saw them (uid, pid, host).
    public var by: String
    /// Its row, once recorded.
    public var id: Int64?

    public init(runId: String, kind: Kind, by: String, id: Int64? = nil) {
        self.id = id
        self.runId = runId
        self.kind = kind
        self.by = by
    }
}

/// Who a daemon is, as it registers.
public struct HostRegistration: Sendable, Hashable {
    public var name: String
    /// This process's registration (a restarted daemon is a new instance).
    public var instance: String
    public var pid: Int
    public var version: String
    public var startedAt: Date

    public init(name: String, instance: String = UUID().uuidString, pid: Int = Int(getpid()), version: String = LifeboatVersion.string,
                startedAt: Date) {
        self.name = name
        self.instance = instance
        self.pid = pid
        self.version = version
        self.startedAt = startedAt
    }
}

/// A host as `status` lists it.
public struct HostRecord: Sendable, Codable, Hashable {
    public var name: String
    public var pid: Int
    public var version: String
    public var startedAt: Date
    public var heartbeatAt: Date
    /// Seconds since the last heartbeat, by the database's clock (hosts' clocks may differ).
    public var heartbeatAgeSeconds: Double
    /// `alive` (heartbeat within the lease), `lost` (lease expired without a goodbye) or `stopped`.
    public var state: String
    /// Jobs this host holds claims on now.
    public var claimedJobs: Int
    /// Bytes this host restored over the last minute, per second.
    public var bytesPerSecond: Double

    public init(name: String, pid: Int, version: String, startedAt: Date, heartbeatAt: Date, heartbeatAgeSeconds: Double,
                state: String, claimedJobs: Int, bytesPerSecond: Double) {
        self.name = name
        self.pid = pid
        self.version = version
        self.startedAt = startedAt
        self.heartbeatAt = heartbeatAt
        self.heartbeatAgeSeconds = heartbeatAgeSeconds
        self.state = state
        self.claimedJobs = claimedJobs
        self.bytesPerSecond = bytesPerSecond
    }
}

/// Another live daemon registered under this host name.
public struct HostNameInUse: LifeboatError {
    public var name: String
    public var pid: Int
    public var heartbeatAgeSeconds: Double
    public var exitCode: CLIExit { .failed }
    public var description: String {
        "host name \(name) is in use by another lifeboatd (pid \(pid) there, heartbeat \(Int(heartbeatAgeSeconds)) s ago); "
            + "give each host its own host.name, or wait for that registration's lease to expire"
    }
}

/// Where a look at a run's job changes left off (`SharedLedger.jobChanges`).
public struct JobChangeCursor: Sendable, Equatable {
    /// The first transaction not yet begun when the look began (PostgreSQL's xid8): what it and
    /// later ones change is new.
    var from: String
    /// The transactions still going then: what they change is new too.
    var going: [String]
}
