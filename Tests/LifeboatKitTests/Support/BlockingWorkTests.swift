import Foundation
import Testing
@testable import LifeboatKit

/// Extraction's threads yield the cores to the rest of the host (an operator's `status`, the
/// daemon's heartbeats and renewals) when both want them.
@Suite struct BlockingWorkTests {
    /// A thread's nice value, from /proc (field 19 of its stat line).
    static func niceOfThisThread() throws -> Int {
        let stat = try String(contentsOfFile: "/proc/thread-self/stat", encoding: .utf8)
        // The command name (field 2) is in parentheses and may hold spaces: count after it.
        let fields = stat[stat.index(after: try #require(stat.lastIndex(of: ")")))...].split(separator: " ")
        return try #require(Int(fields[16]))
    }

    @Test func poolThreadsRunNicerThanTheDaemon() async throws {
        let daemon = try Self.niceOfThisThread()
        for _ in 0..<3 {
            let pool = try await runBlocking(flag: CancellationFlag()) { try Self.niceOfThisThread() }
            #expect(pool == min(19, daemon + Int(BlockingPool.niceness)))
        }
    }
}
