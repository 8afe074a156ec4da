import Foundation
import Logging
import ServiceLifecycle

/// The engine and what it runs on, built in one place: the ledger (the embedded SQLite one or the
/// shared PostgreSQL one), the event bus, the guardrails, the finisher (reports, exercise cleanup)
/// and the engine over the snapshot stores. The daemon (`makeDaemon`) is built on one, and so is
/// `lifeboat run`, which runs a plan in-process without a daemon.
public struct LifeboatRuntime: Sendable {
    /// Where the ledger lives.
    public enum LedgerLocation: Sendable {
        /// The embedded ledger of one host.
        case sqlite(path: String)
        /// The ledger several hosts share; `host` is this one's name, recorded on the jobs it runs.
        case shared(PostgresLedgerSettings, host: String)
    }

    public struct Settings: Sendable {
        public var ledger: LedgerLocation
        /// What no plan may reach into: the state directory (for `lifeboat run --ledger` alone,
        /// the ledger file).
        public var guarded: String
        /// Where each run's report is written as it ends.
        public var reportsDirectory: String
        /// Endpoint, region and addressing of `s3://` snapshot stores.
        public var s3: S3Settings

        public init(ledger: LedgerLocation, guarded: String, reportsDirectory: String, s3: S3Settings = S3Settings()) {
            self.ledger = ledger
            self.guarded = guarded
            self.reportsDirectory = reportsDirectory
            self.s3 = s3
        }
    }

    public let ledger: any Ledger
    /// The shared ledger's connection pool, a service to run beside the engine (nil for SQLite).
    public let ledgerService: (any Service)?
    public let bus: EventBus
    public let engine: Engine

    public var clock: any LifeboatClock { engine.environment.clock }
    public var logger: Logger { engine.environment.logger }

    /// - Parameter plans: the plans whose trees runs must stay off (targets, stores).
    public init(_ settings: Settings, plans: @escaping @Sendable () -> [Plan], executor: any JobExecutor = RestoreExecutor(),
                clock: any LifeboatClock = SystemClock(), logger: Logger) throws {
        // Recorded on jobs only where several hosts share the ledger: one host's SQLite ledger and
        // its answers stay as they were.
        var host: String?
        switch settings.ledger {
        case .sqlite(let path):
            ledger = try SQLiteLedger(path: path, logger: logger)
            ledgerService = nil
        case .shared(let shared, let name):
            let postgres = try PostgresLedger(settings: shared, password: try shared.password(), host: name, logger: logger)
            ledger = postgres
            ledgerService = postgres
            host = name
            logger.info("shared ledger", metadata: ["ledger": "\(shared.redactedURL)", "host": "\(name)"])
        }
        bus = EventBus()
        let finisher = RunFinisher(ledger: ledger, reportsDirectory: settings.reportsDirectory, logger: logger)
        engine = Engine(environment: RunEnvironment(ledger: ledger, executor: executor, clock: clock, bus: bus, logger: logger,
                                                    guardrails: Guardrails(stateDirectory: settings.guarded, plans: plans),
                                                    finisher: finisher, host: host, stores: SnapshotStores(s3: settings.s3)))
    }

    /// Runs the plans' `notify` hooks for the events of runs (`plan` finds a run's plan by name).
    public func notifications(plan: @escaping @Sendable (RunRecord) -> Plan?) -> NotificationDispatcher {
        NotificationDispatcher(ledger: ledger, logger: logger, plan: plan)
    }
}
