import Foundation
import LifeboatKit

/// One line per job outcome, for logs and terminals alike.
enum ProgressLines {
    static func print(_ event: RunEvent) {
        switch event.kind {
        case .job:
            guard let job = event.job, job.state.isFinal else { return }
            var line = "\(Timestamp.iso(event.at))  \(job.state.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)) \(job.name)"
            if job.state == .succeeded {
                line += "  \(ByteSize.format(job.bytes)), \(job.entries) entries"
                if let rto = job.rtoSeconds { line += ", RTO \(DurationSpec.format(seconds: rto))" }
                if let rpo = job.rpoSeconds { line += ", RPO \(DurationSpec.format(seconds: rpo))" }
                if job.fromQuarantine { line += ", from quarantine (soft-deleted data renamed back)" }
            } else if let reason = job.reason {
                line += "  \(reason)"
            }
            Swift.print(line)
        case .forecastMiss:
            Swift.print("\(Timestamp.iso(event.at))  \(event.kind.rawValue)  \(event.message ?? "")")
        case .run:
            // A halt is told by `HaltNotice`, with the failures and the commands.
            if let message = event.message, event.run?.state != .halted { Swift.print("\(Timestamp.iso(event.at))  run       \(message)") }
        case .gateFailed, .progress, .finished, .started:
            break
        }
    }
}

/// The end-of-run summary: state, counts, RPO/RTO percentiles per product.
enum SummaryPrinter {
    static func print(run: RunRecord, jobs: [JobRecord]) {
        let summary = RunSummary(run: run, jobs: jobs)
        Swift.print("")
        Swift.print("run \(run.id) \(run.state.rawValue)" + (run.note.map { ": \($0)" } ?? ""))
        func fmt(_ v: Double?) -> String { v.map { DurationSpec.format(seconds: $0) } ?? "-" }
        // A delete restores nothing: what it moved, without recovery figures.
        let delete = run.mode == .delete
        var table = TextTable(["PRODUCT", "JOBS", "OK", "NOT OK"] + (delete ? ["MOVED TO QUARANTINE"] : ["RPO p50/p95/max", "RTO p50/p95/max", "RESTORED"]))
        var rows = summary.products.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        rows.append(("all", summary.overall))
        for (name, g) in rows {
            // Failed, skipped or cancelled: not restored (or not deleted), whatever stopped it.
            let failed = (g.states["failed"] ?? 0) + (g.states["skipped"] ?? 0) + (g.states["cancelled"] ?? 0)
            table.add([name, "\(g.jobs)", "\(g.states["succeeded"] ?? 0)", "\(failed)"]
                      + (delete ? [] : ["\(fmt(g.rpo.p50))/\(fmt(g.rpo.p95))/\(fmt(g.rpo.max))", "\(fmt(g.rto.p50))/\(fmt(g.rto.p95))/\(fmt(g.rto.max))"])
                      + [ByteSize.format(g.bytes)])
        }
        Swift.print(table.render(), terminator: "")
        // The report's verdict: a job not restored missed the RTO objective too.
        let verdict = ReportVerdict(run: run, jobs: jobs, now: Date())
        if let rto = run.rtoObjectiveSeconds, verdict.rto != .none { Swift.print("RTO objective \(fmt(rto)): \(verdict.rtoText)") }
        if let rpo = run.rpoObjectiveSeconds, verdict.rpo != .none { Swift.print("RPO objective \(fmt(rpo)): \(verdict.rpoText)") }
        if let rate = summary.bytesPerSecond, let wall = summary.wallSeconds {
            // Halted at a gate, or ended until a retry: paused, and no part of the rate.
            let paused = wall - (summary.workedSeconds ?? wall)
            Swift.print("wall time \(fmt(wall))" + (paused >= 1 ? " (\(fmt(paused)) of it paused)" : "") + ", \(ByteSize.format(Int64(rate)))/s")
        }
        switch run.cleanup {
        case RunRecord.cleanupDone?: Swift.print("sandbox data removed (run with --keep to keep it)")
        case RunRecord.cleanupPending?: Swift.print("sandbox data not yet removed (the daemon finishes it)")
        case let incomplete? where incomplete.hasPrefix(RunRecord.cleanupIncomplete):
            Swift.print("sandbox data removed, except: \(incomplete.dropFirst(RunRecord.cleanupIncomplete.count))")
        case let failure?: Swift.print("sandbox data NOT removed: \(failure.dropFirst("failed: ".count))")
        case nil: if run.mode == .exercise, run.keepSandbox { Swift.print("sandbox data kept (--keep)") }
        }
        let failures = jobs.filter { $0.state == .failed }
        for job in failures.prefix(20) { Swift.print("failed \(job.name): \(job.reason ?? "unknown")") }
        if failures.count > 20 { Swift.print("… and \(failures.count - 20) more failures") }
        if run.state.isFinal, let first = failures.first {
            Swift.print("\(first.name): \(first.remedy(in: run))" + (failures.count > 1 ? " (and likewise the others)" : ""))
        }
    }
}

