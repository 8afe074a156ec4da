import Crypto
import Foundation
import Yams

/// Decodes and validates plan files. Every problem is reported with `file:line:col` and what was
/// expected, all of them at once (`DiagnosticsError`).
public enum PlanLoader {
    /// Loads the plan at `path`. `path` is shown in messages as given; relative paths inside the
    /// plan (`snapshots`, `target`, `sandbox`) are resolved against the plan file's directory.
    public static func load(path: String) throws -> Plan {
        let reader = YAMLReader(file: path)
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        guard let root = reader.load(contentsOf: path) else {
            try reader.throwIfErrors()
            throw DiagnosticsError([Diagnostic(file: path, line: 1, column: 1, message: "cannot load plan")])
        }
        let defaultName = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        let plan = decode(root, reader: reader, defaultName: defaultName,
                          baseDirectory: URL(fileURLWithPath: absolute).deletingLastPathComponent().path)
        try reader.throwIfErrors()
        guard var plan else { throw DiagnosticsError([Diagnostic(file: path, line: 1, column: 1, message: "cannot load plan")]) }
        plan.sourcePath = absolute
        plan.version = version(of: (try? Data(contentsOf: URL(fileURLWithPath: absolute))) ?? Data())
        return plan
    }

    /// Loads a plan from text (tests, `plan.check` over the socket).
    public static func load(text: String, file: String, baseDirectory: String) throws -> Plan {
        let reader = YAMLReader(file: file)
        guard let root = reader.load(text: text) else {
            try reader.throwIfErrors()
            throw DiagnosticsError([Diagnostic(file: file, line: 1, column: 1, message: "cannot load plan")])
        }
        let defaultName = URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
        let plan = decode(root, reader: reader, defaultName: defaultName, baseDirectory: baseDirectory)
        try reader.throwIfErrors()
        guard var plan else { throw DiagnosticsError([Diagnostic(file: file, line: 1, column: 1, message: "cannot load plan")]) }
        plan.version = version(of: Data(text.utf8))
        return plan
    }

    /// `sha256:<hex>` of a plan's bytes.
    static func version(of data: Data) -> String {
        "sha256:" + SHA256.hash(data: data).hexDigits
    }

    // MARK: Decoding

