import Foundation
import PostgresNIO
import Synchronization

/// A change to the PostgreSQL ledger, made in a group-commit batch's transaction. What a run of
/// many jobs makes many of — a claimed job's records, events, claims given back — is data, so
/// that a batch writes each kind in one statement (round trips on the one commit lane are what
/// such a run waits for); anything else is a closure, run in its turn.
enum PostgresWrite: Sendable {
    case job(FencedJobWrite)
    case event(PostedEvent)
    /// A claim given back (after its job's records).
    case release(JobClaim)
    case statements(PostgresStatements)
}

/// Statements made inside a batch's transaction.
typealias PostgresStatements = @Sendable (PostgresConnection) async throws -> Void

/// A claimed job's compare-and-set record, made only while `claim` is the job's live claim with
/// at least `minimumLease` seconds left, and the job's state is still `previous`.
struct FencedJobWrite: Sendable, Hashable {
    var job: JobRecord
    var previous: JobState
    var claim: JobClaim
    var minimumLease: TimeInterval
}

/// An event as this host posts it: with a key unique to it, so that a batch tried again after its
/// answer was lost (the server may have committed it) does not add it twice (migration 17).
struct PostedEvent: Sendable {
    var event: LedgerEvent
    var key: String
}

/// The keys of the events one ledger posts: a random prefix of this process's (64 bits) and a
/// count. Hosts and restarts never share one.
final class EventKeys: Sendable {
    private let prefix = String(UInt64.random(in: 0...UInt64.max), radix: 36)
    private let count = Atomic<Int>(0)

    func next() -> String { "\(prefix).\(count.add(1, ordering: .relaxed).newValue)" }
}

/// One call of `lifeboat_record_and_claim`: records of distinct jobs, events, then claims given
/// back, then jobs claimed in their place.
struct RecordCall: Sendable {
    var jobs: [FencedJobWrite] = []
    var events: [PostedEvent] = []
    var releases: [JobClaim] = []
    /// The claim made in the slots the releases free (of one run: a slot of another run is
    /// left to the worker's own claims).
    var refill: ClaimRequest?

    var isEmpty: Bool { jobs.isEmpty && events.isEmpty && releases.isEmpty }
}

/// How a batch's writes are made: in their order, with the hot kinds gathered into as few calls
/// as give the outcome of making them one by one. A value type, tested without a database.
///
/// - Records of different jobs do not touch each other's rows: gathered into one call.
/// - A job's next record under the same claim, continuing from the one before it (its `previous`
///   is that one's state), is folded into it: one update from the first's state to the last
///   record, asking for the largest lease margin of the two. It succeeds exactly when both would
///   have in turn (the transaction's `now()` does not move between them).
/// - Events only append: gathered, in their order. Inserting events takes a lock held to the
///   transaction's end (ids in commit order, see migration 15), so they come after everything
///   else, in a call that is its own transaction: in the batch's one call, or, after a batch of
///   several steps has committed, in a call of their own (`events`). The lock is then never
///   held while the server waits for this host (a host cut off before its COMMIT would hold
///   every host's events until the server gave up on it). Events are only ever posted, so
///   nobody waits on them being in the same transaction as the records before them.
/// - A claim given back goes after the records gathered with it; a record of a job whose claim was
///   given back before it in the batch waits for the next call (it is then refused, as it would
///   have been). The slot it frees is claimed again in the same call when `refill` says under
///   what rules (one run's per call: the claims given back of one run add up).
/// - A closure may touch anything: what was gathered before it is written first.
///
/// A batch of one call needs no transaction of its own (the call is one); otherwise its steps
/// are made in one. When a write fails the batch fails as a whole, and the group commit makes its
/// writes one by one, each with its own outcome: a fenced-out or conflicting record never sinks
/// its neighbours, and each waiter hears its own error.
struct PostgresBatch {
    enum Step {
        case record(RecordCall)
        case statements(PostgresStatements)
    }

    private(set) var steps: [Step] = []
    /// Events written after the steps, in a call of their own (a batch of several steps).
    private(set) var events: [PostedEvent] = []
    /// Where the batch's events were in the writes given (wherever they are written).
    private(set) var eventIndices: [Int] = []
    private var call = RecordCall()
    /// Where each job's record is in `call.jobs`.
    private var jobIndex: [Int64: Int] = [:]
    private var released: Set<Int64> = []

    /// - Parameter refill: the claim to make in the place of a claim given back (for one job), if any.
    init(_ writes: [PostgresWrite], refill: (JobClaim) -> ClaimRequest? = { _ in nil }) {
        for (index, write) in writes.enumerated() { add(write, at: index, refill: refill) }
        gather()
        // One call or none: the events go in it.
        guard steps.count <= 1, !events.isEmpty else { return }
        if case .record(var only)? = steps.first {
            only.events = events
            steps = [.record(only)]
        } else if steps.isEmpty {
            steps = [.record(RecordCall(events: events))]
        } else {
            return
        }
        events = []
    }

    private mutating func add(_ write: PostgresWrite, at index: Int, refill: (JobClaim) -> ClaimRequest?) {
        switch write {
        case .job(let record):
            let id = record.claim.jobId
            if released.contains(id) { gather() }
            if let i = jobIndex[id] {
                let before = call.jobs[i]
                if before.claim == record.claim && before.job.state == record.previous {
                    call.jobs[i].job = record.job
                    call.jobs[i].minimumLease = max(before.minimumLease, record.minimumLease)
                    return
                }
                gather()
            }
            jobIndex[id] = call.jobs.count
            call.jobs.append(record)
        case .event(let event):
            events.append(event)
            eventIndices.append(index)
        case .release(let claim):
            call.releases.append(claim)
            released.insert(claim.jobId)
            guard let next = refill(claim) else { return }
            guard let gathered = call.refill else {
                call.refill = next
                return
            }
            // Another slot of the same claim (run, host, rules): one claim takes both.
            var same = next
            same.max = gathered.max
            if same == gathered { call.refill?.max += next.max }
        case .statements(let body):
            gather()
            steps.append(.statements(body))
        }
    }

    /// What was gathered becomes a call.
    private mutating func gather() {
        if !call.isEmpty { steps.append(.record(call)) }
        call = RecordCall()
        jobIndex.removeAll()
        released.removeAll()
    }
}
