import Foundation

/// When a run will finish, from its measured pace so far, and whether that misses the RTO
/// objective (RTO is measured from the incident's declaration).
public struct RTOForecast: Sendable, Codable, Hashable {
    /// Forecast finish time; nil until at least one job finished.
    public var finishAt: Date?
    /// Forecast RTO of the last job (finish − declared). Before any job finished, once the RTO
    /// objective has passed with jobs left: the time since the declaration (the RTO is already
    /// at least that).
    public var rtoSeconds: Double?
    public var objectiveSeconds: Double?
    public var remainingJobs: Int
    /// The run is halted at a wave gate: it makes no progress until a resume, so no pace is
    /// forecast (nil otherwise).
    public var halted: Bool?

    public var missesObjective: Bool {
        guard let rtoSeconds, let objectiveSeconds else { return false }
        return rtoSeconds > objectiveSeconds
    }

    /// Pace = finished jobs per second of run time so far; remaining jobs at that pace.
    public init(run: RunRecord, totalJobs: Int, finishedJobs: Int, now: Date) {
        objectiveSeconds = run.rtoObjectiveSeconds
        remainingJobs = max(0, totalJobs - finishedJobs)
        // Ended: what it reached, not a finish that moves with the clock.
        if run.state.isFinal, let finished = run.finishedAt {
            remainingJobs = 0
            finishAt = finished
            rtoSeconds = finished.timeIntervalSince(run.declaredAt)
            return
        }
        if remainingJobs > 0, let objective = objectiveSeconds, now.timeIntervalSince(run.declaredAt) > objective {
            rtoSeconds = now.timeIntervalSince(run.declaredAt)
        }
        if run.state == .halted {
            halted = true
            return
        }
        // The pace over the time the run worked: its halts and pauses left out.
        guard finishedJobs > 0, let worked = run.workedSeconds(now: now) else { return }
        let elapsed = max(0.001, worked)
        let finish = now.addingTimeInterval(elapsed / Double(finishedJobs) * Double(remainingJobs))
        finishAt = finish
        rtoSeconds = finish.timeIntervalSince(run.declaredAt)
    }

    /// "forecast finish 10:42 (RTO 2h05m against 4h: on track)".
    public var summary: String {
        if halted == true {
            return "no forecast while halted at a wave gate (nothing goes on until a resume)"
                + (rtoSeconds.map { "; RTO already \(DurationSpec.format(seconds: $0))" } ?? "")
                + (missesObjective ? " — MISSES the \(DurationSpec.format(seconds: objectiveSeconds!)) objective" : "")
        }
        guard let rtoSeconds else { return "no forecast yet" }
        guard let finishAt else {
            return "no finish forecast yet; RTO already \(DurationSpec.format(seconds: rtoSeconds))"
                + (objectiveSeconds.map { " — MISSES the \(DurationSpec.format(seconds: $0)) objective" } ?? "")
        }
        var text = "forecast finish \(Timestamp.iso(finishAt)), RTO \(DurationSpec.format(seconds: rtoSeconds))"
        if let objectiveSeconds {
            text += missesObjective ? " — MISSES the \(DurationSpec.format(seconds: objectiveSeconds)) objective by \(DurationSpec.format(seconds: rtoSeconds - objectiveSeconds))"
                                    : " within the \(DurationSpec.format(seconds: objectiveSeconds)) objective"
        }
        return text
    }
}
