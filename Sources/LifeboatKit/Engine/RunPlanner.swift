import Foundation

/// Turns a request into a run and its jobs: resolves sites, samples exercises, assigns waves,
/// selects each job's snapshot (newest at or before as-of) and computes its RPO.
public enum RunPlanner {
    public struct Prepared: Sendable {
        public var run: RunRecord
        public var jobs: [JobRecord]
        /// Sites per wave, in order.
        public var waves: [[String]]
    }

    /// How far ahead of this host's clock a given time may be (another host's clock, a time
    /// typed to the minute) before it counts as the future.
    static let clockSkew: TimeInterval = 60

    /// Times that would make the run's RPO or RTO a fiction are refused before anything is read:
    /// an incident or a declaration in the future, and snapshots chosen from after the incident
    /// (they may hold the damage, and their RPO would be negative).
    static func checkTimes(_ request: RunRequest, now: Date) throws {
        let iso = Timestamp.iso
        if let incident = request.incidentAt, incident > now.addingTimeInterval(clockSkew) {
            throw RunRequestError("--incident-at \(iso(incident)) is in the future (it is \(iso(now)) now): the incident is when the data was lost; "
                                  + "give a time that has passed, or leave it out for now")
        }
        if let declared = request.declaredAt, declared > now.addingTimeInterval(clockSkew) {
            throw RunRequestError("--declared-at \(iso(declared)) is in the future (it is \(iso(now)) now): RTO is counted from it; "
                                  + "give when the incident was declared, or leave it out for now")
        }
        let incident = min(request.incidentAt ?? now, now)
        if let declared = request.declaredAt.map({ min($0, now) }), declared < incident {
            throw RunRequestError("--declared-at \(iso(declared)) is before the incident (\(iso(incident))\(request.incidentAt == nil ? ", the default: now" : "")): "
                                  + "an incident is declared once its data is lost, and RTO counted from before the loss would hold time that was not recovery; "
                                  + "give the time the data was lost with --incident-at (at or before the declaration)")
        }
        if let asOf = request.asOf, asOf > incident {
            throw RunRequestError("--as-of \(iso(asOf)) is after the incident (\(iso(incident))\(request.incidentAt == nil ? ", the default: now" : "")): "
                                  + "a snapshot taken after the data was lost may hold the damage, and its RPO would be negative; give an --as-of at or "
                                  + "before the incident, or the incident's time with --incident-at")
        }
    }

