import Foundation

/// Creates entries inside a staging directory, every call relative to a directory file
/// descriptor, never following a symbolic link (there are none while regular files are written:
/// the extractor creates links last).
///
/// Directories stay 0700 while extracting so that anything can be created in them, and get their
/// final modes and times in `finalizeDirectories()`, deepest first. Memory stays bounded however
/// many directories an archive holds: past a budget of them waiting (65,536, or 16 MiB of their
/// paths), those are settled on the spot (but for those their owner could not open), and a settled directory that a later
/// entry, an implied directory or a held-back link goes into again is taken up again with the
/// mode and time it was given, to be given them again at the end.
final class StagingWriter {
    struct Metadata {
        var mode: mode_t
        var mtime: (seconds: Int64, nanoseconds: Int)?
        var owner: (uid: uid_t, gid: gid_t)?
    }

    private struct DirectoryRecord {
        var metadata: Metadata
        var depth: Int
    }

    private let rootFD: Int32
    /// The staging directory's path, for messages only (every call goes through `rootFD`).
    let rootPath: String
    // Open parent directories by key. Archives often interleave a few directories (the fleet's
    // records alternate between a dozen), so caching one parent missed on nearly every file and
    // cost an openat2 and a close each time. Bounded: cleared when full.
    private var parents: [String: Int32] = [:]
    private static let maxCachedParents = 32
    /// The directories waiting for their final mode and time (compact: an archive may hold
    /// millions, and only a budget of them are kept).
    private var directories = PathTable<DirectoryRecord>()
    /// How many directories, and bytes of their paths, may wait: the first of them reached
    /// makes a settling.
    private var budget: (count: Int, bytes: Int)
    /// Where the budget runs out (counted from what the last settling kept).
    private var settleAt: (count: Int, bytes: Int)
    /// Directories recorded, and those of them taken up again, since the last settling.
    private var added = 0, takenUp = 0
    /// Whether directories were settled before the end: one missing from `directories` may then
    /// exist, with its final mode, and must be taken up again before anything goes into it.
    private var settledEarly = false
    /// Starts writeback of what was written so far in the background (nil: never).
    private let writeback: BackgroundWriteback?

    /// - Parameters:
    ///   - rootFD: the staging directory; not closed by the writer.
    ///   - rootPath: its path, named in errors.
    ///   - writeback: starts writeback in the background as data accumulates (nil: never).
    ///   - pendingLimit: how many directories may wait for their final modes before they are
    ///     settled (about 150 bytes each, and their paths' bytes, up to 256 a directory).
    init(rootFD: Int32, rootPath: String = "staging", writeback: BackgroundWriteback? = nil, pendingLimit: Int = 65_536) {
        self.rootFD = rootFD
        self.rootPath = rootPath
        self.writeback = writeback
        budget = (max(pendingLimit, 1), max(pendingLimit, 1) * 256)
        settleAt = budget
    }

    deinit { dropCache() }

    /// Creates (or keeps) a directory; its mode and time are applied at the end.
    func makeDirectory(_ path: EntryPath, _ metadata: Metadata) throws {
        if !path.isRoot {
            let parent = try parentFD(for: path)
            if mkdirat(parent, path.leaf, 0o700) != 0 {
                guard errno == EEXIST else { throw SystemCallError(call: "mkdirat", errno: errno) }
                if let st = try FileSystemCalls.lstat(parent, path.leaf), !FileSystemCalls.isDirectory(st) {
                    try removeExisting(parent, path)
                    guard mkdirat(parent, path.leaf, 0o700) == 0 else { throw SystemCallError(call: "mkdirat", errno: errno) }
                } else if settledEarly, directories.position(of: path.key) == nil {
                    // Named again once settled: writable again for what follows it.
                    let fd = try FileSystemCalls.openDirectory(beneath: parent, [path.leaf])
                    defer { close(fd) }
                    try takeUp(fd, key: path.key, depth: path.components.count)
                }
            }
        }
        let record = DirectoryRecord(metadata: metadata, depth: path.components.count)
        // A directory named again keeps its one entry, with the latest metadata (as tar does).
        if let known = directories.position(of: path.key) {
            directories.setValue(record, at: known)
        } else {
            try add(path.key, record)
        }
    }

