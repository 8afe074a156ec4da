import Foundation
@testable import LifeboatKit
import Synchronization
import Testing

/// Commits that need a `syncfs` at the same time share one, and none returns before a `syncfs`
/// that started after its call has finished.
@Suite struct SharedSyncTests {
    /// A `syncfs` stand-in that counts its calls and holds each until the test lets it go.
    final class HeldSyncfs: Sendable {
        private struct State {
            var calls = 0
            var released = 0
            var failWith: Int32?
        }

        private let state = Mutex(State())

        var calls: Int { state.withLock { $0.calls } }
        func fail(with code: Int32?) { state.withLock { $0.failWith = code } }
        func releaseNext() { state.withLock { $0.released += 1 } }

        func call(_ fd: Int32) -> Int32 {
            let number = state.withLock { s in
                s.calls += 1
                return s.calls
            }
            // Held until released (30 s at most, so a broken test fails instead of hanging).
            let deadline = Date().addingTimeInterval(30)
            while state.withLock({ $0.released < number }), Date() < deadline { usleep(1_000) }
            guard let code = state.withLock({ $0.failWith }) else { return 0 }
            errno = code
            return -1
        }
    }

    /// Calls `sync` on threads of their own; the results, once all have returned.
    final class Callers: Sendable {
        private let results = Mutex<[Int32]>([])
        private let group = DispatchGroup()

        func start(_ count: Int, _ sync: SharedSync, fd: Int32) {
            for _ in 0..<count {
                group.enter()
                Thread.detachNewThread { [self] in
                    let rc = sync.sync(fd)
                    results.withLock { $0.append(rc) }
                    group.leave()
                }
            }
        }

        var returned: Int { results.withLock { $0.count } }

        func wait() -> [Int32] {
            group.wait()
            return results.withLock { $0 }
        }
    }

    func until(_ condition: () -> Bool) {
        let deadline = Date().addingTimeInterval(30)
        while !condition(), Date() < deadline { usleep(1_000) }
    }

    @Test func callersArrivingDuringASyncShareTheNextOne() throws {
        let held = HeldSyncfs()
        let sync = SharedSync(syncfs: { held.call($0) })
        let fd = open("/", O_RDONLY | O_DIRECTORY)
        defer { close(fd) }

        let first = Callers()
        first.start(1, sync, fd: fd)
        until { held.calls == 1 }
        // Seven more commits come while the first syncfs runs: it may have started before their
        // data was written, so none of them may return on it.
        let others = Callers()
        others.start(7, sync, fd: fd)
        until { sync.waitingCallers == 7 }
        held.releaseNext()
        #expect(first.wait() == [0])
        until { held.calls == 2 }
        #expect(others.returned == 0, "a caller returned on a syncfs that started before it asked")
        held.releaseNext()
        #expect(others.wait() == Array(repeating: 0, count: 7))
        // One syncfs for the first caller and one shared by the seven.
        #expect(held.calls == 2)
    }

    /// Commits that come while the leader gathers company share its call: one `syncfs` for all.
    /// A leader gathers only when the call before it was shared (commits are coming together): a
    /// lone commit waits for nobody.
    @Test func callersArrivingWhileTheLeaderGathersShareItsCall() throws {
        let held = HeldSyncfs()
        let sync = SharedSync(gathering: .seconds(3), syncfs: { held.call($0) })
        let fd = open("/", O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        // A first commit, alone: its syncfs starts at once, not in 3 s.
        let started = ContinuousClock.now
        let alone = Callers()
        alone.start(1, sync, fd: fd)
        until { held.calls == 1 }
        #expect(ContinuousClock.now - started < .seconds(2), "a lone commit waited for company")
        // Two commits pile up behind it and share the next call, which (the one before it alone)
        // does not gather either.
        let pair = Callers()
        pair.start(2, sync, fd: fd)
        until { sync.waitingCallers == 2 }
        held.releaseNext()
        #expect(alone.wait() == [0])
        until { held.calls == 2 }
        #expect(ContinuousClock.now - started < .seconds(2), "a commit after a lone one waited for company")
        held.releaseNext()
        #expect(pair.wait() == [0, 0])

        // That call was shared: the next leader gathers.
        let leader = Callers()
        leader.start(1, sync, fd: fd)
        usleep(50_000)
        let company = Callers()
        company.start(5, sync, fd: fd)
        until { sync.waitingCallers == 5 }
        // All five asked before the leader's syncfs started, so it covers their data.
        #expect(held.calls == 2, "the leader did not wait for company")
        until { held.calls == 3 }
        held.releaseNext()
        #expect(leader.wait() == [0])
        #expect(company.wait() == Array(repeating: 0, count: 5))
        #expect(held.calls == 3)
    }

    @Test func aFailedSharedSyncIsEverySharersErrorAndTheNextCallStartsAfresh() throws {
        let held = HeldSyncfs()
        let sync = SharedSync(syncfs: { held.call($0) })
        let fd = open("/", O_RDONLY | O_DIRECTORY)
        defer { close(fd) }

        let leader = Callers()
        leader.start(1, sync, fd: fd)
        until { held.calls == 1 }
        let sharers = Callers()
        sharers.start(3, sync, fd: fd)
        until { sync.waitingCallers == 3 }
        held.releaseNext()
        #expect(leader.wait() == [0])
        until { held.calls == 2 }
        held.fail(with: EIO)
        held.releaseNext()
        #expect(sharers.wait() == [EIO, EIO, EIO])

        held.fail(with: nil)
        let later = Callers()
        later.start(1, sync, fd: fd)
        until { held.calls == 3 }
        held.releaseNext()
        #expect(later.wait() == [0])
    }
}
