import Foundation
import PostgresNIO

/// What one host does to a run so that no other does it too: coordination under a lease (runs),
/// the fire of a scheduled exercise, destination holds.
extension PostgresLedger {
    // MARK: Run coordination

    /// The host name runs are coordinated under; a ledger opened without one cannot coordinate.
    private var coordinator: String {
        get throws {
            guard let host else { throw Failure(operation: "coordinate", url: url, reason: "this ledger was opened without a host name") }
            return host
        }
    }

    public func coordinate(runId: String) async throws -> String {
        let host = try coordinator
        let lease = settings.lease
        return try await withConnection("coordinate run") { connection in
            let taken = try await connection.query("""
                INSERT INTO run_leases (run_id, host, expires_at) VALUES (\(runId), \(host), now() + make_interval(secs => \(lease)))
                ON CONFLICT (run_id) DO UPDATE SET host = EXCLUDED.host, expires_at = EXCLUDED.expires_at
                WHERE run_leases.host = EXCLUDED.host OR run_leases.expires_at <= now()
                RETURNING host
                """, logger: logger).collect()
            if !taken.isEmpty { return host }
            for try await holder in try await connection.query("SELECT host FROM run_leases WHERE run_id = \(runId)", logger: logger)
                .decode(String.self) { return holder }
            return host
        }
    }

    public func renewCoordination(of runIds: Set<String>) async throws -> Set<String> {
        let host = try coordinator
        let lease = settings.lease
        guard !runIds.isEmpty else { return [] }
        return try await withConnection("renew run leases") { connection in
            var held: Set<String> = []
            for try await id in try await connection.query("""
                UPDATE run_leases SET expires_at = now() + make_interval(secs => \(lease))
                WHERE host = \(host) AND expires_at > now() AND run_id = ANY(\(Array(runIds))) RETURNING run_id
                """, logger: logger).decode(String.self) { held.insert(id) }
            return held
        }
    }

    public func releaseCoordination(runId: String?) async throws {
        let host = try coordinator
        _ = try await withConnection("release run lease") { connection in
            try await connection.query("DELETE FROM run_leases WHERE host = \(host) AND (\(runId)::text IS NULL OR run_id = \(runId))",
                                       logger: logger)
        }
    }

    public func coordinator(of runId: String) async throws -> String? {
        try await withConnection("run coordinator") { connection in
            for try await holder in try await connection.query("SELECT host FROM run_leases WHERE run_id = \(runId) AND expires_at > now()",
                                                               logger: logger).decode(String.self) { return holder }
            return nil
        }
    }

    // MARK: Forwarded commands

    public func forward(_ command: ForwardedCommand) async throws {
        _ = try await withConnection("forward command") { connection in
            try await connection.query("""
                INSERT INTO forwarded_commands (run_id, kind, requested_by) VALUES (\(command.runId), \(command.kind.rawValue), \(command.by))
                """, logger: logger)
        }
    }

    public func forwardedCommands(runIds: [String]) async throws -> [ForwardedCommand] {
        guard !runIds.isEmpty else { return [] }
        return try await withConnection("read forwarded commands") { connection in
            var commands: [ForwardedCommand] = []
            for try await (id, runId, kind, by) in try await connection.query("""
                SELECT id, run_id, kind, requested_by FROM forwarded_commands
                WHERE taken_at IS NULL AND run_id = ANY(\(runIds)) ORDER BY id
                """, logger: logger).decode((Int64, String, String, String).self) {
                guard let kind = ForwardedCommand.Kind(rawValue: kind) else { continue }
                commands.append(ForwardedCommand(runId: runId, kind: kind, by: by, id: id))
            }
            return commands
        }
    }

    public func markApplied(_ commands: [ForwardedCommand]) async throws {
        let ids = commands.compactMap(\.id)
        guard !ids.isEmpty else { return }
        let host = try coordinator
        _ = try await withConnection("mark forwarded commands applied") { connection in
            try await connection.query("""
                UPDATE forwarded_commands SET taken_by = \(host), taken_at = now() WHERE id = ANY(\(ids)) AND taken_at IS NULL
                """, logger: logger)
        }
    }

    // MARK: Schedules

