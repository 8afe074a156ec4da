import Foundation
import Testing
@testable import LifeboatKit

/// The differential corpus (issue #15): archives written by other tools, each extracted by GNU
/// tar — the reference — and by Lifeboat, and the two trees compared.
///
/// Writers archive source trees built here (`CorpusTree`); hand-made archives (`HandMadeArchive`)
/// cover what no installed writer produces any more (old checksums, V7 directories, vendor
/// types…). A writer missing on the machine skips its cases with the package to install, except
/// under `CI=true`, where it is a failure.
enum CorpusWriter: String, Sendable, CaseIterable {
    case gnuTar = "GNU tar"
    case bsdtar
    case busybox = "busybox tar"
    case python = "Python tarfile"
    case perl = "Perl Archive::Tar"
    case handMade = "hand-made"

    /// The program that writes (nil: Lifeboat's test builder).
    var program: String? {
        switch self {
        case .gnuTar: return "tar"
        case .bsdtar: return "bsdtar"
        case .busybox: return "busybox"
        case .python: return "python3"
        case .perl: return "ptar"
        case .handMade: return nil
        }
    }

    /// The Debian package that provides it.
    var package: String {
        switch self {
        case .gnuTar: return "tar"
        case .bsdtar: return "libarchive-tools"
        case .busybox: return "busybox"
        case .python: return "python3"
        case .perl: return "perl"
        case .handMade: return ""
        }
    }

    var isAvailable: Bool { program.map { CorpusWriter.which($0) != nil } ?? true }

    /// Skipped when missing, except under CI, where the test runs and fails saying what to install.
    var enabledHere: Bool { isAvailable || ProcessInfo.processInfo.environment["CI"] == "true" }

    var missingMessage: Comment {
        "\(rawValue) is not installed: apt-get install \(package) (its corpus cases are skipped)"
    }

    static func which(_ program: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(dir)/\(program)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }
}

/// One archive of the corpus: a writer, how it was asked to write, and the tree it archived.
struct WriterCase: Sendable, CustomTestStringConvertible {
    var writer: CorpusWriter
    /// The format (`--format` for the tars, the tarfile format for Python).
    var format: String
    var tree: CorpusTree
    /// More arguments for the writer.
    var options: [String] = []

    var testDescription: String {
        ([writer.rawValue, format] + options + [tree.rawValue]).filter { !$0.isEmpty }.joined(separator: " ")
    }

    /// Writes the archive of `source` to `archive` (uncompressed).
    func write(source: String, archive: String) throws -> (status: Int32, output: String) {
        switch writer {
        case .gnuTar:
            return try runProcess("/usr/bin/env", ["tar", "--format=\(format)"] + options + ["-cf", archive, "-C", source, "."])
        case .bsdtar:
            return try runProcess("/usr/bin/env", ["bsdtar", "--format=\(format)"] + options + ["-cf", archive, "-C", source, "."])
        case .busybox:
            return try runProcess("/usr/bin/env", ["busybox", "tar", "-cf", archive, "-C", source, "."])
        case .python:
            return try runProcess("/usr/bin/env", ["python3", "-c", Self.pythonWriter, archive, source, format] + options)
        case .perl:
            return try runProcess("/usr/bin/env", ["ptar", "-c", "-f", archive, "."], cwd: source)
        case .handMade:
            fatalError("hand-made archives are built by HandMadeArchive")
        }
    }

    /// Python's tarfile in one of its formats; `huge-pax` adds a 3 MiB pax record to one file and a
    /// global header, as long attributes and comments do.
    static let pythonWriter = """
        import sys, tarfile
        archive, source, fmt = sys.argv[1:4]
        formats = {"ustar": tarfile.USTAR_FORMAT, "gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT}
        huge = "huge-pax" in sys.argv[4:]
        def annotate(info):
            if huge and info.name.endswith("f.txt"):
                info.pax_headers = {"comment": "x" * (3 << 20)}
            return info
        glob = {"comment": "written by the Lifeboat corpus"} if huge else {}
        with tarfile.open(archive, "w", format=formats[fmt], pax_headers=glob) as t:
            t.add(source, arcname=".", filter=annotate)
        """

    static func gnuTar(_ tree: CorpusTree, formats: [String], _ options: [String] = []) -> [WriterCase] {
        formats.map { WriterCase(writer: .gnuTar, format: $0, tree: tree, options: options) }
    }

