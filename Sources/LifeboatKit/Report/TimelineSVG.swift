import Foundation

/// Draws the ``TimelineLayout`` as an inline SVG: wave bands with labels, one `<rect class="job …">`
/// per started job coloured (and, for failures, hatched) by outcome, human-duration ticks, and the
/// RTO objective as a labelled vertical line. Styling comes from the page's CSS (`HTMLReportStyle`).
struct TimelineSVG {
    private let doc: ReportDocument
    private let layout: TimelineLayout

    // Geometry in SVG user units; the page scales the whole drawing to its width.
    private let width = 1160.0
    private let gutter = 124.0
    private let right = 24.0
    private let top = 40.0
    private let bottom = 44.0
    private let waveGap = 8.0
    private let bandPadding = 5.0

    init(_ document: ReportDocument, layout: TimelineLayout) {
        doc = document
        self.layout = layout
    }

    /// An RTO objective further right than this many times the last bar's end would squash every
    /// bar into the left edge; it is then named at the edge instead of drawn.
    static let objectiveStretch = 3.0

    func render() -> String {
        let rto = doc.objectives.rtoSeconds
        let showRTO = rto.map { $0 <= max(layout.lastEnd, 1) * Self.objectiveStretch } ?? false
        let axis = TimelineAxis(span: max(layout.lastEnd, showRTO ? rto! * 1.04 : 0, 1))
        let plotWidth = width - gutter - right
        func x(_ seconds: Double) -> Double { gutter + min(seconds, axis.end) / axis.end * plotWidth }

        // Row pitch: generous for a handful of jobs, thinner as the run grows, bounded either way.
        let rows = max(layout.rowCount, 1)
        let pitch = layout.rowPerJob ? clamp(640 / Double(rows), 9, 20) : clamp(720 / Double(rows), 2, 14)
        let barHeight = layout.rowPerJob ? max(pitch - 4, 3) : max(pitch * 0.8, 1)
        let labels = layout.rowPerJob && pitch >= 12

        var bands = ""
        var bars = ""
        bars.reserveCapacity(layout.barCount * 140)
        var y = top
        for (n, wave) in layout.waves.enumerated() {
            let labelLines = 2 + (wave.notRestored > 0 ? 1 : 0) + (wave.bars.count < wave.jobs ? 1 : 0)
            let height = max(Double(wave.rows) * pitch + 2 * bandPadding, Double(labelLines) * 13 + 10)
            bands += "<rect class=\"band\(n % 2 == 1 ? " alt" : "")\" x=\"0\" y=\"\(f(y))\" width=\"\(f(width - right))\" height=\"\(f(height))\"/>"
            bands += "<text class=\"wave\" x=\"8\" y=\"\(f(y + 15))\">Wave \(wave.index + 1)</text>"
            bands += "<text class=\"wave-sub\" x=\"8\" y=\"\(f(y + 28))\">\(wave.jobs) job\(wave.jobs == 1 ? "" : "s")</text>"
            var line = y + 41
            if wave.notRestored > 0 {
                bands += "<text class=\"wave-bad\" x=\"8\" y=\"\(f(line))\">✖ \(wave.notRestored) not restored</text>"
                line += 13
            }
            let unstarted = wave.jobs - wave.bars.count
            if unstarted > 0 {
                bands += "<text class=\"wave-sub\" x=\"8\" y=\"\(f(line))\">\(unstarted) never started</text>"
            }
            if wave.bars.isEmpty {
                bands += "<text class=\"wave-sub\" x=\"\(f(gutter + 6))\" y=\"\(f(y + 20))\">no job started</text>"
            }
            // Problems are drawn last so that, in a packed chart, no success bar hides them.
            let ordered = wave.bars.filter { $0.outcome == .ok } + wave.bars.filter { $0.outcome != .ok }
            for bar in ordered {
                let job = doc.jobs[bar.job]
                let x0 = x(bar.start)
                let w = max(x(bar.end) - x0, bar.outcome == .ok ? 1.5 : 3)
                let by = y + bandPadding + Double(bar.row) * pitch + (pitch - barHeight) / 2
                bars += "<rect class=\"job \(bar.outcome.rawValue)\" x=\"\(f(x0))\" y=\"\(f(by))\" width=\"\(f(w))\" height=\"\(f(barHeight))\">"
                bars += "<title>\(HTML.escape(tooltip(job, bar)))</title></rect>"
                if labels {
                    bars += label(job, bar, x0: x0, x1: x0 + w, midY: by + barHeight / 2, plotRight: width - right)
                }
            }
            y += height + waveGap
        }
        let plotBottom = y - waveGap

        var grid = ""
        for tick in axis.ticks {
            let tx = x(tick)
            grid += "<line class=\"grid\" x1=\"\(f(tx))\" y1=\"\(f(top - 4))\" x2=\"\(f(tx))\" y2=\"\(f(plotBottom + 4))\"/>"
            grid += "<text class=\"tick\" x=\"\(f(tx))\" y=\"\(f(plotBottom + 18))\">\(TimelineAxis.label(tick))</text>"
        }
        grid += "<text class=\"axis-title\" x=\"\(f(gutter + plotWidth / 2))\" y=\"\(f(plotBottom + 36))\">time since the incident was declared (\(HTML.escape(ReportText.time(doc.run.declaredAt))))</text>"

        var marks = ""
        if let rto {
            let text = "RTO objective \(ReportText.duration(rto))"
            if showRTO {
                let rx = x(rto)
                let anchor = rx > width - right - 90 ? "end" : "middle"
                marks += "<line class=\"rto\" x1=\"\(f(rx))\" y1=\"\(f(top - 10))\" x2=\"\(f(rx))\" y2=\"\(f(plotBottom + 4))\"/>"
                marks += "<text class=\"rto-label\" x=\"\(f(rx))\" y=\"\(f(top - 16))\" text-anchor=\"\(anchor)\">\(text)</text>"
            } else {
                marks += "<text class=\"rto-label\" x=\"\(f(width - right))\" y=\"\(f(top - 16))\" text-anchor=\"end\">\(text) → far beyond the last job (\(ReportText.duration(layout.lastEnd)))</text>"
            }
        }
        if !doc.run.state.isFinal {
            let now = doc.generatedAt.timeIntervalSince(doc.run.declaredAt)
            if now >= 0, now <= axis.end {
                marks += "<line class=\"now\" x1=\"\(f(x(now)))\" y1=\"\(f(top - 4))\" x2=\"\(f(x(now)))\" y2=\"\(f(plotBottom + 4))\"/>"
                marks += "<text class=\"now-label\" x=\"\(f(x(now) - 4))\" y=\"\(f(top - 4))\" text-anchor=\"end\">report time</text>"
            }
        }

        let height = plotBottom + bottom
        let summary = "Timeline of run \(doc.run.id): \(layout.barCount) started jobs in \(layout.waves.count) waves"
        return """
            <svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 \(f(width)) \(f(height))" \
            width="\(f(width))" height="\(f(height))" role="img" aria-label="\(HTML.escape(summary))">\
            <defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">\
            <rect width="6" height="6" fill="#c62828"/><rect width="2.5" height="6" fill="#ffffff" fill-opacity="0.55"/></pattern></defs>
            \(bands)
            \(grid)
            \(bars)
            \(marks)
            </svg>
            """
    }

