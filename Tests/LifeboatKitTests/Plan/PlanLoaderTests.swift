import Foundation
import Testing
@testable import LifeboatKit

@Suite struct PlanLoaderTests {
    static let valid = """
        name: mass-restore
        description: Restore sites removed by a mass deletion
        snapshots: /var/lib/lifeboat/snapshots
        target: /srv/sites/{site}/{product}
        sandbox: /var/lib/lifeboat/sandbox/{run}/{site}/{product}
        quarantine: { retention: 30d }
        sites:
          include: ["*"]
          exclude: ["test-*"]
        products:
          - name: contacts
            priority: 0
          - name: jira
            after: [contacts]
            concurrency: 4
          - name: confluence
            after: [contacts]
            post_restore: ["/usr/local/lib/lifeboat/reindex", "{site}", "{path}"]
        concurrency: 8
        objectives: { rto: 4h, rpo: 24h }
        waves:
          - { sites: 1%, gate: { max_failures: 0 } }
          - { sites: 10%, gate: { max_failure_ratio: 0.02 } }
          - { sites: rest }
        retry: { attempts: 3, backoff: 10s }
        verify:
          checksum: required
          command: ["/usr/local/lib/lifeboat/check", "{path}"]
        limits: { max_bytes: 500GiB, max_entries: 10000000 }
        unsafe_entries: reject
        schedule:
          exercise: "@quarterly"
          scale: { start: 10, factor: 2 }
        notify: ["/usr/local/lib/lifeboat/notify"]

        """

    /// Loads plan text and returns its diagnostics as `line:col: message` strings (empty when valid).
    func problems(_ text: String) -> [String] {
        do {
            _ = try PlanLoader.load(text: text, file: "plans/x.yaml", baseDirectory: "/etc/lifeboat/plans")
            return []
        } catch let error as DiagnosticsError {
            return error.diagnostics.map { "\($0.line):\($0.column): \($0.message)" }
        } catch {
            return ["unexpected: \(error)"]
        }
    }

    /// The valid plan with one line replaced.
    func variant(_ old: String, _ new: String) -> String {
        precondition(Self.valid.contains(old), "fixture does not contain \(old)")
        return Self.valid.replacingOccurrences(of: old, with: new)
    }