    /// Every writer case, grouped by writer, each with the trees its formats can hold.
    static func cases(for writer: CorpusWriter) -> [WriterCase] {
        switch writer {
        case .gnuTar:
            let all = ["v7", "oldgnu", "gnu", "ustar", "posix"]
            return gnuTar(.basic, formats: all) + gnuTar(.unicode, formats: all)
                + gnuTar(.longNames, formats: ["oldgnu", "gnu", "posix"]) + gnuTar(.ustarNames, formats: ["ustar", "posix"])
                + gnuTar(.numbers, formats: ["oldgnu", "gnu", "posix"])
                + gnuTar(.sparse, formats: ["oldgnu", "gnu"], ["--sparse"])
                + ["0.0", "0.1", "1.0"].map { WriterCase(writer: .gnuTar, format: "posix", tree: .sparse, options: ["--sparse", "--sparse-version=\($0)"]) }
                + gnuTar(.basic, formats: ["gnu", "posix"], ["--incremental"])
                + gnuTar(.basic, formats: ["oldgnu", "gnu"], ["--label=Backup 2009-03-01"])
                + gnuTar(.basic, formats: ["posix"], ["--pax-option=exthdr.name=%d/PaxHeaders/%f,atime:=0", "--xattrs", "--acls"])
        case .bsdtar:
            let cases: [(String, [CorpusTree])] = [
                ("ustar", [.basic, .unicode, .ustarNames]), ("pax", [.basic, .unicode, .longNames, .numbers, .sparse]),
                ("gnutar", [.basic, .unicode, .longNames]), ("v7", [.basic, .unicode]), ("paxr", [.basic, .longNames]),
            ]
            return cases.flatMap { format, trees in trees.map { WriterCase(writer: .bsdtar, format: format, tree: $0) } }
        case .busybox:
            return [.basic, .unicode, .longNames].map { WriterCase(writer: .busybox, format: "", tree: $0) }
        case .python:
            let cases: [(String, [CorpusTree])] = [
                ("ustar", [.basic, .unicode, .ustarNames]), ("gnu", [.basic, .unicode, .longNames, .numbers]),
                ("pax", [.basic, .unicode, .longNames, .numbers]),
            ]
            return cases.flatMap { format, trees in trees.map { WriterCase(writer: .python, format: format, tree: $0) } }
                + [WriterCase(writer: .python, format: "pax", tree: .basic, options: ["huge-pax"])]
        case .perl:
            return [.basic, .unicode, .ustarNames].map { WriterCase(writer: .perl, format: "", tree: $0) }
        case .handMade:
            return []
        }
    }
}

/// The source trees the writers archive. Each holds what an unprivileged GNU tar extracts safely:
/// regular files, directories, links inside the tree, UTF-8 names.
enum CorpusTree: String, Sendable, CaseIterable {
    /// Files of every mode (setuid and group-writable ones too), empty files and directories, a
    /// read-only directory, binary data, names with spaces, symbolic and hard links.
    case basic
    /// Names in several scripts, NFD and emoji (each path under 100 bytes).
    case unicode
    /// Names and link targets past ustar's fields: 150 to 400 bytes, one 200-byte component.
    case longNames
    /// Long names that ustar holds by splitting them into prefix and name.
    case ustarNames
    /// Sparse files: holes inside, at the start, at the end, a file that is all hole, many regions.
    case sparse
    /// Values octal fields cannot hold: times before 1970 and after 2242, ids above 2097151.
    case numbers

