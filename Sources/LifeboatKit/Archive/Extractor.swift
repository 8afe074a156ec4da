import Foundation

/// Applies the safety rules to each tar entry and, when given a writer, creates it in staging.
/// Without a writer it only checks (`verifyArchive`).
///
/// Symbolic links are held back until every other entry exists, so nothing is ever written
/// through one; an entry whose path goes through a pending link is a violation, and a later
/// entry with the link's name replaces it. A hard link to a symbolic link (`cp -al`, rsnapshot
/// trees) is held back with them: a link at its own place, checked there, made a hard link of
/// the first when that one was made.
final class Extractor {
    private let reader: TarReader
    private let writer: StagingWriter?
    private let options: ExtractOptions
    private var report = ExtractReport()
    private var entriesSeen = 0
    private var links = PendingLinks()
    /// Verification has no filesystem to ask what an entry finds at its name: this answers instead.
    private var tree = VerifyTree()

    init(reader: TarReader, writer: StagingWriter?, options: ExtractOptions) {
        self.reader = reader
        self.writer = writer
        self.options = options
    }

    /// Reads every entry to the end-of-archive marker and the end of the gzip stream.
    func run() throws -> ExtractReport {
        while let entry = try reader.next() {
            try checkCancellation()
            entriesSeen += 1
            guard entriesSeen <= options.maxEntries else {
                throw ArchiveError(.limitExceeded, "the archive has more than \(options.maxEntries) entries (max_entries)",
                                   entry: ArchiveError.displayName(entry.name))
            }
            do {
                try handle(entry)
                report.entries += 1
            } catch let violation as RuleViolation {
                try record(violation, name: entry.name)
            } catch let error as SystemCallError {
                throw ArchiveError(.io, "cannot create the entry in staging \(writer?.rootPath ?? "") (\(error.call))",
                                   entry: ArchiveError.displayName(entry.name), errno: error.errno)
            }
        }
        try createLinks()
        do {
            try writer?.finalizeDirectories()
        } catch let error as SystemCallError {
            throw ArchiveError(.io, "cannot set the final directory modes (\(error.call))", errno: error.errno)
        }
        _ = try reader.finish()
        return report
    }

    private func handle(_ entry: TarEntry) throws {
        switch entry.kind {
        case .characterDevice, .blockDevice: throw RuleViolation(.device)
        case .fifo: throw RuleViolation(.fifo)
        case .unsupported(let flag):
            let what = flag == UInt8(ascii: "M") ? " (a GNU multi-volume continuation: the start of the file is in another volume)" : ""
            throw RuleViolation(.unsupportedType, "unsupported entry type \(String(reflecting: String(UnicodeScalar(flag))))" + what)
        case .regular, .directory, .symlink, .hardLink:
            break
        }
        let path = try EntryPath.validate(entry.name)
        try checkNotThroughLink(path)
        if path.isRoot, entry.kind != .directory { throw RuleViolation(.replacesRoot) }
        // What a writer makes on its way (the parents it creates) it meets in staging.
        if writer == nil { try tree.makeParents(of: path) }
        let metadata = metadata(of: entry)
        switch entry.kind {
        case .directory:
            dropPendingLink(path)
            if let writer { try writer.makeDirectory(path, metadata) } else { tree.makeDirectory(path) }
        case .regular:
            dropPendingLink(path)
            if let writer {
                try writer.writeFile(path, metadata) { fd in
                    var position: Int64 = 0
                    try reader.readData { chunk, offset in
                        try checkCancellation()
                        // A sparse file's holes are skipped over (and stay holes, as with GNU tar).
                        if offset != position, lseek(fd, off_t(offset), SEEK_SET) < 0 {
                            throw SystemCallError(call: "lseek", errno: errno)
                        }
                        try FileSystemCalls.writeAll(fd, chunk)
                        position = offset + Int64(chunk.count)
                    }
                    if let sparse = entry.sparse, ftruncate(fd, off_t(sparse.realSize)) != 0 {
                        throw SystemCallError(call: "ftruncate", errno: errno)
                    }
                }
                writer.wrote(entry.size)
            } else {
                try tree.makeFile(path)
            }
            report.bytes += entry.size
        case .symlink:
            let target = try EntryPath.validateSymlinkTarget(entry.linkName, linkAt: path)
            try holdBack(path, target: target, name: entry.name, metadata: metadata)
        case .hardLink:
            let target = try hardLinkTarget(entry.linkName)
            // A link to itself asks for what is there already, which must be what a link may
            // name: a regular file or a symbolic link extracted before (with nothing there, GNU
            // tar refuses it too, and it must not vanish without a word).
            if let serial = links.serial(of: target.key), let symlink = links.link(serial) {
                if target != path { try holdBack(path, target: symlink.target, name: entry.name, metadata: symlink.metadata, hardLinkOf: serial) }
                return
            }
            if target != path { dropPendingLink(path) }
            if let writer {
                try writer.hardLink(to: target, at: path)
            } else {
                guard tree.isFile(target) else {
                    throw RuleViolation(.hardLinkTarget, "the hard link target \(String(reflecting: target.key)) is not a regular file extracted before the link")
                }
                if target != path { try tree.makeFile(path) }
            }
        default:
            break
        }
    }

