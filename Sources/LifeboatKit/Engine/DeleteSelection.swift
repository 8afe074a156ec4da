import Crypto
import Foundation

/// What a soft delete would move, resolved and checked against its plan before anything moves
/// (DESIGN.md "Soft deletes"): every id must name an existing target of the plan, the plan may cap
/// the number of sites, and the confirmation token covers the very selection, the plan's version
/// and the content of every target, so a token from one `--dry-run` confirms nothing else.
public struct DeleteSelection: Sendable, Codable, Hashable {
    /// One (site, product) that would move into quarantine.
    public struct Target: Sendable, Codable, Hashable {
        public var site: String
        public var product: String
        /// The plan's target, rendered.
        public var destination: String
        /// Where that is on disk, symbolic links followed at every level.
        public var resolved: String
        public var bytes: Int64
        public var files: Int64
        /// What a confirmation covers of the target as it is now (`confirmedState`).
        public var digest: String
    }

    public var plan: String
    public var planVersion: String
    public var sites: [String]
    public var products: [String]
    public var targets: [Target]
    /// Sites per wave, in order (a canary wave of one site first unless the plan declares waves).
    public var waves: [[String]]
    public var bytes: Int64
    public var files: Int64
    /// `delete: { max_sites }` of the plan, if set.
    public var maxSites: Int?
    /// What `delete --confirm` must be given.
    public var token: String

    /// Resolves `sites` × `products` (default: every product of the plan with data there) of
    /// `plan`, refusing the whole request when any id is unknown, a target is unsafe to move, or
    /// the plan's cap is exceeded.
    static func resolve(plan: Plan, sites requested: [String], products requestedProducts: [String]?,
                        protected: ProtectedTrees?) throws -> DeleteSelection {
        guard !requested.isEmpty else {
            throw DeleteRefusal(.noSites, "a delete names its sites (--sites a,b or --sites-file F); it never defaults to every site of plan \(plan.name)")
        }
        var seen: Set<String> = []
        let sites = requested.filter { seen.insert($0).inserted }
        var unknown: [UnknownID] = []
        let planProducts = plan.products.map(\.name)

        var products = planProducts
        if let requestedProducts {
            var seenProducts: Set<String> = []
            products = requestedProducts.filter { seenProducts.insert($0).inserted }
            guard !products.isEmpty else { throw DeleteRefusal(.unknownIDs, "--products names no product") }
            for product in products where !planProducts.contains(product) {
                var why = "not a product of plan \(plan.name) (its products: \(planProducts.joined(separator: ", ")))"
                if Identifier.isValid(product), plan.sites.matches(product), planProducts.contains(where: { Self.exists(plan, site: product, product: $0) }) {
                    why += "; it names a site: give sites with --sites"
                }
                unknown.append(UnknownID(id: product, kind: "product", why: why))
            }
        }
        let knownProducts = products.filter(planProducts.contains)

        var targets: [Target] = []
        var unsafe: [String] = []
        for site in sites {
            if let why = Self.wrongKind(site, plan: plan) {
                unknown.append(UnknownID(id: site, kind: "site", why: why))
                continue
            }
            var found: [String] = []
            var missing: [String] = []
            for product in knownProducts {
                let destination = plan.target.render([.site: site, .product: product])
                var st = stat()
                guard lstat(destination, &st) == 0 else { missing.append(product); continue }
                if (st.st_mode & S_IFMT) == S_IFLNK {
                    unsafe.append("\(site)/\(product): the target \(destination) is a symbolic link; a delete moves only a directory that is really there, never a link or what it points to")
                    continue
                }
                guard (st.st_mode & S_IFMT) == S_IFDIR else {
                    unsafe.append("\(site)/\(product): the target \(destination) is not a directory")
                    continue
                }
                let resolved = ResolvedPath.of(destination)
                if let why = protected?.restoreRefusal(resolved) {
                    unsafe.append("\(site)/\(product): the target \(destination) \(why); refusing to move it")
                    continue
                }
                found.append(product)
                targets.append(Target(site: site, product: product, destination: destination, resolved: resolved,
                                      bytes: 0, files: 0, digest: ""))
            }
            let example = plan.target.render([.site: site, .product: knownProducts.first ?? planProducts.first ?? "?"])
            if found.isEmpty, !knownProducts.isEmpty, missing.count == knownProducts.count {
                let inStore = FileSystem.exists(plan.snapshots + "/" + site)
                unknown.append(UnknownID(id: site, kind: "site", why: "no data of plan \(plan.name) for it (nothing at \(example)"
                    + (missing.count > 1 ? " or the other products' targets" : "") + ")"
                    + (inStore ? "; the store has snapshots of it: already deleted?" : "; nothing in the store either: is it the right kind of id?")))
            } else if requestedProducts != nil {
                for product in missing {
                    unknown.append(UnknownID(id: "\(site)/\(product)", kind: "target",
                                             why: "nothing at \(plan.target.render([.site: site, .product: product]))"))
                }
            }
        }
        guard unknown.isEmpty else {
            throw DeleteRefusal(.unknownIDs, "refusing the whole delete: \(unknown.count) id(s) name no target of plan \(plan.name): "
                                + unknown.map { "\($0.id) (\($0.why))" }.joined(separator: "; ") + "; nothing was moved",
                                unknown: unknown)
        }
        // Two targets that are one directory (a site linked to another): the listing would
        // count it twice, and the delete would refuse the token anyway.
        var byResolved: [String: Target] = [:]
        for target in targets {
            if let first = byResolved[target.resolved] {
                unsafe.append("\(first.site)/\(first.product) and \(target.site)/\(target.product) are one directory, \(target.resolved) (through a symbolic link); delete it under one of them")
            } else {
                byResolved[target.resolved] = target
            }
        }
        guard unsafe.isEmpty else {
            throw DeleteRefusal(.unsafe, "refusing the whole delete: " + unsafe.joined(separator: "; ") + "; nothing was moved")
        }
        if let cap = plan.delete.maxSites, sites.count > cap {
            throw DeleteRefusal(.tooMany, "refusing the whole delete: \(sites.count) sites asked, plan \(plan.name) allows at most \(cap) in one delete (delete.max_sites); split it into smaller deletes")
        }
        for i in targets.indices {
            let (bytes, files) = TreeSize.bytesAndFiles(targets[i].destination)
            targets[i].bytes = bytes
            targets[i].files = files
            targets[i].digest = Self.confirmedState(of: targets[i].destination) ?? "unreadable"
        }
        let chosen = sites.filter { site in targets.contains { $0.site == site } }
        let waves = RunPlanner.assignWaves(sites: chosen, waves: plan.waveSpecs(for: .delete))
        var selection = DeleteSelection(plan: plan.name, planVersion: plan.version, sites: chosen,
                                        products: knownProducts.filter { p in targets.contains { $0.product == p } },
                                        targets: targets, waves: waves,
                                        bytes: targets.reduce(0) { $0 + $1.bytes }, files: targets.reduce(0) { $0 + $1.files },
                                        maxSites: plan.delete.maxSites, token: "")
        selection.token = selection.computeToken()
        return selection
    }

