import Foundation
import Testing

/// What fault tests check after a run: every destination equals `tar -xzf` of its archive, the
/// data a restore displaced is in quarantine exactly once and byte-identical (on disk and in the
/// ledger), nothing was committed twice and no staging is left.
struct FaultScene {
    let dir: TempDir
    /// The (site, product) destinations that held data before the restore.
    let displaced: [(site: String, product: String)]

    var out: String { dir.file("out") }
    func destination(_ site: String, _ product: String) -> String { dir.file("out/\(site)/\(product)") }
    /// The copy of the displaced data kept by the test, to compare with what quarantine holds.
    func original(_ site: String, _ product: String) -> String { dir.file("displaced-copy/\(site)/\(product)") }

    /// Fills each displaced destination with a small tree (text, binary, nested) and keeps a copy.
    init(dir: TempDir, displaced: [(site: String, product: String)]) throws {
        self.dir = dir
        self.displaced = displaced
        var rng = SystemRandomNumberGenerator()
        for (site, product) in displaced {
            for root in [destination(site, product), original(site, product)] {
                try FileManager.default.createDirectory(atPath: root + "/nested/deeper", withIntermediateDirectories: true)
            }
            let binary = Data((0..<70_000).map { _ in UInt8.random(in: 0...255, using: &rng) })
            let files: [(String, Data)] = [("precious.txt", Data("old \(site)/\(product)\n".utf8)), ("nested/blob.bin", binary),
                                           ("nested/deeper/notes.md", Data("# kept by the operator\n".utf8))]
            for (name, data) in files {
                try data.write(to: URL(fileURLWithPath: destination(site, product) + "/" + name))
                try data.write(to: URL(fileURLWithPath: original(site, product) + "/" + name))
            }
        }
    }

    var sites: [String] { ((try? FileManager.default.contentsOfDirectory(atPath: dir.file("store"))) ?? []).sorted() }

    func newestArchive(_ site: String, _ product: String) throws -> String {
        let folder = dir.file("store/\(site)/\(product)")
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".tar.gz") }.sorted().last)
        return folder + "/" + name
    }

    /// `diff -r` of two trees; empty when identical.
    func diff(_ a: String, _ b: String) throws -> String {
        let result = try run("/usr/bin/diff", ["-r", "--no-dereference", a, b])
        return result.status == 0 ? "" : "diff -r \(a) \(b) (exit \(result.status)):\n\(result.stdout)\(result.stderr)"
    }

    /// The destination equals GNU tar's extraction of its newest archive.
    func expectSameAsTar(_ site: String, _ product: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let reference = dir.file("ref-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(atPath: reference, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: reference) }
        #expect(try run("/bin/tar", ["-xzf", try newestArchive(site, product), "-C", reference]).status == 0, sourceLocation: sourceLocation)
        let difference = try diff(reference, destination(site, product))
        #expect(difference.isEmpty, "\(site)/\(product): \(difference)", sourceLocation: sourceLocation)
    }

    /// The displaced destinations still hold exactly their old data (a failed restore changed nothing).
    func expectDisplacedUntouched(sourceLocation: SourceLocation = #_sourceLocation) throws {
        for (site, product) in displaced {
            let difference = try diff(original(site, product), destination(site, product))
            #expect(difference.isEmpty, "\(site)/\(product) changed: \(difference)", sourceLocation: sourceLocation)
        }
    }

    /// Leftover staging directories anywhere under `out`.
    func stagingLeftovers() throws -> [String] {
        try run("/usr/bin/find", [out, "-name", ".lifeboat-staging"]).stdout.split(separator: "\n").map(String.init)
    }

    /// Every quarantine entry on disk, as `site/entry`.
    func quarantineOnDisk() -> [String] {
        sites.flatMap { site -> [String] in
            let area = dir.file("out/\(site)/.lifeboat-quarantine")
            return ((try? FileManager.default.contentsOfDirectory(atPath: area)) ?? []).map { "\(site)/\($0)" }
        }.sorted()
    }

    /// The whole run's outcome after faults: all restored, displaced data kept once, nothing twice.
    /// `ledgerQuarantine` is the ledger's view (`quarantine list --json` or the `quarantine` table).
    func expectCompleteRestore(products: [String] = ["contacts", "jira"], ledgerQuarantine: [[String: Any]],
                               sourceLocation: SourceLocation = #_sourceLocation) throws {
        for site in sites {
            for product in products { try expectSameAsTar(site, product, sourceLocation: sourceLocation) }
        }
        // Each displaced destination has exactly one quarantine entry holding its old data, byte for byte.
        let onDisk = quarantineOnDisk()
        #expect(onDisk.count == displaced.count, "quarantine holds \(onDisk), expected one entry per \(displaced)", sourceLocation: sourceLocation)
        for (site, product) in displaced {
            let entries = onDisk.filter { $0.hasPrefix("\(site)/") && $0.contains(".\(product).") }
            #expect(entries.count == 1, "\(site)/\(product): quarantine entries \(entries)", sourceLocation: sourceLocation)
            guard let entry = entries.first else { continue }
            let path = dir.file("out/\(site)/.lifeboat-quarantine/\(entry.dropFirst(site.count + 1))")
            let difference = try diff(original(site, product), path)
            #expect(difference.isEmpty, "quarantine of \(site)/\(product) is not the displaced data: \(difference)", sourceLocation: sourceLocation)
            // The ledger knows it: one row, pointing where the data is.
            let rows = ledgerQuarantine.filter { $0["site"] as? String == site && $0["product"] as? String == product }
            #expect(rows.count == 1, "ledger quarantine rows for \(site)/\(product): \(rows)", sourceLocation: sourceLocation)
            #expect(rows.first?["path"] as? String == path, "ledger says \(rows.first?["path"] ?? "nothing"), data is at \(path)",
                    sourceLocation: sourceLocation)
        }
        #expect(ledgerQuarantine.count == displaced.count, "ledger quarantine: \(ledgerQuarantine)", sourceLocation: sourceLocation)
        // Nothing committed twice: a second commit would have displaced the first restore into a
        // quarantine of a site that held no data.
        let displacedSites = Set(displaced.map(\.site))
        for site in sites where !displacedSites.contains(site) {
            #expect(!FileManager.default.fileExists(atPath: dir.file("out/\(site)/.lifeboat-quarantine")),
                    "\(site) was committed twice: \(onDisk)", sourceLocation: sourceLocation)
        }
        let leftovers = try stagingLeftovers()
        #expect(leftovers.isEmpty, "staging left: \(leftovers)", sourceLocation: sourceLocation)
    }
}

