import Foundation

/// Where each job's bar goes on the timeline. Pure geometry, so it can be tested without SVG.
///
/// x is the time since the run's `declared_at`, from a job's `started_at` to its `finished_at`
/// (a job still going ends at the report's time). Jobs are grouped by wave, one band per wave.
///
/// Scale: every started job gets exactly one bar, whatever the run's size. Up to
/// ``rowModeLimit`` started jobs, each job has its own labelled row. Above that, a wave's jobs are
/// packed into lanes (a job takes the first lane free when it starts), so the chart's height
/// follows the run's concurrency instead of its job count and a 10,000-job run stays a readable
/// picture of a few dozen lanes; the bars' tooltips still name each job.
struct TimelineLayout {
    static let rowModeLimit = 150

    enum Outcome: String, CaseIterable {
        case ok
        /// Restored, but after the RTO objective.
        case late
        case failed, skipped, cancelled, open

        init(_ job: ReportDocument.Job) {
            switch job.state {
            case .succeeded: self = job.rtoMet == false ? .late : .ok
            case .failed: self = .failed
            case .skipped: self = .skipped
            case .cancelled: self = .cancelled
            default: self = .open
            }
        }

        /// The legend's words.
        var label: String {
            switch self {
            case .ok: return "succeeded"
            case .late: return "succeeded after the RTO objective"
            case .failed: return "failed"
            case .skipped: return "skipped"
            case .cancelled: return "cancelled"
            case .open: return "running / unfinished"
            }
        }
    }

    struct Bar {
        /// Index into the document's jobs.
        var job: Int
        var outcome: Outcome
        /// Seconds since declared_at.
        var start: Double
        var end: Double
        /// Row (or lane) within the wave.
        var row: Int
    }

    struct Wave {
        var index: Int
        var jobs: Int
        var notRestored: Int
        var rows: Int
        var bars: [Bar]
    }

    let waves: [Wave]
    /// One row per job (labels fit) rather than packed lanes.
    let rowPerJob: Bool
    /// Seconds from declared_at to the last bar's end.
    let lastEnd: Double
    /// Jobs with no bar (never started), in document order.
    let notStarted: [Int]

    init(_ doc: ReportDocument) {
        let declared = doc.run.declaredAt
        // A job that has not finished is drawn up to the run's end, or to the report's time.
        let openEnd = doc.run.state.isFinal ? (doc.run.finishedAt ?? doc.generatedAt) : doc.generatedAt
        var started: [Int: [Bar]] = [:]
        var notStarted: [Int] = []
        var lastEnd = 0.0
        for (i, job) in doc.jobs.enumerated() {
            guard let startedAt = job.startedAt else {
                notStarted.append(i)
                continue
            }
            // Times before the declaration (clock skew, a declaration given late) clamp to 0.
            let start = max(0, startedAt.timeIntervalSince(declared))
            let end = max(start, (job.finishedAt ?? max(openEnd, startedAt)).timeIntervalSince(declared))
            lastEnd = max(lastEnd, end)
            started[job.wave, default: []].append(Bar(job: i, outcome: Outcome(job), start: start, end: end, row: 0))
        }
        let startedCount = started.values.reduce(0) { $0 + $1.count }
        rowPerJob = startedCount <= Self.rowModeLimit

        let waveIndexes = Set(doc.jobs.map(\.wave)).sorted()
        var waves: [Wave] = []
        for index in waveIndexes {
            var bars = (started[index] ?? []).sorted { ($0.start, $0.end, $0.job) < ($1.start, $1.end, $1.job) }
            let rows = rowPerJob ? Self.assignRows(&bars) : Self.packLanes(&bars)
            let jobs = doc.jobs.filter { $0.wave == index }
            waves.append(Wave(index: index, jobs: jobs.count,
                              notRestored: jobs.count { [.failed, .skipped, .cancelled].contains($0.state) },
                              rows: rows, bars: bars))
        }
        self.waves = waves
        self.lastEnd = lastEnd
        self.notStarted = notStarted
    }

    private static func assignRows(_ bars: inout [Bar]) -> Int {
        for i in bars.indices { bars[i].row = i }
        return bars.count
    }

    /// First-fit lane packing of bars sorted by start: a lane is free once its last bar ended.
    private static func packLanes(_ bars: inout [Bar]) -> Int {
        var laneEnds: [Double] = []
        for i in bars.indices {
            if let lane = laneEnds.firstIndex(where: { $0 <= bars[i].start }) {
                bars[i].row = lane
                laneEnds[lane] = bars[i].end
            } else {
                bars[i].row = laneEnds.count
                laneEnds.append(bars[i].end)
            }
        }
        return laneEnds.count
    }

    var barCount: Int { waves.reduce(0) { $0 + $1.bars.count } }
    var rowCount: Int { waves.reduce(0) { $0 + $1.rows } }
}
