import Foundation

/// A fresh directory on the destination's filesystem that one restore extracts into before it
/// commits: `<destination's parent>/.lifeboat-staging/<name>.<random>`.
///
/// After a crash, a leftover staging directory is either a partial extraction or — if the crash
/// came between the swap and the quarantine step of `commitStaging` — the data the commit
/// displaced. Compare its `FileIdentity` with the one recorded before the commit to tell which.
public struct StagingDirectory: Sendable {
    /// The staging directory's full path.
    public let path: String
    /// Where the restored data goes.
    public let destination: String
    /// The identity of the staging directory when it was created.
    public let identity: FileIdentity
    /// `<destination's parent>/.lifeboat-staging`.
    let area: String
    /// The last component of `path`.
    let name: String
    /// The destination's parent, open from creation until `withStagingDirectory` ends: the
    /// directory staging was made in, wherever it is moved meanwhile (so the staging directory is
    /// removed from there, and a commit can tell that the parent's path leads elsewhere now).
    let parentFD: Int32
    /// Its identity when staging was made in it.
    let parentIdentity: FileIdentity
    /// The hold on the destination other processes see, taken before staging was made.
    let hold: DestinationHold

    public static let areaName = ".lifeboat-staging"
}

/// Runs `body` with a fresh staging directory next to `destination` and removes it afterwards,
/// whether `body` returned, threw or was cancelled — unless it was committed (then it is the
/// destination) or something else now occupies its path (the data a commit displaced is never
/// removed). The destination's missing parents are created (0755).
///
/// - Parameters:
///   - name: a recognisable prefix, e.g. a job id (one path component).
///   - noSymlinksBelow: a directory above the destination below which no symbolic link is
///     followed while the parents are created or opened (an exercise's sandbox root); a link
///     there is an error naming it.
///   - parentResolvesTo: the real path the destination's parent had when it was checked (a
///     restore's job start); a parent that resolves elsewhere now (a symbolic link on the way
///     swapped since) is refused, so nothing is staged, nor later committed, anywhere else. The
///     commit then works in the directory staging was made in (it finds staging there by identity).
///   - reserve: told the staging directory's path before it is created, so a caller can record
///     it durably first: a process killed in between then leaves nothing it cannot name.
///   - proceedIfHeldElsewhere: when another process holds the destination (`DestinationHold`),
///     told so, and staging goes on without the hold: for hosts sharing a ledger, where the job's
///     claim decides who works it (a host that lost the claim may hold on until it notices, or
///     while it is frozen). nil: `DestinationHeldElsewhere` is thrown, nothing staged.
public func withStagingDirectory<T>(
    for destination: String, name: String, noSymlinksBelow root: String? = nil, parentResolvesTo checked: String? = nil,
    reserve: ((String) async throws -> Void)? = nil, proceedIfHeldElsewhere: (() -> Void)? = nil,
    _ body: (StagingDirectory) async throws -> T
) async throws -> T {
    let staging = try await StagingDirectory.create(for: destination, name: name, noSymlinksBelow: root, parentResolvesTo: checked,
                                                    reserve: reserve, proceedIfHeldElsewhere: proceedIfHeldElsewhere)
    defer { staging.leave() }
    do {
        let result = try await body(staging)
        // Once the body succeeded (and perhaps committed), failing to tidy up must not turn its
        // success into a failure; a leftover is recognisable by its identity (see above).
        try? staging.discard()
        return result
    } catch {
        try? staging.discard()
        throw error
    }
}

