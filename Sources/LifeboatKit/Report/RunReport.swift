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
        case .json:
            var text = ""
            try renderJSON { text += $0 }
            return text
        case .html: return HTMLReportRenderer(document).render()
        }
    }

    /// The JSON report in pieces, in order, to `emit`: byte for byte what `jsonEncoder` gives for
    /// the whole document (a test pins it), without the encoder's in-memory tree of every job
    /// and event at once — about 50 MB at the end of a 10,000-job run, most of the daemon's peak.
    /// The document is encoded without its jobs and events, and each of those is encoded on its
    /// own and spliced in, indented to its depth. (The pretty printer breaks lines only between
    /// tokens — a string's newline is escaped — and prints an empty array `[`, a blank line, `]`.)
    public func renderJSON(_ emit: (String) throws -> Void) throws {
        let encoder = Self.jsonEncoder
        var skeleton = document
        skeleton.jobs = []
        skeleton.events = []
        var rest = Substring(String(decoding: try encoder.encode(skeleton), as: UTF8.self))
        // In the order the sorted keys put them.
        let arrays: [(key: String, count: Int, element: (Int) throws -> Data)] = [
            ("events", document.events.count, { try encoder.encode(document.events[$0]) }),
            ("jobs", document.jobs.count, { try encoder.encode(document.jobs[$0]) }),
        ]
        for array in arrays {
            let opening = "\n  \"\(array.key)\" : ["
            guard let empty = rest.range(of: opening + "\n\n  ]") else {
                throw EncodingError.invalidValue(array.key, .init(codingPath: [], debugDescription: "the report's \(array.key) were not where expected"))
            }
            try emit(String(rest[..<empty.lowerBound]) + opening)
            guard array.count > 0 else {
                try emit("\n\n  ]")
                rest = rest[empty.upperBound...]
                continue
            }
            for index in 0..<array.count {
                let element = String(decoding: try array.element(index), as: UTF8.self)
                var piece = index == 0 ? "\n" : ",\n"
                for (number, line) in element.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                    if number > 0 { piece += "\n" }
                    if !line.isEmpty { piece += "    " + line }
                }
                try emit(piece)
            }
            try emit("\n  ]")
            rest = rest[empty.upperBound...]
        }
        try emit(String(rest) + "\n")
    }

    /// The encoder of the JSON report: snake_case and sorted keys, ISO-8601 dates, indented.
    public static var jsonEncoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }

    /// Reads a JSON report back into a ``ReportDocument``.
    public static var jsonDecoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}