    static func decode(_ root: Node, reader: YAMLReader, defaultName: String, baseDirectory: String) -> Plan? {
        guard var doc = YAMLMapping(root, path: "", reader: reader) else { return nil }

        var name = defaultName
        if let (text, node) = doc.string("name") {
            if Identifier.isValid(text) { name = text } else { reader.error(at: node, "name \"\(text)\" is not a valid plan name; \(Identifier.rule)") }
        } else if !Identifier.isValid(defaultName) && !doc.has("name") {
            reader.error(at: root, "the file name \"\(defaultName)\" is not a valid plan name; add `name:` (\(Identifier.rule))")
        }
        let description = doc.string("description")?.0

        var snapshots = ""
        if let (text, node) = doc.string("snapshots") {
            if text.isEmpty { reader.error(at: node, "snapshots must be the path of the snapshot store") }
            if S3Location.isS3(text) {
                // A bucket store (DESIGN.md "Snapshot store"): checked here, reached at run time.
                do {
                    snapshots = try S3Location(parsing: text).description
                } catch let error as S3Error {
                    reader.error(at: node, "snapshots: \(error.message)")
                } catch {
                    reader.error(at: node, "snapshots: \(error)")
                }
            } else {
                snapshots = PathTemplate.normalise(text.hasPrefix("/") ? text : baseDirectory + "/" + text)
            }
        } else {
            doc.requireValue("snapshots", "the snapshot store directory", missingAt: root)
        }

        let target = pathTemplate(&doc, "target", reader: reader, base: baseDirectory, required: true)
        let sandbox = pathTemplate(&doc, "sandbox", reader: reader, base: baseDirectory, required: false)

        var quarantine = QuarantinePolicy()
        if var q = doc.mapping("quarantine") {
            if let r = q.duration("retention") {
                if r.seconds > 0 {
                    quarantine.retention = r
                } else {
                    reader.error(at: q.keyNode("retention")!, "quarantine.retention must be more than 0s: displaced data must be kept long enough to be put back (30d is the default)")
                }
            }
            q.finish()
        }

        var sites = SiteSelector()
        if let node = doc.value("sites") {
            if case .sequence(let items) = node {
                // A plain list is an include list.
                sites.include = globs(Array(items), path: "sites", reader: reader)
            } else if var s = YAMLMapping(node, path: "sites", reader: reader) {
                sites.include = globs(&s, "include", reader: reader) ?? sites.include
                sites.exclude = globs(&s, "exclude", reader: reader) ?? []
                s.finish()
            }
        }

        let products = decodeProducts(&doc, reader: reader, root: root, base: baseDirectory)

        let concurrency = doc.int("concurrency", range: 1...10_000) ?? 8

        var objectives = Objectives()
        if var o = doc.mapping("objectives") {
            objectives.rto = o.duration("rto")
            objectives.rpo = o.duration("rpo")
            o.finish()
        }

        let wavesDeclared = doc.has("waves")
        var waves = decodeWaves(&doc, reader: reader)
        // Sites the declared waves leave form a last wave, as a run makes it: said where the plan
        // is shown (`plan check`: "3 wave(s)"), not found out in the run.
        let restAdded = !waves.isEmpty && waves.last?.sites != .rest
        if restAdded { waves.append(WaveSpec(sites: .rest)) }

        var retry = RetryPolicy()
        if var r = doc.mapping("retry") {
            if let a = r.int("attempts", range: 1...100) { retry.attempts = a }
            if let b = r.duration("backoff") { retry.backoff = b }
            r.finish()
        }

        var verify = VerifyPolicy()
        if var v = doc.mapping("verify") {
            if let c = v.choice("checksum", ChecksumPolicy.self) { verify.checksum = c }
            verify.command = command(&v, "command", path: "verify.command", reader: reader, base: baseDirectory)
            v.finish()
        }

        var limits = ArchiveLimits()
        if var l = doc.mapping("limits") {
            if let b = l.size("max_bytes") {
                if b.bytes > 0 { limits.maxBytes = b } else { reader.error(at: l.keyNode("max_bytes")!, "limits.max_bytes must be more than 0") }
            }
            if let e = l.int("max_entries", range: 1...Int(Int32.max)) { limits.maxEntries = e }
            l.finish()
        }

        let unsafeEntries = doc.choice("unsafe_entries", UnsafeEntryPolicy.self) ?? .reject
        let preserveOwnership = doc.bool("preserve_ownership") ?? false
        var hookTimeout = DurationSpec(seconds: 600)
        if let t = doc.duration("hook_timeout") {
            if t.seconds > 0 { hookTimeout = t } else { reader.error(at: doc.keyNode("hook_timeout")!, "hook_timeout must be more than 0s") }
        }

        var schedule: ExerciseSchedule?
        if var s = doc.mapping("schedule") {
            var scale = ExerciseScale()
            var rehearse: String?
            if let (text, node) = s.string("rehearse") {
                if text == "delete" { rehearse = text } else { reader.error(at: node, "schedule.rehearse must be \"delete\", found \"\(text)\"") }
            }
            if var sc = s.mapping("scale") {
                if let start = sc.int("start", range: 1...1_000_000) { scale.start = start }
                if let factor = sc.double("factor", range: 1...1_000) { scale.factor = factor }
                sc.finish()
            }
            if let (text, node) = s.string("exercise") {
                do {
                    let exercise = try CronExpression(text)
                    // Cron has no year: what does not fire within the years it looks ahead never does.
                    if exercise.nextFire(after: Date(timeIntervalSince1970: 0)) == nil {
                        reader.error(at: node, "schedule.exercise \"\(text)\" never fires: none of its months has that day")
                    } else if sandbox == nil {
                        // Every fire would fail, logged and nothing more: the rehearsal never happens.
                        reader.error(at: node, "schedule.exercise needs a \"sandbox\": exercises restore only into a sandbox, never over the targets; add sandbox: (a path template) to the plan")
                    } else {
                        schedule = ExerciseSchedule(exercise: exercise, scale: scale, rehearse: rehearse)
                    }
                } catch {
                    reader.error(at: node.mark(atOffset: error.offset), "schedule.exercise: \(error.message)")
                }
            } else {
                reader.error(at: s.node, "schedule needs \"exercise\" (a 5-field cron expression or @quarterly, @monthly, …)")
            }
            s.finish()
        }

        var delete = DeletePolicy()
        if var d = doc.mapping("delete") {
            delete.maxSites = d.int("max_sites", range: 1...1_000_000)
            d.finish()
        }

        let notify = command(&doc, "notify", path: "notify", reader: reader, base: baseDirectory, allowed: [.run],
                             hint: " (notify runs once per event, not per job: the event's site and product are in the JSON on its stdin)")
        doc.finish()

        // Cross-field rules: the trees a plan names never overlap, and no two jobs share a path.
        var marks: [String: SourceMark] = [:]
        for key in ["name", "snapshots", "target", "sandbox", "quarantine", "sites"] {
            if let node = doc.keyNode(key) { marks[key] = SourceMark(node.mark) }
        }
        var trees: [PlanTree] = []
        if !snapshots.isEmpty, !S3Location.isS3(snapshots), let store = try? PathTemplate(snapshots, allowed: []) { trees.append(PlanTree(role: .store, template: store)) }
        if let target { trees.append(PlanTree(role: .target, template: target)) }
        if let sandbox { trees.append(PlanTree(role: .sandbox, template: sandbox)) }
        for (i, a) in trees.enumerated() {
            for b in trees[(i + 1)...] {
                if let problem = PlanTree.overlap(a, b) {
                    reader.error(at: doc.keyNode(PlanTree.blamed(a, b).role.rawValue)!, problem)
                }
            }
        }
        for tree in trees where tree.role != .store {
            if let (first, second) = tree.template.collidingPairs {
                reader.error(at: doc.keyNode(tree.role.rawValue)!, "\(tree.role.rawValue) \"\(tree.template)\" renders the same path for \(first) and \(second), so one tenant's data could land in another's directory; separate {site} and {product} with \"/\" (or another character ids cannot contain)")
            }
        }
        var warnings: [Diagnostic] = []
        if quarantine.retention.seconds < 86_400, let node = doc.keyNode("quarantine") {
            let mark = SourceMark(node.mark)
            warnings.append(Diagnostic(file: reader.file, line: mark.line, column: mark.column,
                                       message: "warning: quarantine.retention \(quarantine.retention) is under a day: displaced data becomes purgeable that soon (quarantine purge asks for --yes)"))
        }

        if restAdded, let node = doc.keyNode("waves") {
            let mark = SourceMark(node.mark)
            warnings.append(Diagnostic(file: reader.file, line: mark.line, column: mark.column,
                                       message: "warning: waves do not end with { sites: rest }: the sites they leave form a last wave of their own"))
        }
        guard let target else { return nil }
        return Plan(
            name: name, description: description, sourcePath: nil, snapshots: snapshots,
            target: target, sandbox: sandbox, quarantine: quarantine, sites: sites, products: products,
            concurrency: concurrency, objectives: objectives, waves: waves, retry: retry, verify: verify,
            limits: limits, unsafeEntries: unsafeEntries, preserveOwnership: preserveOwnership,
            hookTimeout: hookTimeout, schedule: schedule, notify: notify, marks: marks, warnings: warnings, delete: delete, wavesDeclared: wavesDeclared
        )
    }