extension StagingDirectory {
    static func create(for destination: String, name: String, noSymlinksBelow root: String? = nil, parentResolvesTo checked: String? = nil,
                       reserve: ((String) async throws -> Void)? = nil,
                       proceedIfHeldElsewhere: (() -> Void)? = nil) async throws -> StagingDirectory {
        guard Self.isComponent(name) else {
            throw ArchiveError(.io, "the staging name \(String(reflecting: name)) is not a single path component")
        }
        let (parent, destinationName) = try Self.split(destination)
        let area = parent == "/" ? "/" + areaName : parent + "/" + areaName
        // Another job may remove an empty staging area at any moment; try again if it did.
        for _ in 0..<8 {
            let parentFD = try Self.openParent(parent, noSymlinksBelow: root)
            var kept = false
            defer { if !kept { close(parentFD) } }
            if let why = FileSystemCalls.changedSinceCheck(parentFD, parent: parent, checked: checked) {
                throw ArchiveError(.io, "\(why); nothing was staged or moved")
            }
            let areaFD = try OwnDirectory.enter(areaName, in: parentFD, path: area, durable: false)
            defer { close(areaFD) }
            let hold: DestinationHold
            if let taken = try DestinationHold.take(destinationName, in: areaFD, area: area) {
                hold = taken
            } else {
                guard let proceedIfHeldElsewhere else { throw DestinationHeldElsewhere(destination: destination) }
                proceedIfHeldElsewhere()
                hold = .none
            }
            var held = true
            defer { if held { hold.release(in: areaFD) } }
            let unique = "\(name).\(String(UInt64.random(in: 0...UInt64.max), radix: 16))"
            let path = area + "/" + unique
            do {
                try await reserve?(path)
            } catch {
                // Nothing was staged (the name was not recorded: a claim lost, a cancel): the
                // area goes again if it is empty, as when a staging directory is discarded.
                hold.release(in: nil)
                held = false
                Self.removeAreaIfEmpty(in: parentFD)
                throw error
            }
            if mkdirat(areaFD, unique, 0o700) == 0 {
                var st = stat(), parentStat = stat()
                guard fstatat(areaFD, unique, &st, AT_SYMLINK_NOFOLLOW) == 0, fstat(parentFD, &parentStat) == 0 else {
                    throw ArchiveError(.io, "cannot inspect the staging directory \(path)", errno: errno)
                }
                kept = true
                held = false
                return StagingDirectory(path: path, destination: destination, identity: FileIdentity(st), area: area, name: unique,
                                        parentFD: parentFD, parentIdentity: FileIdentity(parentStat), hold: hold)
            }
            if errno != ENOENT && errno != EEXIST {
                throw ArchiveError(.io, "cannot create the staging directory \(path)", errno: errno)
            }
        }
        throw ArchiveError(.io, "cannot create a staging directory in \(area) (it keeps disappearing)")
    }

    /// Opens (creating what is missing) the destination's parent directory. Below `root`, every
    /// component is created and opened without following symbolic links.
    static func openParent(_ parent: String, noSymlinksBelow root: String?) throws -> Int32 {
        guard let root, ResolvedPath.isInside(parent, root) else {
            try Self.makeDirectories(parent, mode: 0o755)
            let fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { throw ArchiveError(.io, "cannot open \(parent)", errno: errno) }
            return fd
        }
        try Self.makeDirectories(root, mode: 0o755)
        var fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw ArchiveError(.io, "cannot open \(root)", errno: errno) }
        var path = root == "/" ? "" : root
        for component in parent.dropFirst(root == "/" ? 0 : root.count).split(separator: "/").map(String.init) {
            path += "/" + component
            // A directory made here needs no sync of its own: the commit's `syncfs`, filesystem
            // wide, makes it durable before anything is recorded or renamed into it.
            if mkdirat(fd, component, 0o755) != 0, errno != EEXIST {
                let e = errno
                close(fd)
                throw ArchiveError(.io, "cannot create the directory \(path)", errno: e)
            }
            let next = openat(fd, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let e = errno
            close(fd)
            guard next >= 0 else {
                if e == ELOOP || e == ENOTDIR {
                    throw ArchiveError(.io, "\(path) is \(FileSystem.lstatKind(path) == .symlink ? "a symbolic link" : "not a directory"); below \(root) Lifeboat follows no symbolic link when it creates an exercise's sandbox paths, so that an exercise can never write into production: remove or move it")
                }
                throw ArchiveError(.io, "cannot open \(path)", errno: e)
            }
            fd = next
        }
        return fd
    }

