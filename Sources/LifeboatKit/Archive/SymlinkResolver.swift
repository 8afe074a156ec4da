/// Checks that symbolic links stay inside the restored tree once all of them exist.
///
/// A target that is lexically inside the root can still escape through another link
/// (`up -> ..` at the root, then `sub/x -> ../up/..`), so each target is resolved the way the
/// kernel would, expanding the archive's own links as it goes, iteratively and with the kernel's
/// limit of 40 expansions.
///
/// The walk keeps its path's hash as it goes (`PathWalk`): a target of thousands of components
/// costs its length, not its length times its depth.
struct SymlinkResolver {
    /// The target of the link at the path walked to, for every link that will be created.
    var linkTarget: (PathWalk) -> String?

    static let maxExpansions = 40

    /// Whether the link at `path` resolves to a place inside the root, or to nothing at all: a
    /// loop (`a -> a`), or a chain longer than the kernel follows, which it refuses with ELOOP
    /// (it counts the link itself too, so it gives up before this does). GNU tar extracts those.
    func staysInside(linkAt path: EntryPath, target: String) -> Bool {
        var current = PathWalk(components: path.components.dropLast())
        var pending = Self.parts(target)
        var expansions = 0
        while let part = pending.popLast() {
            if part == "." { continue }
            if part == ".." {
                guard !current.isEmpty else { return false }
                current.pop()
                continue
            }
            current.push(part)
            guard let next = linkTarget(current) else { continue }
            expansions += 1
            if expansions > Self.maxExpansions { return true }
            guard !next.hasPrefix("/") else { return false }
            current.pop()
            pending.append(contentsOf: Self.parts(next))
        }
        return true
    }

    /// The components of a target, reversed, so the next one to walk is `popLast()`.
    private static func parts(_ target: String) -> [String] {
        target.split(separator: "/", omittingEmptySubsequences: true).reversed().map(String.init)
    }
}
