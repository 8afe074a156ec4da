import Foundation

/// Decides which job of a run starts next: per-site `after:` dependencies, lower `priority` first
/// across all sites, the run's and each product's concurrency limits. A value type that takes
/// events and returns decisions, tested without I/O.
struct RunScheduler {
    private(set) var jobs: [JobRecord]
    private let runLimit: Int
    private let productLimits: [String: Int]
    /// Jobs that must succeed before job i (same site, products of `after:`).
    private let dependencies: [[Int]]
    /// Jobs waiting for job i.
    private let dependents: [[Int]]
    private var unmet: [Int]
    /// Ready jobs per product, best first (a binary heap keyed by `order`).
    private var ready: [String: Heap] = [:]
    private var runningPerProduct: [String: Int] = [:]
    private(set) var running = 0
    /// Jobs in a final state (kept up to date so forecasts need no scan per finished job).
    private(set) var finishedCount = 0
    private var activeWave: Int?
    private let siteRank: [String: Int]

    init(jobs: [JobRecord], plan: Plan) {
        self.jobs = jobs
        runLimit = plan.concurrency
        var limits: [String: Int] = [:]
        for product in plan.products { if let c = product.concurrency { limits[product.name] = c } }
        productLimits = limits
        let sites = Set(jobs.map(\.site)).sorted()
        siteRank = Dictionary(uniqueKeysWithValues: sites.enumerated().map { ($1, $0) })
        var index: [String: Int] = [:]
        for (i, job) in jobs.enumerated() { index[job.site + "\u{0}" + job.product] = i }
        var dependencies = [[Int]](repeating: [], count: jobs.count)
        var dependents = [[Int]](repeating: [], count: jobs.count)
        let after = Dictionary(uniqueKeysWithValues: plan.products.map { ($0.name, $0.after) })
        for (i, job) in jobs.enumerated() {
            for dep in after[job.product] ?? [] {
                guard let d = index[job.site + "\u{0}" + dep] else { continue }
                dependencies[i].append(d)
                dependents[d].append(i)
            }
        }
        self.dependencies = dependencies
        self.dependents = dependents
        unmet = dependencies.map { deps in deps.filter { jobs[$0].state != .succeeded }.count }
        finishedCount = jobs.filter(\.state.isFinal).count
    }

    /// Replaces job `i`, keeping `finishedCount` right.
    private mutating func replace(_ i: Int, with job: JobRecord) {
        if jobs[i].state.isFinal != job.state.isFinal { finishedCount += job.state.isFinal ? 1 : -1 }
        jobs[i] = job
    }

    /// The sort key: priority, then declared product order, then site.
    private func order(_ i: Int) -> (Int, Int, Int, Int) {
        (jobs[i].priority, jobs[i].productOrder, siteRank[jobs[i].site] ?? 0, i)
    }

    /// Makes the jobs of `wave` eligible. Returns the transitions (to record) of jobs skipped at
    /// once because a dependency already ended without success (after a resume).
    mutating func activate(wave: Int, at now: Date) throws -> [JobTransition] {
        activeWave = wave
        var skipped: [JobTransition] = []
        for i in jobs.indices where jobs[i].wave == wave && !jobs[i].state.isFinal {
            if let bad = dependencies[i].first(where: { jobs[$0].state.isFinal && jobs[$0].state != .succeeded }) {
                skipped += try skip(i, because: bad, at: now)
            } else if unmet[i] == 0 {
                push(i)
            }
        }
        return skipped
    }

    private mutating func push(_ i: Int) {
        let key = order(i)
        ready[jobs[i].product, default: Heap()].insert(i, key: key)
    }

    /// The next job to start, or nil when limits or dependencies hold everything back.
    mutating func next() -> Int? {
        guard running < runLimit else { return nil }
        var best: (product: String, key: (Int, Int, Int, Int))?
        for (product, heap) in ready {
            guard let top = heap.peekKey else { continue }
            if let limit = productLimits[product], runningPerProduct[product, default: 0] >= limit { continue }
            if best == nil || top < best!.key { best = (product, top) }
        }
        guard let best, let i = ready[best.product]?.pop() else { return nil }
        running += 1
        runningPerProduct[jobs[i].product, default: 0] += 1
        return i
    }

    /// Whether jobs of the active wave are running or could still start.
    var hasWork: Bool {
        running > 0 || ready.values.contains { !$0.isEmpty }
    }

    /// Records the end of a started job; returns the transitions (to record) of dependents
    /// skipped as a consequence.
    mutating func finish(_ i: Int, as job: JobRecord, at now: Date) throws -> [JobTransition] {
        running -= 1
        runningPerProduct[job.product, default: 1] -= 1
        return try ended(i, as: job, at: now)
    }

    /// Records the end of a job this scheduler did not start (hosts claimed and ran it from a
    /// shared ledger); returns the transitions (to record) of dependents skipped as a consequence.
    mutating func ended(_ i: Int, as job: JobRecord, at now: Date) throws -> [JobTransition] {
        replace(i, with: job)
        return try settle(i, at: now)
    }

    /// Records the end of a job that never started (e.g. cancelled while waiting).
    mutating func update(_ i: Int, to job: JobRecord) {
        replace(i, with: job)
    }

    private mutating func settle(_ i: Int, at now: Date) throws -> [JobTransition] {
        // A job a drain interrupted goes back to pending and runs again after the restart: its
        // dependents wait for it, they are not skipped for it.
        guard jobs[i].state.isFinal else { return [] }
        if jobs[i].state == .succeeded {
            for d in dependents[i] {
                unmet[d] -= 1
                if unmet[d] == 0, jobs[d].wave == activeWave, jobs[d].state == .pending || jobs[d].state == .waiting {
                    push(d)
                }
            }
            return []
        }
        var skipped: [JobTransition] = []
        for d in dependents[i] where !jobs[d].state.isFinal {
            skipped += try skip(d, because: i, at: now)
        }
        return skipped
    }

    /// Skips `i` (and, transitively, its dependents); returns their transitions.
    private mutating func skip(_ i: Int, because cause: Int, at now: Date) throws -> [JobTransition] {
        var result: [JobTransition] = []
        var stack = [(i, cause)]
        while let (j, c) = stack.popLast() {
            guard !jobs[j].state.isFinal else { continue }
            let transition = try JobLifecycle.apply(.skipped(dependency: "\(jobs[c].product) of \(jobs[c].site) \(jobs[c].state.rawValue)", at: now), to: jobs[j])
            replace(j, with: transition.job)
            result.append(transition)
            for d in dependents[j] { stack.append((d, j)) }
        }
        return result
    }
}

/// A binary min-heap of job indices keyed by their scheduling order.
struct Heap {
    private var items: [(key: (Int, Int, Int, Int), value: Int)] = []

    var isEmpty: Bool { items.isEmpty }
    var peekKey: (Int, Int, Int, Int)? { items.first?.key }

    mutating func insert(_ value: Int, key: (Int, Int, Int, Int)) {
        items.append((key, value))
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].key < items[parent].key else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Int? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < items.count, items[left].key < items[smallest].key { smallest = left }
            if right < items.count, items[right].key < items[smallest].key { smallest = right }
            if smallest == parent { break }
            items.swapAt(parent, smallest)
            parent = smallest
        }
        return top.value
    }
}
