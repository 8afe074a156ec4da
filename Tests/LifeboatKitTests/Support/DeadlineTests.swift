import Foundation
import Testing
@testable import LifeboatKit

@Suite struct DeadlineTests {
    /// Late work is cancelled and said so; a value in time comes back (nil included); a deadline
    /// too far to count in nanoseconds, or infinite, is none (it used to trap the process).
    @Test func lateWorkIsCancelledAndFarDeadlinesAreNone() async throws {
        await #expect(throws: DeadlineExceeded.self) {
            try await withDeadline(seconds: 0.05) { try await Task.sleep(for: .seconds(30)) }
        }
        #expect(try await withDeadline(seconds: 5) { 7 } == 7)
        let none: Int? = try await withDeadline(seconds: 5) { nil }
        #expect(none == nil)
        for far in [1e11, Double.infinity, 1e300] { #expect(try await withDeadline(seconds: far) { "done" } == "done") }
    }
}
