import CLinux
import Foundation

/// Removes a directory tree Lifeboat created (a staging directory), carefully: every call is
/// relative to a directory file descriptor, symbolic links are unlinked and never followed, and
/// the walk is iterative (a stack of paths), not recursive on depth.
enum TreeRemover {
    /// Subdirectories taken from one listing before descending; the directory is listed again
    /// after they are gone, so memory stays bounded for very wide trees.
    static let batch = 1024

    /// Removes the tree at `path` if it is still the directory (or other file) with `identity`
    /// (missing is fine), then, if asked, its parent when that became empty. For trees Lifeboat created or an
    /// operator asked to purge; never follows a link.
    /// - Parameter wholeOrNothing: look for a mount point inside first, and remove nothing when
    ///   there is one (a purge: an entry is removed whole or kept whole). Without it, a removal
    ///   stops at the mount it meets (Lifeboat's own staging).
    static func remove(path: String, ifIdentity identity: FileIdentity, removeEmptyParent: Bool,
                       wholeOrNothing: Bool = false) throws(ArchiveError) {
        let (parent, name): (String, String)
        do { (parent, name) = try StagingDirectory.split(path) } catch { throw ArchiveError(.io, "\(path) is not a removable path") }
        let parentFD = open(parent, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard parentFD >= 0 else {
            if errno == ENOENT { return }
            throw ArchiveError(.io, "cannot open \(parent)", errno: errno)
        }
        defer { close(parentFD) }
        do {
            try remove(name, in: parentFD, ifIdentity: identity, wholeOrNothing: wholeOrNothing)
        } catch {
            throw failure(removing: path, error, removedNothing: wholeOrNothing)
        }
        if removeEmptyParent { _ = rmdir(parent) }
    }

    /// Why `path` could not be removed, naming the mount point a removal refused to cross.
    static func failure(removing path: String, _ error: SystemCallError, removedNothing: Bool = false) -> ArchiveError {
        guard error.errno == EXDEV else {
            return ArchiveError(.io, "cannot remove \(path) (\(error.call))", errno: error.errno)
        }
        let mount = error.at.isEmpty ? "it holds a mount point" : "\(([path] + error.at).joined(separator: "/")) is a mount point"
        let removed = removedNothing ? "nothing of it was removed" : "what it removed before stays removed"
        return ArchiveError(.io, "cannot remove all of \(path): \(mount), and Lifeboat removes nothing across a mount "
                                 + "(\(removed)); unmount it", errno: EXDEV)
    }

    /// Empties and removes `name` inside `parentFD`, provided it is still the directory with
    /// `identity` (so that data swapped into its place is never touched).
    static func remove(_ name: String, in parentFD: Int32, ifIdentity identity: FileIdentity,
                       wholeOrNothing: Bool = false) throws(SystemCallError) {
        let rootFD = openat(parentFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard rootFD >= 0 else {
            guard errno == ENOTDIR || errno == ELOOP else {
                if errno == ENOENT { return }
                throw SystemCallError(call: "openat", errno: errno)
            }
            // Not a directory (a file or link an undelete set aside): unlinked only if it is the
            // very one (a directory swapped in has another identity).
            var st = stat()
            guard fstatat(parentFD, name, &st, AT_SYMLINK_NOFOLLOW) == 0, FileIdentity(st) == identity,
                  (st.st_mode & S_IFMT) != S_IFDIR else { return }
            if unlinkat(parentFD, name, 0) == 0 || errno == ENOENT { return }
            throw SystemCallError(call: "unlinkat", errno: errno)
        }
        defer { close(rootFD) }
        var st = stat()
        guard fstat(rootFD, &st) == 0 else { throw SystemCallError(call: "fstat", errno: errno) }
        guard FileIdentity(st) == identity else { return }
        if wholeOrNothing, let at = try mountPoint(inside: rootFD) {
            throw SystemCallError(call: "openat2", errno: EXDEV, at: at)
        }
        // Another process may still be writing in it (a host that lost the job to this one, its
        // late work refused): what it adds meanwhile is removed by a further pass, a few at most.
        for pass in 1...passes {
            try empty(rootFD)
            if unlinkat(parentFD, name, AT_REMOVEDIR) == 0 || errno == ENOENT { return }
            guard errno == ENOTEMPTY, pass < passes else { throw SystemCallError(call: "unlinkat", errno: errno) }
        }
    }

    /// The first mount point inside the directory at `path` (not followed if a link), as
    /// components below it, or nil (nil too when it is not a directory).
    static func mountPoint(at path: String) throws(ArchiveError) -> [String]? {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOTDIR || errno == ELOOP || errno == ENOENT { return nil }
            throw ArchiveError(.io, "cannot open \(path)", errno: errno)
        }
        defer { close(fd) }
        do { return try mountPoint(inside: fd) } catch { throw failure(removing: path, error, removedNothing: true) }
    }

    /// The first mount point inside the directory `rootFD`, as components below it, or nil. A
    /// directory that cannot be looked into (its mode shuts a daemon that is not root out) is
    /// passed over: the removal meets any mount there and stops at it.
    static func mountPoint(inside rootFD: Int32) throws(SystemCallError) -> [String]? {
        var stack: [[String]] = [[]]
        while let components = stack.popLast() {
            let fd: Int32
            do {
                fd = try FileSystemCalls.openDirectory(beneath: rootFD, components)
            } catch where error.errno == EXDEV {
                return components
            } catch where (error.errno == ENOENT || error.errno == EACCES) && !components.isEmpty {
                continue
            }
            defer { close(fd) }
            for name in try subdirectories(fd) { stack.append(components + [name]) }
        }
        return nil
    }

    /// The names of the subdirectories of `fd` (symbolic links are not directories).
    private static func subdirectories(_ fd: Int32) throws(SystemCallError) -> [String] {
        var names: [String] = []
        _ = try eachEntry(of: fd) { name, isDirectory in
            if isDirectory { names.append(name) }
            return true
        }
        return names
    }

    /// Passes over a tree that something else keeps filling before giving up.
    static let passes = 5

    /// Removes everything inside the directory `rootFD`. A subdirectory that something else
    /// removed meanwhile is skipped; one it filled meanwhile is left for the next pass.
    static func empty(_ rootFD: Int32) throws(SystemCallError) {
        var stack: [[String]] = [[]]
        while let components = stack.popLast() {
            let fd: Int32
            do {
                fd = try openForRemoval(beneath: rootFD, components)
            } catch where error.errno == ENOENT && !components.isEmpty {
                continue
            } catch where error.errno == EXDEV {
                throw SystemCallError(call: error.call, errno: EXDEV, at: components)
            }
            // Final modes may have made it read-only; it is ours to remove.
            _ = fchmod(fd, 0o700)
            let (subdirectories, complete) = try removeNonDirectories(fd)
            if subdirectories.isEmpty, complete {
                close(fd)
                if !components.isEmpty {
                    let parent: Int32
                    do {
                        parent = try FileSystemCalls.openDirectory(beneath: rootFD, Array(components.dropLast()))
                    } catch where error.errno == ENOENT {
                        continue
                    }
                    let ok = unlinkat(parent, components[components.count - 1], AT_REMOVEDIR) == 0 || errno == ENOENT || errno == ENOTEMPTY
                    let e = errno
                    close(parent)
                    guard ok else { throw SystemCallError(call: "unlinkat", errno: e) }
                }
                continue
            }
            close(fd)
            stack.append(components)  // listed again once its subdirectories are gone
            for name in subdirectories { stack.append(components + [name]) }
        }
    }

    /// Opens a directory of the tree to empty it. One whose final mode shuts its owner out (an
    /// archive's 000 or 0311 directory) cannot be opened for listing unless Lifeboat runs as
    /// root: it is given 0700 first, through a descriptor of that very directory (`O_PATH`,
    /// never following a link), and opened again.
    private static func openForRemoval(beneath rootFD: Int32, _ components: [String]) throws(SystemCallError) -> Int32 {
        do {
            return try FileSystemCalls.openDirectory(beneath: rootFD, components)
        } catch where error.errno == EACCES && !components.isEmpty {
            let parent = try FileSystemCalls.openDirectory(beneath: rootFD, Array(components.dropLast()))
            let rc = lifeboat_chmod_directory_at(parent, components[components.count - 1], 0o700)
            let e = errno
            close(parent)
            guard rc == 0 else { throw SystemCallError(call: "chmod", errno: e) }
            return try FileSystemCalls.openDirectory(beneath: rootFD, components)
        }
    }

    /// Unlinks the non-directories in `fd` and returns up to `batch` subdirectory names, and
    /// whether the listing was complete.
    private static func removeNonDirectories(_ fd: Int32) throws(SystemCallError) -> ([String], Bool) {
        var subdirectories: [String] = []
        let complete = try eachEntry(of: fd) { name, isDirectory throws(SystemCallError) in
            if isDirectory {
                subdirectories.append(name)
                return subdirectories.count < batch
            }
            if unlinkat(fd, name, 0) != 0, errno != ENOENT { throw SystemCallError(call: "unlinkat", errno: errno) }
            return true
        }
        return (subdirectories, complete)
    }

    /// Calls `body` with each entry of the directory `fd` (not `.` and `..`) and whether it is a
    /// directory (a symbolic link is not), until it returns false; returns whether the listing
    /// went to its end.
    private static func eachEntry(of fd: Int32, _ body: (String, Bool) throws(SystemCallError) -> Bool) throws(SystemCallError) -> Bool {
        let listFD = dup(fd)
        guard listFD >= 0, let dir = fdopendir(listFD) else {
            let e = errno
            if listFD >= 0 { close(listFD) }
            throw SystemCallError(call: "fdopendir", errno: e)
        }
        defer { closedir(dir) }
        while true {
            errno = 0
            guard let entry = readdir(dir) else {
                if errno != 0 { throw SystemCallError(call: "readdir", errno: errno) }
                return true
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            var isDirectory = entry.pointee.d_type == UInt8(DT_DIR)
            if entry.pointee.d_type == UInt8(DT_UNKNOWN) {
                isDirectory = (try FileSystemCalls.lstat(fd, name)).map(FileSystemCalls.isDirectory) ?? false
            }
            guard try body(name, isDirectory) else { return false }
        }
    }
}