    private static func pathTemplate(_ doc: inout YAMLMapping, _ key: String, reader: YAMLReader, base: String, required: Bool) -> PathTemplate? {
        guard let (text, node) = doc.string(key) else {
            if required { doc.requireValue(key, "a path template with {site} and {product}") }
            return nil
        }
        let template: PathTemplate
        do {
            template = try PathTemplate(text)
        } catch {
            reader.error(at: node.mark(atOffset: error.offset), "\(key): \(error.message)")
            return nil
        }
        var ok = true
        for variable in [TemplateVariable.site, .product] where !template.variables.contains(variable) {
            reader.error(at: node, "\(key) \"\(text)\" must contain {\(variable.rawValue)} so that every job has its own directory")
            ok = false
        }
        // `..` may climb in the literal part (`../out/{site}`), never next to a variable.
        if text.split(separator: "/").drop(while: { !$0.contains("{") }).contains(where: { $0 == ".." }) {
            reader.error(at: node, "\(key) \"\(text)\" must not contain \"..\" after a variable")
            ok = false
        }
        // Lifeboat's own directories beside each destination: a component that can render one
        // would put staging or quarantine inside a tenant's data (or a tenant's data in them).
        for reserved in [StagingDirectory.areaName, QuarantineArea.name] {
            let name = SegmentPattern([.literal(reserved)])
            if template.segments.contains(where: { SegmentPattern($0).intersects(name) }) {
                reader.error(at: node, "\(key) \"\(text)\" can render \"\(reserved)\" as a path component, the name of Lifeboat's own directory beside each destination; choose a template (or ids) that cannot")
                ok = false
            }
        }
        return ok ? template.resolved(against: base) : nil
    }