    /// Creates a regular file exclusively (replacing, by unlinking, whatever an earlier entry put
    /// at that name) and lets `writeData` fill it.
    func writeFile(_ path: EntryPath, _ metadata: Metadata, writeData: (Int32) throws -> Void) throws {
        let parent = try parentFD(for: path)
        let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC
        var fd = openat(parent, path.leaf, flags, metadata.mode)
        if fd < 0, errno == EEXIST {
            try removeExisting(parent, path)
            fd = openat(parent, path.leaf, flags, metadata.mode)
        }
        guard fd >= 0 else { throw SystemCallError(call: "openat", errno: errno) }
        var closed = false
        defer { if !closed { close(fd) } }
        try writeData(fd)
        if let owner = metadata.owner, fchown(fd, owner.uid, owner.gid) != 0 {
            throw SystemCallError(call: "fchown", errno: errno)
        }
        // open(2) applied the umask; fix the mode only when the umask took something away.
        if FileSystemCalls.processUmask.map({ metadata.mode & $0 != 0 }) ?? true, fchmod(fd, metadata.mode) != 0 {
            throw SystemCallError(call: "fchmod", errno: errno)
        }
        if let mtime = metadata.mtime, futimens(fd, FileSystemCalls.times(mtime)) != 0 {
            throw SystemCallError(call: "futimens", errno: errno)
        }
        closed = true
        // close(2) can report a deferred write error (NFS, quota): it must not be lost.
        guard close(fd) == 0 || errno == EINTR else { throw SystemCallError(call: "close", errno: errno) }
    }

    /// Notes file data written (for background writeback).
    func wrote(_ bytes: Int64) {
        writeback?.wrote(bytes)
    }

    /// Removes whatever exists at `path` (for a link that will take its place at the end).
    func clear(_ path: EntryPath) throws {
        try removeExisting(try parentFD(for: path), path)
    }

    /// Creates a hard link to a regular file extracted before, or with `toSymlink` to a symbolic
    /// link (the link itself, not what it points to); nothing else is accepted as target.
    /// As tar does, it links first and replaces what had the name only if something had: a link
    /// costs an `lstat` and a `linkat` (links to one file usually follow it, in a directory
    /// whose descriptor is cached).
    func hardLink(to target: EntryPath, at path: EntryPath, toSymlink: Bool = false) throws {
        // The target's directory is only read: it neither enters the cache nor is created.
        func targetDirectory() throws -> (fd: Int32, owned: Bool) {
            if target.parent.isRoot { return (rootFD, false) }
            if let fd = parents[target.parent.key] { return (fd, false) }
            do {
                return (try FileSystemCalls.openDirectory(beneath: rootFD, target.parent.components), true)
            } catch {
                throw RuleViolation(.hardLinkTarget, "the hard link target \(String(reflecting: target.key)) was not extracted before the link")
            }
        }
        var targetParent = try targetDirectory()
        defer { if targetParent.owned { close(targetParent.fd) } }
        guard let st = try FileSystemCalls.lstat(targetParent.fd, target.leaf),
              toSymlink ? st.st_mode & S_IFMT == S_IFLNK : FileSystemCalls.isRegular(st) else {
            throw RuleViolation(.hardLinkTarget, "the hard link target \(String(reflecting: target.key)) is not a \(toSymlink ? "symbolic link" : "regular file") extracted before the link")
        }
        guard target != path else { return }  // a link to itself: the file is there
        let parent = try parentFD(for: path)
        // Making room in a full cache closed every descriptor it held.
        if !targetParent.owned { targetParent = try targetDirectory() }
        if linkat(targetParent.fd, target.leaf, parent, path.leaf, 0) != 0 {
            guard errno == EEXIST else { throw SystemCallError(call: "linkat", errno: errno) }
            try removeExisting(parent, path)
            guard linkat(targetParent.fd, target.leaf, parent, path.leaf, 0) == 0 else {
                throw SystemCallError(call: "linkat", errno: errno)
            }
        }
    }

    /// Creates a symbolic link (called after every regular file exists).
    func createSymlink(_ path: EntryPath, target: String, _ metadata: Metadata) throws {
        let parent = try parentFD(for: path)
        if symlinkat(target, parent, path.leaf) != 0 {
            guard errno == EEXIST else { throw SystemCallError(call: "symlinkat", errno: errno) }
            try removeExisting(parent, path)
            guard symlinkat(target, parent, path.leaf) == 0 else { throw SystemCallError(call: "symlinkat", errno: errno) }
        }
        if let owner = metadata.owner, fchownat(parent, path.leaf, owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW) != 0 {
            throw SystemCallError(call: "fchownat", errno: errno)
        }
        if let mtime = metadata.mtime,
           utimensat(parent, path.leaf, FileSystemCalls.times(mtime), AT_SYMLINK_NOFOLLOW) != 0 {
            throw SystemCallError(call: "utimensat", errno: errno)
        }
    }

