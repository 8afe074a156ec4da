import CLinux
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// The daemon, assembled: a `ServiceGroup` of the run manager, the control server and the
/// lifecycle service (systemd notifications, SIGHUP reloads, watchdog), plus what tests reach into.
public struct Daemon: Sendable {
    public let group: ServiceGroup
    /// What the control socket serves from: the runtime (ledger, bus, engine), runs, plans, access.
    public let services: ControlServices
    /// Answers control requests; the socket server reads lines into it.
    public let handler: ControlHandler
    public let runs: RunManager
    public let server: ControlServer
    /// Present when `http.listen` (or its alias `metrics.listen`) is set.
    public let metrics: MetricsService?
    public let http: HTTPService?
    let lock: StateLock
}

extension RunManager: RunOperations {}

extension Daemon {
    /// Runs the daemon's services for the length of `body`, which starts once the control socket
    /// (and the web listener, if any) accept connections; then stops them gracefully. When the
    /// services stop before they listen (the socket or the port is taken, a path is too long),
    /// this throws why instead of waiting for a socket that will never listen. For the demo and
    /// tests; `lifeboatd` runs the group itself.
    public func serving<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            let stopped = ReadySignal()
            group.addTask {
                defer { stopped.signal() }
                try await self.group.run()
            }
            await withTaskGroup(of: Void.self) { race in
                race.addTask {
                    await self.server.listening.wait()
                    await self.http?.listening.wait()
                }
                race.addTask { await stopped.wait() }
                await race.next()
                race.cancelAll()
            }
            guard server.listening.isSignalled, http?.listening.isSignalled ?? true, !stopped.isSignalled else {
                try await group.waitForAll()  // the services' error, if they failed
                throw StoppedBeforeListening()
            }
            let result: T
            do {
                result = try await body()
            } catch {
                await self.group.triggerGracefulShutdown()
                try? await group.waitForAll()
                throw error
            }
            await self.group.triggerGracefulShutdown()
            try await group.waitForAll()
            return result
        }
    }

    /// The daemon's services ended, without an error, before they listened (e.g. on SIGINT).
    public struct StoppedBeforeListening: LifeboatError {
        public var exitCode: CLIExit { .failed }
        public var description: String { "lifeboatd stopped before its socket listened" }
    }
}

extension Daemon {
    /// Caps glibc's malloc arenas for the daemon's process (call first, before threads start);
    /// returns the cap in force (`MALLOC_ARENA_MAX` from the environment wins).
    ///
    /// glibc gives each contending thread an arena of its own, up to eight per core, and a
    /// daemon's threads are many (the blocking pool's 16, the event loops, Swift's pool). Memory
    /// freed in one arena is not reused by another, so transient peaks (a run's report, a
    /// 10,000-job answer) add up across them: in `scripts/bench-jobs` the daemon peaked at
    /// 204–206 MiB with glibc's default and 167–177 MiB with two arenas, at the same wall time.
    @discardableResult
    public static func limitMallocArenas(to arenas: Int32 = 2) -> Int32 {
        lifeboat_limit_malloc_arenas(arenas)
    }

    /// Raises the soft limit on open files to the hard one (a shell's default soft limit is 1024;
    /// systemd's unit sets its own); returns the limit in force, nil if it could not be read.
    /// Each job holds an archive, staging directories and files open, and each control connection
    /// a descriptor: with the soft limit reached, jobs fail to open their archives.
    @discardableResult
    public static func raiseOpenFilesLimit() -> Int? {
        let limit = lifeboat_raise_open_files_limit()
        return limit < 0 ? nil : limit
    }

