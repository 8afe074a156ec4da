import Foundation
import Synchronization

/// What keeps runs from touching data they do not own, decided on resolved paths (symbolic links
/// followed at every level), never on template strings alone (DESIGN.md "Ownership").
public struct Guardrails: Sendable {
    /// The daemon's (or the in-process runner's) state directory: never a destination.
    public var stateDirectory: String?
    /// Every plan loaded beside the run's: their targets are production, their stores backups.
    public var plans: @Sendable () -> [Plan]
    /// Destinations held by jobs of going runs.
    public var holds: DestinationHolds

    public init(stateDirectory: String? = nil, plans: @escaping @Sendable () -> [Plan] = { [] },
                holds: DestinationHolds = DestinationHolds()) {
        self.stateDirectory = stateDirectory
        self.plans = plans
        self.holds = holds
    }

    /// The protected trees as they are on disk now, for a run of `plan` (production is walked
    /// only for exercises, the only runs it constrains).
    func protectedTrees(for plan: Plan, mode: RunMode) -> ProtectedTrees {
        var all = plans()
        if !all.contains(where: { $0.name == plan.name }) { all.append(plan) }
        return ProtectedTrees(plans: all, stateDirectory: stateDirectory, walkTargets: mode == .exercise)
    }
}

/// A refusal to start or continue work because it would touch data Lifeboat does not own.
public struct SafetyRefusal: LifeboatError {
    public var message: String
    public var exitCode: CLIExit { .rejected }
    public var description: String { message }
}

/// The production trees (targets) of the loaded plans as they exist on disk, their snapshot
/// stores and the state directory, all resolved, so that an exercise's destination can be checked
/// against where production really is — through per-tenant symbolic links included.
struct ProtectedTrees: Sendable {
    /// A directory a target reaches, and the target's segments still below it.
    struct Node: Sendable {
        var plan: String
        var rest: [[PathTemplate.Piece]]
    }

    /// Resolved directory → the target nodes there.
    private(set) var nodes: [String: [Node]] = [:]
    /// Resolved snapshot stores and the state directory, with what they are.
    private(set) var others: [(path: String, what: String)] = []
    /// Every plan's target as a template below its resolved literal root: where its data is, or
    /// may come to be.
    private(set) var targets: [(plan: String, root: String, rest: [[PathTemplate.Piece]])] = []
    /// At most this many directories are visited per target (a bound on very wide fleets; past it
    /// the literal-root check still applies).
    static let visitLimit = 200_000

    init(plans: [Plan], stateDirectory: String?, walkTargets: Bool) {
        for plan in plans {
            // A bucket store is no local tree a destination could fall into.
            if !S3Location.isS3(plan.snapshots) {
                others.append((ResolvedPath.of(plan.snapshots), "the snapshot store of plan \(plan.name)"))
            }
            targets.append((plan.name, ResolvedPath.of(plan.target.literalRoot), plan.target.templatedSegments))
            guard walkTargets else { continue }
            var queue: [(String, ArraySlice<[PathTemplate.Piece]>)] = [(ResolvedPath.of(plan.target.literalRoot), plan.target.templatedSegments[...])]
            var visited = 0
            while let (directory, rest) = queue.popLast() {
                nodes[directory, default: []].append(Node(plan: plan.name, rest: Array(rest)))
                visited += 1
                guard let segment = rest.first, visited < Self.visitLimit else { continue }
                let names: [String]
                if segment.allSatisfy({ if case .literal = $0 { true } else { false } }) {
                    names = [segment.map { if case .literal(let s) = $0 { s } else { "" } }.joined()]
                } else {
                    names = ((try? FileSystem.directoryEntries(directory)) ?? []).map(\.name)
                        .filter { PathTemplate.segment(segment, matches: $0) }
                }
                for name in names {
                    let child = (directory == "/" ? "" : directory) + "/" + name
                    guard FileSystem.isReachable(child) else { continue }
                    queue.append((ResolvedPath.of(child), rest.dropFirst()))
                }
            }
        }
        if let stateDirectory { others.append((ResolvedPath.of(stateDirectory), "Lifeboat's state directory")) }
    }

