import Foundation
import PostgresNIO
import Synchronization

/// What is wrong with a shared ledger as this host sees it: since when, and why.
public struct LedgerProblem: Sendable, Hashable, Codable {
    public var since: Date
    public var reason: String

    public init(since: Date, reason: String) {
        self.since = since
        self.reason = reason
    }
}

/// Whether the database answers this host, from the host's own calls: the oldest call still
/// unanswered, and since when calls fail without an answer (refused, dropped, the pool given
/// up). The connection pool waits out an unreachable server for about a minute before a call
/// fails; this tells within seconds.
final class LedgerReachability: Sendable {
    private struct State {
        var waiting: [Int: (since: Date, at: ContinuousClock.Instant)] = [:]
        var next = 0
        var failing: LedgerProblem?
        /// When a call last had its answer.
        var answered = ContinuousClock.now
        /// Why the server cannot be reached, as asked directly (`explain`).
        var serverSays: String?
    }

    private let state = Mutex(State())

    /// Runs one call to the database, noting how it went.
    func call<T>(_ body: () async throws -> sending T) async throws -> sending T {
        let token = state.withLock { s in
            defer { s.next += 1 }
            s.waiting[s.next] = (Date(), .now)
            return s.next
        }
        do {
            let value = try await body()
            state.withLock { s in
                s.waiting[token] = nil
                s.failing = nil
                s.serverSays = nil
                s.answered = .now
            }
            return value
        } catch {
            // A call this host gave up on (as `status` does) fails with the pool's "request
            // cancelled": that says nothing of the database.
            let gaveUp = error is CancellationError || Task.isCancelled
            state.withLock { s in
                s.waiting[token] = nil
                if Self.answered(error) {
                    s.failing = nil
                    s.serverSays = nil
                    s.answered = .now
                } else if !gaveUp, s.failing == nil {
                    s.failing = LedgerProblem(since: Date(), reason: PostgresLedger.describe(error))
                }
            }
            throw error
        }
    }

    /// Whether `error` came with an answer of the server: its own error, a row this version
    /// cannot read, or one of the ledger's rules (a conflict, a lease lost).
    static func answered(_ error: any Error) -> Bool {
        if let error = error as? PSQLError { return error.code == .server && !goingAway(error) }
        return error is PostgresDecodingError || error is LifeboatError || error is JobConflict || error is EventsHeldBack
    }

    /// A server error that says the server is going away or cannot serve now, not why the call
    /// was wrong: shut down by its operator or crashed (SQLSTATE 57P01–57P05), a connection
    /// exception (08xxx). Calls made again once it is back succeed.
    static func goingAway(_ error: PSQLError) -> Bool {
        guard error.code == .server, let state = error.serverInfo?[.sqlState] else { return false }
        return state.hasPrefix("57P") || state.hasPrefix("08")
    }

    /// Says why calls go unanswered in the server's terms, found by asking it directly (the
    /// pool's own words say only that it waits or gave up); nil: it can be reached.
    func explain(_ why: (any Error)?) {
        state.withLock { $0.serverSays = why.map { "\($0)" } }
    }

    /// What is wrong: calls failing without an answer, or one unanswered for longer than
    /// `patience` with none answered since it was made (a call stuck on a connection that went
    /// silent says nothing of the others); nil while the database answers. `confirmed`: only
    /// while calls fail without an answer or the server, asked directly, cannot be reached — a
    /// slow call alone (a long read, a lock) is not an outage to give other calls up for.
    func problem(patience: Duration = .seconds(3), confirmed: Bool = false) -> LedgerProblem? {
        state.withLock { s in
            if confirmed, s.failing == nil, s.serverSays == nil { return nil }
            if var failing = s.failing {
                failing.reason = s.serverSays ?? failing.reason
                return failing
            }
            guard let oldest = s.waiting.values.filter({ $0.at > s.answered }).min(by: { $0.at < $1.at }),
                  ContinuousClock.now - oldest.at > patience else { return nil }
            return LedgerProblem(since: oldest.since, reason: s.serverSays ?? "no answer to a call for \(Int((ContinuousClock.now - oldest.at).components.seconds)) s")
        }
    }
}
