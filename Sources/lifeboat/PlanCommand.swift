import ArgumentParser
import Foundation
import LifeboatKit

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Work with plan files offline.",
        subcommands: [PlanCheck.self]
    )
}

struct PlanCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate plan files; every problem is reported as file:line:col.",
        discussion: "Exit 0 when every plan is valid, 2 when any is not."
    )

    @Argument(help: "Plan files to check.")
    var files: [String]

    @Option(help: "The daemon's state directory, which no plan may reach into (default: \(DefaultPaths.stateDirectory)).")
    var stateDir: String?

    @Flag(help: "Print results as JSON.")
    var json = false

    struct Result: Encodable {
        var file: String
        var ok: Bool
        var plan: String?
        var errors: [Diagnostic]
        var warnings: [Diagnostic]
        /// Every setting as it takes effect, defaults included.
        var settings: PlanSettings?
        /// A schedule's next fire times from now (UTC), as a daemon that loads the plan now arms
        /// it (a schedule that never fires is an error of the plan).
        var nextFires: [Date]?
    }

    /// How many of a schedule's next fires `plan check` shows.
    static let firesShown = 3

    /// A schedule's next fire times after `now`: at most `firesShown`.
    static func nextFires(of schedule: ExerciseSchedule, after now: Date) -> [Date] {
        var fires: [Date] = []
        var after = now
        while fires.count < firesShown, let next = schedule.exercise.nextFire(after: after) {
            fires.append(next)
            after = next
        }
        return fires
    }

    func run() throws {
        // Each file alone, then the rules across the plans given together (as a daemon loads
        // its plans_dir) and the state directory.
        var results: [Result] = []
        var plans: [Int: Plan] = [:]
        // A file named twice (`plan check a.yaml ./a.yaml`, a glob and a name) is one plan, not
        // two plans of one name.
        var seen: Set<String> = []
        let files = self.files.filter { seen.insert(ResolvedPath.of(URL(fileURLWithPath: $0).standardizedFileURL.path)).inserted }
        for file in files {
            do {
                let plan = try PlanLoader.load(path: file)
                plans[results.count] = plan
                results.append(Result(file: file, ok: true, plan: plan.name, errors: [], warnings: plan.warnings + [plan.storeWarning()].compactMap { $0 },
                                      settings: PlanSettings(plan), nextFires: plan.schedule.map { Self.nextFires(of: $0, after: Date()) }))
            } catch let error as DiagnosticsError {
                results.append(Result(file: file, ok: false, plan: nil, errors: error.diagnostics, warnings: []))
            }
        }
        let indices = plans.keys.sorted()
        var unique = plans
        for (position, diagnostic) in PlanConflicts.duplicateNames(indices.map { plans[$0]! }) {
            var diagnostic = diagnostic
            diagnostic.file = results[indices[position]].file
            results[indices[position]].ok = false
            results[indices[position]].errors.append(diagnostic)
            unique[indices[position]] = nil
        }
        // The rules across plans name plans, so they are checked among plans of unique names (as
        // the daemon serves neither of two files with one name): an error is never pinned on the
        // wrong file.
        let conflicts = PlanConflicts.check(Array(unique.values), stateDirectory: stateDir ?? DefaultPaths.stateDirectory)
        for (index, plan) in unique {
            let found = conflicts.filter { $0.plan == plan.name }.map { conflict in
                var diagnostic = conflict.diagnostic
                diagnostic.file = results[index].file
                return diagnostic
            }
            if !found.isEmpty {
                results[index].ok = false
                results[index].errors += found
            }
        }
        if json {
            try printJSON(results)
        } else {
            for (index, result) in results.enumerated() {
                for warning in result.warnings { printError(warning.description) }
                if result.ok, let plan = plans[index] {
                    let products = plan.products.map(\.name).joined(separator: ", ")
                    print("\(result.file): ok — plan \"\(plan.name)\", products \(products), \(plan.waves.count) wave(s)")
                    print("  in effect: \(PlanSettings(plan).summary)")
                    if let schedule = plan.schedule, let fires = result.nextFires {
                        let factor = schedule.scale.factor == schedule.scale.factor.rounded() ? "\(Int(schedule.scale.factor))" : "\(schedule.scale.factor)"
                        print("  schedule (UTC): exercise \"\(schedule.exercise.text)\" next \(fires.map(Timestamp.iso).joined(separator: ", ")); "
                              + "\(schedule.scale.start) site(s) first, × \(factor) each time")
                    }
                } else {
                    printError(result.errors.map(\.description).joined(separator: "\n"))
                }
            }
        }
        let failed = results.filter { !$0.ok }.count
        if failed > 0 {
            throw CLIFailure(code: .rejected, message: json ? "" : "\(failed) of \(files.count) plan(s) invalid")
        }
    }
}
