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

    @Test func aMissingTreeHasNoDigest() {
        #expect(TreeDigest.of("/nonexistent-\(UUID().uuidString)") == nil)
    }
}
