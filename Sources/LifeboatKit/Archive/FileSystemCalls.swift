import CLinux
import Foundation

/// A failed system call: its name and errno.
struct SystemCallError: Error {
    var call: String
    var errno: Int32
    /// Where below the tree's root it happened, when known (the mount point a walk refused to cross).
    var at: [String] = []
}

/// Thin wrappers over the *at system calls the extractor, the remover and the commit use.
/// Everything is relative to directory file descriptors, never following symbolic links.
enum FileSystemCalls {
    /// Whether the open directory `fd` is the one at the real path `path`, reached from `/`
    /// without following any symbolic link (one swapped in on the way fails the walk).
    static func isDirectory(_ fd: Int32, reachedWithoutLinksAt path: String) -> Bool {
        var current = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard current >= 0 else { return false }
        for component in path.split(separator: "/") {
            let next = openat(current, String(component), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            close(current)
            guard next >= 0 else { return false }
            current = next
        }
        defer { close(current) }
        var a = stat(), b = stat()
        return fstat(current, &a) == 0 && fstat(fd, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino
    }

    /// Why the directory `fd`, opened at `parent`, is not the one checked at the real path
    /// `checked` when the job started; nil when it is (or when nothing was checked).
    static func changedSinceCheck(_ fd: Int32, parent: String, checked: String?) -> String? {
        guard let checked, !isDirectory(fd, reachedWithoutLinksAt: checked) else { return nil }
        return "the destination's parent \(parent) no longer leads to \(checked), where it led when the job started (a symbolic link on the way was changed)"
    }

    // Not imported from the C headers: they are macros built from shifts.
    static let utimeOmit = 1_073_741_822

    /// Whether `openat2(2)` works here (Linux 5.6+, not blocked by a seccomp filter).
    static let hasOpenat2: Bool = {
        let fd = lifeboat_openat2(AT_FDCWD, ".", UInt64(O_RDONLY | O_DIRECTORY | O_CLOEXEC), 0, UInt64(LIFEBOAT_RESOLVE_BENEATH))
        if fd >= 0 {
            close(fd)
            return true
        }
        return errno != ENOSYS && errno != EPERM
    }()

    /// The process umask, read from /proc without changing it (`umask(2)` can only be read by
    /// setting it, which would race with other threads). Nil when unknown.
    static let processUmask: mode_t? = {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("Umask:") {
            return mode_t(line.dropFirst(6).trimmingCharacters(in: .whitespaces), radix: 8)
        }
        return nil
    }()

    /// Opens the directory at `relativePath` beneath `dirfd` without following any symbolic link,
    /// without leaving `dirfd`'s tree and without crossing into another mount (a bind mount
    /// someone put inside a tree Lifeboat removes or writes is not part of it: EXDEV).
    /// `relativePath` must be validated (no `..`).
    static func openDirectory(beneath dirfd: Int32, _ components: [String]) throws(SystemCallError) -> Int32 {
        let flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
        if hasOpenat2, !components.isEmpty {
            let resolve = UInt64(LIFEBOAT_RESOLVE_BENEATH | LIFEBOAT_RESOLVE_NO_SYMLINKS | LIFEBOAT_RESOLVE_NO_MAGICLINKS | LIFEBOAT_RESOLVE_NO_XDEV)
            while true {
                let fd = lifeboat_openat2(dirfd, components.joined(separator: "/"), UInt64(flags), 0, resolve)
                if fd >= 0 { return fd }
                if errno == EINTR || errno == EAGAIN { continue }
                throw SystemCallError(call: "openat2", errno: errno)
            }
        }
        // Fallback: one component at a time, each with O_NOFOLLOW, on the same device.
        var current = try reopen(dirfd)
        var st = stat()
        guard fstat(current, &st) == 0 else { close(current); throw SystemCallError(call: "fstat", errno: errno) }
        let device = st.st_dev
        for component in components {
            let next = openat(current, component, flags)
            let e = errno
            close(current)
            guard next >= 0 else { throw SystemCallError(call: "openat", errno: e) }
            guard fstat(next, &st) == 0, st.st_dev == device else { close(next); throw SystemCallError(call: "openat", errno: EXDEV) }
            current = next
        }
        return current
    }

    static func reopen(_ dirfd: Int32) throws(SystemCallError) -> Int32 {
        let fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemCallError(call: "openat", errno: errno) }
        return fd
    }

    /// `fstatat` without following a final symbolic link; nil when nothing is there.
    static func lstat(_ dirfd: Int32, _ name: String) throws(SystemCallError) -> stat? {
        var st = stat()
        if fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 { return st }
        if errno == ENOENT { return nil }
        throw SystemCallError(call: "fstatat", errno: errno)
    }

    static func isDirectory(_ st: stat) -> Bool { (st.st_mode & S_IFMT) == S_IFDIR }
    static func isRegular(_ st: stat) -> Bool { (st.st_mode & S_IFMT) == S_IFREG }

    /// Writes all of `data`, retrying short writes and EINTR.
    static func writeAll(_ fd: Int32, _ data: UnsafeRawBufferPointer) throws(SystemCallError) {
        guard var base = data.baseAddress else { return }
        var remaining = data.count
        while remaining > 0 {
            let n = write(fd, base, remaining)
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemCallError(call: "write", errno: errno)
            }
            remaining -= n
            base += n
        }
    }

    /// fsync, retrying EINTR.
    static func fsync(_ fd: Int32) throws(SystemCallError) {
        while Foundation.fsync(fd) != 0 {
            if errno == EINTR { continue }
            throw SystemCallError(call: "fsync", errno: errno)
        }
    }

    /// The timespec pair for futimens/utimensat that leaves atime alone and sets mtime.
    static func times(_ mtime: (seconds: Int64, nanoseconds: Int)) -> [timespec] {
        [timespec(tv_sec: 0, tv_nsec: utimeOmit), timespec(tv_sec: Int(mtime.seconds), tv_nsec: mtime.nanoseconds)]
    }
}
