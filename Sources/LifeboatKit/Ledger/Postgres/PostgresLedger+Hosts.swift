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
        // The schema's version rides along: a host that migrated it past this build's since this
        // one started is said so (`schemaAhead`), and this host claims nothing from then on.
        let schema = try await withConnection("heartbeat") { connection -> Int? in
            let rows = try await connection.query("""
                UPDATE hosts SET heartbeat_at = now() WHERE name = \(host.name) AND instance = \(host.instance) AND stopped_at IS NULL
                RETURNING (SELECT COALESCE(MAX(version), 0)::bigint FROM lifeboat_schema)
                """, logger: logger)
            for try await version in rows.decode(Int64.self) { return Int(version) }
            return nil
        }
        guard let schema else { throw try await nameInUse(host.name) }
        newerSchema.withLock { $0 = schema > Self.schemaVersion ? SchemaMismatch(url: url, found: schema, known: Self.schemaVersion) : nil }
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

    public func liveHostCount() async throws -> Int {
        try await withConnection("live hosts") { connection in
            let rows = try await connection.query("""
                SELECT COUNT(*)::bigint FROM hosts h
                WHERE h.stopped_at IS NULL AND h.heartbeat_at >= now() - make_interval(secs => h.lease_seconds)
                """, logger: logger)
            for try await count in rows.decode(Int64.self) { return Int(count) }
            return 0
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
                       (SELECT COUNT(*) FROM claims c WHERE c.host = h.name AND c.released_at IS NULL AND c.expires_at > now())::bigint,
                       (SELECT COALESCE(SUM(j.bytes), 0) FROM jobs j WHERE j.state = 'succeeded' AND j.finished_at >= now() - interval '60 seconds'
                                                                      AND j.host = h.name
                                                                      AND j.run_id NOT IN (SELECT id FROM runs WHERE mode = 'delete'))::bigint
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
}
