import Foundation
import Logging
import ServiceLifecycle

/// Registers this daemon as a host of the fleet sharing the ledger, and heartbeats (every third
/// of the lease) until graceful shutdown, when it says goodbye so its name is free at once. While
/// the ledger is unreachable it says so and tries again with backoff.
final class HostService: Service {
    let ledger: any SharedLedger
    let registration: HostRegistration
    let logger: Logger
    /// Signalled once this host is registered: until then it claims and coordinates nothing.
    let registered: ReadySignal
    /// The runs this host works on (`RunManager.coordinated`): their leases are renewed.
    let coordinated: @Sendable () -> Set<String>

    init(ledger: any SharedLedger, registration: HostRegistration, registered: ReadySignal,
         coordinated: @escaping @Sendable () -> Set<String>, logger: Logger) {
        self.ledger = ledger
        self.registration = registration
        self.registered = registered
        self.coordinated = coordinated
        var logger = logger
        logger[metadataKey: "host"] = "\(registration.name)"
        self.logger = logger
    }

    private var beat: Duration { .milliseconds(Int64(ledger.lease * 1_000 / 3)) }

    func run() async throws {
        var registered = false
        do {
            // Stopped while the ledger is unreachable: nothing registered, nothing to undo.
            try await cancelWhenGracefulShutdown { try await self.register() }
            registered = true
            self.registered.signal()
            while true {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: self.beat) }
                do {
                    try await ledger.heartbeat(registration)
                    // The runs this host works on stay its own (a run whose lease ran out is
                    // another host's to take; this host's writes to it are refused from then on)
                    // while its records get through: stalled past a lease, they go to the others
                    // (as its jobs do, `JobWorker`). A lease it holds for nothing (its give-back
                    // lost) runs out.
                    if !ledger.writesStuck {
                        _ = try await ledger.renewCoordination(of: coordinated())
                    }
                } catch let taken as HostNameInUse {
                    // Presumed dead by the others (a long pause, a partition) and the name reused.
                    logger.critical("host registration taken over; registering again", metadata: ["reason": "\(taken)"])
                    try await register()
                } catch {
                    logger.warning("heartbeat failed: ledger unreachable", metadata: ["error": "\(error)"])
                }
            }
        } catch is CancellationError {
            // Graceful shutdown (or cancellation): free the name for a restart.
        }
        guard registered else { return }
        do {
            // Runs this host still coordinates (interrupted by the drain) go to the others at once.
            try await ledger.releaseCoordination(runId: nil)
            try await ledger.deregister(registration)
            logger.notice("host deregistered")
        } catch {
            logger.warning("could not deregister; the registration expires with its lease", metadata: ["error": "\(error)"])
        }
    }

    /// Registers, waiting out a live registration of the same name and an unreachable ledger.
    private func register() async throws {
        var delay = Duration.seconds(1)
        while true {
            do {
                try await ledger.register(registration)
                logger.notice("host registered", metadata: ["pid": "\(registration.pid)", "lease": "\(Int(ledger.lease))s"])
                return
            } catch let inUse as HostNameInUse {
                logger.error("host name in use; this daemon claims, coordinates and serves nothing until the name is free (give each host its own host.name)",
                             metadata: ["reason": "\(inUse)"])
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: self.beat) }
            } catch {
                logger.warning("cannot register: ledger unreachable; trying again", metadata: ["error": "\(error)", "retry_in": "\(delay)"])
                let wait = delay
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
                delay = min(delay * 2, .seconds(30))
            }
        }
    }
}