    private static func globs(_ m: inout YAMLMapping, _ key: String, reader: YAMLReader) -> [String]? {
        guard let node = m.value(key) else { return nil }
        guard case .sequence(let items) = node else {
            reader.error(at: node, "sites.\(key) must be a list of globs, e.g. [\"*\"], found \(node.kindDescription)")
            return nil
        }
        return globs(Array(items), path: "sites.\(key)", reader: reader)
    }

    private static func globs(_ items: [Node], path: String, reader: YAMLReader) -> [String] {
        var result: [String] = []
        for (i, node) in items.enumerated() {
            guard case .scalar(let scalar) = node else {
                reader.error(at: node, "\(path)[\(i)] must be a glob string, found \(node.kindDescription)")
                continue
            }
            if Glob.isValid(scalar.string) {
                // One that no id can match would select (or, in exclude, spare) nothing, silently.
                if let c = Glob.characterNoIDHas(scalar.string) {
                    reader.error(at: node, "\(path)[\(i)]: \"\(scalar.string)\" can never match a site id, which has no \"\(c)\" "
                                 + "(\(Identifier.rule))")
                }
                result.append(scalar.string)
            } else {
                reader.error(at: node, "\(path)[\(i)]: \"\(scalar.string)\" is not a valid glob (unbalanced \"[\" or empty)")
            }
        }
        return result
    }

    /// A command: a non-empty list of strings (argv, no shell) whose arguments may use `{path}`.
    /// The program is a fixed path: one relative with a `/` in it (`./check`, `bin/check`) is
    /// beside the plan file, as the plan's other relative paths are; a bare name is looked up
    /// on `PATH`; a template there is refused (`{path}/check` would run a program the restored
    /// archive brought, as the daemon's user).
    private static func command(_ m: inout YAMLMapping, _ key: String, path: String, reader: YAMLReader, base: String,
                                allowed: Set<TemplateVariable> = Set(TemplateVariable.allCases), hint: String = "") -> [String]? {
        guard let node = m.value(key) else { return nil }
        guard case .sequence = node, let items = m.strings(key) else {
            reader.error(at: node, "\(path) must be a command as a list of strings, e.g. [\"/usr/local/bin/check\", \"{path}\"] (it runs without a shell)")
            return nil
        }
        guard let first = items.first, !first.0.isEmpty else {
            reader.error(at: node, "\(path) must name a program as its first item")
            return nil
        }
        if first.0.contains("{") {
            reader.error(at: first.1, "\(path): the program \"\(first.0)\" must be a fixed path, not a template: "
                         + "a program under {path} would be one the restored archive brought; pass {path} as an argument instead")
            return nil
        }
        for (text, itemNode) in items {
            do {
                _ = try PathTemplate(text, allowed: allowed)
            } catch {
                reader.error(at: itemNode.mark(atOffset: error.offset), "\(path): \(error.message)\(hint)")
            }
        }
        var argv = items.map(\.0)
        if !argv[0].hasPrefix("/"), argv[0].contains("/") { argv[0] = PathTemplate.normalise(base + "/" + argv[0]) }
        return argv
    }

