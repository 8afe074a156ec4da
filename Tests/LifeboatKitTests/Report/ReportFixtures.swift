import Foundation
@testable import LifeboatKit

/// Runs and jobs built directly (no engine), with known times, for report tests.
enum ReportFixtures {
    /// 2026-11-25T10:00:00Z: the incident is declared.
    static let declared = Date(timeIntervalSince1970: 1_795_600_800)

    static func run(id: String = "20261125-100000-a3f9", plan: String = "mass-restore", mode: RunMode = .restore,
                    state: RunState = .succeeded, rto: Double? = 4 * 3_600, rpo: Double? = 24 * 3_600,
                    waves: Int = 1, declaredAt: Date = declared, duration: Double = 3_600) -> RunRecord {
        var run = RunRecord(id: id, plan: plan, planPath: "plans/\(plan).yaml", mode: mode, state: state,
                            declaredAt: declaredAt, incidentAt: declaredAt.addingTimeInterval(-1_800),
                            asOf: declaredAt.addingTimeInterval(-1_800), createdAt: declaredAt,
                            startedBy: "uid 1000 (pid 4242)", rtoObjectiveSeconds: rto, rpoObjectiveSeconds: rpo,
                            totalWaves: waves, seed: mode == .exercise ? 42 : nil)
        run.startedAt = declaredAt.addingTimeInterval(60)
        if state.isFinal { run.finishedAt = declaredAt.addingTimeInterval(duration) }
        return run
    }

    /// A job of `run`: started `start` seconds after the declaration, finished `end` seconds after
    /// it (nil: never started / not finished), snapshot taken `rpo` seconds before the incident.
    static func job(_ run: RunRecord, _ site: String, _ product: String, wave: Int = 0, order: Int = 0,
                    state: JobState = .succeeded, start: Double?, end: Double?, rpo: Double? = 3_600,
                    bytes: Int64 = 10 << 20, error: String? = nil, code: String? = nil, id: Int64? = nil) -> JobRecord {
        var job = JobRecord(runId: run.id, site: site, product: product, wave: wave, priority: 0, productOrder: order,
                            destination: "/srv/sites/\(site)/\(product)")
        job.id = id
        job.state = state
        job.attempt = start == nil ? 0 : 1
        job.startedAt = start.map { run.declaredAt.addingTimeInterval($0) }
        job.finishedAt = end.map { run.declaredAt.addingTimeInterval($0) }
        if let rpo {
            let taken = run.incidentAt.addingTimeInterval(-rpo)
            job.snapshotTakenAt = taken
            job.snapshotPath = "/var/lib/lifeboat/snapshots/\(site)/\(product)/\(Timestamp.formatBasic(taken)).tar.gz"
            job.rpoSeconds = rpo
            job.rpoMet = run.rpoObjectiveSeconds.map { rpo <= $0 }
        }
        if state == .succeeded, let end {
            job.rtoSeconds = end
            job.rtoMet = run.rtoObjectiveSeconds.map { end <= $0 }
            job.bytes = bytes
            job.entries = 120
            job.archiveBytes = bytes / 3
        }
        job.error = error
        job.errorCode = code
        return job
    }

