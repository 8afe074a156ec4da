import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// The connection pool to the shared ledger, made anew once the database accepts connections
/// again after an outage.
///
/// PostgresNIO's pool backs off between connection attempts (100 ms growing by 1.25× up to a
/// minute) and, past its circuit breaker, fails every call at once until an attempt succeeds:
/// after a failover of a minute or two, a host would go on refusing everything for up to a
/// minute more. While its calls go unanswered, this host asks the server itself (a bare connect,
/// every `probeInterval`): the reason it gives is the one `status` shows, and once a server that
/// refused connects again, the pool is replaced with a fresh one that connects at once.
final class ConnectionPoolSlot: Sendable {
    private let make: @Sendable () -> PostgresClient
    private let current: Mutex<PostgresClient>
    private let fresh: AsyncStream<PostgresClient>
    private let freshContinuation: AsyncStream<PostgresClient>.Continuation
    /// Signalled as the first pool starts to run: a lease asked of it before then waits (and
    /// PostgresNIO warns of it, at every start of a host that registers as its services start).
    private let running = ReadySignal()
    let settings: PostgresLedgerSettings
    let probeInterval: Duration

    init(settings: PostgresLedgerSettings, probeInterval: Duration = .seconds(2), make: @escaping @Sendable () -> PostgresClient) {
        self.settings = settings
        self.probeInterval = probeInterval
        self.make = make
        let first = make()
        current = Mutex(first)
        (fresh, freshContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        freshContinuation.yield(first)
    }

    /// The pool calls go to now, once the first one runs.
    var client: PostgresClient {
        get async {
            await running.wait()
            return current.withLock { $0 }
        }
    }

    /// Runs the pool, and each replacement in its turn (the one replaced is shut down, failing
    /// what still waits on it), until cancelled; probes the server while `reachability` has a problem.
    func run(reachability: LedgerReachability, logger: Logger) async {
        // As `PostgresClient.run()` itself: a graceful shutdown ends it.
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.watch(reachability, logger: logger) }
                var stopPrevious: AsyncStream<Void>.Continuation?
                for await client in self.fresh {
                    stopPrevious?.finish()
                    let (stop, stopper) = AsyncStream<Void>.makeStream()
                    stopPrevious = stopper
                    group.addTask {
                        await withDiscardingTaskGroup { pool in
                            // Started at once, here: `run()` marks the pool running before it
                            // first waits, so no lease asked after the signal finds it not yet
                            // run (signalled first, one sometimes did, and PostgresNIO warned).
                            pool.addImmediateTask {
                                await client.run()
                            }
                            self.running.signal()
                            for await _ in stop {}
                            pool.cancelAll()
                        }
                    }
                    // Calls go to it once it runs.
                    self.current.withLock { $0 = client }
                }
                stopPrevious?.finish()
                group.cancelAll()
            }
        }
    }

    private func watch(_ reachability: LedgerReachability, logger: Logger) async {
        // Whether the server refused this host since calls stopped being answered: only then is
        // the pool's lack of connections the cause (a lock, a slow server keep their connections).
        var refusedMeanwhile = false
        while !Task.isCancelled {
            try? await Task.sleep(for: probeInterval)
            guard let problem = reachability.problem() else {
                refusedMeanwhile = false
                continue
            }
            switch await probe() {
            case .failure(let why):
                refusedMeanwhile = true
                reachability.explain(why)
            case .success:
                reachability.explain(nil)
                guard refusedMeanwhile else { continue }
                refusedMeanwhile = false
                logger.notice("the ledger's server accepts connections again; connecting anew now rather than at the pool's next attempt",
                              metadata: ["unreachable_since": "\(Timestamp.iso(problem.since))"])
                freshContinuation.yield(make())
            }
        }
    }

    /// Whether the server accepts a connection (TCP or its Unix socket), and if not, why.
    func probe() async -> Result<Void, ProbeFailure> {
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connectTimeout(.seconds(2))
        let place = settings.socketDirectory.map { "\($0)/.s.PGSQL.\(settings.port)" } ?? "\(settings.host):\(settings.port)"
        do {
            let channel: any Channel
            if let directory = settings.socketDirectory {
                channel = try await bootstrap.connect(unixDomainSocketPath: "\(directory)/.s.PGSQL.\(settings.port)").get()
            } else {
                channel = try await bootstrap.connect(host: settings.host, port: settings.port).get()
            }
            try? await channel.close()
            return .success(())
        } catch {
            return .failure(ProbeFailure(description: "cannot connect to \(place): \(Self.describe(error))"))
        }
    }

    struct ProbeFailure: Error, CustomStringConvertible {
        var description: String
    }

    /// A connection error in words: the system's reason, not NIO's structure.
    static func describe(_ error: any Error) -> String {
        if let error = error as? NIOConnectionError {
            if let first = error.connectionErrors.first?.error { return describe(first) }
            if let dns = error.dnsAError ?? error.dnsAAAAError { return "cannot resolve the host name (\(dns))" }
            return "no address to connect to"
        }
        if let error = error as? IOError { return SystemError.describe(error.errnoCode) }
        if case ChannelError.connectTimeout = error { return "no answer within 2 s" }
        return "\(error)"
    }
}