    private static func decodeProducts(_ doc: inout YAMLMapping, reader: YAMLReader, root: Node, base: String) -> [ProductSpec] {
        guard let nodes = doc.sequence("products") else {
            if !doc.has("products") { reader.error(at: root, "missing required key \"products\" (the list of products to restore)") }
            // `products:` left empty (or `~`): a plan that would restore nothing.
            else if doc.value("products") == nil { reader.error(at: doc.keyNode("products")!, "products must list at least one product") }
            return []
        }
        if nodes.isEmpty { reader.error(at: doc.keyNode("products")!, "products must list at least one product") }
        var products: [ProductSpec] = []
        var afterNodes: [[Node]] = []
        var seen: [String: Int] = [:]
        for (i, node) in nodes.enumerated() {
            let path = "products[\(i)]"
            guard var p = YAMLMapping(node, path: path, reader: reader) else { continue }
            // Every key is read before the name is required: a product without one has its other
            // keys checked, not called unknown.
            let named = p.string("name")
            var spec = ProductSpec(name: named?.0 ?? "")
            spec.priority = p.int("priority", range: -1_000_000...1_000_000) ?? 0
            let after = p.strings("after") ?? []
            spec.after = after.map(\.0)
            spec.concurrency = p.int("concurrency", range: 1...10_000)
            spec.postRestore = command(&p, "post_restore", path: "\(path).post_restore", reader: reader, base: base)
            p.finish()
            guard let (name, nameNode) = named else {
                if p.has("name") { p.requireValue("name", "the product's id") } else { reader.error(at: node, "\(path) needs a \"name\"") }
                continue
            }
            if !Identifier.isValid(name) { reader.error(at: nameNode, "\(path).name \"\(name)\" is not a valid product id; \(Identifier.rule)") }
            if let earlier = seen[name] { reader.error(at: nameNode, "\(path).name \"\(name)\" is already declared by products[\(earlier)]") }
            seen[name] = i
            afterNodes.append(after.map(\.1))
            products.append(spec)
        }
        // Dependencies: known, not self, acyclic.
        let names = Set(products.map(\.name))
        for (i, product) in products.enumerated() {
            for (j, dep) in product.after.enumerated() {
                let node = afterNodes[i][j]
                let path = "products[\(seen[product.name] ?? i)].after"
                if dep == product.name {
                    reader.error(at: node, "\(path): product \"\(dep)\" cannot come after itself")
                } else if !names.contains(dep) {
                    let suggestion = names.min { editDistance($0, dep) < editDistance($1, dep) }.map { " (did you mean \"\($0)\"?)" } ?? ""
                    reader.error(at: node, "\(path) names unknown product \"\(dep)\"\(suggestion)")
                }
            }
        }
        if let cycle = findCycle(products) {
            let (productIndex, depIndex) = cycle.edge
            let node = afterNodes[productIndex][depIndex]
            reader.error(at: node, "products[\(seen[products[productIndex].name] ?? productIndex)].after: dependency cycle \(cycle.names.joined(separator: " → "))")
        }
        return products
    }

