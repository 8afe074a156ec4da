import Foundation
import Logging

/// Runs plans' `notify` commands with an event as JSON on stdin: run started, wave gate failed,
/// RTO objective forecast to be missed, job failed, site restored or failed, run finished. Hooks run with a timeout, a
/// few at a time, off the run's path: a slow or failing notifier is logged and never blocks a run.
public struct NotificationDispatcher: Sendable {
    public let ledger: any Ledger
    /// The plan a run is worked under (`PlanRegistry.plan(for:)`): its `notify` command.
    public let plan: @Sendable (RunRecord) -> Plan?
    public let logger: Logger
    public let maxConcurrent: Int

    public init(ledger: any Ledger, logger: Logger, maxConcurrent: Int = 4, plan: @escaping @Sendable (RunRecord) -> Plan?) {
        self.ledger = ledger
        self.logger = logger
        self.maxConcurrent = maxConcurrent
        self.plan = plan
    }

    /// The JSON a notify command reads on stdin.
    public struct Notification: Codable, Sendable {
        /// `run.started`, `gate.failed`, `rto.forecast-miss`, `job.failed`, `site.restored`,
        /// `site.failed`, `run.finished`.
        public var event: String
        public var at: Date
        public var run: RunRecord
        public var job: JobRecord?
        /// For `site.*`: the site's id, state, products done, restored-at, failures.
        public var site: SiteStatus?
        public var message: String?
    }

    /// Which bus events notify, and under which name.
    static func name(of event: RunEvent) -> String? {
        switch event.kind {
        case .started: return "run.started"
        case .gateFailed: return "gate.failed"
        case .forecastMiss: return "rto.forecast-miss"
        case .finished: return event.run?.state.isFinal == true ? "run.finished" : nil
        case .job: return event.job?.state == .failed ? "job.failed" : nil
        case .run, .progress: return nil
        }
    }

    /// Consumes events until the stream ends or the task is cancelled. `since`: sites that ended
    /// before it are not announced again (a restarted daemon's predecessor did that).
    public func run(_ events: AsyncStream<RunEvent>, since: Date = Date()) async {
        let slots = AsyncSemaphore(maxConcurrent)
        var sites = SiteNotifier(since: since)
        // Each run, from the events that carry it: a run whose plan has no `notify`
        // costs no ledger read per site and job (what `deliver` would read only to find that out).
        var runs: [String: RunRecord] = [:]
        await withDiscardingTaskGroup { group in
            for await event in events {
                if let run = event.run { runs[event.runId] = run }
                defer { if event.kind == .finished { runs[event.runId] = nil } }
                // With several hosts, a run's notifications are its coordinator's (which hears of
                // every host's jobs): a host that only runs some of its jobs hears of no run event
                // of it, and says nothing (its sites would be announced twice).
                if runs[event.runId] == nil, ledger is any SharedLedger { continue }
                // A run is worked under one version of its plan: when that has no `notify`, none
                // of the run's events is delivered, and its jobs are not kept to announce its sites.
                if let run = runs[event.runId], plan(run)?.notify == nil { continue }
                // A site ends with its last job event (or, if the bus dropped that, with the run).
                let announcements = await sites.observe(event, load: { try await ledger.jobs(runId: $0) })
                for announcement in announcements {
                    let site = announcement.site
                    // A site not restored because the run was cancelled says so: a mailer must not
                    // tell a customer their restore failed when an operator stopped it.
                    let cancelled = site.state == .failed && !site.failures.isEmpty && site.failures.allSatisfy { $0.state == .cancelled }
                    let message = "site \(site.site) \(cancelled ? "not restored: the run was cancelled" : site.state.rawValue): "
                        + "\(site.productsDone) of \(site.productsTotal) products restored"
                    group.addTask {
                        guard await slots.wait() else { return }
                        defer { slots.signal() }
                        await self.deliver(announcement.name, event, site: announcement.site, message: message)
                    }
                }
                guard let name = Self.name(of: event) else { continue }
                group.addTask {
                    guard await slots.wait() else { return }
                    defer { slots.signal() }
                    await self.deliver(name, event)
                }
            }
        }
    }

    func deliver(_ name: String, _ event: RunEvent, site: SiteStatus? = nil, message: String? = nil) async {
        var name = name, message = message
        do {
            guard let run = try await event.run.asyncOr({ try await ledger.run(id: event.runId) }),
                  let plan = plan(run), let command = plan.notify else { return }
            // A delete run's site is soft-deleted, never "restored": those telling customers must
            // not read it so.
            if run.mode == .delete, let site {
                name = name == "site.restored" ? "site.deleted" : "site.delete-failed"
                message = "site \(site.site) \(name == "site.deleted" ? "soft-deleted" : "not (fully) deleted"): \(site.productsDone) of \(site.productsTotal) products moved to quarantine"
            }
            // Nor an exercise's, which restores into the sandbox: production is as it was.
            if run.mode == .exercise, let site {
                name = name == "site.restored" ? "site.rehearsed" : "site.rehearsal-failed"
                message = "exercise: site \(site.site) \(name == "site.rehearsed" ? "restored" : "not (fully) restored") in the sandbox: "
                    + "\(site.productsDone) of \(site.productsTotal) products; production is untouched"
            }
            // Every event says what happened in words (a job event carries its job instead, a site
            // event its site).
            let words = message ?? event.message ?? event.job.map { "\($0.name) \($0.state.rawValue): \($0.reason ?? $0.state.rawValue)" }
            let payload = Notification(event: name, at: event.at, run: run, job: site == nil ? event.job : nil, site: site, message: words)
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.dateEncodingStrategy = .iso8601
            encoder.outputFormatting = [.sortedKeys]
            let stdin = Array(try encoder.encode(payload)) + [UInt8(ascii: "\n")]
            // `{run}` is the one template variable of notify (checked when the plan loads).
            let argv = command.map { (try? PathTemplate($0, allowed: [.run]))?.render([.run: run.id]) ?? $0 }
            let result = try await HookRunner.run(HookCommand(argv, timeout: .seconds(min(plan.hookTimeout.seconds, 60)), stdin: stdin,
                                                              environment: ["LIFEBOAT_EVENT": name, "LIFEBOAT_RUN": run.id].merging(
                                                                  site.map { ["LIFEBOAT_SITE": $0.site] } ?? [:]) { $1 }))
            if !result.succeeded {
                logger.warning("notify command failed", metadata: ["event": "\(name)", "run.id": "\(run.id)", "result": "\(result.summary)",
                                                                   "output": "\(result.output.suffix(500))"])
            }
        } catch {
            logger.warning("notify command could not run", metadata: ["event": "\(name)", "run.id": "\(event.runId)", "error": "\(error)"])
        }
    }
}

extension Optional {
    /// The wrapped value, or what `fallback` produces.
    func asyncOr(_ fallback: () async throws -> Wrapped?) async rethrows -> Wrapped? {
        if let self { return self }
        return try await fallback()
    }
}
