import Foundation

/// A progress event of a run, streamed to watchers (`run.watch`) and the daemon's status.
public struct RunEvent: Sendable, Codable, Hashable {
    public enum Kind: String, Sendable, Codable {
        /// The run started (or resumed after a restart); `run` is set.
        case started
        /// The run changed state (`run` is set).
        case run
        /// A job changed state (`job` is set).
        case job
        /// A job's progress (`job` and `archiveBytesRead` are set).
        case progress
        /// A wave gate failed and the run halted.
        case gateFailed = "gate-failed"
        /// The RTO objective is forecast to be missed (`message` says when).
        case forecastMiss = "forecast-miss"
        /// The run ended; no more events follow for it.
        case finished
    }

    public var kind: Kind
    public var runId: String
    public var at: Date
    public var run: RunRecord?
    public var job: JobRecord?
    public var message: String?
    /// For `progress`: compressed bytes of the job's archive read so far.
    public var archiveBytesRead: Int64?

    public init(kind: Kind, runId: String, at: Date, run: RunRecord? = nil, job: JobRecord? = nil, message: String? = nil) {
        self.kind = kind
        self.runId = runId
        self.at = at
        self.run = run
        self.job = job
        self.message = message
    }
}