    /// Finds one dependency cycle (iterative depth-first search), returning its names and the
    /// edge that closes it.
    static func findCycle(_ products: [ProductSpec]) -> (names: [String], edge: (Int, Int))? {
        let index = Dictionary(products.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
        var state = [Int](repeating: 0, count: products.count) // 0 new, 1 on stack, 2 done
        for start in products.indices where state[start] == 0 {
            var stack: [(node: Int, next: Int)] = [(start, 0)]
            state[start] = 1
            while var top = stack.popLast() {
                let deps = products[top.node].after
                if top.next < deps.count {
                    let depName = deps[top.next]
                    let edge = (top.node, top.next)
                    top.next += 1
                    stack.append(top)
                    guard let dep = index[depName], dep != top.node else { continue }
                    if state[dep] == 1 {
                        let path = stack.map(\.node)
                        let from = path.firstIndex(of: dep) ?? 0
                        let names = path[from...].map { products[$0].name } + [products[dep].name]
                        return (names, edge)
                    }
                    if state[dep] == 0 {
                        state[dep] = 1
                        stack.append((dep, 0))
                    }
                } else {
                    state[top.node] = 2
                }
            }
        }
        return nil
    }

    private static func decodeWaves(_ doc: inout YAMLMapping, reader: YAMLReader) -> [WaveSpec] {
        guard let nodes = doc.sequence("waves") else { return [WaveSpec(sites: .rest)] }
        if nodes.isEmpty { reader.error(at: doc.keyNode("waves")!, "waves must list at least one wave (or be left out for one wave of everything)") }
        var waves: [WaveSpec] = []
        for (i, node) in nodes.enumerated() {
            let path = "waves[\(i)]"
            guard var w = YAMLMapping(node, path: path, reader: reader) else { continue }
            var size: WaveSpec.Size?
            if let sitesNode = w.value("sites"), case .scalar(let scalar) = sitesNode {
                let text = scalar.string
                if text == "rest" {
                    size = .rest
                    if i != nodes.count - 1 { reader.error(at: sitesNode, "\(path).sites: \"rest\" can only be the last wave") }
                } else if text.hasSuffix("%"), let p = Double(text.dropLast()), p > 0, p <= 100 {
                    size = .percent(p)
                } else if scalar.style == .plain, let n = Int(text), n >= 1 {
                    size = .count(n)
                } else {
                    reader.error(at: sitesNode, "\(path).sites must be a percentage (\"10%\"), a number of sites (5) or \"rest\", found \"\(text)\"")
                }
            } else if let sitesNode = w.value("sites") {
                reader.error(at: sitesNode, "\(path).sites must be a percentage (\"10%\"), a number of sites (5) or \"rest\", found \(sitesNode.kindDescription)")
            } else {
                reader.error(at: node, "\(path) needs \"sites\" (a percentage, a number of sites, or \"rest\")")
            }
            var gate = WaveGate()
            if var g = w.mapping("gate") {
                gate.maxFailures = g.int("max_failures", range: 0...Int(Int32.max))
                gate.maxFailureRatio = g.double("max_failure_ratio", range: 0...1)
                g.finish()
            }
            w.finish()
            if let size { waves.append(WaveSpec(sites: size, gate: gate)) }
        }
        return waves
    }

    /// ` (did you mean "x"?)` when one of `known` is close enough to `word` to be what was meant
    /// (a typo: at most 2 edits, or a third of the word), else nothing.
    static func didYouMean(_ word: String, among known: some Collection<String>) -> String {
        guard let closest = known.min(by: { editDistance($0, word) < editDistance($1, word) }),
              editDistance(closest, word) <= max(2, word.count / 3) else { return "" }
        return " (did you mean \"\(closest)\"?)"
    }

    /// Levenshtein distance, for "did you mean" suggestions.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                let current = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = current
            }
        }
        return a.isEmpty ? b.count : row[b.count]
    }
}