    /// Why an exercise must not write at `resolved` (a real path), or nil. Refused: inside a
    /// snapshot store or the state directory, or anywhere a target reaches or could reach —
    /// inside an existing production directory, or where a target could name a path at or
    /// below it.
    func exerciseRefusal(_ resolved: String) -> String? {
        for (path, what) in others where ResolvedPath.isInside(resolved, path) || ResolvedPath.isInside(path, resolved) {
            return "resolves to \(resolved), inside \(what) (\(path))"
        }
        var ancestor = resolved
        while true {
            for node in nodes[ancestor] ?? [] {
                let remainder = ancestor == "/" ? resolved.split(separator: "/").map(String.init)
                    : resolved.dropFirst(ancestor.count).split(separator: "/").map(String.init)
                let compatible = zip(node.rest, remainder).allSatisfy { PathTemplate.segment($0, matches: $1) }
                if compatible {
                    let place = node.rest.isEmpty ? "the production directory \(ancestor)" : "\(ancestor), where plan \(node.plan)'s target reaches"
                    return "resolves to \(resolved), inside production of plan \(node.plan) (\(place))"
                }
            }
            guard ancestor != "/" else { return nil }
            ancestor = (try? StagingDirectory.split(ancestor).parent) ?? "/"
        }
    }

    /// Why a restore or a delete must not displace what is at `resolved`, or nil: never a
    /// snapshot store or the state directory, and never a directory that holds, or lies inside,
    /// where a plan's target puts one (site, product)'s data. Displacing that would carry the
    /// other jobs' data and their `.lifeboat-quarantine` along, into an entry of another
    /// retention (found by a soft-delete probe: a site linked to another plan's target root).
    func restoreRefusal(_ resolved: String) -> String? {
        for (path, what) in others where ResolvedPath.isInside(resolved, path) || ResolvedPath.isInside(path, resolved) {
            return "resolves to \(resolved), which overlaps \(what) (\(path))"
        }
        for (plan, root, rest) in targets where !rest.isEmpty {
            if ResolvedPath.isInside(root, resolved) {
                return "resolves to \(resolved), which holds plan \(plan)'s whole target tree (\(root)); destinations must not nest"
            }
            guard resolved != root, ResolvedPath.isInside(resolved, root) else { continue }
            let remainder = (root == "/" ? Substring(resolved) : resolved.dropFirst(root.count)).split(separator: "/").map(String.init)
            guard zip(rest, remainder).allSatisfy({ PathTemplate.segment($0, matches: $1) }) else { continue }
            if remainder.count < rest.count {
                return "resolves to \(resolved), a directory above where plan \(plan)'s target puts a site's data (\(root)/…); "
                    + "displacing it would carry that data along: destinations must not nest (check the symbolic links on its path)"
            }
            if remainder.count > rest.count {
                let outer = root == "/" ? "/" + remainder.prefix(rest.count).joined(separator: "/") : root + "/" + remainder.prefix(rest.count).joined(separator: "/")
                return "resolves to \(resolved), inside \(outer), where plan \(plan)'s target puts a site's data; destinations must not nest "
                    + "(check the symbolic links on its path)"
            }
        }
        return nil
    }
}

/// Destinations held by jobs of going runs, by resolved path: one job of one run at a time, and
/// never one destination inside another's (a commit there would displace the other's data).
public final class DestinationHolds: Sendable {
    public struct Holder: Sendable, Hashable {
        public var run: String
        public var job: String
    }

