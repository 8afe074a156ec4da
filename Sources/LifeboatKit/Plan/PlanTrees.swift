import Foundation

/// One of the directory trees Lifeboat works in — a snapshot store, a target, a sandbox or the
/// daemon's state directory — for the rule that they never overlap (DESIGN.md "Ownership").
struct PlanTree {
    enum Role: String {
        case store = "snapshots", target, sandbox
        case stateDirectory = "state_dir"
    }

    var role: Role
    var template: PathTemplate
    /// The plan it belongs to, when the check spans plans.
    var plan: String?

    var label: String {
        let what = role == .stateDirectory ? "the state directory" : role.rawValue
        return (plan.map { "plan \($0)'s " } ?? "") + "\(what) \"\(template)\""
    }

    /// Why `a` and `b` may overlap, or nil when no values of the variables make one of them equal
    /// to, or a path under, the other. Compared both as written and with their literal roots'
    /// symbolic links resolved (`/srv -> /data` makes `/srv/{site}` and `/data/x/{site}` meet).
    static func overlap(_ a: PlanTree, _ b: PlanTree) -> String? {
        for (x, y) in [(a.template, b.template), (a.template.resolvingLiteralRoot(), b.template.resolvingLiteralRoot())] {
            let through = x.text != a.template.text || y.text != b.template.text
                ? " (with symbolic links resolved: \"\(x)\" and \"\(y)\")" : ""
            if PathTemplate.couldResolve(x, inside: y) { return inside(a, b, through) }
            if PathTemplate.couldResolve(y, inside: x) { return inside(b, a, through) }
        }
        return nil
    }

    private static func inside(_ inner: PlanTree, _ outer: PlanTree, _ through: String) -> String {
        let why: String
        switch (inner.role, outer.role) {
        case (.sandbox, .target): why = "exercises must never write into production: choose a sandbox outside the target tree"
        case (.target, .sandbox): why = "removing sandbox data could touch production: choose disjoint trees"
        default: why = "snapshot stores, targets, sandboxes and the state directory must never overlap: choose disjoint directories"
        }
        return "\(inner.label) could resolve inside \(outer.label)\(through); \(why)"
    }

    /// Which of two overlapping trees an error is pinned to: the one more likely mistyped.
    static func blamed(_ a: PlanTree, _ b: PlanTree) -> PlanTree {
        let rank: [Role: Int] = [.sandbox: 0, .target: 1, .store: 2, .stateDirectory: 3]
        return (rank[a.role] ?? 9) <= (rank[b.role] ?? 9) ? a : b
    }
}

/// Rules that span the plans a daemon loads together and its state directory.
public enum PlanConflicts {
    /// A problem of one plan found against the others (or the state directory).
    public struct Problem: Sendable, Hashable {
        public var plan: String
        public var diagnostic: Diagnostic
    }

    /// - Every plan's store, target and sandbox stay out of the state directory (and it out of them).
    /// - A plan's sandbox never overlaps another plan's target or store: an exercise must not be
    ///   able to write into anyone's production or backups.
    /// - A plan's target never overlaps another plan's store.
    /// Targets of different plans may coincide (a restore plan and an exercise plan of the same
    /// fleet share one); runs on the same destinations are kept apart at run time.
    /// Plans that share a name, by their index in `plans`: each gets a diagnostic at its `name:`
    /// naming the others' files and lines (a run names its plan, so neither is the one meant).
    public static func duplicateNames(_ plans: [Plan]) -> [Int: Diagnostic] {
        var result: [Int: Diagnostic] = [:]
        func place(_ plan: Plan) -> String {
            let mark = plan.marks["name"]
            return (plan.sourcePath ?? plan.name) + (mark.map { ":\($0.line):\($0.column)" } ?? " (named after its file)")
        }
        for (name, indices) in Dictionary(grouping: plans.indices, by: { plans[$0].name }) where indices.count > 1 {
            for i in indices {
                let mark = plans[i].marks["name"] ?? SourceMark(line: 1, column: 1)
                let others = indices.filter { $0 != i }.map { place(plans[$0]) }.joined(separator: ", ")
                result[i] = Diagnostic(file: plans[i].sourcePath ?? name, line: mark.line, column: mark.column,
                                       message: "plan name \"\(name)\" is also used by \(others); plan names must be unique: rename one (name: …)")
            }
        }
        return result
    }

