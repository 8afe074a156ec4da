import Foundation

/// The `<archive>.sha256` sidecar, in `sha256sum` format: `<64 hex>  <name>` (text mode) or
/// `<64 hex> *<name>` (binary mode).
enum ChecksumSidecar {
    static let maxSize = 64 << 10

    /// The expected SHA-256 (lowercase hex) for `archive` under `policy`; nil when there is
    /// nothing to check.
    static func expectedDigest(for archive: String, policy: ChecksumPolicy) throws -> String? {
        guard policy != .off else { return nil }
        let path = archive + ".sha256"
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            if e == ENOENT {
                guard policy == .required else { return nil }
                throw ArchiveError(.checksumMissing, "the checksum sidecar \(path) does not exist (verify.checksum: required)")
            }
            throw ArchiveError(.io, "cannot open the checksum sidecar \(path)", errno: e, isTransient: ArchiveInput.isTransient(e))
        }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: maxSize)
        var count = 0
        while count < maxSize {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, maxSize - count) }
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else {
                let e = errno
                throw ArchiveError(.io, "cannot read the checksum sidecar \(path)", errno: e, isTransient: ArchiveInput.isTransient(e))
            }
            if n == 0 { break }
            count += n
        }
        let text = String(decoding: bytes[..<count], as: UTF8.self)
        guard let digest = parse(text, archiveName: (archive as NSString).lastPathComponent) else {
            throw ArchiveError(.checksumMissing, "the checksum sidecar \(path) has no SHA-256 line for \((archive as NSString).lastPathComponent)")
        }
        return digest
    }

    /// The digest for `archiveName`: a single line is taken whatever name it gives; with several
    /// lines, the one whose name ends with the archive's file name.
    static func parse(_ text: String, archiveName: String) -> String? {
        var candidates: [(digest: String, name: String)] = []
        for line in text.split(whereSeparator: \.isNewline) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#") else { continue }
            let hex = trimmed.prefix(64)
            guard hex.count == 64, hex.allSatisfy(\.isHexDigit) else { return nil }
            var name = trimmed.dropFirst(64)
            guard name.isEmpty || name.first == " " else { return nil }
            name = name.drop(while: { $0 == " " })
            if name.first == "*" { name = name.dropFirst() }
            candidates.append((hex.lowercased(), String(name)))
        }
        if candidates.count == 1 { return candidates[0].digest }
        return candidates.first { ($0.name as NSString).lastPathComponent == archiveName }?.digest
    }
}
