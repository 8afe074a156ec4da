import Foundation
import PostgresNIO
import Synchronization

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
        // One round trip (`lifeboat_claim_jobs`): the run's row locked, the fleet's live claims
        // counted, the ready jobs locked `FOR UPDATE SKIP LOCKED` in priority order and taken
        // within the limits, each claim made (a job claimed before gets the next token), in one
        // transaction.
        let call = ClaimCall(request: ClaimRequest(runId: runId, host: host, rules: rules, max: max, lease: settings.lease))
        return try await withConnection("claim jobs") { connection in
            var claims: [JobClaim] = []
            for try await claim in try await connection.execute(call, logger: logger) { claims.append(claim) }
            return claims
        }
    }

    public func refillSlots(with refiller: (any SlotRefiller)?) {
        slots.refiller = refiller
    }

    /// Extends the leases this host still holds; returns the ids of the jobs still held. A claim
    /// that expired is not renewed, even if nobody took it yet: the host must treat it as lost.
    public func renewClaims(_ claims: [JobClaim]) async throws -> Set<Int64> {
        guard let host = claims.first?.host else { return [] }
        let lease = settings.lease
        return try await withConnection("renew claims") { connection in
            // This host's batch of records locks some of the same rows, in its own order: the
            // server may end one of the two as a deadlock (40P01). The renewal, one statement,
            // is simply made again then.
            var attempt = 1
            while true {
                do {
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
                } catch let error as PSQLError where attempt < 3 && error.serverInfo?[.sqlState] == "40P01" {
                    logger.debug("claim renewal ended as a deadlock's victim; made again", metadata: ["attempt": "\(attempt)"])
                    attempt += 1
                }
            }
        }
    }

    /// Records the job only while `claim` is its live claim with at least `minimumLease` left
    /// (the claim row is locked for the write, so no takeover slips in between). Before a commit
    /// the margin covers the rename; after one, zero does. Batched with other writes like any
    /// (a refused one does not sink its batch), and not cancellable: a job that was cancelled
    /// still records so.
    public func updateJob(_ job: JobRecord, from previous: JobState, fencedBy claim: JobClaim, minimumLease: TimeInterval = 0) async throws {
        try await settlingLostAnswer(of: job) {
            try await write("fenced job update", .job(FencedJobWrite(job: job, previous: previous, claim: claim, minimumLease: minimumLease)))
        }
    }

    public func finishJob(_ job: JobRecord, from previous: JobState, fencedBy claim: JobClaim) async throws {
        try await settlingLostAnswer(of: job) {
            try await write("fenced job update", .job(FencedJobWrite(job: job, previous: previous, claim: claim, minimumLease: 0)), thenPost: [.release(claim)])
        }
    }

    /// A job's record whose answer was lost is found made or not before its job hears: made, the
    /// job goes on (its commit renames, its end is announced) instead of going back to the queue
    /// to be found done, with no event and false errors. The row is read `FOR UPDATE`, after any
    /// transaction still writing it; the record is this host's when the state and attempt are
    /// its (a host taking the job over starts another attempt). Not told, the job hears the lost
    /// answer, as before.
    private func settlingLostAnswer(of job: JobRecord, _ write: () async throws -> Void) async throws {
        do {
            try await write()
        } catch let failure as Failure where failure.gotNoAnswer {
            let found: (String, Int64)?
            do {
                found = try await settling(failure, what: "job \(job.name)'s record was made", advice: "") { connection -> (String, Int64)? in
                    for try await row in try await connection.query("SELECT state, attempt::int8 FROM jobs WHERE id = \(job.id) FOR UPDATE",
                                                                    logger: self.logger).decode((String, Int64).self) { return row }
                    return nil
                }
            } catch is OutcomeUnknown {
                throw failure
            }
            guard let found, found.0 == job.state.rawValue, found.1 == Int64(job.attempt) else { throw failure }
            logger.notice("the answer to a job's record was lost; the record is made", metadata: ["job": "\(job.name)", "state": "\(job.state.rawValue)"])
        }
    }

    public func postJob(_ job: JobRecord, from previous: JobState, fencedBy claim: JobClaim) {
        commits.post(.job(FencedJobWrite(job: job, previous: previous, claim: claim, minimumLease: 0)))
    }

    public func addQuarantine(_ record: QuarantineRecord, updating job: JobRecord, from previous: JobState,
                              fencedBy claim: JobClaim) async throws -> QuarantineRecord {
        let (update, host, logger) = (FencedJobWrite(job: job, previous: previous, claim: claim, minimumLease: 0), self.host, self.logger)
        return try await write("fenced quarantine") { connection in
            let added = try await self.insertQuarantine(record, connection)
            _ = try await Self.record(RecordCall(jobs: [update]), on: connection, host: host, logger: logger)
            return added
        }
    }

    public var writesStalled: Duration { commits.stalled }

    public var problem: LedgerProblem? { reachability.problem() }
    public var outage: LedgerProblem? { reachability.problem(confirmed: true) }

    public var schemaAhead: SchemaMismatch? { newerSchema.withLock { $0 } }

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
                SELECT c.host, c.token, c.expires_at, \(unescaped: JobRow.columnList(of: "j"))
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

