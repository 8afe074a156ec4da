import Foundation
import LifeboatTestSupport
import Testing

/// Snapshots in an S3-compatible bucket, driven the way an operator would: the real `lifeboat`
/// binary against a real S3 API server (`moto_server`) on loopback, the `aws` CLI as the other
/// client, and a fault proxy for cut connections, throttling and stalls.
@Suite(.serialized, .ownThread, .enabled(if: MotoServer.shouldRun, "moto_server is not installed: python3 -m pip install 'moto[server]' (.ci/run does)"))
struct S3StoreTests {
    /// A local fleet copied into a bucket with `aws s3 cp` (another client writes, Lifeboat reads).
    func uploadFleet(_ moto: MotoServer, _ dir: TempDir, bucket: String, prefix: String, sites: Int, size: String) throws {
        let gen = try run(Binaries.lifeboat, ["fleet", "generate", dir.file("store"), "--sites", "\(sites)", "--products", "contacts,jira",
                                             "--size", size, "--now", "2026-11-25T10:00:00Z"])
        #expect(gen.status == 0, "\(gen.stderr)")
        let mb = try moto.aws(["s3", "mb", "s3://\(bucket)"])
        #expect(mb.status == 0, "\(mb.stderr)")
        let cp = try moto.aws(["s3", "cp", "--recursive", "--quiet", dir.file("store"), "s3://\(bucket)/\(prefix)/"])
        #expect(cp.status == 0, "\(cp.stderr)")
    }

    @Test func restoreAPlanWhoseSnapshotsAreInABucket() throws {
        let moto = try MotoServer()
        defer { moto.stop() }
        let dir = TempDir()
        try uploadFleet(moto, dir, bucket: "backups", prefix: "lifeboat/prod", sites: 3, size: "256KiB")
        let plan = dir.write("plan.yaml", """
            name: bucket
            snapshots: s3://backups/lifeboat/prod
            target: out/{site}/{product}
            products:
              - name: contacts
              - name: jira
                after: [contacts]
            verify: { checksum: required }
            """)
        #expect(try run(Binaries.lifeboat, ["plan", "check", plan]).status == 0)

        let list = try moto.lifeboat(["snapshot", "list", "s3://backups/lifeboat/prod", "--as-of", "2026-11-25T10:00:00Z", "--json"])
        #expect(list.status == 0, "\(list.stderr)")
        let listing = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [String: Any])
        let rows = try #require(listing["rows"] as? [[String: Any]])
        #expect(rows.count == 6)
        #expect((listing["strays"] as? [Any])?.isEmpty == true)

