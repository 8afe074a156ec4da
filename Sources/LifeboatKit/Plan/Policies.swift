/// What to do with an archive entry that breaks a safety rule.
public enum UnsafeEntryPolicy: String, Sendable, Codable, CaseIterable {
    /// Fail the job.
    case reject
    /// Skip the entry and record it.
    case skip
}

/// How the `.sha256` sidecar of an archive is used.
public enum ChecksumPolicy: String, Sendable, Codable, CaseIterable {
    /// A sidecar must exist and match.
    case required
    /// Checked when a sidecar exists.
    case ifPresent = "if-present"
    /// Not checked.
    case off
}