/// A claim's arguments: `lifeboat_claim_jobs`' (and those of a claim made where claims are given
/// back, in `lifeboat_record_and_claim`).
struct ClaimRequest: Sendable, Hashable {
    var runId: String
    var host: String
    var rules: ClaimRules
    var max: Int
    var lease: TimeInterval

    /// The arguments' types, in order.
    static let types = ["text", "text", "int8", "int8", "text[]", "int8[]", "text[]", "text[]", "float8"]

    func appendArguments(to b: inout PostgresBindings) {
        let dependencies = rules.after.sorted { $0.key < $1.key }.flatMap { product, deps in deps.map { (product, $0) } }
        let limited = rules.productConcurrency.sorted { $0.key < $1.key }
        b.append(runId)
        b.append(host)
        b.append(Int64(max))
        b.append(Int64(rules.runConcurrency))
        b.append(limited.map(\.key))
        b.append(limited.map { Int64($0.value) })
        b.append(dependencies.map(\.0))
        b.append(dependencies.map(\.1))
        b.append(lease)
    }

    /// A row the function returns: the claim's token and expiry, then the job's columns (its
    /// host is the claimer from its first record on).
    func claim(from row: PostgresRow) throws -> JobClaim {
        let r = row.makeRandomAccess()
        var job = try JobRow.decode(row, offset: 2)
        job.host = host
        guard let id = job.id else {
            throw PostgresLedger.Failure(operation: "claim jobs", url: "", reason: "a claimed job came back without its id")
        }
        return JobClaim(jobId: id, runId: runId, host: host, token: try r[0].decode(Int64.self),
                        expiresAt: try r[1].decode(Date.self), job: job)
    }

    /// The columns a claim's rows are read as, from the function's result `c`.
    static let resultColumns = "c.claim_token, c.claim_expires_at, " + JobRow.columnList(of: "(c.claimed)")
}

/// `lifeboat_claim_jobs`: prepared once per connection.
struct ClaimCall: PostgresPreparedStatement {
    static let sql = "SELECT \(ClaimRequest.resultColumns) FROM lifeboat_claim_jobs("
        + ClaimRequest.types.enumerated().map { "$\($0 + 1)::\($1)" }.joined(separator: ", ") + ") AS c"
    typealias Row = JobClaim
    var request: ClaimRequest

    func makeBindings() -> PostgresBindings {
        var b = PostgresBindings(capacity: ClaimRequest.types.count)
        request.appendArguments(to: &b)
        return b
    }

    func decodeRow(_ row: PostgresRow) throws -> JobClaim { try request.claim(from: row) }
}

/// Who takes the slots a host's claims give back (`PostgresLedger.refillSlots(with:)`): the
/// host's job worker.
public protocol SlotRefiller: Sendable {
    /// Under what rules the next job of `released`'s run is claimed in its place; nil: the slot
    /// stays free (the worker claims as it sees fit).
    func refill(after released: JobClaim) -> ClaimRules?
    /// Jobs claimed in the place of claims given back, now durable: this host holds them, each
    /// lease counted from `sent` by its clock.
    func claimed(_ claims: [JobClaim], sent: ContinuousClock.Instant)
}

/// The ledger's current `SlotRefiller`, if any.
final class SlotRefill: Sendable {
    private let current = Mutex<(any SlotRefiller)?>(nil)

    var refiller: (any SlotRefiller)? {
        get { current.withLock { $0 } }
        set { current.withLock { $0 = newValue } }
    }
}
