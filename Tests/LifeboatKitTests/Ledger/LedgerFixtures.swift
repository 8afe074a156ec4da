import Foundation
import Logging
import Testing
import LifeboatTestSupport
@testable import LifeboatKit

/// A ledger implementation under the conformance suite: it makes empty stores and opens them
/// (again: a second handle on the same store sees what the first made durable).
protocol LedgerFixture: Sendable {
    /// A fresh, empty store (a file path, a database name).
    func makeStore() async throws -> String
    /// Opens the store for the duration of `body`.
    func withLedger(_ store: String, _ body: @Sendable (any Ledger) async throws -> Void) async throws
}

extension LedgerFixture {
    /// A fresh store, opened.
    func withFreshLedger(_ body: @Sendable (any Ledger) async throws -> Void) async throws {
        try await withLedger(try await makeStore(), body)
    }
}

struct SQLiteFixture: LedgerFixture {
    let dir = TestDirectory("ledger-conformance")

    func makeStore() async throws -> String { dir.file("ledger-\(UUID().uuidString.prefix(8)).sqlite") }

    func withLedger(_ store: String, _ body: @Sendable (any Ledger) async throws -> Void) async throws {
        try await body(try SQLiteLedger(path: store))
    }
}

struct PostgresFixture: LedgerFixture {
    func makeStore() async throws -> String { try await LocalPostgres.shared().createDatabase() }

    func withLedger(_ store: String, _ body: @Sendable (any Ledger) async throws -> Void) async throws {
        let ledger = try await Self.open(store)
        try await ledger.withRunning { try await body($0) }
    }

    static func open(_ database: String) async throws -> PostgresLedger {
        let server = try await LocalPostgres.shared()
        let settings = try PostgresLedgerSettings(url: server.url(database: database), passwordFile: server.passwordFile)
        return try PostgresLedger(settings: settings, password: try settings.password(), logger: Logger(label: "test.ledger"))
    }
}