    @Test func decodesTheDesignExample() throws {
        let plan = try PlanLoader.load(text: Self.valid, file: "plans/x.yaml", baseDirectory: "/etc")
        #expect(plan.name == "mass-restore")
        #expect(plan.products.map(\.name) == ["contacts", "jira", "confluence"])
        #expect(plan.products[1].after == ["contacts"])
        #expect(plan.products[1].concurrency == 4)
        #expect(plan.products[2].postRestore == ["/usr/local/lib/lifeboat/reindex", "{site}", "{path}"])
        #expect(plan.concurrency == 8)
        #expect(plan.objectives.rto == DurationSpec(seconds: 14_400))
        #expect(plan.objectives.rpo == DurationSpec(seconds: 86_400))
        #expect(plan.waves == [WaveSpec(sites: .percent(1), gate: WaveGate(maxFailures: 0)),
                               WaveSpec(sites: .percent(10), gate: WaveGate(maxFailureRatio: 0.02)),
                               WaveSpec(sites: .rest)])
        #expect(plan.retry.attempts == 3 && plan.retry.backoff.seconds == 10)
        #expect(plan.verify.checksum == .required)
        #expect(plan.limits.maxBytes.bytes == 500 << 30)
        #expect(plan.limits.maxEntries == 10_000_000)
        #expect(plan.quarantine.retention.seconds == 30 * 86_400)
        #expect(plan.sites.exclude == ["test-*"])
        #expect(plan.schedule?.exercise.text == "@quarterly")
        #expect(plan.schedule?.scale.start == 10)
        #expect(plan.notify == ["/usr/local/lib/lifeboat/notify"])
        // Its store and sandbox under /var/lib/lifeboat stay clear of root's state directory (a
        // probe found the example refused when that was /var/lib/lifeboat itself).
        #expect(PlanConflicts.check([plan], stateDirectory: DefaultPaths.rootStateDirectory).isEmpty)
    }

    @Test func defaultsForAMinimalPlan() throws {
        let plan = try PlanLoader.load(text: """
            snapshots: store
            target: out/{site}/{product}
            products: [{ name: contacts }]
            """, file: "plans/minimal.yaml", baseDirectory: "/etc/lifeboat/plans")
        #expect(plan.name == "minimal")
        #expect(plan.snapshots == "/etc/lifeboat/plans/store")
        #expect(plan.target.text == "/etc/lifeboat/plans/out/{site}/{product}")
        #expect(plan.waves == [WaveSpec(sites: .rest)])
        #expect(plan.sites.include == ["*"])
        #expect(plan.concurrency == 8)
        #expect(plan.unsafeEntries == .reject)
        #expect(plan.verify.checksum == .required)
        #expect(plan.sandbox == nil && plan.schedule == nil)
    }

    @Test func unknownKeyNamesLineAndColumn() {
        #expect(problems(variant("concurrency: 8\n", "concurrency: 8\nconcurency: 4\n"))
                == [#"20:1: unknown key "concurency" in the document (did you mean "concurrency"?); expected one of "concurrency", "delete", "description", "hook_timeout", "limits", "name", "notify", "objectives", "preserve_ownership", "products", "quarantine", "retry", "sandbox", "schedule", "sites", "snapshots", "target", "unsafe_entries", "verify", "waves""#])
        #expect(problems(variant("    concurrency: 4\n", "    concurrency: 4\n    cocnurrency: 2\n")).first?.hasPrefix(#"16:5: unknown key "cocnurrency" in products[1]"#) == true)
    }

    @Test func wrongTypes() {
        #expect(problems(variant("concurrency: 8", "concurrency: eight")) == [#"19:14: concurrency must be an integer, found "eight""#])
        #expect(problems(variant("concurrency: 8", "concurrency: \"8\"")) == [#"19:14: concurrency must be an integer, found a string "8""#])
        #expect(problems(variant("products:\n  - name: contacts\n    priority: 0\n", "products:\n  - name: contacts\n    priority: [0]\n"))
                == [#"12:15: products[0].priority must be an integer, found a list"#])
        #expect(problems(variant("quarantine: { retention: 30d }", "quarantine: 30d")) == [#"6:13: quarantine must be a mapping (key: value), found "30d""#])
    }

    @Test func badDurationsAndSizes() throws {
        #expect(problems(variant("rto: 4h", "rto: 4 hours")) == [#"20:20: objectives.rto must be a duration like 90s, 15m, 4h or 30d, found "4 hours""#])
        // A duration too long to mean anything is said to be that, whether it counts in seconds or not.
        #expect(problems(variant("rto: 4h", "rto: 99999999999d")) == ["20:20: objectives.rto 99999999999d is too long: durations go up to 36525d (100 years)"])
        #expect(problems(variant("rto: 4h", "rto: 999999999999999d")) == ["20:20: objectives.rto 999999999999999d is too long: durations go up to 36525d (100 years)"])
        // Globs no id can match select, or in exclude spare, nothing without a word.
        #expect(problems(variant(#"exclude: ["test-*"]"#, #"exclude: ["TEST-*", "a/b", "[A-Z]x"]"#)) == [
            #"9:13: sites.exclude[0]: "TEST-*" can never match a site id, which has no "T" (\#(Identifier.rule))"#,
            #"9:23: sites.exclude[1]: "a/b" can never match a site id, which has no "/" (\#(Identifier.rule))"#,
        ])
        // A hook's program: beside the plan when relative with a slash, on PATH when bare, never
        // a template (a probe's "./mycheck" passed plan check and was then not found).
        let relative = try PlanLoader.load(text: variant(#"command: ["/usr/local/lib/lifeboat/check", "{path}"]"#, #"command: ["./bin/check", "{path}"]"#),
                                           file: "plans/x.yaml", baseDirectory: "/etc/lifeboat/plans")
        #expect(relative.verify.command == ["/etc/lifeboat/plans/bin/check", "{path}"])
        let bare = try PlanLoader.load(text: variant(#"command: ["/usr/local/lib/lifeboat/check", "{path}"]"#, #"command: ["true"]"#),
                                       file: "plans/x.yaml", baseDirectory: "/etc/lifeboat/plans")
        #expect(bare.verify.command == ["true"])
        #expect(problems(variant(#"command: ["/usr/local/lib/lifeboat/check", "{path}"]"#, #"command: ["{path}/check"]"#)).first?
            .contains("verify.command: the program \"{path}/check\" must be a fixed path, not a template") == true)
        // Not a duration, rather than too long (a probe found "5" and "4ms" called too long).
        for text in ["5", "4ms", "1m1m"] {
            #expect(problems(variant("rto: 4h", "rto: \(text)")) == [#"20:20: objectives.rto must be a duration like 90s, 15m, 4h or 30d, found "\#(text)""#])
        }
        #expect(problems(variant("max_bytes: 500GiB", "max_bytes: 500 gigs")) == [#"29:22: limits.max_bytes must be a size like 512MiB or 2GiB, found "500 gigs""#])
    }

    @Test func unknownTemplateVariable() {
        #expect(problems(variant("target: /srv/sites/{site}/{product}", "target: /srv/sites/{tenant}/{product}"))
                == [#"4:20: target: unknown template variable {tenant}; expected one of {site}, {product}, {run}"#])
        #expect(problems(variant(#""{site}", "{path}"]"#, #""{site}", "{paht}"]"#))
                == [#"18:66: products[2].post_restore: unknown template variable {paht}; expected one of {site}, {product}, {run}, {path}"#])
        // notify runs once per event: `{run}` is its only variable, and it is substituted.
        let notify = problems(variant(#"notify: ["/usr/local/lib/lifeboat/notify"]"#, #"notify: ["/usr/local/lib/lifeboat/notify", "{site}"]"#))
        #expect(notify.count == 1 && notify[0].contains("notify: unknown template variable {site}; expected one of {run} (notify runs once per event"), "\(notify)")
    }

    /// A target or sandbox that can render Lifeboat's own directory names (a product named
    /// `lifeboat-quarantine` behind a dot, or the name written out) is refused where it is.
    @Test func templatesThatCanRenderLifeboatsOwnDirectoriesAreRefused() {
        #expect(problems(variant("target: /srv/sites/{site}/{product}", "target: /srv/sites/{site}/.{product}"))
                == [#"4:9: target "/srv/sites/{site}/.{product}" can render ".lifeboat-staging" as a path component, the name of Lifeboat's own directory beside each destination; choose a template (or ids) that cannot"#,
                    #"4:9: target "/srv/sites/{site}/.{product}" can render ".lifeboat-quarantine" as a path component, the name of Lifeboat's own directory beside each destination; choose a template (or ids) that cannot"#])
        let written = problems(variant("target: /srv/sites/{site}/{product}", "target: /srv/sites/{site}/{product}/.lifeboat-staging"))
        #expect(written.count == 1 && written[0].contains(#"can render ".lifeboat-staging""#), "\(written)")
        // A dot elsewhere, or a name that only starts alike, is fine.
        #expect(problems(variant("target: /srv/sites/{site}/{product}", "target: /srv/sites/{site}/.{product}.d")).isEmpty)
        #expect(problems(variant("target: /srv/sites/{site}/{product}", "target: /srv/.lifeboat-stage/{site}/{product}")).isEmpty)
    }

    @Test func unknownDependencyWithSuggestion() {
        #expect(problems(variant("    after: [contacts]\n    concurrency: 4", "    after: [contacts, jria]\n    concurrency: 4"))
                == [#"14:23: products[1].after names unknown product "jria" (did you mean "jira"?)"#])
    }

    @Test func dependencyCycle() {
        let text = variant("  - name: contacts\n    priority: 0\n", "  - name: contacts\n    priority: 0\n    after: [confluence]\n")
        #expect(problems(text) == [#"18:13: products[2].after: dependency cycle contacts → confluence → contacts"#])
        #expect(problems(variant("    after: [contacts]\n    concurrency: 4", "    after: [jira]\n    concurrency: 4"))
                == [#"14:13: products[1].after: product "jira" cannot come after itself"#])
    }

    @Test func sandboxInsideTarget() {
        #expect(problems(variant("sandbox: /var/lib/lifeboat/sandbox/{run}/{site}/{product}", "sandbox: /srv/sites/sandbox/{run}/{site}/{product}"))
                == [#"5:1: sandbox "/srv/sites/sandbox/{run}/{site}/{product}" could resolve inside target "/srv/sites/{site}/{product}"; exercises must never write into production: choose a sandbox outside the target tree"#])
    }

    @Test func invalidIds() {
        #expect(problems(variant("  - name: jira\n", "  - name: Jira\n"))
                == ["13:11: products[1].name \"Jira\" is not a valid product id; \(Identifier.rule)"])
        #expect(problems(variant("name: mass-restore", "name: Mass Restore")) == ["1:7: name \"Mass Restore\" is not a valid plan name; \(Identifier.rule)"])
        #expect(problems(variant("  - name: jira\n", "  - name: contacts\n"))
                == [#"13:11: products[1].name "contacts" is already declared by products[0]"#,
                    #"14:13: products[1].after: product "contacts" cannot come after itself"#])
    }

    @Test func yamlSyntaxError() {
        let result = problems(variant("concurrency: 8", "concurrency: [8"))
        #expect(result.count == 1)
        #expect(result.first?.contains("YAML syntax error") == true)
        #expect(result.first?.hasPrefix("19:14: YAML syntax error: while parsing a flow sequence") == true, "\(result)")
        // An unclosed quote is found at the end of the file: the error points where it opened.
        let head = "name: x\nsnapshots: \"/s\ntarget: /t/{site}/{product}\nproducts:\n  - name: a\n"
        #expect(problems(head) == [#"2:12: YAML syntax error: while scanning a quoted scalar, found unexpected end of stream at 6:1"#])
        // A second document: said so, where it begins.
        #expect(problems(Self.valid + "\n---\nname: other\n") == [#"36:1: a plan is one YAML document, but a second one (after ---) begins here; put it in a file of its own"#])
    }

    @Test func duplicateKey() {
        #expect(problems(variant("concurrency: 8\n", "concurrency: 8\nconcurrency: 9\n"))
                == [#"20:1: duplicate key "concurrency"; each key may appear only once in a mapping"#])
        // Quoted the second time: the same key.
        #expect(problems(variant("concurrency: 8\n", "concurrency: 8\n\"concurrency\": 9\n"))
                == [#"20:1: duplicate key "concurrency"; each key may appear only once in a mapping"#])
        // The same name in list items and nested mappings is another key: the line is the second
        // top-level one, and a duplicate inside a list item points inside that item.
        #expect(problems(Self.valid + "\nname: again\n") == [#"36:1: duplicate key "name"; each key may appear only once in a mapping"#])
        #expect(problems(variant("    after: [contacts]\n    concurrency: 4\n", "    after: [contacts]\n    concurrency: 4\n    after: []\n"))
                == [#"16:5: duplicate key "after"; each key may appear only once in a mapping"#])
        // Flow style, on one line or several: the second occurrence, not the mapping's brace.
        #expect(problems(variant("objectives: { rto: 4h, rpo: 24h }", "objectives: { rto: 4h, rpo: 24h, rto: 5h }"))
                == [#"20:34: duplicate key "rto"; each key may appear only once in a mapping"#])
        #expect(problems(variant("objectives: { rto: 4h, rpo: 24h }", "objectives: {\n  rto: 4h, \"x,{\": 1,\n  'rto': 5h }"))
                .contains(#"22:3: duplicate key "rto"; each key may appear only once in a mapping"#))
    }

    @Test func anchorsAndAliasesRefused() {
        #expect(problems(variant("objectives: { rto: 4h, rpo: 24h }", "objectives: &obj { rto: 4h, rpo: 24h }\nx: *obj"))
                == [#"20:13: YAML anchors and aliases are not allowed (alias expansion is a denial-of-service vector); write the value out"#])
    }

    @Test func billionLaughsIsRefusedQuickly() {
        var text = "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        for i in 1...12 {
            text += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ",") + "]\n"
        }
        let result = problems(text)
        #expect(result == [#"1:5: YAML anchors and aliases are not allowed (alias expansion is a denial-of-service vector); write the value out"#])
    }

    @Test func fileOverOneMiBRefused() throws {
        let dir = TestDirectory()
        let big = dir.write("big.yaml", "# " + String(repeating: "x", count: 1 << 20) + "\n" + Self.valid)
        #expect(throws: DiagnosticsError.self) { try PlanLoader.load(path: big) }
        do {
            _ = try PlanLoader.load(path: big)
        } catch let error as DiagnosticsError {
            #expect(error.description == "\(big):1:1: file is larger than 1 MiB; plans and configs must be smaller")
        }
    }

    /// A byte that is not UTF-8 (a plan saved as Latin-1) is shown where it is.
    @Test func invalidUTF8IsPointedAt() throws {
        let dir = TestDirectory()
        let path = dir.file("latin1.yaml")
        try Data("name: caf\u{E9}\nnote: d".utf8 + [0xE9] + Array("j\u{E0} vu\n".utf8)).write(to: URL(fileURLWithPath: path))
        let error = try #require(throws: DiagnosticsError.self) { try PlanLoader.load(path: path) }
        #expect(error.description == "\(path):2:8: file is not valid UTF-8 (byte 0xE9 here); save it as UTF-8")
    }

    @Test func severalErrorsAllReported() {
        var text = variant("concurrency: 8", "concurrency: 0")
        text = text.replacingOccurrences(of: "rpo: 24h", with: "rpo: soon")
        text = text.replacingOccurrences(of: "checksum: required", with: "checksum: maybe")
        #expect(problems(text) == [
            "19:14: concurrency must be between 1 and 10000, found 0",
            #"20:29: objectives.rpo must be a duration like 90s, 15m, 4h or 30d, found "soon""#,
            #"27:13: verify.checksum must be one of "required", "if-present", "off", found "maybe""#,
        ])
    }

    @Test func wavesRules() {
        #expect(problems(variant("  - { sites: rest }", "  - { sites: lots }"))
                == [#"24:14: waves[2].sites must be a percentage ("10%"), a number of sites (5) or "rest", found "lots""#])
        #expect(problems(variant("  - { sites: 1%, gate: { max_failures: 0 } }", "  - { sites: rest, gate: { max_failures: 0 } }"))
                == [#"22:14: waves[0].sites: "rest" can only be the last wave"#])
        #expect(problems(variant("max_failure_ratio: 0.02", "max_failure_ratio: 2")) == ["23:46: waves[1].gate.max_failure_ratio must be between 0.0 and 1.0, found 2"])
    }

    /// Only regular files are read: a FIFO among the plans (or a link to one) is refused at
    /// once instead of holding the reader until someone writes to it; a directory is named so.
    @Test func onlyRegularFilesAreRead() throws {
        let dir = TestDirectory()
        try #require(mkfifo(dir.file("fifo"), 0o600) == 0)
        try #require(symlink(dir.file("fifo"), dir.file("linked.yaml")) == 0)
        for (path, kind) in [(dir.file("linked.yaml"), "a FIFO"), (dir.path, "a directory")] {
            #expect(throws: DiagnosticsError.self) { try PlanLoader.load(path: path) }
            do { _ = try PlanLoader.load(path: path) } catch let error as DiagnosticsError {
                #expect(error.diagnostics.map(\.message) == ["this is \(kind), not a regular file; plans and configs must be regular files"])
            }
        }
        let registry = PlanRegistry(directory: dir.path)
        let problems = registry.reload()
        #expect(problems.map(\.file) == [dir.file("linked.yaml")])
    }

    /// Whether two jobs could render one path is decided on the template's part from its first
    /// variable on, in time growing with its square: that part is capped, and the check stays
    /// cheap (it also answers plan.check on the socket).
    @Test func templatesAreBoundedSoTheirCheckStaysCheap() {
        let long = "/t/{site}" + String(repeating: "a", count: 3_900) + "{product}"
        #expect(problems(variant("target: /srv/sites/{site}/{product}", "target: \(long)"))
                == ["4:12: target: the template's part from its first variable on is 3915 characters long; at most 256 are allowed"])
        let started = ContinuousClock.now
        let deepPrefix = "/" + String(repeating: "p", count: 3_700) + "/{site}" + String(repeating: "a", count: 240) + "/{product}"
        #expect(problems(variant("target: /srv/sites/{site}/{product}", "target: \(deepPrefix)")).isEmpty)
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(problems(variant("target: /srv/sites/{site}/{product}", "target: /\(String(repeating: "x", count: 4_097))/{site}/{product}")).first?
            .contains("a path has at most 4096") == true)
    }

    /// `products:` left empty or `~` is a plan that would restore nothing; a byte order mark
    /// before the text is read as a file's would be.
    /// The settings in effect (`plan check --json`, `plans --json`) include how scheduled
    /// exercises grow and what they rehearse, not only their expression.
    @Test func settingsShowTheWholeSchedule() throws {
        let plan = try PlanLoader.load(text: Self.valid.replacingOccurrences(of: "scale: { start: 10, factor: 2 }", with: "scale: { start: 3, factor: 1.5 }\n  rehearse: delete"),
                                       file: "p.yaml", baseDirectory: "/")
        let settings = PlanSettings(plan)
        #expect(settings.schedule == "@quarterly")
        #expect(settings.scheduleScale == PlanSettings.ScheduleScale(start: 3, factor: 1.5) && settings.scheduleRehearse == "delete")
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let json = String(decoding: try encoder.encode(settings), as: UTF8.self)
        #expect(json.contains(#""schedule_scale":{"#) && json.contains(#""schedule_rehearse":"delete""#), "\(json)")
    }

    @Test func emptyProductsAndAByteOrderMark() {
        for empty in ["products:\n", "products: ~\n"] {
            #expect(problems("name: x\nsnapshots: /s\ntarget: /t/{site}/{product}\n" + empty) == ["4:1: products must list at least one product"])
        }
        #expect(problems("\u{FEFF}" + Self.valid).isEmpty)
    }

    @Test func cronErrorPointsAtTheField() {
        #expect(problems(variant(#"exercise: "@quarterly""#, #"exercise: "0 3 * 13 *""#))
                == [#"32:20: schedule.exercise: cron month field "13": 13 is outside 1-12"#])
        // Valid fields, but a day none of the months has: an exercise that would never run.
        #expect(problems(variant(#"exercise: "@quarterly""#, #"exercise: "0 0 31 4,6,9,11 *""#))
                == [#"32:13: schedule.exercise "0 0 31 4,6,9,11 *" never fires: none of its months has that day"#])
        #expect(problems(variant(#"exercise: "@quarterly""#, #"exercise: "0 0 29 2 *""#)).isEmpty, "leap years have it")
        // Feb 29 on a Sunday (day-of-week starting with * ANDs the day fields): years apart, yet it fires.
        #expect(problems(variant(#"exercise: "@quarterly""#, #"exercise: "0 0 29 2 */7""#)).isEmpty)
    }

    /// A schedule fires exercises, which restore only into a sandbox: without one, every fire
    /// would fail, and the rehearsal would silently never happen.
    @Test func aScheduleNeedsASandbox() {
        #expect(problems(variant("sandbox: /var/lib/lifeboat/sandbox/{run}/{site}/{product}\n", ""))
                == [#"31:13: schedule.exercise needs a "sandbox": exercises restore only into a sandbox, never over the targets; add sandbox: (a path template) to the plan"#])
    }

    @Test func targetMustSeparateJobs() {
        #expect(problems(variant("target: /srv/sites/{site}/{product}", "target: /srv/sites/{site}"))
                == [#"4:9: target "/srv/sites/{site}" must contain {product} so that every job has its own directory"#])
    }

    @Test func missingRequiredKeys() {
        #expect(problems("name: x\n") == [
            #"1:1: missing required key "snapshots" (the snapshot store directory)"#,
            #"1:1: missing required key "target" (a path template with {site} and {product})"#,
            #"1:1: missing required key "products" (the list of products to restore)"#,
        ])
        // There but empty: said so, at the key (found by a review: "missing" at 1:1).
        #expect(problems("name: x\nsnapshots:\ntarget: ~\nproducts: [{ name: a }]\n") == [
            #"2:1: snapshots is empty: it needs the snapshot store directory"#,
            #"3:1: target is empty: it needs a path template with {site} and {product}"#,
        ])
        // A wrong type is said once, not also "missing".
        #expect(problems("name: x\nsnapshots: [a]\ntarget: /t/{site}/{product}\nproducts: [{ name: a }]\n")
                == [#"2:12: snapshots must be a string, found a list"#])
    }

    /// A product without a name has its other keys checked as usual, not called unknown.
    @Test func aProductWithoutANameIsSaidOnce() {
        let head = "name: x\nsnapshots: /s\ntarget: /t/{site}/{product}\nproducts:\n"
        #expect(problems(head + "  - priority: 1\n    after: [b]\n") == [#"5:5: products[0] needs a "name""#])
        #expect(problems(head + "  - name:\n    priority: 1\n") == [#"5:5: products[0].name is empty: it needs the product's id"#])
        #expect(problems(head + "  - priority: 1\n    colour: red\n").contains { $0.contains(#"unknown key "colour" in products[0]"#) })
    }
}

/// A run is worked under the version of its plan it was started with, on every host.
@Suite struct PlanVersionTests {
    static let t0 = Date(timeIntervalSince1970: 1_795_000_000)

    func run(_ id: String, version: String?) -> RunRecord {
        RunRecord(id: id, plan: "mass-restore", planPath: nil, planVersion: version, mode: .restore, declaredAt: Self.t0,
                  incidentAt: Self.t0, asOf: Self.t0, createdAt: Self.t0, startedBy: "cli", rtoObjectiveSeconds: nil,
                  rpoObjectiveSeconds: nil, totalWaves: 1)
    }

    /// A reload that changes the plan keeps the version a going run was started with for that
    /// run; a host restarted with the changed file (or another host with it) has none for it,
    /// and says which versions differ and where its own came from.
    @Test func aReloadKeepsTheVersionARunWasStartedWith() throws {
        let dir = TestDirectory()
        let file = dir.file("mass-restore.yaml")
        try PlanLoaderTests.valid.write(toFile: file, atomically: true, encoding: .utf8)
        let registry = PlanRegistry(directory: dir.path)
        #expect(registry.reload().isEmpty)
        let first = try #require(registry.plan(named: "mass-restore"))
        #expect(first.version.hasPrefix("sha256:") && first.version.count == 7 + 64)
        let started = run("20261205-120000-0001", version: first.version)

        try PlanLoaderTests.valid.replacingOccurrences(of: "concurrency: 8", with: "concurrency: 2")
            .write(toFile: file, atomically: true, encoding: .utf8)
        #expect(registry.reload().isEmpty)
        let second = try #require(registry.plan(named: "mass-restore"))
        #expect(second.version != first.version && second.concurrency == 2)
        #expect(registry.plan(for: started)?.version == first.version)
        #expect(registry.plan(for: started)?.concurrency == 8)
        #expect(registry.plan(for: run("20261205-120000-0002", version: second.version))?.concurrency == 2)
        // Recorded before versions were: the plan of its name.
        #expect(registry.plan(for: run("20261125-101132-0003", version: nil))?.version == second.version)

        let restarted = PlanRegistry(directory: dir.path)
        #expect(restarted.reload().isEmpty)
        #expect(restarted.plan(for: started) == nil)
        #expect(restarted.unavailable(for: started) == "run 20261205-120000-0001 was started under version \(first.version.prefix(19)) "
                + "of plan mass-restore, and this host has version \(second.version.prefix(19)) (\(file))")
        // The version put back is the run's again.
        try PlanLoaderTests.valid.write(toFile: file, atomically: true, encoding: .utf8)
        #expect(restarted.reload().isEmpty)
        #expect(restarted.plan(for: started)?.version == first.version)
        #expect(PlanRegistry(directory: dir.file("none")).unavailable(for: started)
                == "plan mass-restore of run 20261205-120000-0001 is not loaded on this host")
    }
}
