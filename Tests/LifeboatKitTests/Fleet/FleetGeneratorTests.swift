import Foundation
import Testing
@testable import LifeboatKit

@Suite struct FleetGeneratorTests {
    let now = Timestamp.parse("2026-11-25T10:00:00Z")!

    func generate(into path: String, seed: UInt64 = 7, snapshots: Int = 2) async throws -> FleetGenerator.Summary {
        let generator = FleetGenerator(sites: 3, products: ["contacts", "jira"], archiveSize: 256 << 10,
                                       snapshots: snapshots, seed: seed, now: now)
        return try await generator.generate(into: path, parallelism: 2)
    }

    @Test func writesTheStoreLayoutWithSidecars() async throws {
        let dir = TestDirectory()
        let summary = try await generate(into: dir.file("store"))
        #expect(summary.archives == 12)
        #expect(summary.sites == ["acme", "globex", "initech"])
        #expect(summary.uncompressedBytes >= 12 * (256 << 10))
        let store = try SnapshotStore(scanning: dir.file("store"))
        #expect(store.strays.isEmpty)
        #expect(store.sites == ["acme", "globex", "initech"])
        for site in store.sites {
            for product in ["contacts", "jira"] {
                let snaps = store.snapshots(site: site, product: product)
                #expect(snaps.count == 2)
                #expect(snaps.allSatisfy { $0.sidecarPath != nil })
                // Newest within the day before `now`, the older one about a day earlier.
                #expect(now.timeIntervalSince(snaps[1].takenAt) < 86_400)
                #expect(snaps[1].takenAt.timeIntervalSince(snaps[0].takenAt) > 80_000)
            }
        }
    }

    @Test func sidecarsVerifyWithSha256sum() async throws {
        let dir = TestDirectory()
        _ = try await generate(into: dir.file("store"), snapshots: 1)
        let productDir = dir.file("store/globex/jira")
        let sidecar = try #require(try FileSystem.directoryEntries(productDir).first { $0.name.hasSuffix(".sha256") })
        let result = try runProcess("/usr/bin/sha256sum", ["-c", sidecar.name], cwd: productDir)
        #expect(result.status == 0)
        #expect(result.output.hasSuffix(": OK\n"))
    }

    @Test func archivesAreRealTarWithNestedFoldersAndRelativeSymlinks() async throws {
        let dir = TestDirectory()
        _ = try await generate(into: dir.file("store"), snapshots: 1)
        let store = try SnapshotStore(scanning: dir.file("store"))
        let archive = try #require(store.snapshots(site: "acme", product: "jira").first)
        let listing = try runProcess("/bin/tar", ["-tvzf", archive.path])
        #expect(listing.status == 0)
        #expect(listing.output.contains("records/20"))
        #expect(listing.output.contains("attachments/"))
        #expect(listing.output.contains("manifest.json"))
        #expect(listing.output.contains("latest.json -> records/"))
        // Every symlink is relative.
        for line in listing.output.split(separator: "\n") where line.hasPrefix("l") {
            #expect(!line.contains("-> /"))
        }
    }

    @Test func deterministicForASeed() async throws {
        let a = TestDirectory(), b = TestDirectory(), c = TestDirectory()
        _ = try await generate(into: a.file("s"), seed: 42)
        _ = try await generate(into: b.file("s"), seed: 42)
        _ = try await generate(into: c.file("s"), seed: 43)
        func digests(_ root: String) throws -> [String: String] {
            let store = try SnapshotStore(scanning: root)
            var result: [String: String] = [:]
            for site in store.sites {
                for (product, snaps) in store.snapshots[site] ?? [:] {
                    for s in snaps { result["\(site)/\(product)/\(s.takenAt)"] = try String(contentsOfFile: s.sidecarPath!, encoding: .utf8) }
                }
            }
            return result
        }
        let da = try digests(a.file("s")), db = try digests(b.file("s")), dc = try digests(c.file("s"))
        #expect(da.count == 12)
        #expect(da == db)
        #expect(da != dc)
    }

    @Test func refusesANonEmptyDirectory() async throws {
        let dir = TestDirectory()
        dir.write("store/keep.txt", "operator data")
        await #expect(throws: FleetError.self) { _ = try await generate(into: dir.file("store")) }
        #expect(try String(contentsOfFile: dir.file("store/keep.txt"), encoding: .utf8) == "operator data")
    }
}