    public func recordFire(_ record: ScheduleRecord, replacing previous: ScheduleRecord) async throws -> Bool {
        do {
            return try await withConnection("record scheduled fire") { connection in
                let updated = try await connection.query("""
                    UPDATE schedules SET last_fire_at = \(record.lastFireAt), exercises = \(record.exercises), armed_at = \(record.armedAt)
                    WHERE plan = \(record.plan) AND exercises = \(previous.exercises) RETURNING plan
                    """, logger: logger).collect()
                return !updated.isEmpty
            }
        } catch let failure as Failure where failure.gotNoAnswer {
            // Made before its answer was lost, the fire would be this host's to start, and no
            // host's: the row says whose it is. Its times are this host's clock to the
            // microsecond, which another host's record does not match.
            let found = try await settling(failure, what: "the fire of plan \(record.plan)'s schedule was recorded",
                                           advice: "the scheduler looks again in 10 s; `lifeboat schedules` shows the last fire") { connection -> ScheduleRecord? in
                let rows = try await connection.query("SELECT last_fire_at, exercises, armed_at FROM schedules WHERE plan = \(record.plan) FOR UPDATE", logger: self.logger)
                for try await (last, exercises, armed) in rows.decode((Date?, Int64, Date).self) {
                    return ScheduleRecord(plan: record.plan, lastFireAt: last, exercises: Int(exercises), armedAt: armed)
                }
                return nil
            }
            func same(_ a: Date?, _ b: Date?) -> Bool { a == b || (a.flatMap { a in b.map { abs(a.timeIntervalSince($0)) < 0.000_002 } } ?? false) }
            if let found, found.exercises == record.exercises, same(found.lastFireAt, record.lastFireAt), same(found.armedAt, record.armedAt) {
                logger.notice("the answer to a schedule's record was lost; the record is this host's", metadata: ["plan": "\(record.plan)"])
                return true
            }
            // Not made: asked again at the next look, unless another host's landed meanwhile.
            if let found, found.exercises == previous.exercises { throw failure }
            return false
        }
    }

    // MARK: Destination holds

    /// Hosts taking holds take turns (the check and the insert are one step).
    private static let holdsLock: Int64 = 0x4C42_484F_4C44_5321 // "LBHOLDS!"

    public func takeHolds(runId: String, _ destinations: [(path: String, job: String)]) async throws {
        guard !destinations.isEmpty else { return }
        let paths = destinations.map(\.path)
        let around = Array(Set(paths.flatMap { DestinationHolds.ancestors(of: $0) }).union(paths))
        let going = [RunState.pending, .running, .halted, .interrupted].map(\.rawValue)
        try await inTransaction("take destination holds") { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.holdsLock))", logger: logger)
            let rows = try await connection.query("""
                SELECT h.path, h.run_id, h.job, r.state = ANY(\(going)) OR (r.state = 'cancelled' AND r.finished_at IS NULL)
                FROM holds h JOIN runs r ON r.id = h.run_id
                WHERE h.run_id <> \(runId)
                  AND (r.state = ANY(\(going)) OR (r.state = 'cancelled' AND r.finished_at IS NULL)
                       OR EXISTS (SELECT 1 FROM run_leases l WHERE l.run_id = h.run_id AND l.expires_at > now()))
                  AND (h.path = ANY(\(around)) OR EXISTS (SELECT 1 FROM unnest(\(paths)::text[]) AS p(path)
                                                          WHERE starts_with(h.path, p.path || '/')))
                LIMIT 1
                """, logger: logger)
            for try await (path, run, job, going) in rows.decode((String, String, String, Bool).self) {
                guard going else {
                    throw SafetyRefusal(message: "destination \(path) is held by job \(job) of run \(run), which a host sharing the ledger is rolling back now; "
                                        + "try again once that is done")
                }
                throw SafetyRefusal(message: "destination \(path) is held by job \(job) of run \(run), which is still going (on a host sharing the ledger); "
                                    + "a destination is restored by one run at a time: wait for run \(run) to finish or cancel it")
            }
            try await connection.query("""
                INSERT INTO holds (path, run_id, job)
                SELECT * FROM unnest(\(paths)::text[], \(Array(repeating: runId, count: paths.count))::text[], \(destinations.map(\.job))::text[])
                ON CONFLICT (path) DO UPDATE SET run_id = EXCLUDED.run_id, job = EXCLUDED.job, taken_at = now()
                """, logger: logger)
        }
    }

    public func holds(runId: String, job: String?) async throws -> [(job: String, path: String)] {
        try await withConnection("read destination holds") { connection in
            var holds: [(job: String, path: String)] = []
            let rows = try await connection.query("""
                SELECT job, path FROM holds WHERE run_id = \(runId) AND (\(job)::text IS NULL OR job = \(job)) ORDER BY taken_at, path
                """, logger: logger)
            for try await (job, path) in rows.decode((String, String).self) { holds.append((job, path)) }
            return holds
        }
    }

    public func releaseHolds(runId: String, paths: [String]?) async throws {
        _ = try await withConnection("release destination holds") { connection in
            // Two statements, so that each uses its index (a path's, or the run's).
            if let paths {
                try await connection.query("DELETE FROM holds WHERE path = ANY(\(paths)::text[]) AND run_id = \(runId)", logger: logger)
            } else {
                try await connection.query("DELETE FROM holds WHERE run_id = \(runId)", logger: logger)
            }
        }
    }
}
