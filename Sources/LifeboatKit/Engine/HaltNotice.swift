import Foundation

/// What an operator is told when a wave gate halts a run: which wave and gate, which jobs of the
/// wave did not succeed and why, and the two commands that decide what happens next. `watch`,
/// `--follow` and `show` print the same words.
public enum HaltNotice {
    /// What the run's note says after the gate's own sentence.
    static let noteSuffix = "; resume or cancel the run"

    /// The run's note while halted: the gate's sentence and what to do.
    static func note(gate message: String) -> String { message + noteSuffix }

    /// The lines to print for a halted run; empty when the run is not halted.
    public static func lines(run: RunRecord, jobs: [JobRecord], maxJobs: Int = 20) -> [String] {
        guard run.state == .halted else { return [] }
        var gate = run.note ?? "wave \(run.currentWave + 1) gate failed"
        if gate.hasSuffix(noteSuffix) { gate.removeLast(noteSuffix.count) }
        var lines = ["HALTED: run \(run.id), \(gate)"]
        let bad = jobs.filter { $0.wave == run.currentWave && $0.state.isFinal && $0.state != .succeeded }
            .sorted { ($0.state.rawValue, $0.name) < ($1.state.rawValue, $1.name) }
        for job in bad.prefix(maxJobs) {
            lines.append("  \(job.state.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)) \(job.name): \(job.reason ?? job.state.rawValue)")
        }
        if bad.count > maxJobs { lines.append("  … and \(bad.count - maxJobs) more (lifeboat show \(run.id))") }
        let next = run.currentWave + 2 <= run.totalWaves ? "go on with wave \(run.currentWave + 2)" : "go on"
        lines.append("  to \(next):".padding(toLength: 26, withPad: " ", startingAt: 0) + "lifeboat resume \(run.id)")
        lines.append("  to stop the run:".padding(toLength: 26, withPad: " ", startingAt: 0) + "lifeboat cancel \(run.id)")
        return lines
    }
}
