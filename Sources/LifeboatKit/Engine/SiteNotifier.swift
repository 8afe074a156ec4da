import Foundation

/// Decides when a site of a run is back (`site.restored`) or will not be (`site.failed`): once,
/// when its last product ends. Fed with the bus's job events in order; a run's jobs are read
/// from the ledger once, at its first job event, and kept current from the events after that.
///
/// The bus drops the oldest events for a slow subscriber, so at the run's end the ledger is read
/// again and any site that ended unannounced is announced then — except sites that ended before
/// this process started (the previous daemon announced those before a restart).
struct SiteNotifier {
    /// A site event to send.
    struct Announcement: Equatable {
        var name: String
        var site: SiteStatus
    }

    /// Run → site → job id → job: a job event looks at its own site's jobs only (a scan of the
    /// whole run per event grew with the square of the run's size).
    private var jobs: [String: [String: [Int64: JobRecord]]] = [:]
    /// `run/site/state` already announced.
    private var announced: Set<String> = []
    let since: Date

    init(since: Date) { self.since = since }

    /// Applies one bus event; returns the sites that ended with it. `load` reads a run's jobs.
    mutating func observe(_ event: RunEvent, load: (String) async throws -> [JobRecord]) async -> [Announcement] {
        switch event.kind {
        case .job:
            guard let job = event.job, job.state.isFinal, let id = job.id else { return [] }
            if jobs[event.runId] == nil {
                guard let loaded = try? await load(event.runId) else { return [] }
                var bySite: [String: [Int64: JobRecord]] = [:]
                for j in loaded { if let id = j.id { bySite[j.site, default: [:]][id] = j } }
                jobs[event.runId] = bySite
            }
            jobs[event.runId]![job.site, default: [:]][id] = job
            let siteJobs = jobs[event.runId]![job.site]!.values
            let status = SiteStatus.status(site: job.site, jobs: Array(siteJobs), position: [:], secondsPerJob: nil, now: event.at)
            return announce(event.runId, status).map { [$0] } ?? []
        case .finished:
            defer { jobs[event.runId] = nil }
            guard let loaded = try? await load(event.runId), let run = event.run else { return [] }
            var latest = Dictionary(loaded.compactMap { j in j.id.map { ($0, j) } }, uniquingKeysWith: { $1 })
            // An event newer than the ledger's copy wins (queued ledger writes may lag).
            for site in (jobs[event.runId] ?? [:]).values {
                for (id, job) in site where job.state.isFinal { latest[id] = job }
            }
            return SiteStatus.all(run: run, jobs: Array(latest.values), now: event.at)
                .filter { ($0.finishedAt ?? .distantPast) >= since }
                .compactMap { announce(event.runId, $0) }
        default:
            return []
        }
    }

    private mutating func announce(_ run: String, _ status: SiteStatus) -> Announcement? {
        // A delete's site is `deleted` read from the run and `restored` from its jobs alone:
        // one announcement either way (the dispatcher names a delete's).
        let ok = status.state != .failed
        guard status.state.isFinal, announced.insert("\(run)/\(status.site)/\(ok)").inserted else { return nil }
        return Announcement(name: ok ? "site.restored" : "site.failed", site: status)
    }
}
