import Foundation
import Testing
@testable import LifeboatKit

@Suite struct SnapshotStoreTests {
    /// A store with three snapshots of acme/jira (one without sidecar), one of acme/contacts, and strays.
    func makeStore(_ name: String = #function) -> TestDirectory {
        let dir = TestDirectory(name)
        dir.write("acme/jira/20261120T030000Z.tar.gz", "a")
        dir.write("acme/jira/20261120T030000Z.tar.gz.sha256", "x  20261120T030000Z.tar.gz\n")
        dir.write("acme/jira/20261122T030000Z.tar.gz", "bb")
        dir.write("acme/jira/20261124T031500Z.tar.gz", "ccc")
        dir.write("acme/jira/20261124T031500Z.tar.gz.sha256", "x  20261124T031500Z.tar.gz\n")
        dir.write("acme/contacts/20261123T000000Z.tar.gz", "d")
        // Strays: malformed names, a sidecar without archive, bad ids, loose files.
        dir.write("acme/jira/20261124T0315Z.tar.gz", "")
        dir.write("acme/jira/notes.txt", "")
        dir.write("acme/jira/20261101T000000Z.tar.gz.sha256", "")
        dir.write("Bad Site/jira/20261124T031500Z.tar.gz", "")
        dir.write("README", "")
        return dir
    }

    @Test func scansLayoutAndPairsSidecars() throws {
        let dir = makeStore()
        let store = try SnapshotStore(scanning: dir.path)
        #expect(store.sites == ["acme"])
        let jira = store.snapshots(site: "acme", product: "jira")
        #expect(jira.map { Timestamp.formatBasic($0.takenAt) } == ["20261120T030000Z", "20261122T030000Z", "20261124T031500Z"])
        #expect(jira.map(\.size) == [1, 2, 3])
        #expect(jira[0].sidecarPath == dir.file("acme/jira/20261120T030000Z.tar.gz.sha256"))
        #expect(jira[1].sidecarPath == nil)
        #expect(store.snapshots(site: "acme", product: "contacts").count == 1)
    }

    @Test func reportsStrays() throws {
        let dir = makeStore()
        let store = try SnapshotStore(scanning: dir.path)
        let strays = Dictionary(uniqueKeysWithValues: store.strays.map { ($0.path.replacingOccurrences(of: dir.path + "/", with: ""), $0.reason) })
        #expect(strays.count == 5)
        #expect(strays["acme/jira/20261124T0315Z.tar.gz"]?.hasPrefix("malformed taken-at") == true)
        #expect(strays["acme/jira/notes.txt"]?.hasPrefix("not a snapshot") == true)
        #expect(strays["acme/jira/20261101T000000Z.tar.gz.sha256"] == "checksum sidecar without its archive")
        #expect(strays["Bad Site"]?.hasPrefix("not a valid site id") == true)
        #expect(strays["README"] == "not a site directory")
    }

    @Test func selectsNewestAtOrBeforeAsOf() throws {
        let dir = makeStore()
        let store = try SnapshotStore(scanning: dir.path)
        func pick(_ asOf: String) -> String? {
            store.select(site: "acme", product: "jira", asOf: Timestamp.parse(asOf)!).map { Timestamp.formatBasic($0.takenAt) }
        }
        #expect(pick("2026-11-25T00:00:00Z") == "20261124T031500Z")
        #expect(pick("2026-11-24T03:15:00Z") == "20261124T031500Z") // exactly at as-of counts
        #expect(pick("2026-11-24T03:14:59Z") == "20261122T030000Z")
        #expect(pick("2026-11-21T00:00:00Z") == "20261120T030000Z")
        #expect(pick("2026-11-20T02:59:59Z") == nil) // no snapshot before as-of
        #expect(store.select(site: "acme", product: "confluence", asOf: Date()) == nil)
        #expect(store.select(site: "nobody", product: "jira", asOf: Date()) == nil)
    }

    @Test func selectsSitesByGlobsAndExplicitList() throws {
        let dir = TestDirectory()
        for site in ["acme", "globex", "test-acme", "test-2"] { dir.write("\(site)/jira/20261124T031500Z.tar.gz", "x") }
        let store = try SnapshotStore(scanning: dir.path)
        let selector = SiteSelector(include: ["*"], exclude: ["test-*"])
        #expect(store.selectSites(selector) == ["acme", "globex"])
        #expect(store.selectSites(selector, only: ["globex", "test-2", "missing"]) == ["globex"])
        #expect(store.selectSites(SiteSelector(include: ["g*", "test-?"])) == ["globex", "test-2"])
    }

    @Test func missingStoreThrows() {
        #expect(throws: FileSystemError.self) { try SnapshotStore(scanning: "/nonexistent/store") }
    }
}
