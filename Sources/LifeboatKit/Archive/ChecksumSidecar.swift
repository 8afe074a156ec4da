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
        // Without blocking: a FIFO put there would hold the open until a writer came, and with
        // it the job, deaf to cancel.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            let e = errno
            if e == ENOENT {
                guard policy == .required else { return nil }
                throw ArchiveError(.checksumMissing, "the checksum sidecar \(path) does not exist (verify.checksum: required)")
            }
            throw ArchiveError(.io, "cannot open the checksum sidecar \(path)", errno: e, isTransient: ArchiveInput.isTransient(e))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = errno
            throw ArchiveError(.io, "cannot inspect the checksum sidecar \(path)", errno: e, isTransient: ArchiveInput.isTransient(e))
        }
        guard st.st_mode & S_IFMT == S_IFREG else {
            let kind = switch st.st_mode & S_IFMT {
            case S_IFDIR: "a directory"
            case S_IFIFO: "a FIFO"
            case S_IFSOCK: "a socket"
            default: "a device"
            }
            throw ArchiveError(.checksumMissing, "the checksum sidecar \(path) is \(kind), not a regular file")
        }
        // Read in small pieces: a sidecar is one line, and zeroing a 64 KiB buffer for it cost
        // more than parsing it.
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < maxSize {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, min($0.count, maxSize - bytes.count)) }
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else {
                let e = errno
                throw ArchiveError(.io, "cannot read the checksum sidecar \(path)", errno: e, isTransient: ArchiveInput.isTransient(e))
            }
            if n == 0 { break }
            bytes += chunk[..<n]
        }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let digest = parse(text, archiveName: (archive as NSString).lastPathComponent) else {
            throw ArchiveError(.checksumMissing, "the checksum sidecar \(path) has no SHA-256 line for \((archive as NSString).lastPathComponent)")
        }
        return digest
    }

    /// The digest for `archiveName`: a single line is taken whatever name it gives; with several
    /// lines, the one whose name ends with the archive's file name.
    static func parse(_ text: String, archiveName: @autoclosure () -> String) -> String? {
        var candidates: [(digest: String, name: String)] = []
        for line in text.split(whereSeparator: \.isNewline) {
            // ASCII lines (every sidecar sha256sum writes) are trimmed of the only ASCII
            // characters in `.whitespaces`, space and tab, without a trip through Foundation.
            let trimmed = line.utf8.allSatisfy({ $0 < 0x80 }) ? Self.trimmingSpacesAndTabs(line) : Substring(line.trimmingCharacters(in: .whitespaces))
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
        let archiveName = archiveName()
        return candidates.first { ($0.name as NSString).lastPathComponent == archiveName }?.digest
    }

    private static func trimmingSpacesAndTabs(_ line: Substring) -> Substring {
        var line = line
        while let first = line.utf8.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") { line = line.dropFirst() }
        while let last = line.utf8.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") { line = line.dropLast() }
        return line
    }
}
