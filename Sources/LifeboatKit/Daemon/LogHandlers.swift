import Foundation
import Logging
import Synchronization

/// swift-log backend for Lifeboat's executables: one line per message on stderr, as text or JSON.
/// Under systemd (`JOURNAL_STREAM` set) each line starts with its syslog priority (`<3>`) so
/// journald keeps levels.
public struct LifeboatLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String
    private let format: DaemonConfig.LogFormat
    private let journald: Bool

    private static let output = Mutex(())

    public init(label: String, level: Logger.Level, format: DaemonConfig.LogFormat,
                journald: Bool = ProcessInfo.processInfo.environment["JOURNAL_STREAM"] != nil) {
        self.label = label
        self.logLevel = level
        self.format = format
        self.journald = journald
    }

    /// Installs the handler for the whole process (executables only; libraries never bootstrap).
    public static func bootstrap(level: Logger.Level, format: DaemonConfig.LogFormat) {
        LoggingSystem.bootstrap { label in LifeboatLogHandler(label: label, level: level, format: format) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        let line = Self.format(level: event.level, message: "\(event.message)", metadata: all, label: label,
                               source: event.source, format: format, journald: journald, date: Date())
        // A log line that cannot be written (a full disk, a closed pipe) is dropped, never a crash.
        Self.output.withLock { _ in _ = StandardOutput.write(Data((line + "\n").utf8), to: STDERR_FILENO) }
    }

    static func format(level: Logger.Level, message: String, metadata: Logger.Metadata, label: String, source: String,
                       format: DaemonConfig.LogFormat, journald: Bool, date: Date) -> String {
        let prefix = journald ? "<\(syslogPriority(level))>" : ""
        switch format {
        case .text:
            // One message, one line, whatever its words hold: a client's free text (a delete's
            // reason) must not be able to write a line of its own, or a field that looks like
            // another (`uid=0`) into the audit trail.
            let fields = metadata.sorted { $0.key < $1.key }.map { "\(escaped($0.key))=\(field("\($0.value)"))" }.joined(separator: " ")
            let time = journald ? "" : Timestamp.iso(date) + " "
            return "\(prefix)\(time)\(level.rawValue.uppercased()) \(escaped(message))\(fields.isEmpty ? "" : " " + fields)"
        case .json:
            var object: [String: String] = ["time": Timestamp.iso(date), "level": level.rawValue, "message": message, "logger": label]
            for (key, value) in metadata { object[key] = "\(value)" }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            return prefix + String(decoding: data, as: UTF8.self)
        }
    }

    /// `text` with its control characters written as escapes (`PrintableText`).
    static func escaped(_ text: String) -> String { PrintableText.escaped(text) }

    /// A metadata value as logfmt writes it: bare when it is one plain word, else quoted (with
    /// `"` and `\` escaped), so a value cannot pass for more fields.
    static func field(_ value: String) -> String {
        let plain = !value.isEmpty && !value.unicodeScalars.contains { (scalar: Unicode.Scalar) -> Bool in
            scalar == " " || scalar == "=" || scalar == "\"" || scalar == "\\" || PrintableText.needsEscape(scalar)
        }
        if plain { return value }
        return "\"" + escaped(value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")) + "\""
    }

    /// syslog(3) priorities, as journald reads them from a `<N>` prefix.
    static func syslogPriority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }
}
