import Foundation
import PostgresNIO

/// A change to the PostgreSQL ledger, made in a group-commit batch's transaction. What a run of
/// many jobs makes many of — a claimed job's records, events, claims given back — is data, so
/// that a batch writes each kind in one statement (round trips on the one commit lane are what
/// such a run waits for); anything else is a closure, run in its turn.
enum PostgresWrite: Sendable {
    case job(FencedJobWrite)
    case event(LedgerEvent)
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

/// How a batch's writes are made: in their order, with the hot kinds gathered into as few
/// statements as give the outcome of making them one by one. A value type, tested without a
/// database.
///
/// - Records of different jobs do not touch each other's rows: gathered into one statement.
/// - A job's next record under the same claim, continuing from the one before it (its `previous`
///   is that one's state), is folded into it: one update from the first's state to the last
///   record, asking for the largest lease margin of the two. It succeeds exactly when both would
///   have in turn (the transaction's `now()` does not move between them).
/// - Events only append: gathered, in their order, and written with the records gathered with
///   them, in their statement (a round trip fewer).
/// - A claim given back goes after the records gathered with it; a record of a job whose claim was
///   given back before it in the batch waits for that (it is then refused, as it would have been).
/// - A closure may touch anything: what was gathered before it is written first.
///
/// When a write fails the batch fails as a whole, and the group commit makes its writes one by
/// one, each in its own transaction with its own outcome: a fenced-out or conflicting record
/// never sinks its neighbours, and each waiter hears its own error.
struct PostgresBatch {
    enum Step {
        /// Records of distinct jobs, in one statement, with the events gathered with them.
        case jobs([FencedJobWrite], events: [LedgerEvent])
        case releases([JobClaim])
        case events([LedgerEvent])
        case statements(PostgresStatements)
    }

    private(set) var steps: [Step] = []
    private var jobs: [FencedJobWrite] = []
    /// Where each job's record is in `jobs`.
    private var jobIndex: [Int64: Int] = [:]
    private var releases: [JobClaim] = []
    private var released: Set<Int64> = []
    private var events: [LedgerEvent] = []

    init(_ writes: [PostgresWrite]) {
        for write in writes { add(write) }
        gather()
    }

    private mutating func add(_ write: PostgresWrite) {
        switch write {
        case .job(let record):
            let id = record.claim.jobId
            if released.contains(id) { gather() }
            if let i = jobIndex[id] {
                let before = jobs[i]
                if before.claim == record.claim && before.job.state == record.previous {
                    jobs[i].job = record.job
                    jobs[i].minimumLease = max(before.minimumLease, record.minimumLease)
                    return
                }
                gather()
            }
            jobIndex[id] = jobs.count
            jobs.append(record)
        case .event(let event):
            events.append(event)
        case .release(let claim):
            releases.append(claim)
            released.insert(claim.jobId)
        case .statements(let body):
            gather()
            steps.append(.statements(body))
        }
    }

    /// What was gathered becomes steps: the records with the events, then the claims given back
    /// after them (the events on their own when there are no records).
    private mutating func gather() {
        if !jobs.isEmpty { steps.append(.jobs(jobs, events: events)) }
        if !releases.isEmpty { steps.append(.releases(releases)) }
        if jobs.isEmpty && !events.isEmpty { steps.append(.events(events)) }
        jobs.removeAll()
        jobIndex.removeAll()
        releases.removeAll()
        released.removeAll()
        events.removeAll()
    }
}
