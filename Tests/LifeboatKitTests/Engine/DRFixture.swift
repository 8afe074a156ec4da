import Foundation
@testable import LifeboatKit

/// A real fleet, a plan over it and a ledger, for restore/exercise/rollback tests with the real
/// executor.
struct DRFixture {
    let dir: TestDirectory
    let ledger: SQLiteLedger
    let plan: Plan
    let clock: TestClock
    let bus = EventBus()

    init(sites: Int = 2, planExtra: String = "", name: String = #function) async throws {
        dir = TestDirectory(name)
        let now = Timestamp.parse("2026-11-25T10:00:00Z")!
        _ = try await FleetGenerator(sites: sites, products: ["contacts", "jira"], archiveSize: 64 << 10, snapshots: 1, seed: 3, now: now)
            .generate(into: dir.file("store"), parallelism: 2)
        plan = try PlanLoader.load(text: """
            name: dr
            snapshots: store
            target: out/{site}/{product}
            sandbox: sandbox/{run}/{site}/{product}
            quarantine: { retention: 7d }
            products:
              - name: contacts
              - name: jira
                after: [contacts]
            \(planExtra)
            """, file: "dr.yaml", baseDirectory: dir.path)
        ledger = try SQLiteLedger(path: dir.file("ledger.sqlite"))
        clock = TestClock(now)
    }

    var engine: Engine { Engine(environment: RunEnvironment(ledger: ledger, executor: RestoreExecutor(), clock: clock, bus: bus)) }

    func run(_ mode: RunMode, sites: [String]? = nil, scale: Int? = nil) async throws -> (RunRecord, [JobRecord]) {
        let created = try await engine.create(RunRequest(plan: plan, mode: mode, sites: sites, scale: scale))
        let run = try await engine.execute(runId: created.run.id, plan: plan)
        return (run, try await ledger.jobs(runId: run.id))
    }

    /// A restore of `site` whose directory becomes a link to `target` between the run's creation
    /// (which resolves and takes its destinations) and its jobs.
    func runAfterLinking(site: String, to target: String) async throws -> (RunRecord, [JobRecord]) {
        let created = try await engine.create(RunRequest(plan: plan, mode: .restore, sites: [site]))
        try FileManager.default.createSymbolicLink(atPath: dir.file("out/\(site)"), withDestinationPath: target)
        let run = try await engine.execute(runId: created.run.id, plan: plan)
        return (run, try await ledger.jobs(runId: run.id))
    }

    /// Every file under a directory with its bytes (symlinks as their targets).
    func tree(_ relative: String) throws -> [String: Data] {
        let root = dir.file(relative)
        var result: [String: Data] = [:]
        guard let walker = FileManager.default.enumerator(atPath: root) else { return [:] }
        for case let path as String in walker {
            let full = root + "/" + path
            if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: full) {
                result[path] = Data(("-> " + target).utf8)
            } else if !FileSystem.isDirectory(full) {
                result[path] = try Data(contentsOf: URL(fileURLWithPath: full))
            }
        }
        return result
    }
}