        let restored = try moto.lifeboat(["run", plan, "--ledger", dir.file("ledger.sqlite"), "--state-dir", dir.file("state"), "--json"])
        #expect(restored.status == 0, "\(restored.stdout)\n\(restored.stderr)")
        for site in ["acme", "globex", "initech"] {
            for product in ["contacts", "jira"] {
                try expectSameAsTar(try newestArchive(dir, site, product), dir.file("out/\(site)/\(product)"), in: dir)
            }
        }
    }

    /// A daemon whose store was copied into the bucket `s3://daemon/snaps` and whose plan `main`
    /// (its `products:` and what follows them given) reads it there; the endpoint comes from the
    /// daemon's config, the credentials from its environment only.
    func bucketDaemon(_ moto: MotoServer, sites: Int, size: String, plan: String, name: String = #function) throws -> DaemonHarness {
        let daemon = try DaemonHarness(sites: sites, size: size, name: name)
        #expect(try moto.aws(["s3", "mb", "s3://daemon"]).status == 0)
        #expect(try moto.aws(["s3", "cp", "--recursive", "--quiet", daemon.dir.file("store"), "s3://daemon/snaps/"]).status == 0)
        daemon.dir.write("plans/main.yaml", """
            name: main
            snapshots: s3://daemon/snaps
            target: ../out/{site}/{product}
            products:
            \(plan)
            """)
        let config = try String(contentsOfFile: daemon.dir.file("lifeboatd.yaml"), encoding: .utf8)
        daemon.dir.write("lifeboatd.yaml", config + "\ns3: { endpoint: \"\(moto.endpoint)\", region: us-east-1, path_style: true }\n")
        return daemon
    }

    @Test func theDaemonDryRunsAndRestoresFromTheBucketOfItsConfig() async throws {
        let moto = try MotoServer()
        defer { moto.stop() }
        let daemon = try bucketDaemon(moto, sites: 2, size: "128KiB", plan: """
              - name: contacts
              - name: jira
                after: [contacts]
            """)
        try daemon.start(environment: MotoServer.credentials.merging(["AWS_ENDPOINT_URL": "http://127.0.0.1:9"]) { $1 })
        defer { daemon.stop() }

        let dry = try daemon.cli(["dry-run", "main", "--json"])
        #expect(dry.status == 0, "\(dry.stdout)\(dry.stderr)")
        #expect(dry.stdout.contains("s3:\\/\\/daemon\\/snaps\\/acme\\/contacts\\/") || dry.stdout.contains("s3://daemon/snaps/acme/contacts/"), "\(dry.stdout)")
        let id = try daemon.startRestore()
        let state = try await daemon.waitForRun(id)
        let jobs = try daemon.jobs(id)
        #expect(state == "succeeded", "\(jobs)\n\(daemon.daemonLog.suffix(2_000))")
        for site in ["acme", "globex"] {
            try expectSameAsTar(try newestArchive(daemon.dir, site, "jira"), daemon.dir.file("out/\(site)/jira"), in: daemon.dir)
        }
    }

    /// A snapshot object replaced after its run listed it (here, while the run is halted at its
    /// gate) is not restored, whatever the checksum policy: the job fails saying so, and the
    /// destination keeps what it had.
    @Test func anObjectReplacedSinceTheListingIsNotRestored() async throws {
        let moto = try MotoServer()
        defer { moto.stop() }
        let daemon = try bucketDaemon(moto, sites: 3, size: "64KiB", plan: """
              - name: contacts
            verify: { checksum: "off" }
            waves:
              - { sites: 1, gate: { max_failures: 0 } }
              - { sites: rest }
            """)
        // The canary's archive is damaged: its job fails and the gate halts the run.
        let canary = try newestArchive(daemon.dir, "acme", "contacts")
        daemon.dir.write("garbage.tar.gz", "not an archive")
        #expect(try moto.aws(["s3", "cp", "--quiet", daemon.dir.file("garbage.tar.gz"), "s3://daemon/snaps/acme/contacts/\((canary as NSString).lastPathComponent)"]).status == 0)
        try daemon.start(environment: MotoServer.credentials)
        defer { daemon.stop() }
        let halted = try daemon.cli(["restore", "main", "--exit-on-halt"])
        #expect(halted.status == 4, "\(halted.stdout)\(halted.stderr)")
        let id = try #require(try daemon.runs().first?["id"] as? String)
        // Meanwhile globex's snapshot is overwritten with initech's archive.
        let (globex, initech) = (try newestArchive(daemon.dir, "globex", "contacts"), try newestArchive(daemon.dir, "initech", "contacts"))
        let size = { (path: String) in try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int }
        try #require(try size(globex) != size(initech))
        #expect(try moto.aws(["s3", "cp", "--quiet", initech, "s3://daemon/snaps/globex/contacts/\((globex as NSString).lastPathComponent)"]).status == 0)
        #expect(try daemon.cli(["resume", id]).status == 0)
        #expect(try await daemon.waitForRun(id) == "failed")
        let jobs = try daemon.jobs(id)
        let replaced = try #require(jobs.first { $0["site"] as? String == "globex" })
        #expect(replaced["state"] as? String == "failed" && (replaced["error"] as? String)?.contains("when the run listed it: it was replaced since") == true,
                "\(replaced)")
        #expect(!FileManager.default.fileExists(atPath: daemon.dir.file("out/globex/contacts")))
        try expectSameAsTar(initech, daemon.dir.file("out/initech/contacts"), in: daemon.dir)
    }

    @Test func fleetGenerateWritesABucketListedPastOneThousandKeys() throws {
        let moto = try MotoServer()
        defer { moto.stop() }
        #expect(try moto.aws(["s3", "mb", "s3://pages"]).status == 0)
        // 520 sites × 1 product: 520 archives and 520 sidecars, 1,040 keys (two listing pages).
        let gen = try moto.lifeboat(["fleet", "generate", "s3://pages/fleet", "--sites", "520", "--products", "contacts",
                                     "--size", "2KiB", "--now", "2026-11-25T10:00:00Z"])
        #expect(gen.status == 0, "\(gen.stderr)")
        let ls = try moto.aws(["s3", "ls", "--recursive", "s3://pages/fleet/"])
        #expect(ls.stdout.split(separator: "\n").count == 1_040)
        let list = try moto.lifeboat(["snapshot", "list", "s3://pages/fleet", "--json"])
        #expect(list.status == 0, "\(list.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [String: Any])
        let rows = try #require(json["rows"] as? [[String: Any]])
        #expect(rows.count == 520)
        #expect(rows.allSatisfy { (($0["newest"] as? [String: Any])?["sidecar_path"] as? String)?.hasSuffix(".tar.gz.sha256") == true })
        // A second generate into the same prefix is refused.
        let again = try moto.lifeboat(["fleet", "generate", "s3://pages/fleet", "--sites", "1", "--products", "contacts", "--size", "2KiB"])
        #expect(again.status != 0 && again.stderr.contains("already holds"))
    }

    @Test func aConnectionCutMidArchiveResumesWithARange() throws {
        let moto = try MotoServer()
        defer { moto.stop() }
        let dir = TempDir()
        try uploadFleet(moto, dir, bucket: "big", prefix: "p", sites: 1, size: "8MiB")
        let archive = try newestArchive(dir, "acme", "jira")
        let size = try #require(try FileManager.default.attributesOfItem(atPath: archive)[.size] as? Int)
        let key = "p/acme/jira/" + (archive as NSString).lastPathComponent
        let proxy = FaultProxy(upstreamPort: moto.port, fault: .cutOnce(afterBytes: size / 3))
        defer { proxy.stop() }
        let out = dir.file("restored")
        let result = try moto.lifeboat(["snapshot", "extract", "s3://big/\(key)", "--into", out, "--checksum", "required"], endpoint: proxy.endpoint)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(proxy.faultsInjected == 1)
        // Resumed, not read again: about one archive went through, not one and a third.
        #expect(proxy.downstreamBytes < size + size / 10, "fetched \(proxy.downstreamBytes) bytes for a \(size)-byte archive")
        try expectSameAsTar(archive, out, in: dir)
    }

    /// A listing must be one and must end: a store that pages without end, or answers with
    /// something that is not a listing, is an error naming it, never an empty store or a hang.
    @Test func listingsThatNeverEndOrAreNoListingsAreErrors() throws {
        let moto = try MotoServer()
        defer { moto.stop() }
        let page = #"<?xml version="1.0"?><ListBucketResult><Contents><Key>p/acme/jira/20251101T000000Z.tar.gz</Key><Size>9</Size></Contents>"#
            + "<IsTruncated>true</IsTruncated><NextContinuationToken>again</NextContinuationToken></ListBucketResult>"
        let cases: [(String, String)] = [
            (page, "twice"),
            (#"<?xml version="1.0"?><Error><Code>InternalError</Code><Message>boom</Message></Error>"#, "not a complete ListObjectsV2 result (InternalError)"),
            ("<ListBucketResult><Contents><Key>p/a/b/c", "not a complete ListObjectsV2 result"),
        ]
        for (body, words) in cases {
            let store = FaultProxy(upstreamPort: moto.port, fault: .answer(body))
            defer { store.stop() }
            let listed = try moto.lifeboat(["snapshot", "list", "s3://odd/p"], endpoint: store.endpoint)
            #expect(listed.status != 0 && listed.stderr.contains(words) && listed.stderr.contains(store.endpoint.dropFirst("http://".count)),
                    "\(listed.status): \(listed.stderr)")
        }
    }

    @Test func throttlingAndAStalledServerAreRetried() throws {
        let moto = try MotoServer()
        defer { moto.stop() }
        let dir = TempDir()
        try uploadFleet(moto, dir, bucket: "flaky", prefix: "p", sites: 1, size: "256KiB")
        let key = "p/acme/contacts/" + (try newestArchive(dir, "acme", "contacts") as NSString).lastPathComponent
        let slow = FaultProxy(upstreamPort: moto.port, fault: .slowDown(count: 3))
        defer { slow.stop() }
        let verified = try moto.lifeboat(["snapshot", "verify", "s3://flaky/\(key)"], endpoint: slow.endpoint)
        #expect(verified.status == 0, "\(verified.stderr)")
        #expect(slow.faultsInjected == 3)

        let stalled = FaultProxy(upstreamPort: moto.port, fault: .stallOnce)
        defer { stalled.stop() }
        let started = Date()
        let again = try moto.lifeboat(["snapshot", "verify", "s3://flaky/\(key)"], endpoint: stalled.endpoint, extra: ["LIFEBOAT_S3_TIMEOUT": "2"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(Date().timeIntervalSince(started) >= 2)
        #expect(stalled.faultsInjected == 1)
    }

    /// A store that answers at once and then trickles its bodies never holds a command (or a
    /// job) forever: a listing must complete within the timeout, an archive must come at the
    /// minimum rate; each is retried, then fails saying which.
    @Test func aTricklingStoreIsCutOffNotWaitedOn() throws {
        let moto = try MotoServer()
        defer { moto.stop() }
        let dir = TempDir()
        try uploadFleet(moto, dir, bucket: "slow", prefix: "p", sites: 1, size: "256KiB")
        let key = "p/acme/contacts/" + (try newestArchive(dir, "acme", "contacts") as NSString).lastPathComponent
        let proxy = FaultProxy(upstreamPort: moto.port, fault: .trickle(afterBytes: 1024, bytesPerSecond: 512))
        defer { proxy.stop() }
        let settings = ["LIFEBOAT_S3_TIMEOUT": "1", "LIFEBOAT_S3_ATTEMPTS": "2"]
        let started = Date()
        let listed = try moto.lifeboat(["snapshot", "list", "s3://slow/p"], endpoint: proxy.endpoint, extra: settings)
        #expect(listed.status != 0 && listed.stderr.contains("did not complete within 1s") && listed.stderr.contains("bucket slow"),
                "\(listed.status): \(listed.stderr)")
        let read = try moto.lifeboat(["snapshot", "verify", "s3://slow/\(key)", "--checksum", "off"], endpoint: proxy.endpoint, extra: settings)
        #expect(read.status != 0 && read.stderr.contains("KiB/s a restore needs at least") && read.stderr.contains(key),
                "\(read.status): \(read.stderr)")
        #expect(Date().timeIntervalSince(started) < 30)
        // Without the trickle, the same reads go through.
        let direct = try moto.lifeboat(["snapshot", "verify", "s3://slow/\(key)", "--checksum", "off"], extra: settings)
        #expect(direct.status == 0, "\(direct.stderr)")
    }

    @Test func missingObjectsBucketsAndWrongCredentialsAreClearErrors() throws {
        let moto = try MotoServer()
        defer { moto.stop() }
        let dir = TempDir()
        try uploadFleet(moto, dir, bucket: "errs", prefix: "p", sites: 1, size: "64KiB")

        // A key deleted between list and get.
        let name = (try newestArchive(dir, "acme", "jira") as NSString).lastPathComponent
        #expect(try moto.aws(["s3", "rm", "s3://errs/p/acme/jira/\(name)"]).status == 0)
        let gone = try moto.lifeboat(["snapshot", "verify", "s3://errs/p/acme/jira/\(name)", "--checksum", "off"])
        #expect(gone.status != 0)
        #expect(gone.stderr.contains("no such object") && gone.stderr.contains("bucket errs") && gone.stderr.contains("key p/acme/jira/\(name)"),
                "\(gone.stderr)")

        let noBucket = try moto.lifeboat(["snapshot", "list", "s3://no-such-bucket/p"])
        #expect(noBucket.status == 2)
        #expect(noBucket.stderr.contains("the bucket does not exist") && noBucket.stderr.contains("bucket no-such-bucket"), "\(noBucket.stderr)")
        // An archive's HEAD has no body to say which is missing: the bucket is asked.
        let noBucketArchive = try moto.lifeboat(["snapshot", "verify", "s3://no-such-bucket/p/acme/jira/\(name)"])
        #expect(noBucketArchive.status == 2 && noBucketArchive.stderr.contains("the bucket does not exist"), "\(noBucketArchive.stderr)")
        #expect(gone.stderr.contains("no such object"))

        // A server that checks credentials and knows none of these.
        let strict = try MotoServer(extraEnvironment: ["INITIAL_NO_AUTH_ACTION_COUNT": "0"])
        defer { strict.stop() }
        let denied = try strict.lifeboat(["snapshot", "list", "s3://errs/p"])
        #expect(denied.status != 0)
        #expect(denied.stderr.contains("access denied") && denied.stderr.contains("HTTP 403") && denied.stderr.contains("bucket errs"),
                "\(denied.stderr)")
    }
}

