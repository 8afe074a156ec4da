/// The formats `lifeboat report RUN --format …` writes.
public enum ReportFormat: String, Sendable, Codable, CaseIterable {
    /// GitHub-flavoured Markdown, with padded tables so it also reads well in a terminal.
    case md
    /// The ``ReportDocument`` schema (`lifeboat.report/1`): snake_case keys, ISO-8601 dates, sorted keys.
    case json
    /// One self-contained page: inline CSS and an inline SVG timeline, no scripts, no external resources.
    case html

    /// The usual file name extension.
    public var fileExtension: String { rawValue }
}