    public static func check(_ plans: [Plan], stateDirectory: String?) -> [Problem] {
        var problems: [Problem] = []
        func report(_ plan: Plan, _ key: PlanTree.Role, _ message: String) {
            let mark = plan.marks[key.rawValue] ?? SourceMark(line: 1, column: 1)
            problems.append(Problem(plan: plan.name, diagnostic: Diagnostic(
                file: plan.sourcePath ?? plan.name, line: mark.line, column: mark.column, message: message)))
        }
        let state = stateDirectory.flatMap { try? PathTemplate(PathTemplate.normalise($0), allowed: []) }
            .map { PlanTree(role: .stateDirectory, template: $0) }
        for plan in plans {
            let own = trees(of: plan)
            if let state {
                for tree in own { if let why = PlanTree.overlap(tree, state) { report(plan, tree.role, why) } }
            }
            for other in plans where other.name != plan.name {
                let theirs = trees(of: other)
                for mine in own {
                    for their in theirs {
                        let clash: Bool
                        switch (mine.role, their.role) {
                        case (.sandbox, .target), (.sandbox, .store), (.target, .store): clash = true
                        default: clash = false
                        }
                        if clash, let why = PlanTree.overlap(mine, their) { report(plan, mine.role, why) }
                    }
                }
            }
        }
        return problems
    }

    static func trees(of plan: Plan) -> [PlanTree] {
        var trees: [PlanTree] = []
        if !S3Location.isS3(plan.snapshots), let store = try? PathTemplate(plan.snapshots, allowed: []) { trees.append(PlanTree(role: .store, template: store, plan: plan.name)) }
        trees.append(PlanTree(role: .target, template: plan.target, plan: plan.name))
        if let sandbox = plan.sandbox { trees.append(PlanTree(role: .sandbox, template: sandbox, plan: plan.name)) }
        return trees
    }
}

extension PathTemplate {
    /// The template with its literal root's symbolic links resolved (as far as it exists).
    func resolvingLiteralRoot() -> PathTemplate {
        let root = literalRoot
        let resolved = ResolvedPath.of(root)
        guard resolved != root else { return self }
        var text = resolved == "/" ? "" : resolved
        for segment in templatedSegments {
            text += "/" + segment.map { piece in
                switch piece {
                case .literal(let s): return s
                case .variable(let v): return "{\(v.rawValue)}"
                }
            }.joined()
        }
        return (try? PathTemplate(text.isEmpty ? "/" : text, allowed: Set(TemplateVariable.allCases))) ?? self
    }
}

/// Real paths of paths that may not exist yet.
public enum ResolvedPath {
    /// The real path of the longest existing prefix of `path` (symbolic links resolved at every
    /// level), with the rest appended as written (lexically normalised).
    public static func of(_ path: String) -> String {
        var realPaths: [String: String] = [:]
        var missing: Set<String> = []
        return of(path, realPaths: &realPaths, missing: &missing)
    }

    /// `of` for many paths taken together (a run's destinations): each existing directory's real
    /// path is looked up once (a `readlink` per component), where thousands of destinations
    /// share a few parents; one found missing is not looked for again.
    public static func all(_ paths: [String]) -> [String] {
        var realPaths: [String: String] = [:]
        var missing: Set<String> = []
        return paths.map { of($0, realPaths: &realPaths, missing: &missing) }
    }

    /// - Parameter missing: directories found not to exist, in this one look at many paths
    ///   (sites' products share the site's directory, not there yet before a first restore).
    private static func of(_ path: String, realPaths: inout [String: String], missing: inout Set<String>) -> String {
        var existing = PathTemplate.normalise(path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path)
        var rest: [String] = []
        while existing != "/", missing.contains(existing) || !FileSystem.isReachable(existing) {
            missing.insert(existing)
            let (parent, name) = (try? StagingDirectory.split(existing)) ?? ("/", "")
            rest.insert(name, at: 0)
            existing = parent
        }
        let real: String
        if let known = realPaths[existing] {
            real = known
        } else {
            real = realpath(existing, nil).map { pointer -> String in
                defer { free(pointer) }
                return String(cString: pointer)
            } ?? existing
            realPaths[existing] = real
        }
        let joined = ([real == "/" ? "" : real] + rest).joined(separator: "/")
        return joined.isEmpty ? "/" : joined
    }

    /// Whether `path` is `ancestor` or lies under it (both absolute and normalised).
    public static func isInside(_ path: String, _ ancestor: String) -> Bool {
        ancestor == "/" || path == ancestor || path.hasPrefix(ancestor + "/")
    }
}
