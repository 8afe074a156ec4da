import Foundation
import Testing
@testable import LifeboatKit

/// The fingerprint rollback relies on: the same tree gives the same digest, and every kind of
/// change an operator or an application could make after a restore changes it.
@Suite struct TreeDigestTests {
    func makeTree() throws -> String {
        let root = NSTemporaryDirectory() + "lifeboat-digest-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root + "/a/b", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/empty", withIntermediateDirectories: true)
        try Data("one".utf8).write(to: URL(fileURLWithPath: root + "/a/one.txt"))
        try Data("two".utf8).write(to: URL(fileURLWithPath: root + "/a/b/two.txt"))
        try FileManager.default.createSymbolicLink(atPath: root + "/link", withDestinationPath: "a/one.txt")
        // Fixed times, as an extraction sets them.
        for path in ["/a/one.txt", "/a/b/two.txt"] {
            var times = [timespec(tv_sec: 1_700_000_000, tv_nsec: 5), timespec(tv_sec: 1_700_000_000, tv_nsec: 5)]
            #expect(utimensat(AT_FDCWD, root + path, &times, 0) == 0)
        }
        return root
    }

    @Test(arguments: ["write", "append-same-mtime", "add-file", "add-empty-dir", "remove", "rename", "chmod", "relink", "touch"])
    func everyChangeChangesTheDigest(change: String) throws {
        let root = try makeTree()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let before = try #require(TreeDigest.of(root))
        #expect(TreeDigest.of(root) == before)
        switch change {
        case "write": try Data("ONE".utf8).write(to: URL(fileURLWithPath: root + "/a/one.txt"))
        case "append-same-mtime":
            // Same name, larger file, modification time put back as it was.
            try Data("one more".utf8).write(to: URL(fileURLWithPath: root + "/a/one.txt"))
            var times = [timespec(tv_sec: 1_700_000_000, tv_nsec: 5), timespec(tv_sec: 1_700_000_000, tv_nsec: 5)]
            _ = utimensat(AT_FDCWD, root + "/a/one.txt", &times, 0)
        case "add-file": try Data().write(to: URL(fileURLWithPath: root + "/a/b/new"))
        case "add-empty-dir": try FileManager.default.createDirectory(atPath: root + "/empty/sub", withIntermediateDirectories: false)
        case "remove": try FileManager.default.removeItem(atPath: root + "/a/b/two.txt")
        case "rename": try FileManager.default.moveItem(atPath: root + "/a/b/two.txt", toPath: root + "/a/b/three.txt")
        case "chmod": chmod(root + "/a/one.txt", 0o600)
        case "relink":
            try FileManager.default.removeItem(atPath: root + "/link")
            try FileManager.default.createSymbolicLink(atPath: root + "/link", withDestinationPath: "a/b/two.txt")
        default: _ = utimensat(AT_FDCWD, root + "/a/b/two.txt", nil, 0)
        }
        #expect(TreeDigest.of(root) != before, "\(change) went unnoticed")
    }

    /// The digest covers exactly what its definition says: the records, checked against an
    /// independent walk (FileManager listings, lstat), on a tree whose directories need several
    /// getdents reads (thousands of long names) and with every kind of entry.
    @Test func recordsMatchAnIndependentWalk() throws {
        let root = try makeTree()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let wide = root + "/wide"
        try FileManager.default.createDirectory(atPath: wide + "/deeper", withIntermediateDirectories: true)
        for i in 0..<1_500 {
            try Data(String(i).utf8).write(to: URL(fileURLWithPath: wide + "/" + String(repeating: "n", count: 40) + "-\(i)"))
        }
        try FileManager.default.createSymbolicLink(atPath: wide + "/deeper/up", withDestinationPath: "..")
        var records: [UInt8] = []
        #expect(TreeDigest.walk(root) { records += $0 })
        #expect(records == Self.reference(root))
    }

    /// The records of `TreeDigest`, spelled out slowly: depth first in byte order of names, each
    /// directory's entries before its subdirectories' contents.
    static func reference(_ root: String) -> [UInt8] {
        var stream: [UInt8] = []
        func visit(_ relative: String) {
            let directory = relative.isEmpty ? root : root + "/" + relative
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
                .sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            var subdirectories: [String] = []
            for name in names {
                let path = relative.isEmpty ? name : relative + "/" + name
                var st = stat()
                guard lstat(root + "/" + path, &st) == 0 else { return }
                var record = Array(path.utf8) + [0]
                func append(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { record += $0 } }
                append(UInt64(st.st_mode))
                switch st.st_mode & S_IFMT {
                case S_IFDIR: subdirectories.append(path)
                case S_IFLNK: record += Array(((try? FileManager.default.destinationOfSymbolicLink(atPath: root + "/" + path)) ?? "").utf8)
                default:
                    append(UInt64(bitPattern: Int64(st.st_size)))
                    append(UInt64(bitPattern: Int64(st.st_mtim.tv_sec)))
                    append(UInt64(bitPattern: Int64(st.st_mtim.tv_nsec)))
                }
                withUnsafeBytes(of: UInt32(record.count).littleEndian) { stream += $0 }
                stream += record
            }
            for subdirectory in subdirectories { visit(subdirectory) }
        }
        visit("")
        return stream
    }

    @Test func aMissingTreeHasNoDigest() {
        #expect(TreeDigest.of("/nonexistent-\(UUID().uuidString)") == nil)
    }
}