    func build(at root: String) throws {
        let tree = TreeBuilder(root: root)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        switch self {
        case .basic:
            try tree.file("dir/f.txt", "hello\n")
            try tree.file("dir/sub/deep.txt", "deep\n", mode: 0o640)
            try tree.file("exec.sh", "#!/bin/sh\necho hi\n", mode: 0o755)
            try tree.file("private", "secret\n", mode: 0o600)
            try tree.file("empty-file", "")
            try tree.file("bin.dat", bytes: TreeBuilder.random(200_000))
            try tree.file("suid", "setuid\n", mode: 0o4755)
            try tree.file("group-write", "shared\n", mode: 0o664)
            try tree.file("with space/a file.txt", "spaces\n")
            try tree.directory("empty", mode: 0o700)
            try tree.file("ro/f", "read-only\n", mode: 0o444)
            try tree.symlink("link-file", to: "dir/f.txt")
            try tree.symlink("dir/sub/up", to: "../f.txt")
            try tree.symlink("link-dir", to: "dir")
            try tree.symlink("dangling", to: "no-such-file")
            try tree.hardLink("hard", to: "dir/f.txt")
            try tree.hardLink("dir/hard-private", to: "private")
            try tree.mode("dir/sub", 0o750)
            try tree.mode("ro", 0o555)
        case .unicode:
            try tree.file("ünïcödé ✓/名前.txt", "日本語\n")
            try tree.file("emoji 🚀.txt", "rocket\n")
            try tree.file("cafe\u{301}.txt", "NFD\n")
            try tree.file("Ελληνικά/файл.txt", "mixed\n")
            try tree.symlink("link-ü", to: "ünïcödé ✓/名前.txt")
            try tree.hardLink("hard-ü", to: "emoji 🚀.txt")
        case .longNames:
            let c50 = "a-fifty-byte-long-directory-name-component-abcdefg"
            try tree.file("\(c50)/\(c50)/a-file-name-that-makes-the-path-150-bytes.txt", "150\n")
            try tree.file(Array(repeating: c50, count: 4).joined(separator: "/") + "/250.txt", "250\n")
            try tree.file(Array(repeating: c50, count: 8).joined(separator: "/") + "/400.txt", "400\n")
            try tree.file(String(repeating: "n", count: 200), "one 200-byte component\n")
            try tree.file(String(repeating: "長い", count: 40) + ".txt", "240 bytes of UTF-8\n")
            try tree.symlink("long-link", to: "\(c50)/\(c50)/a-file-name-that-makes-the-path-150-bytes.txt")
            try tree.hardLink("\(c50)/\(c50)/hard-link-with-a-long-name-and-a-long-target", to: Array(repeating: c50, count: 4).joined(separator: "/") + "/250.txt")
        case .ustarNames:
            let c50 = "a-fifty-byte-long-directory-name-component-abcdefg"
            try tree.file("\(c50)/\(c50)/\(c50)/a-name-under-a-153-byte-prefix.txt", "split\n")
            try tree.file("\(c50)/\(String(repeating: "m", count: 99))", "99-byte name\n")
            try tree.symlink("\(c50)/\(c50)/link", to: "../\(c50)")   // ustar keeps link targets to 100 bytes
        case .sparse:
            try tree.sparse("holes", size: 4 << 20, [(0, 5000), (1 << 20, 100), (3 << 20, 7000)])
            try tree.sparse("all-hole", size: 2 << 20, [])
            try tree.sparse("tail-hole", size: 1 << 20, [(0, 4096)])
            try tree.sparse("head-hole", size: 600 << 10, [(512 << 10, 1000)])
            try tree.sparse("many", size: 40 * 65_536 + 10, (0..<40).map { ($0 * 65_536, 300) })
            try tree.file("plain", "not sparse\n")
        case .numbers:
            try tree.file("before-1970", "old\n")
            try tree.file("after-2242", "future\n")
            try tree.file("big-ids", "ids\n")
            // Ownership needs root; without it the file keeps small ids (the case still runs).
            _ = chown(root + "/big-ids", 3_000_000, 3_000_001)
        }
        try tree.stampTimes()
        if self == .numbers {
            try tree.time("before-1970", -31_536_000)
            try tree.time("after-2242", 8_600_000_000)
        }
    }
}

/// Makes source trees: files, modes, links, sparse files, and fixed times on everything.
struct TreeBuilder {
    let root: String
    private static let baseTime = 1_600_000_000

    func file(_ path: String, _ text: String, mode: mode_t = 0o644) throws {
        try file(path, bytes: Array(text.utf8), mode: mode)
    }

    func file(_ path: String, bytes: [UInt8], mode: mode_t = 0o644) throws {
        let full = root + "/" + path
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: full))
        try self.mode(path, mode)
    }

    func directory(_ path: String, mode: mode_t) throws {
        try FileManager.default.createDirectory(atPath: root + "/" + path, withIntermediateDirectories: true)
        try self.mode(path, mode)
    }

    func mode(_ path: String, _ mode: mode_t) throws {
        guard chmod(root + "/" + path, mode) == 0 else { throw POSIXError(.init(rawValue: errno)!) }
    }

    func symlink(_ path: String, to target: String) throws {
        try FileManager.default.createSymbolicLink(atPath: root + "/" + path, withDestinationPath: target)
    }

    func hardLink(_ path: String, to target: String) throws {
        try FileManager.default.createDirectory(atPath: ((root + "/" + path) as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        guard link(root + "/" + target, root + "/" + path) == 0 else { throw POSIXError(.init(rawValue: errno)!) }
    }

    /// A file of `size` bytes with data only in `regions` (offset, length); the rest are holes.
    func sparse(_ path: String, size: Int, _ regions: [(Int, Int)]) throws {
        let fd = open(root + "/" + path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno)!) }
        defer { close(fd) }
        for (i, (offset, length)) in regions.enumerated() {
            let data = [UInt8]((0..<length).map { UInt8(truncatingIfNeeded: $0 &+ i &* 7 &+ 1) })
            guard data.withUnsafeBytes({ pwrite(fd, $0.baseAddress, length, off_t(offset)) }) == length else {
                throw POSIXError(.init(rawValue: errno)!)
            }
        }
        guard ftruncate(fd, off_t(size)) == 0 else { throw POSIXError(.init(rawValue: errno)!) }
    }

    func time(_ path: String, _ seconds: Int) throws {
        var times = [timespec(tv_sec: seconds, tv_nsec: 0), timespec(tv_sec: seconds, tv_nsec: 0)]
        guard utimensat(AT_FDCWD, root + "/" + path, &times, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw POSIXError(.init(rawValue: errno)!)
        }
    }

    /// Gives every path a distinct fixed time, with nanoseconds (which pax keeps). Setting a time
    /// changes no directory's, so the order does not matter.
    func stampTimes() throws {
        for (i, path) in (FileManager.default.subpaths(atPath: root) ?? []).sorted().enumerated() {
            var times = [timespec(tv_sec: Self.baseTime + i * 3_600, tv_nsec: 123_456_789),
                         timespec(tv_sec: Self.baseTime + i * 3_600, tv_nsec: 123_456_789)]
            guard utimensat(AT_FDCWD, root + "/" + path, &times, AT_SYMLINK_NOFOLLOW) == 0 else {
                throw POSIXError(.init(rawValue: errno)!)
            }
        }
    }

    /// Deterministic "random" bytes.
    static func random(_ count: Int) -> [UInt8] {
        var rng = SplitMix64(seed: 0x15)
        return (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    }
}

