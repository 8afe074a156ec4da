import Foundation
import Synchronization
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

    /// `valueWithin` gives nil only for an operation that is late. One that answers in time is
    /// never reported late: its timer, cancelled on the answer, used to race it to the caller and
    /// sometimes won (a loaded host's `status` then said the ledger had not answered).
    @Test func valueWithinIsNilOnlyForLateWork() async throws {
        let late = try await valueWithin(seconds: 0.05) { () async throws -> Int in
            try await Task.sleep(for: .seconds(30))
            return 1
        }
        #expect(late == nil)
        let spurious = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<40 {
                group.addTask {
                    var nils = 0
                    for index in 0..<250 where try await valueWithin(seconds: 30, { index }) == nil { nils += 1 }
                    return nils
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(spurious == 0, "\(spurious) of 10,000 answers in time were reported late")
    }

    /// A call that waits on something gone (a query waiting for a connection to a server that
    /// went away) is given up once the reason comes, with that reason, however long the call
    /// would go on; one that answers first gives its own answer or error, whatever the reason.
    @Test func workIsGivenUpOnceTheReasonComes() async throws {
        struct Gone: Error {}
        struct Own: Error {}
        let gone = Mutex(false)
        let asked = Date()
        // Deaf to cancellation, as a call stuck in a pool's queue can be.
        let deaf = { @Sendable () async throws -> Int in
            try? await Task.detached { try await Task.sleep(for: .seconds(120)) }.value
            return 1
        }
        let stuck = Task { try await abandonable(deaf, checkingEvery: .milliseconds(20)) { gone.withLock { $0 } ? Gone() : nil } }
        try await Task.sleep(for: .milliseconds(200))
        gone.withLock { $0 = true }
        await #expect(throws: Gone.self) { try await stuck.value }
        // Far sooner than the call would end (bounds for a suite that loads every core).
        #expect(Date().timeIntervalSince(asked) < 60)
        #expect(try await abandonable({ 7 }, checkingEvery: .milliseconds(20)) { nil } == 7)
        await #expect(throws: Own.self) {
            try await abandonable({ () async throws -> Int in throw Own() }, checkingEvery: .seconds(5)) { Gone() }
        }
        // A caller that stops waiting is not held until the call ends.
        let cancelled = Date()
        let left = Task { try await abandonable(deaf, checkingEvery: .seconds(60)) { nil } }
        try await Task.sleep(for: .milliseconds(100))
        left.cancel()
        await #expect(throws: CancellationError.self) { try await left.value }
        #expect(Date().timeIntervalSince(cancelled) < 60)
    }
}
