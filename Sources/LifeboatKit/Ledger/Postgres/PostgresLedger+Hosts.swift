import Foundation
import PostgresNIO

/// Hosts: registration, heartbeats and the fleet as `status` shows it. Times that decide whether
/// a host is alive are the database's (`now()`), so hosts whose clocks differ agree.
extension PostgresLedger: SharedLedger {
    public var lease: TimeInterval { settings.lease }

    public func register(_ host: HostRegistration) async throws {
        let lease = settings.lease
        let taken = try await withConnection("register host") { connection in
            let rows = try await connection.query("""
                INSERT INTO hosts (name, instance, pid, version, started_at, heartbeat_at, lease_seconds, stopped_at)
                VALUES (\(host.name), \(host.instance), \(host.pid), \(host.version), \(host.startedAt), now(), \(lease), NULL)
                ON CONFLICT (name) DO UPDATE SET instance = EXCLUDED.instance, pid = EXCLUDED.pid, version = EXCLUDED.version,
                    started_at = EXCLUDED.started_at, heartbeat_at = now(), lease_seconds = EXCLUDED.lease_seconds, stopped_at = NULL
                WHERE hosts.instance = EXCLUDED.instance OR hosts.stopped_at IS NOT NULL
                   OR hosts.heartbeat_at < now() - make_interval(secs => hosts.lease_seconds)
                RETURNING name
                """, logger: logger)
            return try await rows.collect().count == 1
        }
        if !taken { throw try await nameInUse(host.name) }
    }

    public func heartbeat(_ host: HostRegistration) async throws {
        let renewed = try await withConnection("heartbeat") { connection in
            let rows = try await connection.query("""
                UPDATE hosts SET heartbeat_at = now() WHERE name = \(host.name) AND instance = \(host.instance) AND stopped_at IS NULL
                RETURNING name
                """, logger: logger)
            return try await rows.collect().count == 1
        }
        if !renewed { throw try await nameInUse(host.name) }
    }

    public func deregister(_ host: HostRegistration) async throws {
        _ = try await withConnection("deregister host") { connection in
            try await connection.query("UPDATE hosts SET stopped_at = now() WHERE name = \(host.name) AND instance = \(host.instance)",
                                       logger: logger)
        }
    }

    private func nameInUse(_ name: String) async throws -> HostNameInUse {
        try await withConnection("host") { connection in
            let rows = try await connection.query("""
                SELECT pid, EXTRACT(EPOCH FROM now() - heartbeat_at)::float8 FROM hosts WHERE name = \(name)
                """, logger: logger)
            for try await (pid, age) in rows.decode((Int64, Double).self) {
                return HostNameInUse(name: name, pid: Int(pid), heartbeatAgeSeconds: age)
            }
            return HostNameInUse(name: name, pid: 0, heartbeatAgeSeconds: 0)
        }
    }

    public func hosts() async throws -> [HostRecord] {
        try await withConnection("hosts") { connection in
            let rows = try await connection.query("""
                SELECT h.name, h.pid, h.version, h.started_at, h.heartbeat_at,
                       EXTRACT(EPOCH FROM now() - h.heartbeat_at)::float8,
                       CASE WHEN h.stopped_at IS NOT NULL THEN 'stopped'
                            WHEN h.heartbeat_at < now() - make_interval(secs => h.lease_seconds) THEN 'lost'
                            ELSE 'alive' END,
                       (SELECT COUNT(*) FROM jobs j WHERE j.host = h.name AND j.state IN ('restoring', 'verifying', 'committing'))::bigint,
                       (SELECT COALESCE(SUM(j.bytes), 0) FROM jobs j WHERE j.host = h.name AND j.state = 'succeeded'
                                                                      AND j.finished_at >= now() - interval '60 seconds')::bigint
                FROM hosts h ORDER BY h.name
                """, logger: logger)
            var hosts: [HostRecord] = []
            for try await row in rows {
                let r = row.makeRandomAccess()
                hosts.append(HostRecord(name: try r[0].decode(String.self), pid: Int(try r[1].decode(Int64.self)),
                                        version: try r[2].decode(String.self), startedAt: try r[3].decode(Date.self),
                                        heartbeatAt: try r[4].decode(Date.self), heartbeatAgeSeconds: try r[5].decode(Double.self),
                                        state: try r[6].decode(String.self), claimedJobs: Int(try r[7].decode(Int64.self)),
                                        bytesPerSecond: Double(try r[8].decode(Int64.self)) / 60))
            }
            return hosts
        }
    }

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

    public func renewCoordination() async throws -> Set<String> {
        let host = try coordinator
        let lease = settings.lease
        return try await withConnection("renew run leases") { connection in
            var held: Set<String> = []
            for try await id in try await connection.query("""
                UPDATE run_leases SET expires_at = now() + make_interval(secs => \(lease))
                WHERE host = \(host) AND expires_at > now() RETURNING run_id
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

    // MARK: Schedules

    public func recordFire(_ record: ScheduleRecord, replacing previous: ScheduleRecord) async throws -> Bool {
        try await withConnection("record scheduled fire") { connection in
            let updated = try await connection.query("""
                UPDATE schedules SET last_fire_at = \(record.lastFireAt), exercises = \(record.exercises)
                WHERE plan = \(record.plan) AND exercises = \(previous.exercises) RETURNING plan
                """, logger: logger).collect()
            return !updated.isEmpty
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
                SELECT h.path, h.run_id, h.job FROM holds h JOIN runs r ON r.id = h.run_id
                WHERE h.run_id <> \(runId) AND r.state = ANY(\(going))
                  AND (h.path = ANY(\(around)) OR EXISTS (SELECT 1 FROM unnest(\(paths)::text[]) AS p(path)
                                                          WHERE starts_with(h.path, p.path || '/')))
                LIMIT 1
                """, logger: logger)
            for try await (path, run, job) in rows.decode((String, String, String).self) {
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

    public func releaseHolds(runId: String, path: String?) async throws {
        _ = try await withConnection("release destination holds") { connection in
            try await connection.query("DELETE FROM holds WHERE run_id = \(runId) AND (\(path)::text IS NULL OR path = \(path))", logger: logger)
        }
    }
}
