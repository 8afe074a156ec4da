import Foundation
import LifeboatTestSupport
import Logging
import Testing
@testable import LifeboatKit

/// A write to the PostgreSQL ledger whose answer never arrives — the server did the work and
/// committed, then the connection was cut (a network, a failover) — is tried again, as a write
/// the server may not have seen must be: what it wrote is then not written twice.
@Suite(.ownThread, .enabled(if: LocalPostgres.available, "PostgreSQL ledger \(LocalPostgres.installHint)"))
struct LedgerAnswerLossTests {
    @Test func anEventWhoseAnswerIsLostIsWrittenOnce() async throws {
        let server = try await LocalPostgres.shared()
        let database = try server.createDatabase()
        let proxy = FaultProxy(upstreamPort: server.port, fault: nil)
        defer { proxy.stop() }
        let url = server.url(database: database).replacingOccurrences(of: ":\(server.port)/", with: ":\(proxy.port)/")
        let settings = try PostgresLedgerSettings(url: url, passwordFile: server.passwordFile)
        let ledger = try PostgresLedger(settings: settings, password: try settings.password(), logger: Logger(label: "test"))
        let at = Timestamp.parse("2026-11-25T10:00:00Z")!
        try await ledger.withRunning { ledger in
            // The schema first: a change posted while the migrations run is written without them
            // (it lingers 250 ms) and dropped; a CI run under load saw that.
            try await ledger.flush()
            ledger.postEvent(LedgerEvent(runId: "r1", at: at, kind: "job.succeeded", message: "before the cut"))
            try await ledger.flush()

            proxy.loseAnswer(toRequestContaining: "answer lost")
            ledger.postEvent(LedgerEvent(runId: "r1", jobId: 7, at: at, kind: "job.succeeded", message: "answer lost"))
            ledger.postEvent(LedgerEvent(runId: "r1", at: at, kind: "run.succeeded", message: "answer lost too"))
            // The flush that waits for them hears that the database did not answer; the events
            // are kept and written again on a new connection.
            await #expect(throws: (any Error).self) { try await ledger.flush() }
            #expect(proxy.faultsInjected == 1)
            let deadline = Date().addingTimeInterval(30)
            var flushed = false
            while !flushed, Date() < deadline {
                do {
                    try await ledger.flush()
                    flushed = true
                } catch {
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
            #expect(flushed)
            ledger.postEvent(LedgerEvent(runId: "r1", at: at, kind: "run.note", message: "after the cut"))
            try await ledger.flush()

            let events = try await ledger.allEvents(runId: "r1")
            #expect(events.map(\.message) == ["before the cut", "answer lost", "answer lost too", "after the cut"], "\(events.map(\.message))")
            #expect(events.map(\.jobId) == [nil, 7, nil, nil])
        }
    }
}
