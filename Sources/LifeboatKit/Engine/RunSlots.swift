import Foundation
import Synchronization

/// The daemon's `max_concurrent_runs`: which runs hold a slot, and which wait for one in order.
///
/// A run holds a slot while it executes. A run halted by a wave gate gives its slot up — a halted
/// canary must not block an unrelated urgent restore — and, once resumed, takes the next free
/// one in turn with the queued runs. Waiting is cancellable (a drain) and can be withdrawn (an
/// operator's cancel of a queued run). Rehearsals (exercises) queue behind every restore and
/// delete waiting: an unattended exercise never delays a production restore more than the one
/// it is running.
public final class RunSlots: Sendable {
    private struct State {
        var limit: Int
        var holders: [String] = []
        /// Waiters tagged with their run id.
        var waiting = WaitQueue<Bool>()
        /// Runs whose next wait ends at once (withdrawn before they began waiting).
        var withdrawn: Set<String> = []
        /// Exercises: they yield their turn to the other runs waiting.
        var rehearsals: Set<String> = []

        /// The waiting runs in the order they get slots: restores and deletes first, each kind
        /// in the order it queued.
        var queue: [String] {
            let tags = waiting.waiters.map(\.tag)
            return tags.filter { !rehearsals.contains($0) } + tags.filter { rehearsals.contains($0) }
        }

        /// Hands free slots to the runs first in `queue`.
        mutating func grant() -> [CheckedContinuation<Bool, Never>] {
            var granted: [CheckedContinuation<Bool, Never>] = []
            while holders.count < limit, let tag = queue.first, let next = waiting.take(tag: tag).first {
                holders.append(tag)
                granted.append(next)
            }
            return granted
        }
    }

    private let state: Mutex<State>

    public init(limit: Int) { state = Mutex(State(limit: max(1, limit))) }

    public var limit: Int { state.withLock { $0.limit } }

    /// Changes the limit (a reload); a higher one starts waiting runs at once.
    public func setLimit(_ limit: Int) {
        let granted = state.withLock { s in
            s.limit = max(1, limit)
            return s.grant()
        }
        for c in granted { c.resume(returning: true) }
    }

    /// Takes a slot for `runId`, waiting behind the runs queued before it. False when the wait
    /// was withdrawn or the task cancelled (no slot taken).
    public func acquire(_ runId: String) async -> Bool {
        await state.wait(in: \.waiting, tag: runId, cancelled: false) { s in
            if s.withdrawn.remove(runId) != nil { return false }
            if s.holders.contains(runId) { return true }
            if s.holders.count < s.limit, s.waiting.isEmpty {
                s.holders.append(runId)
                return true
            }
            return nil
        }
    }

    /// Takes a slot only if one is free and nobody waits for it.
    public func tryAcquire(_ runId: String) -> Bool {
        state.withLock { s in
            if s.holders.contains(runId) { return true }
            guard s.holders.count < s.limit, s.waiting.isEmpty else { return false }
            s.holders.append(runId)
            return true
        }
    }

    /// Gives `runId`'s slot back, if it holds one; the run waiting longest gets it.
    public func release(_ runId: String) {
        let granted = state.withLock { s -> [CheckedContinuation<Bool, Never>] in
            s.holders.removeAll { $0 == runId }
            s.withdrawn.remove(runId)
            return s.grant()
        }
        for c in granted { c.resume(returning: true) }
    }

    /// Ends `runId`'s wait: its `acquire` returns false, now or when it next waits (until its
    /// slot is released).
    public func withdraw(_ runId: String) {
        let withdrawn = state.withLock { s -> [CheckedContinuation<Bool, Never>] in
            let mine = s.waiting.take(tag: runId)
            if mine.isEmpty { s.withdrawn.insert(runId) }
            return mine
        }
        for c in withdrawn { c.resume(returning: false) }
    }

    /// `runId` is an exercise: it yields its turn to restores and deletes (until `forget`).
    public func markRehearsal(_ runId: String) {
        state.withLock { _ = $0.rehearsals.insert(runId) }
    }

    /// The run ended: nothing is kept about it.
    public func forget(_ runId: String) {
        state.withLock { _ = $0.rehearsals.remove(runId) }
    }

    /// Why `runId` waits, or nil when it does not wait for a slot.
    public func wait(of runId: String) -> RunWait? {
        state.withLock { s in
            let queue = s.queue
            guard let position = queue.firstIndex(of: runId) else { return nil }
            return RunWait(limit: s.limit, holders: s.holders, ahead: Array(queue[..<position]))
        }
    }

    /// Why `runId`, not yet queued, would wait if it queued now (no slot free, or runs queued
    /// before it); nil when it holds a slot or would take one at once.
    public func waitIfQueued(_ runId: String) -> RunWait? {
        state.withLock { s in
            let ahead = s.queue.filter { $0 != runId && (s.rehearsals.contains(runId) || !s.rehearsals.contains($0)) }
            guard !s.holders.contains(runId), s.holders.count >= s.limit || !ahead.isEmpty else { return nil }
            return RunWait(limit: s.limit, holders: s.holders, ahead: ahead)
        }
    }

    /// Runs holding a slot, in the order they took it.
    public var holders: [String] { state.withLock { $0.holders } }
}

/// Why a run waits to start (or to go on after a resume): the runs holding every slot, the runs
/// queued before it, and the limit. Served in `status`, `show` and `watch`, as data and in words.
public struct RunWait: Codable, Sendable, Hashable {
    /// `max_concurrent_runs`.
    public var limit: Int
    /// The runs holding the slots.
    public var holders: [String]
    /// Runs queued before this one.
    public var ahead: [String]
    /// The same, in words, with what to do.
    public var message: String

    public init(limit: Int, holders: [String], ahead: [String]) {
        self.limit = limit
        self.holders = holders
        self.ahead = ahead
        message = "queued: max_concurrent_runs is \(limit) and "
            + (holders.isEmpty ? "no slot is free yet" : "run(s) \(holders.joined(separator: ", ")) hold the slot(s)")
            + (ahead.isEmpty ? "" : "; \(ahead.count) run(s) queued before it (\(ahead.joined(separator: ", ")))")
            + "; it starts when a slot frees (a run ends or halts at a wave gate)."
            + " To run more at once, raise max_concurrent_runs in the daemon config and `lifeboat reload`"
    }
}