    /// Removes a symbolic link this extraction made at `path` (refused after all; see
    /// `Extractor.createLinks`). Anything else found there is left alone.
    func removeSymlink(_ path: EntryPath) throws {
        let parent = try parentFD(for: path)
        guard let st = try FileSystemCalls.lstat(parent, path.leaf), st.st_mode & S_IFMT == S_IFLNK else { return }
        guard unlinkat(parent, path.leaf, 0) == 0 else { throw SystemCallError(call: "unlinkat", errno: errno) }
    }

    /// Gives every directory its final mode and time, deepest first, so that setting a child's
    /// does not disturb its parent's mtime and a read-only parent is locked last. The root keeps
    /// at least 0700: Lifeboat must still be able to move it into place.
    func finalizeDirectories() throws {
        defer { dropCache() }
        // Without a `./` entry the restored root would keep the staging directory's 0700 and
        // lock out the application reading it: give it the usual directory mode.
        if directories.position(of: "") == nil {
            guard fchmod(rootFD, 0o755) == 0 else { throw SystemCallError(call: "fchmod", errno: errno) }
        }
        try settle(early: false)
    }

    /// Records a directory waiting for its final mode, settling those waiting first when the
    /// budget is spent: `pendingLimit` more than the last settling kept, or 256 bytes of path
    /// for each (16 MiB by default).
    ///
    /// An archive that goes back and forth between more directories than that would have them
    /// taken up again as fast as they are settled: once a quarter of those recorded since the
    /// last settling were taken up again, the budget doubles instead.
    private func add(_ key: String, _ record: DirectoryRecord) throws {
        if directories.count >= settleAt.count || directories.byteCount >= settleAt.bytes {
            if takenUp * 4 > added, budget.count < 1 << 40 {
                budget = (budget.count * 2, budget.bytes * 2)
            } else {
                try settle(early: true)
            }
            // At least as many again as were kept: a settling that keeps most of them (a hostile
            // archive of directories nobody may open) costs each one once on average.
            settleAt = (directories.count + max(budget.count, directories.count),
                        directories.byteCount + max(budget.bytes, directories.byteCount))
            added = 0
            takenUp = 0
        }
        directories.add(key, record)
        added += 1
    }

    /// Gives the waiting directories their final modes and times, deepest first, and forgets
    /// them. Settling `early` (before the end) keeps waiting the root, whose mode must keep 0700
    /// meanwhile, and the directories whose owner could not open them (no `r` or no `x` for the
    /// owner): a later entry may still go in or through them, and without the privilege to
    /// override modes, nothing could.
    private func settle(early: Bool) throws {
        var ordered: [(depth: Int32, position: Int32)] = []
        ordered.reserveCapacity(directories.count)
        for position in directories.positions {
            if let record = directories.value(at: position) { ordered.append((Int32(record.depth), Int32(position))) }
        }
        ordered.sort { $0.depth > $1.depth }
        var kept = PathTable<DirectoryRecord>()
        for (_, position) in ordered {
            let (key, record) = (directories.key(at: Int(position)), directories.value(at: Int(position))!)
            if early, key.isEmpty || record.metadata.mode & 0o500 != 0o500 {
                kept.add(key, record)
                continue
            }
            // A cached descriptor is still the directory at `key`: only an empty directory is
            // ever removed, and `removeExisting` drops its descriptor then. It saves opening
            // the directory again.
            let cached = parents[key]
            // A directory a later entry replaced is gone: nothing to finalize.
            guard let fd = try cached ?? openIfPresent(key) else { continue }
            defer { if cached == nil { close(fd) } }
            let metadata = record.metadata
            if let owner = metadata.owner, fchown(fd, owner.uid, owner.gid) != 0 {
                throw SystemCallError(call: "fchown", errno: errno)
            }
            guard fchmod(fd, key.isEmpty ? metadata.mode | 0o700 : metadata.mode) == 0 else {
                throw SystemCallError(call: "fchmod", errno: errno)
            }
            if let mtime = metadata.mtime, futimens(fd, FileSystemCalls.times(mtime)) != 0 {
                throw SystemCallError(call: "futimens", errno: errno)
            }
        }
        guard early else { return }
        directories = kept
        settledEarly = true
    }

