import Foundation

/// Words and numbers as every text format writes them, so Markdown and HTML read the same.
enum ReportText {
    /// `2h05m`, `-` when unknown.
    static func duration(_ seconds: Double?) -> String {
        seconds.map { DurationSpec.format(seconds: $0) } ?? "-"
    }

    static func time(_ date: Date?) -> String { date.map(Timestamp.iso) ?? "-" }

    /// `met` / `MISSED` / empty: the word that goes with a colour, so colour is never the only signal.
    static func met(_ met: Bool?) -> String {
        switch met {
        case true?: return "met"
        case false?: return "MISSED"
        case nil: return ""
        }
    }

    /// `1h02m met`, `4h10m MISSED`, `-`.
    static func measured(_ seconds: Double?, met: Bool?) -> String {
        guard let seconds else { return "-" }
        let word = Self.met(met)
        return word.isEmpty ? duration(seconds) : "\(duration(seconds)) \(word)"
    }

    static func outcome(_ outcome: ReportVerdict.Outcome) -> String {
        switch outcome {
        case .met: return "met"
        case .missed: return "MISSED"
        case .pending: return "pending"
        case .none: return "no objective"
        }
    }

    /// `MISSED (2 late, 3 not restored)`: the outcome with its cause, for a reader who must act.
    static func outcome(_ outcome: ReportVerdict.Outcome, late: Int, notRestored: Int) -> String {
        var causes: [String] = []
        if late > 0 { causes.append("\(late) late") }
        if notRestored > 0 { causes.append("\(notRestored) not restored") }
        let word = Self.outcome(outcome)
        return outcome == .missed && !causes.isEmpty ? "\(word) (\(causes.joined(separator: ", ")))" : word
    }

    /// `12.5 jobs/min`; small rates keep two decimals rather than reading as zero.
    static func jobsPerMinute(_ rate: Double?) -> String {
        guard let rate, rate.isFinite else { return "-" }
        return String(format: rate < 0.1 ? "%.2f jobs/min" : "%.1f jobs/min", rate)
    }

    /// `1.5 GiB/s`
    static func rate(_ bytesPerSecond: Double?) -> String {
        guard let bytesPerSecond, bytesPerSecond.isFinite else { return "-" }
        return ByteSize.format(Int64(bytesPerSecond)) + "/s"
    }

    /// `97.5%`
    static func percent(_ ratio: Double?) -> String {
        guard let ratio, ratio.isFinite else { return "-" }
        let value = ratio * 100
        return value == value.rounded() ? String(format: "%.0f%%", value) : String(format: "%.1f%%", value)
    }

    /// `wave 1` for index 0.
    static func wave(_ index: Int) -> String { "wave \(index + 1)" }

    /// Outcome counts of a group: `37 ok, 2 failed, 1 skipped`.
    static func counts(_ group: ReportDocument.Group) -> String {
        var parts = ["\(group.succeeded) ok"]
        if group.failed > 0 { parts.append("\(group.failed) failed") }
        if group.skipped > 0 { parts.append("\(group.skipped) skipped") }
        if group.cancelled > 0 { parts.append("\(group.cancelled) cancelled") }
        if group.unfinished > 0 { parts.append("\(group.unfinished) unfinished") }
        return parts.joined(separator: ", ")
    }

    /// `p50 / p95 / max`
    static func percentiles(_ p: Percentiles) -> String {
        "\(duration(p.p50)) / \(duration(p.p95)) / \(duration(p.max))"
    }

    /// The directory every snapshot path shares (normally the plan's store), so tables can show
    /// short names. A path in the store's layout counts from above its `<site>/<product>/`, so
    /// a single job still yields the store. `nil` when there is nothing to share.
    static func snapshotRoot(_ jobs: [ReportDocument.Job]) -> String? {
        let roots = jobs.compactMap { job -> String? in
            guard let path = job.snapshotPath else { return nil }
            let layout = "/\(job.site)/\(job.product)/"
            if let range = path.range(of: layout, options: .backwards), !path[range.upperBound...].contains("/") {
                return String(path[..<range.lowerBound])
            }
            return (path as NSString).deletingLastPathComponent
        }
        guard var prefix = roots.first else { return nil }
        for root in roots.dropFirst() where root != prefix {
            while !prefix.isEmpty, root != prefix, !root.hasPrefix(prefix + "/") {
                let parent = (prefix as NSString).deletingLastPathComponent
                prefix = parent == prefix ? "" : parent
            }
            if prefix.isEmpty || prefix == "/" { return nil }
        }
        return prefix.isEmpty || prefix == "/" ? nil : prefix
    }

    /// Whether the snapshot path says nothing its taken-at time does not: the store layout
    /// `<root>/<site>/<product>/<taken-at>.tar.gz`.
    static func snapshotIsImplied(_ job: ReportDocument.Job, root: String?) -> Bool {
        guard let root, let path = job.snapshotPath, let taken = job.snapshotTakenAt else { return false }
        return path == "\(root)/\(job.site)/\(job.product)/\(Timestamp.formatBasic(taken)).tar.gz"
    }

    /// A job's snapshot as short as is unambiguous: the file name when the path is the store
    /// layout's `<root>/<site>/<product>/<file>`, else the path relative to `root`, else in full.
    static func snapshot(_ job: ReportDocument.Job, root: String?) -> String {
        guard let path = job.snapshotPath else { return "-" }
        if job.source == JobRecord.sourceQuarantine { return "soft-deleted data from quarantine: \(path)" }
        guard let root, path.hasPrefix(root + "/") else { return path }
        let relative = String(path.dropFirst(root.count + 1))
        let prefix = "\(job.site)/\(job.product)/"
        if relative.hasPrefix(prefix), !relative.dropFirst(prefix.count).contains("/") {
            return String(relative.dropFirst(prefix.count))
        }
        return relative
    }
}