    /// Holds a link back until every other entry exists (`createLinks`); it replaces whatever
    /// had its name.
    /// - Parameter hardLinkOf: for a hard link to a held-back symbolic link, that link's serial.
    private func holdBack(_ path: EntryPath, target: String, name: [UInt8], metadata: StagingWriter.Metadata,
                          hardLinkOf: Int? = nil) throws {
        if let writer { try writer.clear(path) } else { try tree.clear(path) }
        links.add(path: path, target: target, name: name, metadata: metadata, source: hardLinkOf)
    }

    private func hardLinkTarget(_ bytes: [UInt8]) throws -> EntryPath {
        let target: EntryPath
        do {
            target = try EntryPath.validate(bytes)
        } catch {
            let rule: UnsafeRule = error.rule == .absoluteName || error.rule == .parentReference ? .linkEscapesRoot : error.rule
            throw RuleViolation(rule, "the hard link target: \(error.rule.description)")
        }
        guard !target.isRoot else { throw RuleViolation(.hardLinkTarget, "a hard link may not point to the root") }
        try checkNotThroughLink(target)
        return target
    }

    private func checkNotThroughLink(_ path: EntryPath) throws {
        if let key = links.link(above: path.key) {
            throw RuleViolation(.throughSymlink, "the path goes through the symbolic link \(String(reflecting: key))")
        }
    }

    private func dropPendingLink(_ path: EntryPath) {
        links.remove(path.key)
    }

    /// Creates the held-back links in archive order, each checked to resolve inside the root
    /// through every other link of the archive.
    ///
    /// Under `unsafe_entries: skip`, a link can be refused when it is made (a directory took
    /// its name meanwhile) after the links before it were checked as if it would exist. So once
    /// any is refused, the links made are checked again against the links really made, until
    /// none escapes: one that does is removed and skipped too.
    private func createLinks() throws {
        guard !links.isEmpty else { return }
        let links = self.links
        // Which links were made (a hard link to a symbolic link is made a hard link of it only
        // when that very one was), and which were refused.
        var made = [Bool](repeating: false, count: links.serials.count)
        var refused = Set<Int>()
        let planned = SymlinkResolver(linkTarget: { links.serial(of: $0).flatMap(links.target) })
        for serial in links.serials {
            guard let link = links.link(serial) else { continue }  // replaced later
            try checkCancellation()
            guard planned.staysInside(linkAt: link.path, target: link.target) else {
                report.entries -= 1
                refused.insert(serial)
                try record(RuleViolation(.linkEscapesRoot, "the link target \(String(reflecting: link.target)) leaves the restored tree through other links"),
                           name: link.name)
                continue
            }
            do {
                if writer == nil {
                    try tree.makeParents(of: link.path)
                    try tree.makeFile(link.path)
                } else if let source = link.source, made[source], let made = links.link(source) {
                    try writer?.hardLink(to: made.path, at: link.path, toSymlink: true)
                } else {
                    // The link it links to was replaced or refused: the same link, made anew.
                    try writer?.createSymlink(link.path, target: link.target, link.metadata)
                }
                made[serial] = true
            } catch let violation as RuleViolation {
                report.entries -= 1
                refused.insert(serial)
                try record(violation, name: link.name)
            } catch let error as SystemCallError {
                throw ArchiveError(.io, "cannot create the symbolic link in staging \(writer?.rootPath ?? "") (\(error.call))",
                                   entry: ArchiveError.displayName(link.name), errno: error.errno)
            }
        }
        guard !refused.isEmpty else { return }
        while true {
            try checkCancellation()
            let existing = SymlinkResolver(linkTarget: { walk in
                links.serial(of: walk).flatMap { made[$0] ? links.target($0) : nil }
            })
            let escaping = links.serials.filter { serial in
                guard made[serial], let link = links.link(serial) else { return false }
                return !existing.staysInside(linkAt: link.path, target: link.target)
            }
            guard !escaping.isEmpty else { return }
            for serial in escaping {
                guard let link = links.link(serial) else { continue }
                do {
                    try writer?.removeSymlink(link.path)
                } catch {
                    let call = error as? SystemCallError
                    throw ArchiveError(.io, "cannot remove a refused symbolic link from staging \(writer?.rootPath ?? "") (\(call?.call ?? "\(error)"))",
                                       entry: ArchiveError.displayName(link.name), errno: call?.errno)
                }
                made[serial] = false
                report.entries -= 1
                try record(RuleViolation(.linkEscapesRoot, "the link target \(String(reflecting: link.target)) leaves the restored tree once the links refused are not there"),
                           name: link.name)
            }
        }
    }

    /// Fails on a violation, or records it under `unsafe_entries: skip`.
    private func record(_ violation: RuleViolation, name: [UInt8]) throws {
        let display = ArchiveError.displayName(name)
        guard options.unsafeEntries == .skip else {
            throw ArchiveError(.unsafeEntry, violation.detail, entry: display, rule: violation.rule)
        }
        report.skipped.append(SkippedEntry(name: display, rule: violation.rule))
    }

    /// Modes lose setuid/setgid/sticky and group/other write; ownership only when asked.
    private func metadata(of entry: TarEntry) -> StagingWriter.Metadata {
        var owner: (uid_t, gid_t)?
        if options.applyOwnership, let uid = uid_t(exactly: entry.uid), let gid = gid_t(exactly: entry.gid) {
            owner = (uid, gid)
        }
        return StagingWriter.Metadata(mode: mode_t(entry.mode) & 0o755, mtime: entry.mtime, owner: owner)
    }

    func checkCancellation() throws {
        if Task.isCancelled || options.cancellation?.isCancelled == true { throw CancellationError() }
    }
}