/// What GNU tar and Lifeboat must agree on: for every path, its type, its permission bits as
/// Lifeboat's rules leave them (no setuid, setgid, sticky, group or other write), its size, its
/// modification time (to the nanosecond) and link target; and which paths are hard links of one
/// another. (The contents are compared by `diff -r`.) The root is left out: GNU tar extracts into
/// a directory the test made.
///
/// Directory times are left out too: GNU tar's depend on the archive's order (it sets a
/// directory's time once the archive moves past it, so an entry written into it later — bsdtar
/// puts hard links after their targets' directories — leaves it at the time of extraction), while
/// Lifeboat sets them all at the end. They are checked against the source tree instead
/// (`directoryTimes`).
struct TreeManifest: Equatable, CustomStringConvertible {
    var nodes: [String: String] = [:]
    var hardLinks: Set<[String]> = []

    init(_ root: String) {
        var byInode: [UInt64: [String]] = [:]
        for path in FileManager.default.subpaths(atPath: root) ?? [] {
            var st = stat()
            guard lstat(root + "/" + path, &st) == 0 else { continue }
            let time = "\(st.st_mtim.tv_sec).\(String(format: "%09d", st.st_mtim.tv_nsec))"
            let mode = String(st.st_mode & 0o7777 & 0o755, radix: 8)
            switch st.st_mode & S_IFMT {
            case S_IFDIR: nodes[path] = "dir \(mode)"
            case S_IFLNK:
                let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: root + "/" + path)) ?? "?"
                nodes[path] = "symlink -> \(target) \(time)"
            case S_IFREG:
                nodes[path] = "file \(mode) \(st.st_size) bytes \(time)"
                if st.st_nlink > 1 { byInode[UInt64(st.st_ino), default: []].append(path) }
            default: nodes[path] = "special \(String(st.st_mode, radix: 8))"
            }
        }
        hardLinks = Set(byInode.values.map { $0.sorted() })
    }

    /// Every directory's modification time, in whole seconds (ustar and GNU headers keep no
    /// fractions).
    static func directoryTimes(_ root: String) -> [String: Int] {
        var times: [String: Int] = [:]
        for path in FileManager.default.subpaths(atPath: root) ?? [] {
            var st = stat()
            if lstat(root + "/" + path, &st) == 0, st.st_mode & S_IFMT == S_IFDIR { times[path] = st.st_mtim.tv_sec }
        }
        return times
    }

    var description: String {
        nodes.keys.sorted().map { "\($0): \(nodes[$0]!)" }.joined(separator: "\n") + "\nhard links: \(hardLinks)"
    }

    /// The differences, one line each.
    func differences(from reference: TreeManifest) -> [String] {
        var lines: [String] = []
        for path in Set(nodes.keys).union(reference.nodes.keys).sorted() where nodes[path] != reference.nodes[path] {
            lines.append("\(path): GNU tar \(reference.nodes[path] ?? "nothing"), Lifeboat \(nodes[path] ?? "nothing")")
        }
        if hardLinks != reference.hardLinks { lines.append("hard links: GNU tar \(reference.hardLinks), Lifeboat \(hardLinks)") }
        return lines
    }
}