    private struct State {
        var held: [String: Holder] = [:]
        /// Every proper ancestor of a held path, with how many held paths lie below it.
        var below: [String: Int] = [:]
        var byRun: [String: Set<String>] = [:]
        var byHolder: [Holder: String] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// Takes the destinations (resolved path, job name) for `run`, all or none. Re-taking what the
    /// run already holds is fine. Throws a refusal naming the holder of the first conflict.
    public func take(run: String, _ destinations: [(path: String, job: String)]) throws {
        try state.withLock { s in
            var mine: [String: String] = [:]
            for (path, job) in destinations {
                if let other = mine[path] {
                    throw SafetyRefusal(message: "jobs \(other) and \(job) of run \(run) resolve to the same destination \(path); no two (site, product) pairs may share a path (check the target template and symbolic links)")
                }
                mine[path] = job
            }
            // Nested destinations within the run, then against other runs.
            let chains = mine.map { (path: $0.key, job: $0.value, ancestors: Self.ancestors(of: $0.key)) }
            for (path, job, ancestors) in chains {
                for ancestor in ancestors {
                    if let other = mine[ancestor] {
                        throw SafetyRefusal(message: "job \(job) of run \(run) would restore into \(path), inside the destination \(ancestor) of job \(other); destinations must not nest")
                    }
                }
            }
            for (path, job, ancestors) in chains {
                if let holder = s.held[path], holder.run != run {
                    throw Self.busy(path, job: job, run: run, holder: holder)
                }
                for ancestor in ancestors {
                    if let holder = s.held[ancestor], holder.run != run { throw Self.busy(ancestor, job: job, run: run, holder: holder) }
                }
                if (s.below[path] ?? 0) > 0, let (inner, holder) = s.held.first(where: { $0.value.run != run && ResolvedPath.isInside($0.key, path) }) {
                    throw Self.busy(inner, job: job, run: run, holder: holder)
                }
            }
            for (path, job, ancestors) in chains where s.held[path] == nil {
                s.held[path] = Holder(run: run, job: job)
                s.byHolder[Holder(run: run, job: job)] = path
                s.byRun[run, default: []].insert(path)
                for ancestor in ancestors { s.below[ancestor, default: 0] += 1 }
            }
        }
    }

    /// Gives back one destination of `run` (its job ended).
    public func release(run: String, path: String) {
        state.withLock { s in Self.remove(path, run: run, from: &s) }
    }

    /// Gives back everything `run` holds.
    public func release(run: String) {
        state.withLock { s in
            for path in s.byRun[run] ?? [] { Self.remove(path, run: run, from: &s) }
            s.byRun[run] = nil
        }
    }

    public func holder(of path: String) -> Holder? { state.withLock { $0.held[path] } }

    /// The path held for a job of a run here, if any.
    public func path(heldBy holder: Holder) -> String? { state.withLock { $0.byHolder[holder] } }

    private static func remove(_ path: String, run: String, from s: inout State) {
        guard let holder = s.held[path], holder.run == run else { return }
        s.byHolder[holder] = nil
        s.held[path] = nil
        s.byRun[run]?.remove(path)
        for ancestor in ancestors(of: path) {
            let left = (s.below[ancestor] ?? 1) - 1
            s.below[ancestor] = left > 0 ? left : nil
        }
    }

    private static func busy(_ path: String, job: String, run: String, holder: Holder) -> SafetyRefusal {
        SafetyRefusal(message: "destination \(path) of \(job) is held by job \(holder.job) of run \(holder.run), which is still going; a destination is restored by one run at a time: wait for run \(holder.run) to finish (lifeboat watch \(holder.run)) or cancel it (lifeboat cancel \(holder.run))")
    }

    static func ancestors(of path: String) -> [String] {
        var result: [String] = []
        var current = Substring(path)
        while current.count > 1, current.last == "/" { current = current.dropLast() }
        while current != "/", let cut = current.utf8.lastIndex(of: UInt8(ascii: "/")) {
            current = cut == current.startIndex ? "/" : current[..<cut]
            result.append(String(current))
        }
        return result
    }
}