/// Secrets never go in a plan or the daemon config (no server needed).
@Suite(.ownThread) struct S3SecretsTests {
    @Test func aPlanHoldingASecretIsRefusedWithWhereSecretsGo() throws {
        let dir = TempDir()
        let plan = dir.write("plan.yaml", """
            snapshots: s3://backups/prod
            target: /srv/{site}/{product}
            products: [{name: contacts}]
            s3:
              aws_secret_access_key: hunter2hunter2
            """)
        let result = try run(Binaries.lifeboat, ["plan", "check", plan])
        #expect(result.status == 2)
        #expect(result.stderr.contains("\(plan):5:3: \"aws_secret_access_key\" looks like a credential"), "\(result.stderr)")
        #expect(result.stderr.contains("AWS_SECRET_ACCESS_KEY") && result.stderr.contains("AWS_SHARED_CREDENTIALS_FILE"))
        #expect(!result.stderr.contains("hunter2"))

        let inURL = dir.write("url.yaml", """
            snapshots: s3://AKIDEXAMPLE:hunter2hunter2@backups/prod
            target: /srv/{site}/{product}
            products: [{name: contacts}]
            """)
        let url = try run(Binaries.lifeboat, ["plan", "check", inURL])
        #expect(url.status == 2)
        #expect(url.stderr.contains("must not carry credentials") && !url.stderr.contains("hunter2"), "\(url.stderr)")
    }

    @Test func aDaemonConfigHoldingASecretDoesNotStart() throws {
        let dir = TempDir()
        dir.write("plans/.keep", "")
        let config = dir.write("lifeboatd.yaml", """
            plans_dir: plans
            state_dir: state
            socket: { path: lifeboatd.sock }
            s3:
              endpoint: http://127.0.0.1:9
              secret_access_key: hunter2hunter2
            """)
        let result = try run(Binaries.lifeboatd, ["--config", config])
        #expect(result.status != 0)
        #expect(result.stderr.contains("\"secret_access_key\" looks like a credential"), "\(result.stderr)")
        #expect(!result.stderr.contains("hunter2"))
    }
}
