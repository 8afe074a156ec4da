import CIsal
import Foundation

/// Which implementation inflates archives. Both produce identical bytes and check the same
/// things; ISA-L is the fast path, zlib the fallback where ISA-L (libisal2) is not installed.
///
/// `LIFEBOAT_INFLATE` chooses: `zlib` forces zlib, `isal` requires ISA-L (extraction fails when
/// it is missing), anything else (or unset) uses ISA-L when it loads and zlib otherwise.
public enum InflateEngine: String, Sendable, CaseIterable {
    case isal
    case zlib

    /// The engine archives use by default in this process (the environment is read once).
    public static let current: InflateEngine = {
        switch requested {
        case .zlib?: return .zlib
        case .isal?: return .isal
        case nil: return isalAvailable ? .isal : .zlib
        }
    }()

    /// Whether ISA-L was built in and libisal.so.2 loaded.
    public static var isalAvailable: Bool { lifeboat_isal_available() != 0 }

    /// Why ISA-L is unavailable; nil when it is available.
    public static var isalUnavailableReason: String? {
        lifeboat_isal_unavailable_reason().map { String(cString: $0) }
    }

    private static var requested: InflateEngine? {
        ProcessInfo.processInfo.environment["LIFEBOAT_INFLATE"].flatMap { InflateEngine(rawValue: $0.lowercased()) }
    }

    /// A new inflater of this engine.
    func makeInflater() throws -> GzipInflater {
        switch self {
        case .zlib: return try ZlibInflater()
        case .isal: return try IsalInflater()
        }
    }
}