    /// The confirmation token: a hash over the plan, its version, every target with its resolved
    /// path and content digest (in a canonical order), and the waves.
    func computeToken() -> String {
        var text = "lifeboat-delete-v1\nplan=\(plan)\nversion=\(planVersion)\n"
        for t in targets.sorted(by: { ($0.site, $0.product) < ($1.site, $1.product) }) {
            text += "\(t.site)\t\(t.product)\t\(t.resolved)\t\(t.digest)\n"
        }
        // The waves as listed: the order of the ids decides which site is the canary.
        for (i, wave) in waves.enumerated() { text += "wave \(i + 1)\t\(wave.joined(separator: ","))\n" }
        let hex = SHA256.hash(data: Data(text.utf8)).hexDigits
        return "del-" + String(hex.prefix(12))
    }

    /// What a confirmation covers of a target: its tree's `TreeDigest` (names, types, modes,
    /// sizes, times) and the target directory itself — its identity and change time, which a
    /// rename changes however alike the tree looks. So a token confirms one delete: the delete
    /// undone renames the tree back, and the same token no longer matches.
    static func confirmedState(of path: String) -> String? {
        var st = stat()
        guard lstat(path, &st) == 0, let digest = TreeDigest.of(path) else { return nil }
        return confirmedState(digest: digest, st)
    }

    static func confirmedState(digest: String, _ st: stat) -> String {
        "\(digest) \(FileIdentity(st)) \(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec)"
    }

    /// Why `id` cannot be a site id of `plan` when it plainly is another kind of id, or nil.
    static func wrongKind(_ id: String, plan: Plan) -> String? {
        if !Identifier.isValid(id) {
            var why = "not a valid site id (\(Identifier.rule))"
            let lower = id.lowercased()
            if lower != id, Identifier.isValid(lower) { why += "; site ids are lower case: \(lower)?" }
            if id.contains("/") { why += "; it looks like a path, not an id" }
            return why
        }
        if plan.product(named: id) != nil { return "it is a product of plan \(plan.name), not a site (give products with --products)" }
        if id.range(of: #"^[0-9]{8}-[0-9]{6}-[0-9a-f]{4}$"#, options: .regularExpression) != nil {
            return "it looks like a run id, not a site"
        }
        if id.allSatisfy(\.isNumber) {
            return "it is a number: it looks like a numeric id (a customer, job or quarantine id?), not a site name"
        }
        if !plan.sites.matches(id) { return "plan \(plan.name) does not select it (sites include/exclude)" }
        return nil
    }

    static func exists(_ plan: Plan, site: String, product: String) -> Bool {
        FileSystem.exists(plan.target.render([.site: site, .product: product]))
    }
}

/// An id of a delete request that names no target of the plan, and why.
public struct UnknownID: Sendable, Codable, Hashable {
    public var id: String
    /// `site`, `product` or `target` (a site/product pair).
    public var kind: String
    public var why: String
}

/// A delete refused before anything moved.
public struct DeleteRefusal: LifeboatError, Sendable {
    public enum Code: String, Sendable, Codable {
        case noSites = "no-sites", unknownIDs = "unknown-ids", unsafe, tooMany = "too-many-sites"
        case token = "token-mismatch", notDeleter = "not-a-deleter", busy
    }

    public var code: Code
    public var message: String
    public var unknown: [UnknownID]

    public init(_ code: Code, _ message: String, unknown: [UnknownID] = []) {
        self.code = code
        self.message = message
        self.unknown = unknown
    }

    public var exitCode: CLIExit { .rejected }
    public var description: String { message }
}

extension Plan {
    /// The waves a run of `mode` goes through: the plan's; for a delete of a plan that declares
    /// none, a canary of one site that must not fail, then the rest, so that a wrong delete can be
    /// stopped after one site.
    public func waveSpecs(for mode: RunMode) -> [WaveSpec] {
        guard mode == .delete, !wavesDeclared else { return waves }
        return [WaveSpec(sites: .count(1), gate: WaveGate(maxFailures: 0)), WaveSpec(sites: .rest)]
    }
}
