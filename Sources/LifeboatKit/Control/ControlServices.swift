import Foundation
import Logging

/// What the control socket asks of the runs the daemon executes (the daemon's `RunManager`).
public protocol RunOperations: Sendable {
    /// Records a new run and queues it; returns it as recorded (pending).
    func start(_ request: RunRequest) async throws -> RunRecord
    /// Records a confirmed soft delete as a run and queues it.
    func startDelete(_ selection: DeleteSelection, request: RunRequest) async throws -> RunRecord
    /// Asks a run to stop; returns where the command went when another host coordinates it.
    func cancel(runId: String, by who: String) async throws -> Forwarded?
    /// Lets a halted run go on; returns where the command went when another host coordinates it.
    func resume(runId: String, by who: String) async throws -> Forwarded?
    /// Runs one job of an ended run again (and the jobs it made skip).
    func retry(runId: String, job: JobRef) async throws -> RunRecord
    /// Puts back what an ended restore or delete displaced (all of it, or a site's, a product's).
    func rollback(runId: String, site: String?, product: String?, force: Bool, by who: String) async throws -> [Rollback.Outcome]
    /// Run ids that are queued or running, with whether each has started or is halted.
    var activeRuns: [(id: String, plan: String, started: Bool, halted: Bool)] { get }
    func isActive(_ runId: String) -> Bool
    /// Why a run waits for a slot, or nil when it does not.
    func wait(of runId: String) -> RunWait?
    /// Since when the daemon drains its runs to stop (SIGTERM), or nil while it serves.
    var stoppingSince: Date? { get }
}

/// Where a cancel or resume went when another host coordinates the run (several hosts sharing a
/// ledger): recorded there for that host, which applies it on its next look.
public struct Forwarded: Sendable, Hashable {
    /// The host that coordinates the run (nil: none right now; the next to take it over applies
    /// the command).
    public var host: String?
    /// Within how many seconds that host looks.
    public var withinSeconds: Int

    public init(host: String?, withinSeconds: Int) {
        self.host = host
        self.withinSeconds = withinSeconds
    }
}

/// What the control socket and the HTTP API's queries serve from. The daemon's factory
/// (`makeDaemon`) builds it; the control handler's tests build it the same way.
public struct ControlServices: Sendable {
    /// The daemon as `status` describes it.
    public struct Identity: Sendable {
        public var socket: String
        /// The ledger as `status` names it: its path, or its URL without a password.
        public var ledger: String
        /// This host's name, said where several hosts share the ledger.
        public var host: String
        public var startedAt: Date
    }

    /// The ledger, the bus, the clock and the engine.
    public var runtime: LifeboatRuntime
    public var runs: any RunOperations
    public var plans: PlanRegistry
    public var access: AccessControl
    public var scheduler: Scheduler
    /// Re-reads the config file and plans (SIGHUP and `reload`); returns the problems found.
    public var reload: @Sendable () async -> [PlanRegistry.Problem]
    public var identity: Identity

    public var ledger: any Ledger { runtime.ledger }
    public var clock: any LifeboatClock { runtime.clock }
    public var logger: Logger { runtime.logger }

    /// While a shared ledger does not answer this host: the answer to anything that needs it,
    /// at once (it would otherwise wait out the connection pool, about a minute). `status`
    /// answers without it.
    public var ledgerUnavailable: ControlError? { refusal((ledger as? any SharedLedger)?.problem) }

    /// The same answer once the outage is confirmed (`SharedLedger.outage`): what a read under
    /// way gives up for, rather than for its own slowness.
    var ledgerGone: ControlError? { refusal((ledger as? any SharedLedger)?.outage) }

    private func refusal(_ problem: LedgerProblem?) -> ControlError? {
        guard let problem else { return nil }
        return ControlError(.unavailable, "ledger \(identity.ledger) does not answer this host (since \(Timestamp.iso(problem.since)): "
                            + "\(problem.reason)); this works again once it answers, and `lifeboat status` answers meanwhile")
    }
}