enum DryRunPrinter {
    static func print(_ report: DryRunReport) {
        Swift.print("dry run of \(report.plan): incident \(Timestamp.iso(report.incidentAt)), snapshots as of \(Timestamp.iso(report.asOf))")
        for (i, wave) in report.waves.enumerated() {
            Swift.print("wave \(i + 1): \(wave.count) site(s): \(wave.prefix(12).joined(separator: ", "))\(wave.count > 12 ? ", …" : "")")
        }
        var table = TextTable(["WAVE", "SITE", "PRODUCT", "SOURCE", "SNAPSHOT", "SIZE", "RPO", "AT THE TARGET NOW"])
        for job in report.jobs {
            table.add(["\(job.wave + 1)", job.site, job.product, job.source ?? "-",
                       job.source == JobRecord.sourceQuarantine ? "deleted \(job.snapshotTakenAt.map(Timestamp.iso) ?? "?")"
                           : job.snapshotTakenAt.map(Timestamp.iso) ?? "NONE (job would fail)",
                       ByteSize.format(job.archiveBytes),
                       job.rpoSeconds.map { DurationSpec.format(seconds: $0) + (job.rpoMet == false ? " (missed)" : "") } ?? "-",
                       job.destinationHoldsData ? "data (moved to quarantine)" : "-"])
        }
        Swift.print(table.render(), terminator: "")
        let live = report.jobs.filter(\.destinationHoldsData)
        if !live.isEmpty {
            let sites = Set(live.map(\.site)).sorted()
            Swift.print("\(live.count) target(s) of \(sites.count) site(s) hold data now (\(sites.prefix(8).joined(separator: ", "))\(sites.count > 8 ? ", …" : "")): "
                        + "the restore moves it to quarantine and `lifeboat rollback RUN` puts it back; to restore only what was lost, name those sites (--sites)")
        }
        Swift.print("\(report.jobs.count) job(s), \(ByteSize.format(report.archiveBytes)) of archives, \(report.missingSnapshots) without a snapshot")
        if report.missingSnapshots == report.jobs.count {
            Swift.print("forecast: none, no job has a snapshot to restore")
        } else if let forecast = report.forecastSeconds, let reached = report.forecastRtoSeconds {
            var line = "forecast: \(DurationSpec.format(seconds: forecast)) (\(report.forecastBasis))"
            // RTO counts from the declaration: time already gone since then is part of it.
            let gone = reached - forecast
            if gone >= 1 { line += "; RTO \(DurationSpec.format(seconds: reached)) with the \(DurationSpec.format(seconds: gone)) since the incident was declared" }
            // Jobs without a snapshot fail at once: the objective is not met by restoring less.
            if let rto = report.rtoObjectiveSeconds {
                line += report.failure != nil ? "; the RTO objective \(DurationSpec.format(seconds: rto)) is not met while jobs have no snapshot"
                    : reached <= rto ? "; within the RTO objective \(DurationSpec.format(seconds: rto))" : "; MISSES the RTO objective \(DurationSpec.format(seconds: rto))"
            }
            Swift.print(line)
        } else {
            Swift.print("forecast: \(report.forecastBasis)")
        }
    }

    /// Prints the report (or its JSON) and fails (exit 1) when jobs would fail.
    static func finish(_ report: DryRunReport, json: Bool, print printJSON: (DryRunReport) throws -> Void) throws {
        if json { try printJSON(report) } else { print(report) }
        if let failure = report.failure { throw CLIFailure(code: .failed, message: "dry run: \(failure)") }
    }
}