    public static func prepare(_ request: RunRequest, now: Date, runID: String? = nil,
                               stores: SnapshotStores = SnapshotStores()) async throws -> Prepared {
        let plan = request.plan
        try checkTimes(request, now: now)
        if request.mode == .exercise, plan.sandbox == nil {
            throw RunRequestError("plan \(plan.name) has no sandbox; exercises restore only into a sandbox (add `sandbox:` to the plan)")
        }
        let store: SnapshotStore
        do {
            store = try await stores.open(plan.snapshots).scan()
        } catch {
            throw RunRequestError("cannot read the snapshot store of plan \(plan.name) (snapshots: at \(plan.place(of: "snapshots"))): \(error); "
                                  + "mount it or make it readable, or fix the plan's path and `lifeboat reload`")
        }
        var sites = store.selectSites(plan.sites)
        // A site the plan names outright that the store does not have would be passed over
        // without a word: refused, as `--sites` refuses one.
        let stored = Set(store.sites)
        let absent = plan.sites.include.filter { Glob.isLiteral($0) && !stored.contains($0) }
        if request.sites == nil, !absent.isEmpty {
            throw RunRequestError("plan \(plan.name) names site(s) with no snapshots in \(plan.snapshots): \(absent.joined(separator: ", ")) "
                                  + "(sites: at \(plan.place(of: "sites"))); fix the plan's sites, or the store, and `lifeboat reload`")
        }
        if let wanted = request.sites {
            let selectable = Set(sites)
            let unknown = wanted.filter { !selectable.contains($0) }
            if !unknown.isEmpty {
                let why = unknown.map { site in
                    store.sites.contains(site) ? "\(site) (excluded by the plan's sites)" : "\(site) (no snapshots in \(plan.snapshots))"
                }
                throw RunRequestError("cannot restore unknown site(s): \(why.joined(separator: ", "))")
            }
            let set = Set(wanted)
            sites = sites.filter(set.contains)
        }
        guard !sites.isEmpty else {
            throw RunRequestError("plan \(plan.name) selects no site in \(plan.snapshots)")
        }
        if let wanted = request.products {
            let unknown = wanted.filter { name in !plan.products.contains { $0.name == name } }
            guard unknown.isEmpty, !wanted.isEmpty else {
                throw RunRequestError((wanted.isEmpty ? "the products to restore name none" : "plan \(plan.name) has no product \(unknown.joined(separator: ", "))")
                                      + "; its products: " + plan.products.map(\.name).joined(separator: ", "))
            }
        }

        var seed = request.seed
        if request.mode == .exercise {
            let size = request.scale ?? plan.schedule?.scale.start ?? sites.count
            guard size >= 1 else { throw RunRequestError("--scale must be at least 1") }
            let chosenSeed = seed ?? Int64.random(in: 1...Int64(Int32.max))
            seed = chosenSeed
            sites = sample(sites, count: size, seed: UInt64(chosenSeed))
        }

        let created = now
        // An exercise's incident is its start; a restore's defaults to the same instant. A time
        // within the clock skew ahead of now is now: no RPO or RTO below zero.
        let incidentAt = min(request.incidentAt ?? created, created)
        let asOf = request.asOf.map { min($0, incidentAt) } ?? incidentAt
        let declaredAt = min(request.declaredAt ?? created, created)
        let id = runID ?? RunRecord.makeID(at: created)
        let waves = assignWaves(sites: sites, waves: plan.waves)
        var run = RunRecord(
            id: id, plan: plan.name, planPath: plan.sourcePath, planVersion: plan.version, mode: request.mode, declaredAt: declaredAt,
            incidentAt: incidentAt, asOf: asOf, createdAt: created, startedBy: request.startedBy,
            rtoObjectiveSeconds: plan.objectives.rto.map { Double($0.seconds) },
            rpoObjectiveSeconds: plan.objectives.rpo.map { Double($0.seconds) },
            totalWaves: waves.count, seed: seed, keepSandbox: request.keepSandbox)
        run.state = .pending
        run.rehearse = request.mode == .exercise ? request.rehearse : nil

        let template = request.mode == .exercise ? plan.sandbox! : plan.target
        // Some products only (one restored again from an older snapshot): in the plan's order,
        // each still after those of its `after` that are in the run.
        let wanted = request.products.map(Set.init)
        var jobs: [JobRecord] = []
        for (waveIndex, waveSites) in waves.enumerated() {
            for site in waveSites {
                for (order, product) in plan.products.enumerated() where wanted?.contains(product.name) ?? true {
                    let destination = template.render([.site: site, .product: product.name, .run: id])
                    var job = JobRecord(runId: id, site: site, product: product.name, wave: waveIndex,
                                        priority: product.priority, productOrder: order, destination: destination)
                    if let snapshot = store.select(site: site, product: product.name, asOf: asOf) {
                        job.snapshotPath = snapshot.path
                        job.snapshotTakenAt = snapshot.takenAt
                        job.archiveBytes = snapshot.size
                        job.rpoSeconds = incidentAt.timeIntervalSince(snapshot.takenAt)
                        job.rpoMet = run.rpoObjectiveSeconds.map { job.rpoSeconds! <= $0 }
                    }
                    jobs.append(job)
                }
            }
        }
        return Prepared(run: run, jobs: jobs, waves: waves)
    }

    /// Splits sites into waves: `N%` is at least one site, `N` sites, `rest` the remainder; sites
    /// left after the declared waves form one last wave (a plan never silently drops sites).
    public static func assignWaves(sites: [String], waves: [WaveSpec]) -> [[String]] {
        var result: [[String]] = []
        var remaining = sites[...]
        for wave in waves where !remaining.isEmpty {
            let count: Int
            switch wave.sites {
            case .rest: count = remaining.count
            case .count(let n): count = min(n, remaining.count)
            case .percent(let p): count = min(remaining.count, max(1, Int((Double(sites.count) * p / 100).rounded(.up))))
            }
            result.append(Array(remaining.prefix(count)))
            remaining = remaining.dropFirst(count)
        }
        if !remaining.isEmpty { result.append(Array(remaining)) }
        return result
    }

    /// A reproducible random sample of `count` sites (all when count ≥ sites), in site order.
    public static func sample(_ sites: [String], count: Int, seed: UInt64) -> [String] {
        guard count < sites.count else { return sites }
        var rng = SplitMix64(seed: seed)
        var pool = sites
        for i in 0..<count {
            let j = i + rng.below(pool.count - i)
            pool.swapAt(i, j)
        }
        return pool.prefix(count).sorted()
    }
}
