import Crypto
import Foundation

/// A fingerprint of a directory tree as it is on disk: every entry's relative name, type,
/// permission bits, size and modification time, and every link's target, in name order; never
/// following a symbolic link. Taken when a job's work on its destination is done, it lets a
/// rollback tell whether anything was written, added, removed or changed since (the directory's
/// identity alone says only that it is the same directory).
public enum TreeDigest {
    /// `sha256:<hex>` of the tree at `path`, or nil when it cannot be read.
    public static func of(_ path: String) -> String? {
        var hasher = SHA256()
        var stack: [String] = [""]
        while let relative = stack.popLast() {
            let directory = relative.isEmpty ? path : path + "/" + relative
            guard let entries = try? FileSystem.directoryEntries(directory) else { return nil }
            // Reverse order on the stack so directories are walked in name order.
            var subdirectories: [String] = []
            for entry in entries.sorted(by: { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }) {
                let name = relative.isEmpty ? entry.name : relative + "/" + entry.name
                var st = stat()
                guard lstat(path + "/" + name, &st) == 0 else { return nil }
                var line = "\(name)\u{0}\(st.st_mode)"
                switch st.st_mode & S_IFMT {
                case S_IFDIR:
                    subdirectories.append(name)
                case S_IFLNK:
                    line += "\u{0}" + ((try? FileManager.default.destinationOfSymbolicLink(atPath: path + "/" + name)) ?? "?")
                default:
                    line += "\u{0}\(st.st_size)\u{0}\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
                }
                hasher.update(data: Data((line + "\n").utf8))
            }
            stack += subdirectories.reversed()
        }
        return "sha256:" + hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
