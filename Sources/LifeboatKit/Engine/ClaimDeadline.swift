import Synchronization

/// Until when this host may still act on a claimed job, by its own monotonic clock.
///
/// The ledger's lease on a claim runs from when the ledger granted or renewed it; this host
/// counts from when it *sent* the request that did (earlier), so its deadline is never later
/// than the ledger's, however long the answer took to come back. Past it, another host may have
/// taken the job over — whatever the ledger says once it answers again — so this host changes
/// nothing more: the fenced records already ensure that in the ledger, this deadline on disk
/// (the commit's rename is refused past it; see `JobObserver.mayCommit`).
///
/// It also says whether the job's last record gave the claim back with it (`givenBack`): then
/// the worker has nothing left to give back.
final class ClaimDeadline: Sendable {
    private let until: Mutex<ContinuousClock.Instant>
    private let released = Atomic<Bool>(false)
    private let releasing = Atomic<Bool>(false)

    init(until: ContinuousClock.Instant) {
        self.until = Mutex(until)
    }

    /// A later deadline, confirmed by the ledger (a renewal, the commit record's margin).
    func extend(to instant: ContinuousClock.Instant) {
        until.withLock { $0 = max($0, instant) }
    }

    /// Ends it now (the ledger said the claim is gone).
    func expire() {
        until.withLock { $0 = min($0, .now) }
    }

    /// The job's last record was written with its claim given back after it (or refused, the
    /// claim given back all the same if still this host's).
    func markGivenBack() {
        released.store(true, ordering: .releasing)
    }

    var givenBack: Bool { released.load(ordering: .acquiring) }

    /// The job's last record, giving the claim back with it, is on its way: a renewal that finds
    /// the claim gone meanwhile found it given back, not lost.
    func markGivingBack() {
        releasing.store(true, ordering: .releasing)
    }

    var givingBack: Bool { releasing.load(ordering: .acquiring) }

    /// Whether less than `margin` is left.
    func passed(within margin: Duration = .zero) -> Bool {
        until.withLock { $0 } - margin <= .now
    }
}
