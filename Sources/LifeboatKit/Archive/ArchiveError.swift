import Foundation

/// Why reading, checking, extracting or committing a snapshot archive failed.
///
/// The message names the archive, the entry and the rule that was broken, the underlying system
/// error when there is one, and what an operator can do about it.
public struct ArchiveError: LifeboatError, Sendable, Equatable {
    /// What kind of failure this is. Everything but `io` and `commitFailed` is a property of the
    /// archive itself: retrying cannot help.
    public enum Code: String, Sendable, Codable {
        /// An entry breaks a safety rule (see `rule`).
        case unsafeEntry = "unsafe-entry"
        /// The gzip or tar structure is damaged (bad CRC, bad header checksum, trailing garbage…).
        case corrupt
        /// The archive ends early: a gzip member or the tar end-of-archive marker is missing.
        case truncated
        /// The archive's SHA-256 differs from its `.sha256` sidecar.
        case checksumMismatch = "checksum-mismatch"
        /// `verify.checksum: required` but there is no usable sidecar.
        case checksumMissing = "checksum-missing"
        /// `max_bytes`, `max_entries` or a header-size limit was exceeded.
        case limitExceeded = "limit-exceeded"
        /// A system call failed while reading the archive or writing staging.
        case io
        /// The `verify.command` hook rejected the restored data.
        case verifyFailed = "verify-failed"
        /// Making staging durable or moving it into place failed.
        case commitFailed = "commit-failed"
    }

    public var code: Code
    /// The archive's path, when the error concerns one.
    public var archive: String?
    /// The offending entry's name as written in the archive (control characters and quotes
    /// escaped, invalid UTF-8 replaced).
    public var entry: String?
    /// The safety rule broken, for `unsafeEntry`.
    public var rule: UnsafeRule?
    /// What happened, in words.
    public var detail: String
    /// The underlying `errno`, if a system call failed.
    public var errno: Int32?
    /// True only for I/O errors that may succeed when tried again (EIO, EAGAIN, ETIMEDOUT, ESTALE
    /// while reading the archive); never for integrity or safety errors.
    public var isTransient: Bool

    public init(
        _ code: Code, _ detail: String, archive: String? = nil, entry: String? = nil,
        rule: UnsafeRule? = nil, errno: Int32? = nil, isTransient: Bool = false
    ) {
        self.code = code
        self.detail = detail
        self.archive = archive
        self.entry = entry
        self.rule = rule
        self.errno = errno
        self.isTransient = isTransient
    }

    /// Unsafe or damaged input is "rejected input" (2); failures of the machine are "failed" (1).
    public var exitCode: CLIExit {
        switch code {
        case .unsafeEntry, .corrupt, .truncated, .checksumMismatch, .checksumMissing, .limitExceeded:
            return .rejected
        case .io, .verifyFailed, .commitFailed:
            return .failed
        }
    }

    public var description: String {
        var text = archive.map { "\($0): " } ?? ""
        if let entry { text += "entry \"\(entry)\": " }
        text += detail
        if let rule { text += " [rule: \(rule.rawValue)]" }
        if let errno { text += ": \(SystemError.describe(errno))" }
        if let hint { text += "; \(hint)" }
        return text
    }

    /// What an operator can do about it.
    var hint: String? {
        switch code {
        case .unsafeEntry:
            return "the archive is unsafe to restore as is; inspect it, or set unsafe_entries: skip to restore it without such entries"
        case .corrupt:
            return "the archive is damaged; restore from another snapshot"
        case .truncated:
            return "the archive is incomplete (was it still being copied?); restore from another snapshot"
        case .checksumMismatch:
            return "the archive or its .sha256 sidecar is damaged or stale"
        case .checksumMissing:
            return "create the .sha256 sidecar (sha256sum format) or set verify.checksum: if-present"
        case .limitExceeded:
            return "if the archive is legitimate, raise limits.max_bytes / limits.max_entries (or --max-bytes / --max-entries)"
        case .io where isTransient:
            return "this may be temporary; it is retried per the plan's retry policy"
        case .io, .verifyFailed, .commitFailed:
            return nil
        }
    }

    /// Fills in the archive path where lower layers did not know it.
    func inArchive(_ path: String) -> ArchiveError {
        var copy = self
        if copy.archive == nil { copy.archive = path }
        return copy
    }

    /// Escapes an entry name for messages and reports: control characters, quotes and
    /// backslashes as in a Swift string literal, and each byte that is not valid UTF-8 as `\xFF`
    /// (so that two different names never read the same).
    static func displayName(_ bytes: some Collection<UInt8>) -> String {
        let bytes = Array(bytes)
        var text = "", valid = ""
        func flush() {
            text += String(String(reflecting: valid).dropFirst().dropLast())
            valid = ""
        }
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        var at = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let encoded):
                let scalar = Unicode.UTF8.decode(encoded)
                at += encoded.count
                // C1 controls (U+0080–U+009F: CSI, NEL…) act on terminals as C0 ones do, and
                // `reflecting` leaves them raw: escaped here like the others.
                if (0x80...0x9F).contains(scalar.value) {
                    flush()
                    text += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
                    continue
                }
                valid.unicodeScalars.append(scalar)
            case .error(let length):
                flush()
                for byte in bytes[at..<(at + length)] { text += String(format: "\\x%02X", byte) }
                at += length
            case .emptyInput:
                flush()
                return text
            }
        }
    }
}

/// Formatting of `errno` values.
enum SystemError {
    static func describe(_ code: Int32) -> String {
        "\(String(cString: strerror(code))) (errno \(code))"
    }
}
