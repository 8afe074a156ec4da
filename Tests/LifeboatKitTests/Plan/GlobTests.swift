import Testing
@testable import LifeboatKit

@Suite struct GlobTests {
    @Test(arguments: [
        ("*", "acme", true), ("test-*", "test-1", true), ("test-*", "acme", false),
        ("a?me", "acme", true), ("a?me", "ame", false), ("[ab]*", "beta", true), ("[!ab]*", "beta", false),
        ("site-[0-9]", "site-7", true), ("site-[0-9]", "site-x", false), ("*-eu", "acme-eu", true),
        ("*a*b*c", "xxaxxbxxc", true), ("*a*b*c", "xxaxxbxx", false), ("acme", "acme", true), ("acme", "acme2", false),
    ])
    func matches(pattern: String, text: String, expected: Bool) {
        #expect(Glob.matches(pattern, text) == expected)
    }

    @Test func pathologicalPatternIsFast() {
        // Backtracking globs go exponential on this; ours is linear-ish.
        let text = String(repeating: "a", count: 60)
        #expect(!Glob.matches(String(repeating: "*a", count: 30) + "b", text))
    }

    @Test func selectorIncludesAndExcludes() {
        let selector = SiteSelector(include: ["*"], exclude: ["test-*"])
        #expect(selector.matches("acme"))
        #expect(!selector.matches("test-acme"))
        #expect(!SiteSelector(include: ["eu-*"]).matches("acme"))
        #expect(!Glob.isValid("[abc"))
    }
}
