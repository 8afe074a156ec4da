import Foundation
import PostgresNIO

/// Claims: hosts take ready jobs from the shared queue under leases, with fencing tokens.
///
/// - A claim locks the run's row first (`FOR NO KEY UPDATE`): claimers of one run take turns for
///   the instant of a claim, so the run's and each product's concurrency hold for the whole fleet.
///   (Not `FOR UPDATE`: that would also hold up every write whose foreign key checks the run's
///   row, e.g. a job's records on the commit lane.)
///   The candidate jobs are then locked `FOR UPDATE SKIP LOCKED`, in priority order.
/// - A job in an active state (restoring, verifying, committing) without a live claim was left
///   by a host that is gone: it is claimable again, and the claim says so (`isTakeover`).
/// - Every claim of a job bumps its token; fenced writes name the token and fail with
///   `LeaseLost` once it is no longer the job's live claim.
extension PostgresLedger {
    public func claimJobs(runId: String, host: String, rules: ClaimRules, max: Int) async throws -> [JobClaim] {
        guard max > 0 else { return [] }
        let lease = settings.lease
        let dependencies = rules.after.flatMap { product, deps in deps.map { (product, $0) } }
        let dependents = dependencies.map(\.0)
        let prerequisites = dependencies.map(\.1)
        return try await inTransaction("claim jobs") { connection in
            var wave: Int64?
            for try await (state, current) in try await connection.query("""
                SELECT state, current_wave FROM runs WHERE id = \(runId) FOR NO KEY UPDATE
                """, logger: logger).decode((String, Int64).self) where state == RunState.running.rawValue {
                wave = current
            }
            guard let wave else { return [] }
            var held: [String: Int] = [:]
            for try await (product, count) in try await connection.query("""
                SELECT j.product, COUNT(*)::bigint FROM claims c JOIN jobs j ON j.id = c.job_id
                WHERE c.run_id = \(runId) AND c.released_at IS NULL AND c.expires_at > now() GROUP BY j.product
                """, logger: logger).decode((String, Int64).self) {
                held[product] = Int(count)
            }
            var free = Swift.min(max, rules.runConcurrency - held.values.reduce(0, +))
            guard free > 0 else { return [] }
            let candidates = try await JobRow.fetch(connection.query("""
                SELECT \(unescaped: JobRow.columnList) FROM jobs j
                WHERE j.run_id = \(runId) AND j.wave <= \(wave)
                  AND j.state IN ('pending', 'waiting', 'restoring', 'verifying', 'committing') -- jobs_claimable's predicate
                  AND NOT EXISTS (SELECT 1 FROM claims c WHERE c.job_id = j.id AND c.released_at IS NULL AND c.expires_at > now())
                  AND NOT EXISTS (SELECT 1 FROM unnest(\(dependents)::text[], \(prerequisites)::text[]) AS a(product, dep)
                                  JOIN jobs d ON d.run_id = j.run_id AND d.site = j.site AND d.product = a.dep
                                  WHERE a.product = j.product AND d.state <> 'succeeded')
                ORDER BY j.priority, j.product_order, j.id
                LIMIT \(Swift.min(1_000, free * 4 + 16))
                FOR UPDATE OF j SKIP LOCKED
                """, logger: logger))
            var picked: [JobRecord] = []
            for var job in candidates where free > 0 && job.id != nil {
                if let limit = rules.productConcurrency[job.product], held[job.product, default: 0] >= limit { continue }
                job.host = host
                picked.append(job)
                held[job.product, default: 0] += 1
                free -= 1
            }
            guard !picked.isEmpty else { return [] }
            // One round trip for them all, the run's row locked meanwhile: each job's claim (a
            // job claimed before gets the next token) and its host.
            let ids = picked.compactMap(\.id)
            var granted: [Int64: (token: Int64, expires: Date)] = [:]
            for try await (id, token, expires) in try await connection.query("""
                WITH granted AS (
                    INSERT INTO claims (job_id, run_id, host, token, claimed_at, expires_at, released_at)
                    SELECT id, \(runId), \(host), 1, now(), now() + make_interval(secs => \(lease)), NULL FROM unnest(\(ids)::int8[]) AS t(id)
                    ON CONFLICT (job_id) DO UPDATE SET host = EXCLUDED.host, token = claims.token + 1, claimed_at = now(),
                                                      expires_at = EXCLUDED.expires_at, released_at = NULL
                    RETURNING job_id, token, expires_at),
                  hosted AS (UPDATE jobs SET host = \(host) WHERE id = ANY(\(ids)::int8[]))
                SELECT job_id, token, expires_at FROM granted
                """, logger: logger).decode((Int64, Int64, Date).self) {
                granted[id] = (token, expires)
            }
            let claims = picked.compactMap { job in
                job.id.flatMap { id in granted[id].map { JobClaim(jobId: id, runId: runId, host: host, token: $0.token, expiresAt: $0.expires, job: job) } }
            }
            return claims
        }
    }