    /// Takes up again a directory settled before (`fd`): it waits again, with the mode and time
    /// it was given, writable by its owner meanwhile.
    private func takeUp(_ fd: Int32, key: String, depth: Int) throws {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SystemCallError(call: "fstat", errno: errno) }
        if st.st_mode & 0o700 != 0o700, fchmod(fd, (st.st_mode & 0o7777) | 0o700) != 0 {
            throw SystemCallError(call: "fchmod", errno: errno)
        }
        let metadata = Metadata(mode: st.st_mode & 0o7777, mtime: (Int64(st.st_mtim.tv_sec), st.st_mtim.tv_nsec), owner: nil)
        try add(key, DirectoryRecord(metadata: metadata, depth: depth))
        takenUp += 1
    }

    // MARK: - Paths

    private func openIfPresent(_ key: String) throws -> Int32? {
        if key.isEmpty { return try FileSystemCalls.reopen(rootFD) }
        do {
            return try FileSystemCalls.openDirectory(beneath: rootFD, key.split(separator: "/").map(String.init))
        } catch {
            if error.errno == ENOENT { return nil }
            throw error
        }
    }

    /// The parent directory of `path`, creating missing directories (archives need not list
    /// every parent). A parent that is not a directory, or a symbolic link, is a rule violation.
    private func parentFD(for path: EntryPath) throws -> Int32 {
        let parent = path.parent
        if parent.isRoot { return rootFD }
        let fd = try openParent(parent)
        if settledEarly, directories.position(of: parent.key) == nil {
            try takeUp(fd, key: parent.key, depth: parent.components.count)
        }
        return fd
    }

    private func openParent(_ parent: EntryPath) throws -> Int32 {
        if let fd = parents[parent.key] { return fd }
        if parents.count >= Self.maxCachedParents { dropCache() }
        let fd: Int32
        do {
            fd = try FileSystemCalls.openDirectory(beneath: rootFD, parent.components)
        } catch where error.errno == ENOENT {
            fd = try createDirectories(parent.components)
        } catch {
            throw Self.violation(for: error)
        }
        parents[parent.key] = fd
        return fd
    }

    /// Walks down from the root one component at a time, creating what is missing (0700 while
    /// extracting, 0755 at the end, as tar gives directories it creates implicitly).
    private func createDirectories(_ components: [String]) throws -> Int32 {
        var current = try FileSystemCalls.reopen(rootFD)
        var key = ""
        for (index, component) in components.enumerated() {
            let parentKey = key
            key = key.isEmpty ? component : key + "/" + component
            let flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
            var next = openat(current, component, flags)
            if next < 0, errno == ENOENT {
                do {
                    try makeImplied(component, key: key, depth: index + 1, in: current, parentKey: parentKey)
                } catch {
                    close(current)
                    throw error
                }
                next = openat(current, component, flags)
            }
            let e = errno
            close(current)
            guard next >= 0 else { throw Self.violation(for: SystemCallError(call: "openat", errno: e)) }
            current = next
        }
        return current
    }

    /// Makes the directory `component` (`key`) that an entry implies in `parent` (`parentKey`);
    /// a directory settled before that gets it is taken up again, its time changed.
    private func makeImplied(_ component: String, key: String, depth: Int, in parent: Int32, parentKey: String) throws {
        if settledEarly, !parentKey.isEmpty, directories.position(of: parentKey) == nil {
            try takeUp(parent, key: parentKey, depth: depth - 1)
        }
        if mkdirat(parent, component, 0o700) == 0 {
            if directories.position(of: key) == nil { try add(key, DirectoryRecord(metadata: Metadata(mode: 0o755), depth: depth)) }
        } else if errno != EEXIST {
            // A full disk, a quota: named as such, not as the directory missing after.
            throw SystemCallError(call: "mkdirat", errno: errno)
        }
    }

    /// Removes an earlier entry at `path` by unlinking it relative to its parent, so a later
    /// entry never writes through it. A non-empty directory is not removed.
    private func removeExisting(_ parent: Int32, _ path: EntryPath) throws {
        guard let st = try FileSystemCalls.lstat(parent, path.leaf) else { return }
        if FileSystemCalls.isDirectory(st) {
            if unlinkat(parent, path.leaf, AT_REMOVEDIR) != 0 {
                if errno == ENOTEMPTY || errno == EEXIST { throw RuleViolation(.replacesDirectory) }
                throw SystemCallError(call: "unlinkat", errno: errno)
            }
            directories.remove(path.key)
            let prefix = path.key + "/"
            for (key, fd) in parents where key == path.key || key.hasPrefix(prefix) {
                close(fd)
                parents[key] = nil
            }
        } else if unlinkat(parent, path.leaf, 0) != 0 {
            throw SystemCallError(call: "unlinkat", errno: errno)
        }
    }

    private func dropCache() {
        for fd in parents.values { close(fd) }
        parents.removeAll(keepingCapacity: true)
    }

    private static func violation(for error: SystemCallError) -> Error {
        switch error.errno {
        case ENOTDIR: return RuleViolation(.parentNotDirectory)
        case ELOOP, EXDEV: return RuleViolation(.throughSymlink)
        default: return error
        }
    }
}

extension StagingWriter.Metadata {
    init(mode: mode_t) {
        self.init(mode: mode, mtime: nil, owner: nil)
    }
}
