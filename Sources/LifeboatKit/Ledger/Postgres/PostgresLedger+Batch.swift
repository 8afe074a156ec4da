import Foundation
import Logging
import PostgresNIO

/// Writing a group-commit batch (`PostgresBatch`): a batch of one call is that call alone (a
/// transaction of its own, one round trip); otherwise its steps are made in one transaction, and
/// its events after it in a call of their own (`writeEvents`).
extension PostgresLedger {
    /// Returns the jobs claimed in the place of claims given back (committed with the batch),
    /// and whether the events of its one call were held back (`EventsHeldBack`): the events' lock
    /// was not to be had in time, and the call was made again without them.
    static func write(_ batch: PostgresBatch, client: PostgresClient, host: String?, logger: Logger) async throws
        -> (claimed: [JobClaim], heldBack: EventsHeldBack?) {
        if batch.steps.count == 1, case .record(let call) = batch.steps[0] {
            do {
                return (try await client.withLiveConnection { connection in try await record(call, on: connection, host: host, logger: logger) }, nil)
            } catch let error as PSQLError where !call.events.isEmpty && EventsHeldBack.isLockTimeout(error) {
                var without = call
                without.events = []
                let heldBack = await EventsHeldBack.find(client: client, logger: logger)
                guard !without.isEmpty else { return ([], heldBack) }
                return (try await client.withLiveConnection { connection in try await record(without, on: connection, host: host, logger: logger) }, heldBack)
            }
        }
        let claimed = try await transaction(client, logger: logger) { connection in
            var claimed: [JobClaim] = []
            for step in batch.steps {
                switch step {
                case .record(let call): claimed += try await record(call, on: connection, host: host, logger: logger)
                case .statements(let body): try await body(connection)
                }
            }
            return claimed
        }
        return (claimed, nil)
    }

    /// The events of a batch of several steps, once its transaction has committed.
    static func writeEvents(_ events: [PostedEvent], client: PostgresClient, logger: Logger) async throws {
        do {
            _ = try await client.withLiveConnection { connection in try await record(RecordCall(events: events), on: connection, host: nil, logger: logger) }
        } catch let error as PSQLError where EventsHeldBack.isLockTimeout(error) {
            throw await EventsHeldBack.find(client: client, logger: logger)
        }
    }

    /// One call of `lifeboat_record_and_claim`; returns the jobs it claimed. A refused record
    /// throws why: the claim is lost (`LeaseLost`), the job is not there or not in the state expected.
    static func record(_ call: RecordCall, on connection: PostgresConnection, host: String?, logger: Logger) async throws -> [JobClaim] {
        do {
            // The rows must be read: an error raised while the call runs comes after them.
            var claimed: [JobClaim] = []
            for try await claim in try await connection.execute(call, logger: logger) { claimed.append(claim) }
            return claimed
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "LB001" {
            guard let id = error.serverInfo?[.detail].flatMap({ Int64($0) }), let refused = call.jobs.first(where: { $0.job.id == id }) else {
                throw error
            }
            let claim = refused.claim
            let live = try await connection.query("""
                SELECT 1 FROM claims WHERE job_id = \(claim.jobId) AND token = \(claim.token) AND host = \(claim.host)
                  AND released_at IS NULL AND expires_at > now() + make_interval(secs => \(refused.minimumLease))
                """, logger: logger).collect()
            guard !live.isEmpty else { throw LeaseLost(jobId: claim.jobId, host: claim.host, token: claim.token) }
            throw try await missingJob(refused.job, expected: refused.previous, host: host, connection, logger: logger)
        }
    }
}

/// A batch's events could not be written: the lock that keeps event ids in commit order was not
/// to be had within 500 ms (migration 16's trigger sets that wait): another session holds it,
/// its transaction open. The batch's other writes went ahead without them (a job's records
/// never wait on its events); the events, and those posted after them, are set aside while the
/// next batches go on, and tried again a while later (`PartialCommit.retryAfter`).
struct EventsHeldBack: Error, CustomStringConvertible {
    /// Who holds the lock, as the server says (nil: it was let go meanwhile).
    var holder: String?

    var description: String {
        "the ledger's events are held back: \(holder ?? "another session") holds the lock that orders them, "
            + "with its transaction open; end that transaction (the events are written within seconds of its end)"
    }

    /// SQLSTATE 55P03 (lock_not_available): the lock wait ran out.
    static func isLockTimeout(_ error: PSQLError) -> Bool {
        error.code == .server && error.serverInfo?[.sqlState] == "55P03"
    }

    /// The session that holds the events' lock, in words.
    static func find(client: PostgresClient, logger: Logger) async -> EventsHeldBack {
        let sessions = try? await client.withLiveConnection { connection in
            try await connection.query("""
                SELECT a.pid::text || COALESCE(' (' || NULLIF(a.application_name, '') || ')', '')
                       || COALESCE(' from ' || host(a.client_addr), '') || COALESCE(', transaction open since ' || a.xact_start::text, '')
                FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND ((l.classid::bigint << 32) | l.objid::bigint) = \(PostgresLedger.eventsLock)
                """, logger: logger).collect()
        }
        return EventsHeldBack(holder: sessions?.first.flatMap { try? $0.decode(String.self) }.map { "session \($0)" })
    }
}