    /// Raises the niceness of the daemon's threads to `niceness` (call first: threads started
    /// later inherit it); returns the niceness in force. Never lowers it: a service manager's
    /// higher `Nice=` stands. lifeboatd gives up CAP_SYS_NICE before its first thread starts
    /// (`CLifeboatd`), so that no thread lowers its own again (libdispatch would, by QoS).
    ///
    /// Under a 10,000-job run `lifeboat status` spent most of its wall time preempted by the
    /// daemon's wake-ups (23 ms for 10 ms of CPU); at niceness 10 the operator's command comes
    /// first. The daemon's own threads keep their weights among themselves, so its hand-offs
    /// (an archive's reader and writer) are not slowed, as `SCHED_BATCH` slowed them.
    public static func raiseNiceness(to niceness: Int32) throws -> Int32 {
        let now = lifeboat_raise_niceness(niceness)
        guard now != -100 else { throw NicenessRefused(niceness: niceness, reason: String(cString: strerror(errno))) }
        return now
    }

    /// The kernel refused to change a thread's niceness; the daemon runs on at the priority it has.
    public struct NicenessRefused: Error, CustomStringConvertible {
        public var niceness: Int32
        public var reason: String
        public var description: String { "cannot set niceness \(niceness): \(reason)" }
    }
}

extension DaemonConfig {
    /// The ledger, reports and stores the daemon's runtime is built with.
    public var runtimeSettings: LifeboatRuntime.Settings {
        LifeboatRuntime.Settings(ledger: sharedLedger.map { LifeboatRuntime.LedgerLocation.shared($0, host: hostName) } ?? .sqlite(path: ledgerPath),
                                 guarded: stateDirectory, reportsDirectory: reportsDirectory, s3: s3)
    }
}