    /// The sample run of the screenshot: 3 waves, 14 sites × 3 products, a late job, two failures,
    /// a job skipped because its dependency failed, and one that never found a snapshot.
    static func sample(mode: RunMode = .restore) -> (run: RunRecord, jobs: [JobRecord], events: [LedgerEvent]) {
        var run = run(id: mode == .exercise ? "20261125-100000-e5c1" : "20261125-100000-a3f9", mode: mode,
                      state: .failed, waves: 3, duration: 4 * 3_600 + 900)
        run.note = "2 jobs failed, 2 not started"
        let products = ["contacts", "jira", "confluence"]
        let waves = [["acme", "globex"], ["initech", "umbrella", "hooli", "stark"],
                     ["wayne", "wonka", "cyberdyne", "tyrell", "soylent", "aperture", "massive", "oscorp"]]
        var jobs: [JobRecord] = []
        var events: [LedgerEvent] = [LedgerEvent(runId: run.id, at: run.startedAt!, kind: "run.running", message: "run started")]
        var clock = 120.0
        var id: Int64 = 1
        for (w, sites) in waves.enumerated() {
            for (s, site) in sites.enumerated() {
                for (p, product) in products.enumerated() {
                    // Contacts are small and go first; jira and confluence follow and take longer.
                    let start = clock + Double(s) * 240 + Double(p) * 420
                    let length = [300.0, 1_500, 2_100][p] + Double((s * 7 + p * 13) % 9) * 120
                    var job = self.job(run, site, product, wave: w, order: p, start: start, end: start + length,
                                       rpo: 3_600 * Double(1 + (s + p) % 6), bytes: Int64(200 + 37 * s + 90 * p) << 20, id: id)
                    id += 1
                    switch (site, product) {
                    case ("umbrella", "jira"):
                        job = self.job(run, site, product, wave: w, order: p, state: .failed, start: start, end: start + 400, id: job.id)
                        job.attempt = 3
                        job.errorCode = "integrity"
                        job.error = "checksum mismatch: umbrella/jira/20261124T000000Z.tar.gz has sha256 9f2c…, sidecar says 41ab…"
                    case ("cyberdyne", "contacts"):
                        job = self.job(run, site, product, wave: w, order: p, state: .failed, start: nil, end: nil, rpo: nil, id: job.id)
                        job.errorCode = "no-snapshot"
                        job.error = "no snapshot of cyberdyne/contacts taken at or before 2026-11-25T09:30:00Z"
                    case ("cyberdyne", _):
                        job = self.job(run, site, product, wave: w, order: p, state: .skipped, start: nil, end: nil, id: job.id)
                        job.error = "skipped: dependency contacts of cyberdyne failed"
                    case ("oscorp", "confluence"):
                        job = self.job(run, site, product, wave: w, order: p, state: .failed, start: start, end: start + 95, id: job.id)
                        job.errorCode = "unsafe-entry"
                        job.error = "unsafe entry \"../../etc/cron.d/x\": name escapes the root"
                    case ("massive", "confluence"), ("aperture", "confluence"):
                        // Finished after the 4h objective: restored, but late.
                        job = self.job(run, site, product, wave: w, order: p, start: start, end: 4 * 3_600 + 600, id: job.id)
                    default:
                        break
                    }
                    jobs.append(job)
                }
            }
            clock = (jobs.compactMap { $0.finishedAt?.timeIntervalSince(run.declaredAt) }.max() ?? clock) + 60
            events.append(LedgerEvent(runId: run.id, at: run.declaredAt.addingTimeInterval(clock - 30), kind: "gate.passed",
                                      message: "wave \(w + 1) passed its gate"))
        }
        events.append(LedgerEvent(runId: run.id, jobId: 5, at: run.declaredAt.addingTimeInterval(900), kind: "job.retry",
                                  message: "umbrella/jira attempt 1 failed (read error); retrying in 10s"))
        events.append(LedgerEvent(runId: run.id, jobId: 5, at: run.declaredAt.addingTimeInterval(1_000), kind: "job.failed",
                                  message: "umbrella/jira: checksum mismatch"))
        return (run, jobs, events)
    }

    /// Earlier exercises of the plan, newest first.
    static func previousExercises() -> [PreviousRun] {
        (1...3).map { n in
            let declared = declared.addingTimeInterval(-Double(n) * 91 * 86_400)
            let run = run(id: "2026\(String(format: "%02d", 11 - 3 * n))25-100000-000\(n)", mode: .exercise,
                          declaredAt: declared, duration: 3_600)
            let sites = 8 / n
            let jobs = (0..<sites).map { s in
                job(run, "site\(s)", "jira", state: s == 0 && n == 2 ? .failed : .succeeded,
                    start: 60, end: 1_800 + Double(n) * 900 + Double(s) * 60)
            }
            return PreviousRun(run: run, jobs: jobs)
        }
    }

    /// A big run: `jobs` jobs, `concurrency` at a time, 1 to 3 s each (tiny archives), in two
    /// waves (a 1% canary, then the rest); about one in a thousand fails.
    static func large(jobs count: Int, concurrency: Int) -> (RunRecord, [JobRecord]) {
        var run = run(state: .failed, rto: 4 * 3_600, waves: 2)
        var jobs: [JobRecord] = []
        var lanes = [Double](repeating: 120, count: concurrency)
        let canary = max(count / 100, 1)
        for n in 0..<count {
            // The second wave starts when the canary is done.
            if n == canary { lanes = [Double](repeating: lanes.max()! + 30, count: concurrency) }
            let lane = n % concurrency
            let length = 1 + Double(n % 3)
            let state: JobState = n % 997 == 0 ? .failed : .succeeded
            jobs.append(job(run, "site\(n / 2)", n % 2 == 0 ? "jira" : "confluence", wave: n < canary ? 0 : 1,
                            order: n % 2, state: state, start: lanes[lane], end: lanes[lane] + length,
                            bytes: 4 << 20, error: state == .failed ? "checksum mismatch" : nil))
            lanes[lane] += length
        }
        run.finishedAt = run.declaredAt.addingTimeInterval(lanes.max()! + 5)
        return (run, jobs)
    }
}