/// Rows of a query on a SQLite ledger (read with Python's sqlite3, as an operator would with `sqlite3`).
func ledgerRows(_ ledger: String, _ sql: String) throws -> [[String: Any]] {
    let script = """
        import json, sqlite3, sys
        db = sqlite3.connect(sys.argv[1]); db.row_factory = sqlite3.Row
        print(json.dumps([dict(r) for r in db.execute(sys.argv[2])]))
        """
    let result = try run("/usr/bin/env", ["python3", "-c", script, ledger, sql])
    #expect(result.status == 0, "\(result.stderr)")
    return (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]]) ?? []
}

/// A row's text column, "" when absent.
func text(_ row: [String: Any]?, _ key: String) -> String { row?[key] as? String ?? "" }

/// Whether an executable is on this machine (tests needing it are skipped with a reason otherwise).
func toolAvailable(_ path: String) -> Bool { FileManager.default.isExecutableFile(atPath: path) }

/// A size-limited tmpfs mounted at `path` until `unmount()` (tests call it in a `defer`, so it
/// happens on failure too; `.ci/run` sweeps any mount a killed test run left).
final class TmpfsMount {
    let path: String
    private var mounted = true

    /// - Parameter inodes: at most this many files and directories (default: the kernel's).
    init(at path: String, size: String, inodes: Int? = nil) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let options = "size=\(size),mode=0755" + (inodes.map { ",nr_inodes=\($0)" } ?? "")
        let mount = try run("/bin/mount", ["-t", "tmpfs", "-o", options, "lifeboat-test-tmpfs", path])
        guard mount.status == 0 else { throw MountError(message: "mount -t tmpfs at \(path) failed: \(mount.stderr)") }
    }

    func unmount() {
        guard mounted else { return }
        mounted = false
        _ = try? run("/bin/umount", ["-l", path])
    }

    deinit { unmount() }
}

struct MountError: Error, CustomStringConvertible { var message: String; var description: String { message } }

/// Whether this process may mount a tmpfs (root in a namespace that allows it).
let canMountTmpfs: Bool = {
    guard getuid() == 0 else { return false }
    let dir = TempDir("mountprobe")
    guard let mount = try? TmpfsMount(at: dir.file("m"), size: "64k") else { return false }
    mount.unmount()
    return true
}()
