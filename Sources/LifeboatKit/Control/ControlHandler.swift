import Foundation
import Logging

/// A command the daemon answers.
protocol ServedCommand: ControlCommand {
    /// Answers the call. A command that answers in several lines (`run.watch`) sends all but its
    /// last with `call.send`; the result is the last.
    func answer(_ call: ControlCall) async throws -> Result
}

/// One call being answered: what the daemon serves from, who asks, and the line to answer on.
struct ControlCall: Sendable {
    let services: ControlServices
    let peer: PeerCredentials
    let id: JSONValue
    let sendLine: @Sendable (Data) async throws -> Void
    /// Signalled when the client's connection closes (nil: never, as when called in-process).
    var hangup: ReadySignal?

    /// Sends one line of a streamed answer.
    func send(_ partial: some Encodable) async throws { try await sendLine(ControlResponse.success(id: id, partial)) }

    /// Runs `body` while the client stays connected. When it hangs up first, `body` is cancelled
    /// and this throws: an answer that waits for news (a watch of a halted run may hear nothing
    /// for hours) must not outlive its client.
    func whileConnected(_ body: @escaping @Sendable () async throws -> Void) async throws {
        guard let hangup else { return try await body() }
        let finished = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask { try await body(); return true }
            group.addTask { await hangup.wait(); return false }
            defer { group.cancelAll() }
            return try await group.next() ?? false
        }
        if !finished { throw ClientHungUp() }
    }

    /// The client closed its connection in the middle of an answer.
    struct ClientHungUp: Error {}
}

/// Routes control requests to the daemon: read commands for anyone who can connect, mutating
/// commands for admins only, each logged with the caller's uid and pid.
public struct ControlHandler: Sendable {
    public let services: ControlServices

    public init(services: ControlServices) { self.services = services }

    /// Every command the daemon answers, in the order an unknown command's answer lists them.
    static let served: [any ServedCommand.Type] = [
        Control.Status.self, Control.Plans.self, Control.PlanCheck.self, Control.RunStart.self, Control.RunList.self,
        Control.RunShow.self, Control.RunSites.self, Control.RunWatch.self, Control.RunCancel.self, Control.RunResume.self,
        Control.JobRetry.self, Control.Rollback.self, Control.QuarantineList.self, Control.QuarantinePurge.self,
        Control.Report.self, Control.Reload.self, Control.Schedules.self,
    ]

    /// The wire names of the commands, as `served` lists them.
    public static var commands: [String] { served.map { $0.name } }

    /// Answers one request; `send` writes a response line (several for `run.watch`).
    /// Errors other than writing to the client (which mean it went away, and end the connection)
    /// are answered: each kind of domain error with its control error code, an unexpected one as
    /// `internal`, naming the command, and logged.
    public func handle(_ request: ControlRequest, peer: PeerCredentials, hangup: ReadySignal? = nil,
                       send: @escaping @Sendable (Data) async throws -> Void) async throws {
        @Sendable func answer(_ data: Data) async throws {
            do { try await send(data) } catch { throw SendFailure(underlying: error) }
        }
        do {
            guard let command = Self.served.first(where: { $0.name == request.command }) else {
                throw ControlError(.unknownCommand, "unknown command \"\(String(request.command.prefix(64)))\"; commands: \(Self.commands.joined(separator: ", "))")
            }
            try await serve(command, request, peer: peer, hangup: hangup, answer: answer)
        } catch let error as ControlError {
            try await answer(ControlResponse.failure(id: request.id, error))
        } catch let error as DiagnosticsError {
            try await answer(ControlResponse.failure(id: request.id, ControlError(.rejected, error.description)))
        } catch let error as RunRequestError {
            try await answer(ControlResponse.failure(id: request.id, ControlError(.rejected, error.message)))
        } catch let refusal as Rollback.Refusal {
            // A rollback or a purge that would lose or cross data: the state says no, not the request.
            try await answer(ControlResponse.failure(id: request.id, ControlError(.conflict, refusal.message)))
        } catch let error as PostgresLedger.OutcomeUnknown {
            // Not "ask again": the run asked for may run already.
            try await answer(ControlResponse.failure(id: request.id, ControlError(.internalError, error.description)))
        } catch let error as LifeboatError {
            // A ledger that stopped answering while the command ran: said as such, not `internal`.
            if error.exitCode != .rejected, let refusal = services.ledgerUnavailable {
                try await answer(ControlResponse.failure(id: request.id, ControlError(.unavailable, "\(error.description); \(refusal.message)")))
                return
            }
            try await answer(ControlResponse.failure(id: request.id, ControlError(error.exitCode == .rejected ? .rejected : .internalError, error.description)))
        } catch let error as SendFailure {
            throw error.underlying
        } catch let error as ControlCall.ClientHungUp {
            throw error
        } catch is CancellationError {
            try await answer(ControlResponse.failure(id: request.id, ControlError(.unavailable, "the daemon is stopping; ask again once it is back")))
        } catch {
            services.logger.error("command failed", metadata: ["command": "\(request.command)", "error": "\(error)"])
            try await answer(ControlResponse.failure(id: request.id, ControlError(
                .internalError, "\(request.command) failed inside the daemon: \(error); the daemon's log (journalctl -u lifeboatd) has the details")))
        }
    }

    /// Commands that need no ledger (`status` answers from memory while it does not answer).
    static let answeredWithoutTheLedger: Set<String> = ["status", "plans", "plan.check", "reload"]

    /// Reads the request into the command, checks the caller may make it, and answers it.
    private func serve<C: ServedCommand>(_ type: C.Type, _ request: ControlRequest, peer: PeerCredentials, hangup: ReadySignal?,
                                         answer: @escaping @Sendable (Data) async throws -> Void) async throws {
        let command = try ControlParams.decode(C.self, from: request.params)
        if !Self.answeredWithoutTheLedger.contains(C.name), let refusal = services.ledgerUnavailable { throw refusal }
        if command.isMutating {
            guard services.access.mayMutate(peer) else {
                services.logger.warning("mutating command refused", metadata: ["command": "\(C.name)", "uid": "\(peer.uid)", "pid": "\(peer.pid)"])
                throw ControlError(.forbidden, "\(C.name) needs an admin (root, the daemon's user or a configured admin); \(peer) may only read")
            }
            if let since = services.runs.stoppingSince {
                throw ControlError(.unavailable, "\(C.name) refused: lifeboatd is stopping (since \(Timestamp.iso(since))); it drains its runs, "
                                   + "which are recorded interrupted and resume at its next start, and changes nothing more; ask again once "
                                   + "it is back (lifeboat status)")
            }
            services.logger.notice("mutating command", metadata: ["command": "\(C.name)", "uid": "\(peer.uid)", "pid": "\(peer.pid)"])
        }
        let result = try await command.answer(ControlCall(services: services, peer: peer, id: request.id, sendLine: answer, hangup: hangup))
        try await answer(ControlResponse.success(id: request.id, result))
    }

    /// Writing an answer failed: the client is gone.
    private struct SendFailure: Error {
        var underlying: any Error
    }
}
