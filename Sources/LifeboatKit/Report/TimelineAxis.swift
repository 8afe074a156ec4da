/// The time axis of the timeline: from 0 (the incident's declaration) to a round duration, with
/// ticks at human steps (`15m`, `1h`, `6h`, …) rather than arbitrary fractions.
struct TimelineAxis {
    /// Seconds at the right edge.
    let end: Double
    /// Tick positions in seconds, from 0 to `end`.
    let ticks: [Double]

    private static let steps: [Double] = [
        1, 2, 5, 10, 15, 30,
        60, 120, 300, 600, 900, 1_800,
        3_600, 7_200, 10_800, 21_600, 43_200,
        86_400, 172_800, 604_800, 1_209_600, 2_419_200,
    ]

    /// An axis that shows at least `span` seconds with at most about `maxTicks` intervals.
    init(span: Double, maxTicks: Int = 8) {
        let span = span.isFinite && span > 0 ? span : 60
        var step = Self.steps.first { span / $0 <= Double(maxTicks) } ?? 0
        if step == 0 {
            // Beyond four weeks: whole multiples of the largest step.
            step = Self.steps.last! * (span / Double(maxTicks) / Self.steps.last!).rounded(.up)
        }
        let count = Int((span / step).rounded(.up))
        end = Double(max(count, 1)) * step
        ticks = (0...max(count, 1)).map { Double($0) * step }
    }

    /// `0`, `15m`, `1h30m`.
    static func label(_ seconds: Double) -> String {
        seconds == 0 ? "0" : DurationSpec.format(seconds: seconds)
    }
}
