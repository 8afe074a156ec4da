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
    ///
    /// Byte for byte what `jsonEncoder` makes of the whole document, but its long arrays (`jobs`,
    /// `failures`) are encoded `chunk` elements at a time and spliced in: the encoder builds a tree
    /// of the whole value before writing a byte, which for 10,000 jobs took 29 MiB more than the
    /// 7 MB it wrote (7 MiB chunked), at the end of every run: the daemon's peak memory. (As
    /// `JSONSplice` does for compact JSON; the report's elements are re-indented.)
    public func jsonData(chunk: Int = 500) throws -> Data {
        let encoder = Self.jsonEncoder
        var shell = document
        shell.jobs = []
        shell.failures = []
        let head = try encoder.encode(shell)
        var data = Data(capacity: head.count + 900 * (document.jobs.count + document.failures.count))
        var copied = head.startIndex
        // Sorted keys: failures come first.
        func splice<T: Encodable>(_ key: String, _ values: [T]) throws {
            guard !values.isEmpty else { return }
            guard let array = JSONSplice.valueRange(of: [key], in: head), array.lowerBound >= copied else {
                throw EncodingError.invalidValue(key, .init(codingPath: [], debugDescription: "the report's \(key) array was not found"))
            }
            data.append(head[copied...array.lowerBound])
            let step = max(1, chunk)
            for start in stride(from: 0, to: values.count, by: step) {
                // `[\n  element,\n  element\n]`: its elements, two spaces deeper.
                let encoded = try encoder.encode(Array(values[start..<min(start + step, values.count)]))
                data.append(contentsOf: start == 0 ? "\n  ".utf8 : ",\n  ".utf8)
                encoded.withUnsafeBytes { raw in
                    let elements = raw[2..<(raw.count - 2)]
                    var line = elements.startIndex
                    while let newline = elements[line...].firstIndex(of: 0x0A) {
                        data.append(contentsOf: UnsafeRawBufferPointer(rebasing: elements[line...newline]))
                        data.append(contentsOf: "  ".utf8)
                        line = newline + 1
                    }
                    data.append(contentsOf: UnsafeRawBufferPointer(rebasing: elements[line...]))
                }
            }
            data.append(contentsOf: "\n  ".utf8)
            copied = array.upperBound - 1
        }
        try splice("failures", document.failures)
        try splice("jobs", document.jobs)
        data.append(head[copied...])
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
