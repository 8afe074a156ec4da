import Foundation
import Synchronization

/// The plans the daemon knows, loaded from `plans_dir`. A reload replaces each plan whose file is
/// valid; a plan whose file became invalid keeps its previous version, and the error is kept for
/// `status` and `plans`. A run is worked under the version of its plan it was started with
/// (`plan(for:)`): versions a reload replaced are kept for the runs started under them.
public final class PlanRegistry: Sendable {
    public struct Entry: Sendable {
        public var plan: Plan
        public var file: String
        public var loadedAt: Date
    }

    public struct Problem: Sendable, Codable, Hashable {
        public var file: String
        public var errors: [String]
        /// The plan still served from an earlier load, if any.
        public var keptPrevious: String?
    }

    private struct State {
        var directory: String
        var plans: [String: Entry] = [:]
        /// Versions a reload replaced, by `name` and `version`, oldest dropped past `keptVersions`.
        var superseded: [VersionKey: Entry] = [:]
        var problems: [Problem] = []
        var configProblems: [Problem] = []
    }

    private let state: Mutex<State>
    /// The daemon's state directory, which no plan may reach into.
    public let stateDirectory: String?

    public init(directory: String, stateDirectory: String? = nil) {
        state = Mutex(State(directory: directory))
        self.stateDirectory = stateDirectory
    }

    /// Where plans are read from (`plans_dir`; a config reload may change it).
    public var directory: String { state.withLock { $0.directory } }

    public var plans: [Entry] { state.withLock { Array($0.plans.values).sorted { $0.plan.name < $1.plan.name } } }
    /// Problems of the last reload: plan files, and the config file when it was invalid.
    public var problems: [Problem] { state.withLock { $0.problems + $0.configProblems } }

    /// Records (or clears) a problem with the daemon's config file found by a reload.
    public func setConfigProblems(_ problems: [Problem]) { state.withLock { $0.configProblems = problems } }

    public func plan(named name: String) -> Plan? { state.withLock { $0.plans[name]?.plan } }

    /// The plan `run` is worked under: the version it was started with, whether loaded now or
    /// replaced by a reload since; nil when this host does not have that version (another host
    /// of a shared ledger may). A run recorded without a version gets the plan of its name.
    public func plan(for run: RunRecord) -> Plan? {
        guard let version = run.planVersion, !version.isEmpty else { return plan(named: run.plan) }
        return state.withLock { s in
            if let current = s.plans[run.plan], current.plan.version == version { return current.plan }
            return s.superseded[VersionKey(name: run.plan, version: version)]?.plan
        }
    }

    /// Why `plan(for: run)` is nil, in words for a log line or an error.
    public func unavailable(for run: RunRecord) -> String {
        let current = state.withLock { $0.plans[run.plan] }
        guard let current, let version = run.planVersion else { return "plan \(run.plan) of run \(run.id) is not loaded on this host" }
        return "run \(run.id) was started under version \(Self.short(version)) of plan \(run.plan), and this host has version "
            + "\(Self.short(current.plan.version)) (\(current.file))"
    }

    /// What puts a run `unavailable(for:)` names within this host's reach.
    public static let remedy = "put the plan file the run was started with back on this host and reload"

    /// `sha256:` and the first 12 hex digits: enough to tell versions apart in a message.
    static func short(_ version: String) -> String { String(version.prefix("sha256:".count + 12)) }

    /// (Re)loads every `*.yaml`/`*.yml` in the directory (switching to `directory` if given).
    /// Returns the problems found.
    @discardableResult
    public func reload(directory newDirectory: String? = nil, now: Date = Date()) -> [Problem] {
        if let newDirectory { state.withLock { $0.directory = newDirectory } }
        let directory = self.directory
        let files = ((try? FileSystem.directoryEntries(directory)) ?? [])
            .filter { ($0.kind == .regular || $0.kind == .symlink) && ($0.name.hasSuffix(".yaml") || $0.name.hasSuffix(".yml")) }
            .map { directory + "/" + $0.name }.sorted()
        var loaded: [String: Entry] = [:]
        var problems: [Problem] = []
        if !FileSystem.isDirectory(directory) {
            problems.append(Problem(file: directory, errors: ["plans_dir \(directory) is not a readable directory"], keptPrevious: nil))
        }
        let previous = state.withLock { $0.plans }
        var parsed: [Entry] = []
        for file in files {
            do {
                parsed.append(Entry(plan: try PlanLoader.load(path: file), file: file, loadedAt: now))
            } catch {
                let errors = (error as? DiagnosticsError)?.diagnostics.map(\.description) ?? ["\(error)"]
                // Keep the previous version of the plan that came from this file.
                let kept = previous.values.first { $0.file == file }
                if let kept, loaded[kept.plan.name] == nil { loaded[kept.plan.name] = kept }
                problems.append(Problem(file: file, errors: errors, keptPrevious: kept?.plan.name))
            }
        }
        // Two files with one plan name: neither is served (a run names its plan, and either could
        // be the one meant); a version served before is kept, as for an invalid file.
        let duplicates = PlanConflicts.duplicateNames(parsed.map(\.plan))
        for (i, entry) in parsed.enumerated() {
            if let duplicate = duplicates[i] {
                let kept = previous[entry.plan.name]
                if let kept, loaded[kept.plan.name] == nil { loaded[kept.plan.name] = kept }
                problems.append(Problem(file: entry.file, errors: [duplicate.description], keptPrevious: kept?.plan.name))
            } else if loaded[entry.plan.name] == nil {
                loaded[entry.plan.name] = entry
            }
        }
        // Rules across plans (a sandbox over another plan's target, anything in the state
        // directory): a plan that breaks one is not served at all.
        var conflicting: [String: [String]] = [:]
        for problem in PlanConflicts.check(loaded.values.map(\.plan), stateDirectory: stateDirectory) {
            conflicting[problem.plan, default: []].append(problem.diagnostic.description)
        }
        for (name, errors) in conflicting.sorted(by: { $0.key < $1.key }) {
            guard let entry = loaded.removeValue(forKey: name) else { continue }
            problems.append(Problem(file: entry.file, errors: errors, keptPrevious: nil))
        }
        state.withLock { s in
            for entry in s.plans.values where loaded[entry.plan.name]?.plan.version != entry.plan.version {
                s.superseded[VersionKey(name: entry.plan.name, version: entry.plan.version)] = entry
            }
            for entry in loaded.values { s.superseded[VersionKey(name: entry.plan.name, version: entry.plan.version)] = nil }
            if s.superseded.count > Self.keptVersions {
                for key in s.superseded.sorted(by: { $0.value.loadedAt < $1.value.loadedAt }).prefix(s.superseded.count - Self.keptVersions).map(\.key) {
                    s.superseded[key] = nil
                }
            }
            s.plans = loaded
            s.problems = problems
        }
        return problems
    }

    /// How many replaced versions are kept for the runs started under them.
    static let keptVersions = 64

    private struct VersionKey: Hashable {
        var name: String
        var version: String
    }
}
