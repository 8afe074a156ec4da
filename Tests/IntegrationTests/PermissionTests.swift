import Foundation
import Testing

extension FaultSuite {
    /// Permission problems seen by an unprivileged operator (uid 65534; root would ignore modes):
    /// the job fails with an error naming the path, `lifeboat run` exits 1, nothing changes there,
    /// and the other sites are restored.
    @Suite(.serialized) struct PermissionTests {
        static let nobody = "65534"

        /// A two-site fleet (contacts only), a plan, and a ledger directory owned by nobody.
        func makeScene(name: String = #function) throws -> (TempDir, FaultScene) {
            let dir = TempDir(name)
            chmod(dir.path, 0o755)
            let gen = try run(Binaries.lifeboat, ["fleet", "generate", dir.file("store"), "--sites", "2", "--products", "contacts",
                                                 "--size", "64KiB", "--now", "2026-11-25T10:00:00Z"])
            #expect(gen.status == 0, "\(gen.stderr)")
            dir.write("plan.yaml", """
                name: perms
                snapshots: store
                target: out/{site}/{product}
                products: [{ name: contacts }]
                retry: { attempts: 1, backoff: 1s }
                """)
            try FileManager.default.createDirectory(atPath: dir.file("state"), withIntermediateDirectories: true)
            #expect(try run("/bin/chown", ["-R", "\(Self.nobody):\(Self.nobody)", dir.file("state")]).status == 0)
            let scene = try FaultScene(dir: dir, displaced: [("acme", "contacts")])
            return (dir, scene)
        }

        func runAsNobody(_ dir: TempDir) throws -> ProcessResult {
            try run("/usr/bin/setpriv", ["--reuid=\(Self.nobody)", "--regid=\(Self.nobody)", "--clear-groups",
                                         Binaries.lifeboat, "run", dir.file("plan.yaml"), "--ledger", dir.file("state/ledger.sqlite")])
        }

        @Test func unreadableArchiveFailsNamingIt() throws {
            let (dir, scene) = try makeScene()
            // nobody may write the destinations but not read acme's archive.
            #expect(try run("/bin/chown", ["-R", "\(Self.nobody):\(Self.nobody)", dir.file("out")]).status == 0)
            let archive = try scene.newestArchive("acme", "contacts")
            chmod(archive, 0o600)
            let result = try runAsNobody(dir)
            #expect(result.status == 1, "exit \(result.status): \(result.stdout)\(result.stderr)")
            let output = result.stdout + result.stderr
            #expect(output.contains("acme/contacts"), "\(output)")
            #expect(output.contains(archive), "the error names the archive: \(output)")
            #expect(output.contains("Permission denied"), "\(output)")
            try scene.expectDisplacedUntouched()
            #expect(scene.quarantineOnDisk().isEmpty)
            #expect(try scene.stagingLeftovers().isEmpty)
            try scene.expectSameAsTar("globex", "contacts")
            let rows = try ledgerRows(dir.file("state/ledger.sqlite"), "select site, state, error from jobs order by site")
            #expect(rows.map { $0["state"] as? String } == ["failed", "succeeded"], "\(rows)")
            #expect(text(rows.first, "error").contains(archive))
        }

        @Test func unwritableDestinationParentFailsNamingIt() throws {
            let (dir, scene) = try makeScene()
            // out is nobody's, but out/acme (which holds acme's data) is root's, mode 0755.
            #expect(try run("/bin/chown", ["\(Self.nobody):\(Self.nobody)", dir.file("out")]).status == 0)
            let result = try runAsNobody(dir)
            #expect(result.status == 1, "exit \(result.status): \(result.stdout)\(result.stderr)")
            let output = result.stdout + result.stderr
            #expect(output.contains("acme/contacts"), "\(output)")
            #expect(output.contains(dir.file("out/acme")), "the error names the directory: \(output)")
            #expect(output.contains("Permission denied"), "\(output)")
            try scene.expectDisplacedUntouched()
            #expect(scene.quarantineOnDisk().isEmpty)
            #expect(try scene.stagingLeftovers().isEmpty)
            try scene.expectSameAsTar("globex", "contacts")
            let rows = try ledgerRows(dir.file("state/ledger.sqlite"), "select site, state, error from jobs order by site")
            #expect(rows.map { $0["state"] as? String } == ["failed", "succeeded"], "\(rows)")
        }
    }
}