    /// Removes the staging directory if it is still the one created: in the directory staging was
    /// made in, even if something moved it since.
    func discard() throws {
        let areaFD = openat(parentFD, Self.areaName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard areaFD >= 0 else {
            if errno == ENOENT { return }
            throw ArchiveError(.io, "cannot open \(area)", errno: errno)
        }
        defer { close(areaFD) }
        do {
            try TreeRemover.remove(name, in: areaFD, ifIdentity: identity)
        } catch {
            throw TreeRemover.failure(removing: path, error)
        }
    }

    /// Lets go of the destination's hold, then removes the staging area if it is empty, and
    /// closes the parent: the end of `withStagingDirectory`, once staging is committed or discarded.
    func leave() {
        hold.release(in: nil)
        Self.removeAreaIfEmpty(in: parentFD)
        close(parentFD)
    }

    /// Removes the staging area in the directory open at `parentFD` if nothing is staged there
    /// and no process holds a destination of it (a hold file nobody holds goes with it).
    /// Fails harmlessly while other jobs stage there.
    static func removeAreaIfEmpty(in parentFD: Int32) {
        let areaFD = openat(parentFD, areaName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard areaFD >= 0 else { return }
        DestinationHold.removeIfUnheld(in: areaFD)
        close(areaFD)
        _ = unlinkat(parentFD, areaName, AT_REMOVEDIR)
    }

    /// Whether a process holds a destination beside the staging area at `area` now, so that
    /// what is staged there may be in use (`DestinationHold`).
    public static func areaInUse(_ area: String) -> Bool { DestinationHold.anyHeld(inArea: area) }

    /// `removeAreaIfEmpty(in:)` for the area at `area` (its path).
    static func removeAreaIfEmpty(path area: String) {
        guard let (parent, name) = try? split(area), name == areaName else { return }
        let parentFD = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard parentFD >= 0 else { return }
        removeAreaIfEmpty(in: parentFD)
        close(parentFD)
    }

    /// Splits an absolute or relative path into its parent and last component.
    /// (On bytes: it runs for every ancestor of every destination a run holds.)
    public static func split(_ path: String) throws -> (parent: String, name: String) {
        let slash = UInt8(ascii: "/")
        var trimmed = Substring(path).utf8[...]
        while trimmed.count > 1, trimmed.last == slash { trimmed = trimmed.dropLast() }
        guard let cut = trimmed.lastIndex(of: slash) else {
            let name = String(Substring(trimmed))
            guard isComponent(name) else { throw ArchiveError(.io, "\(String(reflecting: path)) is not a usable destination") }
            return (".", name)
        }
        let name = String(Substring(trimmed[trimmed.index(after: cut)...]))
        let parent = cut == trimmed.startIndex ? "/" : String(Substring(trimmed[..<cut]))
        guard isComponent(name) else { throw ArchiveError(.io, "\(String(reflecting: path)) is not a usable destination") }
        return (parent, name)
    }

    static func isComponent(_ name: String) -> Bool {
        let bytes = name.utf8
        return !bytes.isEmpty && name != "." && name != ".." && !bytes.contains(UInt8(ascii: "/")) && !bytes.contains(0)
            && bytes.count <= EntryPath.maxComponentBytes
    }

    /// `mkdir -p`.
    static func makeDirectories(_ path: String, mode: mode_t) throws {
        var st = stat()
        if stat(path, &st) == 0 {
            guard FileSystemCalls.isDirectory(st) else { throw ArchiveError(.io, "\(path) is not a directory") }
            return
        }
        var missing: [String] = []
        var current = path
        while stat(current, &st) != 0 {
            guard errno == ENOENT else { throw ArchiveError(.io, "cannot inspect \(current)", errno: errno) }
            missing.append(current)
            let (parent, _) = try split(current)
            current = parent
        }
        // No sync of their own: they hold staging, and nothing is committed before the staging
        // tree's `syncfs`, which makes them durable with it (a crash before leaves at most an
        // empty directory Lifeboat made).
        for directory in missing.reversed() {
            if mkdir(directory, mode) != 0, errno != EEXIST {
                throw ArchiveError(.io, "cannot create the directory \(directory)", errno: errno)
            }
        }
    }
}

/// Lifeboat's own directories beside a destination (`.lifeboat-staging`, `.lifeboat-quarantine`):
/// created 0700 and opened without following a symbolic link, so that a link planted there can
/// never redirect staging or displaced data elsewhere.
enum OwnDirectory {
    /// Opens `name` inside `parentFD`, creating it if missing (`path` names it in errors).
    /// - Parameter durable: sync the parent after creating it (quarantine must survive a crash;
    ///   staging needs no sync of its own: the commit's `syncfs` covers it).
    static func enter(_ name: String, in parentFD: Int32, path: String, create: Bool = true, durable: Bool = true) throws -> Int32 {
        if create, mkdirat(parentFD, name, 0o700) == 0 {
            if durable, fsync(parentFD) != 0 { throw ArchiveError(.io, "cannot sync the directory holding \(path)", errno: errno) }
        } else if create, errno != EEXIST {
            throw ArchiveError(.io, "cannot create \(path)", errno: errno)
        }
        let fd = openat(parentFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            if e == ELOOP || e == ENOTDIR {
                var st = stat()
                let link = fstatat(parentFD, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && (st.st_mode & S_IFMT) == S_IFLNK
                throw ArchiveError(.io, "\(path) is \(link ? "a symbolic link" : "not a directory"); Lifeboat's own directories are never entered through a symbolic link: move it away and try again")
            }
            throw ArchiveError(.io, "cannot open \(path)", errno: e)
        }
        return fd
    }

    /// Opens `path`'s parent (following links, as an operator's layout may) and then `path`'s last
    /// component as one of Lifeboat's own directories.
    static func enter(path: String, create: Bool = true) throws -> Int32 {
        let (parent, name) = try StagingDirectory.split(path)
        let parentFD = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard parentFD >= 0 else { throw ArchiveError(.io, "cannot open \(parent)", errno: errno) }
        defer { close(parentFD) }
        return try enter(name, in: parentFD, path: path, create: create)
    }
}