    private func tooltip(_ job: ReportDocument.Job, _ bar: TimelineLayout.Bar) -> String {
        var text = "\(job.name) · \(bar.outcome.label) · \(ReportText.duration(bar.end - bar.start))"
        if let rto = job.rtoSeconds { text += " · RTO \(ReportText.measured(rto, met: job.rtoMet))" }
        if let error = job.error { text += " · \(error)" }
        return text
    }

    /// The job's name beside its bar (to the left when the bar reaches the right side), with the
    /// outcome spelled out for anything but success so colour is never the only signal.
    private func label(_ job: ReportDocument.Job, _ bar: TimelineLayout.Bar, x0: Double, x1: Double, midY: Double, plotRight: Double) -> String {
        var text = HTML.escape(job.name)
        switch bar.outcome {
        case .ok: break
        case .late: text += " — late"
        case .failed: text += " — ✖ failed"
        default: text += " — \(bar.outcome.label)"
        }
        let onLeft = x1 > gutter + (plotRight - gutter) * 0.72
        let lx = onLeft ? max(x0 - 5, gutter + 2) : x1 + 5
        let cls = bar.outcome == .ok ? "job-label" : bar.outcome == .late ? "job-label late" : "job-label bad"
        return "<text class=\"\(cls)\" x=\"\(f(lx))\" y=\"\(f(midY + 3.5))\"\(onLeft ? " text-anchor=\"end\"" : "")>\(text)</text>"
    }

    private func clamp(_ value: Double, _ low: Double, _ high: Double) -> Double { min(max(value, low), high) }

    /// One decimal is plenty at this size and keeps a 10,000-bar drawing small.
    private func f(_ value: Double) -> String {
        let tenths = (value * 10).rounded()
        let whole = Int(tenths / 10)
        let fraction = Int(abs(tenths).truncatingRemainder(dividingBy: 10))
        return fraction == 0 ? "\(whole)" : "\(tenths < 0 && whole == 0 ? "-" : "")\(whole).\(fraction)"
    }
}
