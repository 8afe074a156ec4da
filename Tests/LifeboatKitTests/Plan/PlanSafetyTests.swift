import Foundation
import Testing
@testable import LifeboatKit

/// Plans that would let one job's data land where another's (or production, backups, the state)
/// lives are errors, pinned to file:line:col.
@Suite struct PlanSafetyTests {
    static let plan = """
        name: p
        snapshots: /backups/store
        target: /srv/sites/{site}/{product}
        sandbox: /sandbox/{run}/{site}/{product}
        quarantine: { retention: 30d }
        products:
          - name: contacts
        """

    func load(_ text: String, file: String = "plans/p.yaml") throws -> Plan {
        try PlanLoader.load(text: text, file: file, baseDirectory: "/etc/lifeboat/plans")
    }

    func problems(_ text: String) -> [String] {
        do {
            _ = try load(text)
            return []
        } catch let error as DiagnosticsError {
            return error.diagnostics.map { "\($0.line):\($0.column): \($0.message)" }
        } catch {
            return ["unexpected: \(error)"]
        }
    }

    func with(_ old: String, _ new: String) -> String {
        precondition(Self.plan.contains(old))
        return Self.plan.replacingOccurrences(of: old, with: new)
    }

    @Test(arguments: [
        // Separated by "/", or by characters ids cannot contain: one path per pair.
        ("/srv/{site}/{product}", false),
        ("/srv/{product}/{site}", false),
        ("/srv/{site}+{product}", false),
        ("/srv/{site}@{product}/data", false),
        ("/srv/{site}-live/{product}", false),
        ("/srv/x{site}/y{product}", false),
        // Separated by id characters (or not at all): two pairs meet.
        ("/srv/{site}-{product}", true),
        ("/srv/{site}.{product}", true),
        ("/srv/{site}_{product}/data", true),
        ("/srv/{site}{product}", true),
        ("/srv/{site}{run}{product}", true),
        ("/srv/{product}-{site}", true),
        ("/srv/{site}-x-{product}", true),
    ])
    func templatesThatRenderOnePathForTwoPairs(template: String, collides: Bool) throws {
        let parsed = try PathTemplate(template)
        let found = parsed.collidingPairs
        #expect((found != nil) == collides, "\(template): \(String(describing: found))")
        if let (a, b) = found {
            // The example is real: two different valid pairs, one path.
            #expect(a != b)
            for pair in [a, b] { #expect(Identifier.isValid(pair.site) && Identifier.isValid(pair.product), "\(pair)") }
            // `{run}` stands for literal id characters in the search ("r").
            let run = "r"
            #expect(parsed.render([.site: a.site, .product: a.product, .run: run]) == parsed.render([.site: b.site, .product: b.product, .run: run]))
        }
    }

    @Test func collidingTargetIsAnErrorAtItsLine() {
        let found = problems(with("target: /srv/sites/{site}/{product}", "target: /srv/{site}-{product}"))
        #expect(found.count == 1)
        #expect(found.first?.hasPrefix("3:1: target \"/srv/{site}-{product}\" renders the same path for site ") == true, "\(found)")
        #expect(found.first?.contains("separate {site} and {product}") == true)
    }

    @Test func storeAndTreesNeverOverlap() {
        // A target inside the store, the store inside a target, a sandbox inside the store.
        #expect(problems(with("target: /srv/sites/{site}/{product}", "target: /backups/store/restored/{site}/{product}"))
                == [#"3:1: target "/backups/store/restored/{site}/{product}" could resolve inside snapshots "/backups/store"; snapshot stores, targets, sandboxes and the state directory must never overlap: choose disjoint directories"#])
        #expect(problems(with("snapshots: /backups/store", "snapshots: /srv/sites/backup/store"))
                == [#"3:1: snapshots "/srv/sites/backup/store" could resolve inside target "/srv/sites/{site}/{product}"; snapshot stores, targets, sandboxes and the state directory must never overlap: choose disjoint directories"#])
        #expect(problems(with("sandbox: /sandbox/{run}/{site}/{product}", "sandbox: /backups/{run}/{site}/{product}"))
                == [#"4:1: sandbox "/backups/{run}/{site}/{product}" could resolve inside snapshots "/backups/store"; snapshot stores, targets, sandboxes and the state directory must never overlap: choose disjoint directories"#])
    }

    @Test func symlinkedRootsAreComparedResolved() throws {
        let dir = NSTemporaryDirectory() + "lifeboat-plan-safety-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/data/sites", withIntermediateDirectories: true)
        // /x/srv -> /x/data: a sandbox under data/sites is under the target srv/sites after all.
        try FileManager.default.createSymbolicLink(atPath: dir + "/srv", withDestinationPath: dir + "/data")
        let text = with("target: /srv/sites/{site}/{product}", "target: \(dir)/srv/sites/{site}/{product}")
            .replacingOccurrences(of: "sandbox: /sandbox/{run}/{site}/{product}", with: "sandbox: \(dir)/data/sites/sandbox/{run}/{site}/{product}")
        let found = problems(text)
        #expect(found.count == 1 && found[0].contains("with symbolic links resolved"), "\(found)")
    }

    @Test func retentionZeroIsAnErrorAndUnderADayAWarning() throws {
        #expect(problems(with("retention: 30d", "retention: 0s"))
                == ["5:15: quarantine.retention must be more than 0s: displaced data must be kept long enough to be put back (30d is the default)"])
        let short = try load(with("retention: 30d", "retention: 1h"))
        #expect(short.warnings.map(\.description) == ["plans/p.yaml:5:1: warning: quarantine.retention 1h is under a day: displaced data becomes purgeable that soon (quarantine purge asks for --yes)"])
        #expect(try load(Self.plan).warnings.isEmpty)
    }

    @Test func plansLoadedTogetherStayOutOfEachOther() throws {
        var a = try load(Self.plan, file: "plans/a.yaml")
        a.sourcePath = "plans/a.yaml"
        // b's sandbox lies in a's production tree: b is refused, at its sandbox line.
        var b = try load(with("name: p", "name: b").replacingOccurrences(of: "target: /srv/sites/{site}/{product}", with: "target: /srv/b/{site}/{product}")
            .replacingOccurrences(of: "sandbox: /sandbox/{run}/{site}/{product}", with: "sandbox: /srv/sites/sandbox/{run}/{site}/{product}"), file: "plans/b.yaml")
        b.sourcePath = "plans/b.yaml"
        let found = PlanConflicts.check([a, b], stateDirectory: "/var/lib/lifeboat")
        #expect(found.map(\.plan) == ["b"])
        #expect(found.first?.diagnostic.description.hasPrefix(#"plans/b.yaml:4:1: plan b's sandbox "/srv/sites/sandbox/{run}/{site}/{product}" could resolve inside plan p's target"#) == true,
                "\(found)")
        // Targets of two plans may coincide (an exercise plan beside the restore plan).
        var c = try load(with("name: p", "name: c"), file: "plans/c.yaml")
        c.sourcePath = "plans/c.yaml"
        #expect(PlanConflicts.check([a, c], stateDirectory: "/var/lib/lifeboat").isEmpty)
        // Nothing in the state directory.
        let inState = PlanConflicts.check([a], stateDirectory: "/srv")
        #expect(inState.count == 1 && inState[0].diagnostic.message.contains("could resolve inside the state directory \"/srv\""), "\(inState)")
    }

    @Test func holdsKeepDestinationsApart() throws {
        let holds = DestinationHolds()
        try holds.take(run: "r1", [("/srv/acme/jira", "acme/jira"), ("/srv/acme/contacts", "acme/contacts")])
        // The same run may take its own again (resume, retry).
        try holds.take(run: "r1", [("/srv/acme/jira", "acme/jira")])
        // Another run: the same path, a path inside one, a path around one.
        for path in ["/srv/acme/jira", "/srv/acme/jira/sub", "/srv/acme"] {
            let refusal = #expect(throws: SafetyRefusal.self) { try holds.take(run: "r2", [(path, "x/y")]) }
            #expect(refusal?.message.contains("held by job acme/") == true && refusal?.message.contains("run r1") == true, "\(path)")
        }
        // Two jobs of one run on one path.
        #expect(throws: SafetyRefusal.self) { try holds.take(run: "r3", [("/srv/b/x", "b/x"), ("/srv/b/x", "c/x")]) }
        #expect(holds.holder(of: "/srv/b/x") == nil) // all or nothing
        holds.release(run: "r1", path: "/srv/acme/jira")
        try holds.take(run: "r2", [("/srv/acme/jira", "acme/jira")])
        #expect(throws: SafetyRefusal.self) { try holds.take(run: "r4", [("/srv/acme", "acme/all")]) }
        holds.release(run: "r1")
        holds.release(run: "r2")
        try holds.take(run: "r4", [("/srv/acme", "acme/all")])
    }
}