    /// Extends the leases this host still holds; returns the ids of the jobs still held. A claim
    /// that expired is not renewed, even if nobody took it yet: the host must treat it as lost.
    public func renewClaims(_ claims: [JobClaim]) async throws -> Set<Int64> {
        guard let host = claims.first?.host else { return [] }
        let lease = settings.lease
        return try await withConnection("renew claims") { connection in
            let rows = try await connection.query("""
                UPDATE claims SET expires_at = now() + make_interval(secs => \(lease))
                FROM unnest(\(claims.map(\.jobId))::int8[], \(claims.map(\.token))::int8[]) AS h(job_id, token)
                WHERE claims.job_id = h.job_id AND claims.token = h.token AND claims.host = \(host)
                  AND claims.released_at IS NULL AND claims.expires_at > now()
                RETURNING claims.job_id
                """, logger: logger)
            var held: Set<Int64> = []
            for try await id in rows.decode(Int64.self) { held.insert(id) }
            return held
        }
    }

    /// Records the job only while `claim` is its live claim with at least `minimumLease` left
    /// (the claim row is locked for the write, so no takeover slips in between). Before a commit
    /// the margin covers the rename; after one, zero does. Batched with other writes like any
    /// (a refused one does not sink its batch), and not cancellable: a job that was cancelled
    /// still records so.
    public func updateJob(_ job: JobRecord, from previous: JobState, fencedBy claim: JobClaim, minimumLease: TimeInterval = 0) async throws {
        try await write("fenced job update", .job(FencedJobWrite(job: job, previous: previous, claim: claim, minimumLease: minimumLease)))
    }

    public func postJob(_ job: JobRecord, from previous: JobState, fencedBy claim: JobClaim) {
        commits.post(.job(FencedJobWrite(job: job, previous: previous, claim: claim, minimumLease: 0)))
    }

    public func addQuarantine(_ record: QuarantineRecord, updating job: JobRecord, from previous: JobState,
                              fencedBy claim: JobClaim) async throws -> QuarantineRecord {
        let (update, host, logger) = (FencedJobWrite(job: job, previous: previous, claim: claim, minimumLease: 0), self.host, self.logger)
        return try await write("fenced quarantine") { connection in
            let added = try await self.insertQuarantine(record, connection)
            try await Self.write([update], on: connection, host: host, logger: logger)
            return added
        }
    }

    /// Gives the claim up (the job ended, or this host stops): another host may take the job.
    /// Queued after the job's records, and not cancellable like them: a stopping host gives its
    /// claims back.
    public func releaseClaim(_ claim: JobClaim) {
        commits.post(.release(claim))
    }

    /// The live claims, by host (status; tests).
    public func liveClaims(runId: String?) async throws -> [JobClaim] {
        try await withConnection("claims") { connection in
            let rows = try await connection.query("""
                SELECT c.host, c.token, c.expires_at, \(unescaped: JobRow.columnList.split(separator: ",").map { "j." + $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ", "))
                FROM claims c JOIN jobs j ON j.id = c.job_id
                WHERE c.released_at IS NULL AND c.expires_at > now() AND (\(runId)::text IS NULL OR c.run_id = \(runId))
                ORDER BY c.job_id
                """, logger: logger)
            var claims: [JobClaim] = []
            for try await row in rows {
                let r = row.makeRandomAccess()
                let job = try JobRow.decode(row, offset: 3)
                claims.append(JobClaim(jobId: job.id ?? 0, runId: job.runId, host: try r[0].decode(String.self),
                                       token: try r[1].decode(Int64.self), expiresAt: try r[2].decode(Date.self), job: job))
            }
            return claims
        }
    }
}
