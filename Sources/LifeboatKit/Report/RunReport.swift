import Foundation

/// The report of one run, in Markdown, JSON or a self-contained HTML page.
///
/// Pure rendering: it takes the ledger's records and returns text; writing files is the caller's.
/// ```swift
/// let report = RunReport(run: run, jobs: jobs, events: events, previous: earlierExercises, generatedAt: .now)
/// let html = try report.render(.html)
/// ```
public struct RunReport: Sendable {
    /// What every format renders (and, encoded, the JSON report).
    public let document: ReportDocument

    /// - Parameters:
    ///   - previous: earlier runs of the same plan, newest first, for an exercise's trend. Runs of
    ///     another plan, the run itself and runs declared after it are ignored.
    ///   - generatedAt: the time printed on the report; it also decides whether a run still going
    ///     has already passed its RTO deadline.
    public init(run: RunRecord, jobs: [JobRecord], events: [LedgerEvent], previous: [PreviousRun] = [], generatedAt: Date) {
        document = ReportDocument(run: run, jobs: jobs, events: events, previous: previous, generatedAt: generatedAt)
    }

    /// Renders the report. Throws only when JSON encoding fails (a non-finite number).
    public func render(_ format: ReportFormat) throws -> String {
        switch format {
        case .md: return MarkdownReportRenderer(document).render()
        case .json: return String(decoding: try jsonData(), as: UTF8.self)
        case .html: return HTMLReportRenderer(document).render()
        }
    }

    /// The JSON report as bytes, with its final newline (a 10,000-job run's is about 8 MB: written
    /// as is, it is not copied into a string and back).
    public func jsonData() throws -> Data {
        var data = try Self.jsonEncoder.encode(document)
        data.append(0x0A)
        return data
    }

    /// The encoder of the JSON report: sorted keys, ISO-8601 dates, indented. The keys are the
    /// report types' own snake_case `CodingKeys`: JSONEncoder's snake_case conversion, key by
    /// key, was about 40 % of encoding a report of 10,000 jobs, at the end of every run.
    public static var jsonEncoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }

    /// Reads a JSON report back into a ``ReportDocument``.
    public static var jsonDecoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}
