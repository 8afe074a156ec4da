import Foundation

extension Control.Status: ServedCommand {
    func answer(_ call: ControlCall) async throws -> DaemonStatus { try await RunQueries(services: call.services).status() }
}

extension Control.Plans: ServedCommand {
    func answer(_ call: ControlCall) async throws -> PlansResult {
        let registry = call.services.plans
        let now = call.services.clock.now()
        let infos = registry.plans.map { entry in
            PlansResult.PlanInfo(name: entry.plan.name, file: entry.file, description: entry.plan.description,
                                 products: entry.plan.products.map(\.name), waves: entry.plan.waves.count, snapshots: entry.plan.snapshots,
                                 target: entry.plan.target.text, sandbox: entry.plan.sandbox?.text, schedule: entry.plan.schedule?.exercise.text,
                                 nextExercise: entry.plan.schedule?.exercise.nextFire(after: now), settings: PlanSettings(entry.plan))
        }
        return PlansResult(plans: infos, problems: registry.problems)
    }
}

extension Control.PlanCheck: ServedCommand {
    func answer(_ call: ControlCall) async throws -> PlanCheckResult {
        let registry = call.services.plans
        do {
            let loaded: Plan
            if let text {
                guard text.utf8.count <= YAMLReader.maxBytes else { throw ControlError(.tooLarge, "plan text over 1 MiB") }
                loaded = try PlanLoader.load(text: text, file: file ?? "plan.yaml", baseDirectory: registry.directory)
            } else if let plan {
                guard let entry = registry.plans.first(where: { $0.plan.name == plan }) else {
                    throw ControlError(.notFound, "no plan named \(plan) is loaded")
                }
                loaded = try PlanLoader.load(path: entry.file)
            } else {
                throw ControlError(.invalidParams, "give \"text\" (the plan's YAML) or \"plan\" (a loaded plan's name)")
            }
            // As `reload` would serve it: with the other plans loaded (the one of its name
            // replaced, as by an edit of its file) and the state directory.
            let others = registry.plans.map(\.plan).filter { $0.name != loaded.name }
            let conflicts = PlanConflicts.check(others + [loaded], stateDirectory: registry.stateDirectory)
                .filter { $0.plan == loaded.name }.map(\.diagnostic)
            guard conflicts.isEmpty else { return PlanCheckResult(ok: false, plan: nil, errors: conflicts) }
            return PlanCheckResult(ok: true, plan: loaded.name, errors: [], settings: PlanSettings(loaded))
        } catch let error as DiagnosticsError {
            return PlanCheckResult(ok: false, plan: nil, errors: error.diagnostics)
        }
    }
}

extension Control.Reload: ServedCommand {
    func answer(_ call: ControlCall) async throws -> ReloadResult {
        let problems = await call.services.reload()
        return ReloadResult(plans: call.services.plans.plans.map(\.plan.name), problems: problems)
    }
}

extension Control.Schedules: ServedCommand {
    func answer(_ call: ControlCall) async throws -> [Scheduler.Upcoming] {
        // The next scale is capped at the sites each plan selects in its store now.
        let stores = call.services.runtime.engine.environment.stores
        return try await call.services.scheduler.upcoming { plan in
            guard let store = try? await stores.open(plan.snapshots).scan() else { return nil }
            return store.selectSites(plan.sites).count
        }
    }
}
