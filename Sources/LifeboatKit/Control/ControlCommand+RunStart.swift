import Foundation

extension Control {
    /// `run.start {plan, mode, sites?, incident_at?, as_of?, …}`: starts a restore or an exercise,
    /// answers a dry run (nothing is written), or resolves and starts a soft delete.
    public struct RunStart: ControlCommand {
        /// What `run.start` answers, by mode.
        public enum Outcome: Encodable, Sendable {
            /// A restore or an exercise, as recorded (pending).
            case started(RunRecord)
            case dryRun(DryRunReport)
            /// A delete's resolved selection, with the run once confirmed.
            case delete(DeleteAnswer)

            /// On the wire, the answer itself, without a wrapper.
            public func encode(to encoder: any Encoder) throws {
                switch self {
                case .started(let run): try run.encode(to: encoder)
                case .dryRun(let report): try report.encode(to: encoder)
                case .delete(let answer): try answer.encode(to: encoder)
                }
            }

            /// The run started, if any (a dry run and an unconfirmed delete start none).
            public var run: RunRecord? {
                switch self {
                case .started(let run): return run
                case .dryRun: return nil
                case .delete(let answer): return answer.run
                }
            }
        }

        public typealias Result = Outcome
        public static let name = "run.start"

        public var plan: String
        /// Required: a client that leaves it out must not start a production restore.
        public var mode: RunMode
        public var sites: [String]?
        public var incidentAt: Date?
        public var asOf: Date?
        public var declaredAt: Date?
        /// Exercises only: sites to sample, the sampling seed, keep the sandbox data.
        public var scale: Int?
        public var seed: Int64?
        public var keep: Bool?
        /// Restore from the archives even where soft-deleted data is still in quarantine.
        public var fromSnapshots: Bool?
        /// Exercises only: `delete` rehearses the undelete path in the sandbox.
        public var rehearse: String?
        /// The products (default: every product of the plan; a delete's: those with data).
        public var products: [String]?
        /// Deletes only: why, a dry run, or the dry run's token.
        public var reason: String?
        public var dryRun: Bool?
        public var confirm: String?

        public init(plan: String, mode: RunMode, sites: [String]? = nil) {
            (self.plan, self.mode, self.sites) = (plan, mode, sites)
        }

        /// A dry run writes nothing, so anyone who may read may ask for one. A delete has its own
        /// role, `deleters`, checked where it is handled so that its refusals are recorded too.
        public var isMutating: Bool { mode != .dryRun && mode != .delete }

        public func decodeResult(_ answer: ControlClient.Answer) throws -> Outcome {
            switch mode {
            case .dryRun: return .dryRun(try answer.decode(DryRunReport.self))
            case .delete: return .delete(try answer.decode(DeleteAnswer.self))
            case .restore, .exercise: return .started(try answer.decode(RunRecord.self))
            }
        }
    }
}
