import PostgresNIO

/// A pooled connection lent after its channel closed (the pool had not heard yet): not used.
///
/// PostgresNIO writes a query to its channel without a promise for the write: on a closed
/// channel the write is dropped and the query's answer never comes, and its caller waits for
/// good. Right after a connection is cut, the pool can lend that very connection to the next
/// call (seen in tests, which then hung). The call fails as one the database did not answer,
/// which every caller handles (tried again on a connection that works).
struct ConnectionGone: Error, CustomStringConvertible {
    var description: String { "the connection the pool lent was closed" }
}

extension PostgresClient {
    /// `withConnection`, refusing a connection whose channel is closed already.
    func withLiveConnection<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await withConnection { connection in
            guard !connection.isClosed else { throw ConnectionGone() }
            return try await body(connection)
        }
    }
}
