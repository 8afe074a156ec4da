import Testing
@testable import LifeboatKit

@Suite struct PathTemplateTests {
    /// Paths already normal come back as they are (the fast way); any other is made so.
    @Test(arguments: [
        ("/", "/"), ("/srv", "/srv"), ("/srv/a/b", "/srv/a/b"), ("/srv/a/", "/srv/a"), ("//srv//a", "/srv/a"),
        ("/srv/./a", "/srv/a"), ("/srv/../a", "/a"), ("/srv/a/..", "/srv"), ("/.", "/"), ("/..", "/"),
        ("/srv/.hidden", "/srv/.hidden"), ("/srv/...", "/srv/..."), ("/srv/..a", "/srv/..a"), ("/a.", "/a."), ("/srv//", "/srv"),
        ("/a/\u{301}b//", "/a/\u{301}b"), ("/\u{301}\ra", "/\u{301}\ra"), ("/x/\u{200D}/../y", "/x/y"),
    ])
    func normalisedPaths(path: String, expected: String) {
        #expect(PathTemplate.normalise(path) == expected)
        #expect(PathTemplate.isNormal(path) == (path == expected))
    }

    @Test func rendersVariables() throws {
        let t = try PathTemplate("/srv/sites/{site}/{product}")
        #expect(t.render([.site: "acme", .product: "jira"]) == "/srv/sites/acme/jira")
        #expect(t.variables == [.site, .product])
    }

    @Test func rejectsUnknownVariable() {
        #expect(throws: PathTemplate.Problem.self) { try PathTemplate("/srv/{tenant}/{product}") }
        #expect(throws: PathTemplate.Problem.self) { try PathTemplate("/srv/{site}/{path}") }
        #expect(throws: PathTemplate.Problem.self) { try PathTemplate("/srv/{site") }
    }

    @Test(arguments: [
        // (sandbox, target, could resolve inside)
        ("/var/lib/lifeboat/sandbox/{run}/{site}/{product}", "/srv/sites/{site}/{product}", false),
        ("/srv/sites/sandbox/{run}/{site}/{product}", "/srv/sites/{site}/{product}", true),
        ("/srv/sites/{site}/{product}/sandbox", "/srv/sites/{site}/{product}", true),
        ("/srv/sandbox-{site}/{product}", "/srv/sites/{site}/{product}", false),
        ("/srv/x{run}/{site}/{product}", "/srv/{site}/{product}", true),
        ("/srv/X{run}/{site}/{product}", "/srv/{site}/{product}", false),
        ("/srv/sites/{site}", "/srv/sites/{site}/{product}", false),
    ])
    func sandboxInsideTarget(sandbox: String, target: String, expected: Bool) throws {
        #expect(PathTemplate.couldResolve(try PathTemplate(sandbox), inside: try PathTemplate(target)) == expected)
    }
}
