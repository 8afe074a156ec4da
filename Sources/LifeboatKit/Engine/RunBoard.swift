import Foundation
import Synchronization

/// The runs this process is executing, kept current by the coordinators and the job recorder as
/// things happen, so that `status` answers from memory instead of counting rows in the ledger
/// while a run writes it at full speed.
public final class RunBoard: Sendable {
    private struct Entry {
        var run: RunRecord
        var counts: [JobState: Int]
    }

    private struct State {
        var runs: [String: Entry] = [:]
        /// Succeeded restore/exercise jobs of the last minutes.
        var restored = RecentBytes()
    }

    private let state = Mutex(State())

    public init() {}

    /// A run starts (or resumes) here with these jobs.
    func begin(_ run: RunRecord, jobs: [JobRecord]) {
        var counts: [JobState: Int] = [:]
        for job in jobs { counts[job.state, default: 0] += 1 }
        state.withLock { $0.runs[run.id] = Entry(run: run, counts: counts) }
    }

    /// The run's record changed (state, wave, note).
    func update(_ run: RunRecord) {
        state.withLock { $0.runs[run.id]?.run = run }
    }

    /// A job transition was recorded.
    func record(_ transition: JobTransition) {
        moved(transition.job, from: transition.previous)
    }

    /// A job's state changed from `previous` (here, or on the host that ran it).
    func moved(_ job: JobRecord, from previous: JobState) {
        state.withLock { s in
            if previous != job.state, var entry = s.runs[job.runId] {
                entry.counts[previous, default: 0] -= 1
                if entry.counts[previous] == 0 { entry.counts[previous] = nil }
                entry.counts[job.state, default: 0] += 1
                // A delete's moved bytes are not restored bytes.
                if job.state == .succeeded, entry.run.mode != .delete, let finished = job.finishedAt {
                    s.restored.add(job.bytes, at: finished)
                }
                s.runs[job.runId] = entry
            }
        }
    }

    /// The run ended here: it leaves the board.
    func end(_ runId: String) {
        state.withLock { _ = $0.runs.removeValue(forKey: runId) }
    }

    /// A run on the board and its jobs counted by state.
    public func run(_ runId: String) -> (run: RunRecord, counts: [JobState: Int])? {
        state.withLock { s in s.runs[runId].map { ($0.run, $0.counts) } }
    }

    /// Bytes restored by this process's jobs that finished since `date` (within the last five
    /// minutes, `RecentBytes.window`).
    public func bytesRestored(since date: Date) -> Int64 {
        state.withLock { $0.restored.since(date) }
    }
}
