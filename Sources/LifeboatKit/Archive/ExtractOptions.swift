/// What to do with an entry that breaks a safety rule (`unsafe_entries` in a plan).
public enum UnsafeEntryPolicy: String, Sendable, Codable, CaseIterable {
    /// Fail the whole archive, naming the entry and the rule.
    case reject
    /// Leave the entry out (its data is read and discarded) and record it in the report.
    case skip
}

/// How the `<archive>.sha256` sidecar is used (`verify.checksum` in a plan).
public enum ChecksumPolicy: String, Sendable, Codable, CaseIterable {
    /// A sidecar must exist and match.
    case required
    /// A sidecar is checked when it exists.
    case ifPresent = "if-present"
    /// Sidecars are ignored.
    case off
}

/// The safety rules of extraction (DESIGN.md "One job, step by step", 3).
public enum UnsafeRule: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case absoluteName = "absolute-name"
    case parentReference = "parent-reference"
    case emptyName = "empty-name"
    case replacesRoot = "replaces-root"
    case controlCharacter = "control-character"
    case invalidUTF8 = "invalid-utf8"
    case componentTooLong = "component-too-long"
    case pathTooLong = "path-too-long"
    case linkEscapesRoot = "link-escapes-root"
    case throughSymlink = "through-symlink"
    case hardLinkTarget = "hard-link-target"
    case device
    case fifo
    case unsupportedType = "unsupported-type"
    case parentNotDirectory = "parent-not-directory"
    case replacesDirectory = "replaces-non-empty-directory"

    public var description: String {
        switch self {
        case .absoluteName: return "absolute names are not allowed"
        case .parentReference: return "'..' components are not allowed"
        case .emptyName: return "empty names are not allowed"
        case .replacesRoot: return "an entry may not replace the root directory"
        case .controlCharacter: return "names may not contain control characters"
        case .invalidUTF8: return "names must be valid UTF-8"
        case .componentTooLong: return "a path component is longer than 255 bytes"
        case .pathTooLong: return "the path is longer than 4096 bytes"
        case .linkEscapesRoot: return "links must point inside the restored tree"
        case .throughSymlink: return "the path goes through a symbolic link"
        case .hardLinkTarget: return "hard links must point to a regular file extracted earlier"
        case .device: return "device entries are not allowed"
        case .fifo: return "FIFO entries are not allowed"
        case .unsupportedType: return "unsupported entry type"
        case .parentNotDirectory: return "a parent of the entry is not a directory"
        case .replacesDirectory: return "the entry would replace a non-empty directory"
        }
    }
}

/// How one archive is read and extracted.
public struct ExtractOptions: Sendable {
    /// Maximum sum of the entries' data sizes (a sparse file's real size) and of the archive's
    /// metadata headers (pax, GNU long names, sparse maps), checked against header sizes before
    /// anything is read or written, so a decompression bomb stops at its first header.
    public var maxBytes: Int64
    /// Maximum number of entries (metadata headers such as pax and GNU long names not counted),
    /// and of regions in one sparse file's map.
    public var maxEntries: Int
    /// What to do with entries that break a safety rule.
    public var unsafeEntries: UnsafeEntryPolicy
    /// Apply the archive's numeric uid/gid (needs privileges). Off by default: files belong to
    /// the user Lifeboat runs as.
    public var applyOwnership: Bool
    /// How the `.sha256` sidecar is used.
    public var checksum: ChecksumPolicy
    /// Compute the archive's SHA-256 even when no sidecar is checked (for `snapshot verify`).
    public var alwaysComputeSHA256: Bool
    /// Polled between entries and data chunks: extraction runs on a thread of its own, where
    /// `Task.isCancelled` cannot see the job's cancellation.
    public var cancellation: CancellationFlag?
    /// Which inflate implementation decompresses the archive (identical results either way).
    public var inflate: InflateEngine = .current
    /// How many directories wait for their final modes before they are settled early (memory:
    /// about 150 bytes each, and their paths up to 256 bytes each). Tests lower it to drive
    /// early settling with small archives.
    var pendingDirectoryLimit = 65_536

    /// Defaults follow DESIGN.md's example plan: 500 GiB, 10 million entries, reject, if-present.
    public init(
        maxBytes: Int64 = 500 << 30,
        maxEntries: Int = 10_000_000,
        unsafeEntries: UnsafeEntryPolicy = .reject,
        applyOwnership: Bool = false,
        checksum: ChecksumPolicy = .ifPresent,
        alwaysComputeSHA256: Bool = false,
        cancellation: CancellationFlag? = nil
    ) {
        self.cancellation = cancellation
        self.maxBytes = maxBytes
        self.maxEntries = maxEntries
        self.unsafeEntries = unsafeEntries
        self.applyOwnership = applyOwnership
        self.checksum = checksum
        self.alwaysComputeSHA256 = alwaysComputeSHA256
    }
}

/// An entry left out under `unsafe_entries: skip`.
public struct SkippedEntry: Sendable, Codable, Equatable {
    /// The name as written in the archive (control characters escaped).
    public var name: String
    public var rule: UnsafeRule
}

/// What reading or extracting one archive did.
public struct ExtractReport: Sendable, Codable, Equatable {
    /// Entries extracted (or, for verification, found acceptable).
    public var entries: Int = 0
    /// Bytes of file data written (or that would be written).
    public var bytes: Int64 = 0
    /// Bytes of the compressed archive read.
    public var archiveBytes: Int64 = 0
    /// Entries left out under `unsafe_entries: skip`, in archive order.
    public var skipped: [SkippedEntry] = []
    /// The archive's SHA-256 in lowercase hex, when it was computed.
    public var sha256: String?
    /// Whether a sidecar checksum was present and matched.
    public var checksumVerified: Bool = false

    public init() {}
}
