import Foundation
import Logging
import PostgresNIO

/// Writing a group-commit batch (`PostgresBatch`): each of its steps in one statement, inside the
/// batch's transaction.
extension PostgresLedger {
    static func write(_ batch: PostgresBatch, on connection: PostgresConnection, host: String?, logger: Logger) async throws {
        for step in batch.steps {
            switch step {
            case .jobs(let writes, let events):
                try await write(writes, events: events, on: connection, host: host, logger: logger)
            case .releases(let claims):
                try await connection.query("""
                    UPDATE claims SET released_at = now()
                    FROM unnest(\(claims.map(\.jobId))::int8[], \(claims.map(\.token))::int8[]) AS r(job_id, token)
                    WHERE claims.job_id = r.job_id AND claims.token = r.token AND claims.released_at IS NULL
                    """, logger: logger)
            case .events(let events):
                try await write(events, on: connection, logger: logger)
            case .statements(let body):
                try await body(connection)
            }
        }
    }

    static func write(_ events: [LedgerEvent], on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.execute(EventRow.Insert(events: events), logger: logger)
    }

    /// Claimed jobs' records (of distinct jobs), each made only while its claim is live with its
    /// margin to spare and its state is the one expected, and `events`, in one statement. A
    /// refused record throws why (the first, if several): the claim is lost (`LeaseLost`), the
    /// job is not there or not in that state.
    static func write(_ writes: [FencedJobWrite], events: [LedgerEvent] = [], on connection: PostgresConnection, host: String?,
                      logger: Logger) async throws {
        var written: Set<Int64> = []
        for try await id in try await connection.execute(JobRow.FencedBatch(writes: writes, events: events), logger: logger) {
            written.insert(id)
        }
        guard let refused = writes.first(where: { $0.job.id.map { !written.contains($0) } ?? true }) else { return }
        let claim = refused.claim
        let live = try await connection.query("""
            SELECT 1 FROM claims WHERE job_id = \(claim.jobId) AND token = \(claim.token) AND host = \(claim.host)
              AND released_at IS NULL AND expires_at > now() + make_interval(secs => \(refused.minimumLease))
            """, logger: logger).collect()
        guard !live.isEmpty else { throw LeaseLost(jobId: claim.jobId, host: claim.host, token: claim.token) }
        throw try await missingJob(refused.job, expected: refused.previous, host: host, connection, logger: logger)
    }
}
