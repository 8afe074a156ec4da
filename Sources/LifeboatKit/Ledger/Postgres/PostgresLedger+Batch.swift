import Foundation
import Logging
import PostgresNIO

/// Writing a group-commit batch (`PostgresBatch`): a batch of one call is that call alone (a
/// transaction of its own, one round trip); otherwise its steps are made in one transaction, and
/// its events after it in a call of their own (`writeEvents`).
extension PostgresLedger {
    /// Returns the jobs claimed in the place of claims given back (committed with the batch).
    static func write(_ batch: PostgresBatch, client: PostgresClient, host: String?, logger: Logger) async throws -> [JobClaim] {
        if batch.steps.count == 1, case .record(let call) = batch.steps[0] {
            return try await client.withConnection { connection in try await record(call, on: connection, host: host, logger: logger) }
        }
        return try await transaction(client, logger: logger) { connection in
            var claimed: [JobClaim] = []
            for step in batch.steps {
                switch step {
                case .record(let call): claimed += try await record(call, on: connection, host: host, logger: logger)
                case .statements(let body): try await body(connection)
                }
            }
            return claimed
        }
    }

    /// The events of a batch of several steps, once its transaction has committed.
    static func writeEvents(_ events: [LedgerEvent], client: PostgresClient, logger: Logger) async throws {
        _ = try await client.withConnection { connection in try await record(RecordCall(events: events), on: connection, host: nil, logger: logger) }
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