/// Builds the whole daemon — the runtime (ledger, bus, engine, finisher), plans, run manager,
/// access control, scheduler, control server, lifecycle and HTTP services — for `lifeboatd`, the
/// demo and tests alike.
public func makeDaemon(config: DaemonConfig, logger: Logger, clock: any LifeboatClock = SystemClock(),
                       executor: any JobExecutor = RestoreExecutor(),
                       notifier: SystemdNotifier = SystemdNotifier()) throws -> Daemon {
    try FileSystem.createDirectories(config.stateDirectory, mode: 0o700)
    let lock = try StateLock(stateDirectory: config.stateDirectory)
    let plans = PlanRegistry(directory: config.plansDirectory, stateDirectory: config.stateDirectory)
    for problem in plans.reload(now: clock.now()) {
        logger.error("invalid plan", metadata: ["file": "\(problem.file)", "errors": "\(problem.errors.joined(separator: "; "))"])
    }
    // The shared PostgreSQL ledger when configured (its pool is a service), else SQLite.
    let runtime = try LifeboatRuntime(config.runtimeSettings, plans: { plans.plans.map(\.plan) }, executor: executor, clock: clock, logger: logger)
    // With a shared ledger, nothing is claimed, coordinated or served before this host is
    // registered under its name (a live host elsewhere may hold it).
    let hostRegistered = runtime.ledgerService == nil ? nil : ReadySignal()
    let runs = RunManager(engine: runtime.engine, plans: plans, maxConcurrentRuns: config.maxConcurrentRuns, startAfter: hostRegistered, logger: logger)
    let access = AccessControl(Authorizer(admins: config.admins, deleters: config.deleters))
    let scheduler = Scheduler(plans: plans, ledger: runtime.ledger, clock: clock, startAfter: runs.recovered, logger: logger,
                              fire: { request in try await runs.start(request) })
    let reload = makeReload(config: config, plans: plans, runs: runs, scheduler: scheduler, access: access, clock: clock,
                            notifier: notifier, logger: logger)
    let services = ControlServices(runtime: runtime, runs: runs, plans: plans, access: access, scheduler: scheduler, reload: reload,
                                   identity: .init(socket: config.socket.path, ledger: config.ledgerDescription, host: config.hostName,
                                                   startedAt: clock.now()))
    let handler = ControlHandler(services: services)
    let server = ControlServer(socket: config.socket, handler: handler, startAfter: runs.recovered, logger: logger)
    // Subscribed before any run starts, so no event worth a notification is missed.
    let lifecycle = LifecycleService(services: services, listening: server.listening, notifications: runtime.bus.subscribe(),
                                     notifier: notifier, logger: logger)
    // Services stop in the reverse of this order, each once the one after it has: the lifecycle
    // (STOPPING=1) and the scheduler first, then the runs drain (and, with a shared ledger, the
    // worker's jobs record their interruption and give their claims back) while the control
    // socket and the web view still answer, so that operators see the drain; the host says
    // goodbye and the pool closes last.
    var groupServices: [any Service] = [server]
    var shared: (pool: any Service, host: HostService, worker: JobWorker)?
    if let pool = runtime.ledgerService, let ledger = runtime.ledger as? any SharedLedger {
        let registered = hostRegistered ?? .signalled
        let host = HostService(ledger: ledger, registration: HostRegistration(name: config.hostName, startedAt: clock.now()),
                               registered: registered, coordinated: { runs.coordinated }, logger: logger)
        let worker = JobWorker(engine: runtime.engine, plans: plans, queue: ledger, host: config.hostName, maxJobs: config.hostMaxJobs,
                               startAfter: registered, logger: logger)
        shared = (pool, host, worker)
    }
    var metrics: MetricsService?
    var http: HTTPService?
    if let listen = config.httpListen, let address = MetricsAddress(listen) {
        var hostWork: (@Sendable () -> HostWork)?
        if let worker = shared?.worker { hostWork = { worker.work } }
        let registry = LifeboatMetrics(ledger: runtime.ledger, board: runtime.engine.environment.board, clock: clock,
                                       host: shared == nil ? nil : config.hostName, hostWork: hostWork)
        metrics = MetricsService(metrics: registry, events: runtime.bus.subscribe(), activeRuns: { runs.activeRuns.map(\.id) })
        http = HTTPService(address: address, routes: WebRoutes(queries: RunQueries(services: services), registry: registry.registry),
                           startAfter: hostRegistered ?? .signalled, logger: logger)
        groupServices += [metrics!, http!] as [any Service]
    }
    if let shared {
        groupServices.insert(contentsOf: [shared.pool, shared.host] as [any Service], at: 0)
        groupServices.append(shared.worker)
    }
    groupServices += [runs, scheduler, lifecycle] as [any Service]
    let group = ServiceGroup(configuration: ServiceGroupConfiguration(
        services: groupServices, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    return Daemon(group: group, services: services, handler: handler, runs: runs, server: server, metrics: metrics, http: http, lock: lock)
}

/// `reload` and SIGHUP: re-reads the config file (admins, plans_dir and max_concurrent_runs apply
/// now) and the plans; returns the problems found. Keys only a restart applies are named.
private func makeReload(config: DaemonConfig, plans: PlanRegistry, runs: RunManager, scheduler: Scheduler, access: AccessControl, clock: any LifeboatClock,
                        notifier: SystemdNotifier, logger: Logger) -> @Sendable () async -> [PlanRegistry.Problem] {
    return {
        notifier.reloading()
        var problems: [PlanRegistry.Problem] = []
        var plansDirectory: String?
        if let file = config.sourcePath {
            // The config is re-read too: admins, plans_dir and max_concurrent_runs apply now; the
            // socket (path, mode, group), state_dir, http, log and nice need a restart. An invalid file keeps the
            // running config.
            do {
                let fresh = try DaemonConfig.load(path: file)
                access.authorizer = Authorizer(admins: fresh.admins, deleters: fresh.deleters)
                plansDirectory = fresh.plansDirectory
                runs.slots.setLimit(fresh.maxConcurrentRuns)
                // Said to whoever reloaded, and in status, until a restart applies them.
                let changed = [("socket.path", fresh.socket.path != config.socket.path), ("socket.mode", fresh.socket.mode != config.socket.mode),
                               ("socket.group", fresh.socket.group != config.socket.group), ("state_dir", fresh.stateDirectory != config.stateDirectory),
                               ("http.listen", fresh.httpListen != config.httpListen), ("nice", fresh.niceness != config.niceness),
                               ("log.level", fresh.logLevel != config.logLevel), ("log.format", fresh.logFormat != config.logFormat)]
                    .filter(\.1).map(\.0)
                if !changed.isEmpty {
                    let why = "\(changed.joined(separator: ", ")) changed: \(changed.count == 1 ? "it takes" : "they take") effect at the next start of lifeboatd (systemctl restart lifeboatd)"
                    logger.warning("config changes wait for a restart", metadata: ["file": "\(file)", "keys": "\(changed.joined(separator: ","))"])
                    problems.append(PlanRegistry.Problem(file: file, errors: [why], keptPrevious: "the running values of those keys"))
                }
            } catch {
                let errors = (error as? DiagnosticsError)?.diagnostics.map(\.description) ?? ["\(error)"]
                logger.error("invalid config; the running config is kept", metadata: ["file": "\(file)", "errors": "\(errors.joined(separator: "; "))"])
                problems.append(PlanRegistry.Problem(file: file, errors: errors, keptPrevious: "the running config"))
            }
        }
        logger.notice("reloading plans", metadata: ["plans_dir": "\(plansDirectory ?? plans.directory)"])
        plans.setConfigProblems(problems)
        let planProblems = plans.reload(directory: plansDirectory, now: clock.now())
        problems += planProblems
        for problem in planProblems {
            logger.error("invalid plan; previous version kept", metadata: ["file": "\(problem.file)", "kept": "\(problem.keptPrevious ?? "none")",
                                                                        "errors": "\(problem.errors.joined(separator: "; "))"])
        }
        await runs.takeUpAfterReload()
        // A schedule changed or added takes effect now, not at the scheduler's next look.
        scheduler.wake()
        notifier.ready(status: "reloaded: \(plans.plans.count) plan(s), \(problems.count) problem(s)")
        return problems
    }
}

/// Tells systemd how things stand (READY=1 after recovery and once the socket listens, STATUS=,
/// STOPPING=1, watchdog pings), reloads plans on SIGHUP and dispatches notifications.
final class LifecycleService: Service {
    let services: ControlServices
    let listening: ReadySignal
    let notifications: AsyncStream<RunEvent>
    let notifier: SystemdNotifier
    let logger: Logger

    init(services: ControlServices, listening: ReadySignal, notifications: AsyncStream<RunEvent>, notifier: SystemdNotifier, logger: Logger) {
        self.services = services
        self.listening = listening
        self.notifications = notifications
        self.notifier = notifier
        self.logger = logger
    }

    func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        guard await listening.waitForStart() else { return }
        notifier.ready(status: statusLine())
        logger.notice("lifeboatd ready", metadata: ["socket": "\(services.identity.socket)", "plans": "\(services.plans.plans.count)"])
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await _ in hangups.cancelOnGracefulShutdown() { _ = await self.services.reload() }
            }
            group.addTask {
                let plans = self.services.plans
                await self.services.runtime.notifications(plan: { plans.plan(for: $0) })
                    .run(self.notifications, since: self.services.identity.startedAt)
            }
            group.addTask {
                // STATUS= every few seconds, and watchdog pings at half the interval systemd asks for.
                let interval = self.notifier.watchdogInterval.map { $0 / 2 } ?? .seconds(5)
                while !Task.isShuttingDownGracefully, !Task.isCancelled {
                    if self.notifier.watchdogInterval != nil { self.notifier.watchdog() }
                    if self.notifier.socketPath != nil { self.notifier.status(self.statusLine()) }
                    try? await Task.sleep(for: min(interval, .seconds(5)))
                }
            }
            try? await gracefulShutdown()
            notifier.stopping()
            logger.notice("lifeboatd stopping: draining runs")
            group.cancelAll()
        }
    }

    /// "2 run(s), 143/880 jobs, 1.2 GiB/s": the runs going on here and their throughput, from
    /// memory (every few seconds, it reads nothing: `status` reads the ledger for the fleet).
    func statusLine() -> String {
        let status = RunQueries(services: services).status(without: nil)
        let jobs = status.runs.map(\.jobs).reduce(0, +), done = status.runs.map(\.done).reduce(0, +)
        return "\(status.runs.count) run(s), \(done)/\(jobs) jobs, \(ByteSize.format(Int64(status.bytesPerSecond)))/s"
    }
}
