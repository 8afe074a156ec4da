import Foundation
import Testing
@testable import LifeboatKit

/// The parts of the S3 store that need no server: locations, settings, credentials, the catalog
/// of a listing, error classification.
@Suite struct S3StoreUnitTests {
    @Test func locations() throws {
        let l = try S3Location(parsing: "s3://backups/lifeboat/prod/")
        #expect(l.bucket == "backups" && l.prefix == "lifeboat/prod" && l.listPrefix == "lifeboat/prod/")
        #expect(l.key("acme/jira/x.tar.gz") == "lifeboat/prod/acme/jira/x.tar.gz")
        #expect(try S3Location(parsing: "s3://backups").prefix == "")
        #expect(throws: S3Error.self) { try S3Location(parsing: "s3://Bad_Bucket/x") }
        #expect(throws: S3Error.self) { try S3Location(parsing: "s3://b1/a//b") }
        let secret = #expect(throws: S3Error.self) { try S3Location(parsing: "s3://AKID:hunter2hunter2@bucket/x") }
        #expect(secret?.code == .secretInLocation)
        #expect(secret?.description.contains("hunter2") == false)
    }

    @Test func endpointResolution() throws {
        let local = try S3Endpoint.resolve(S3Settings(), environment: ["AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_REGION": "eu-west-1"])
        #expect(local.pathStyle && local.region == "eu-west-1" && local.hostHeader(bucket: "b") == "127.0.0.1:9000")
        #expect(local.path(bucket: "b", key: "k/x") == "/b/k/x")
        let aws = try S3Endpoint.resolve(S3Settings(), environment: [:])
        #expect(!aws.pathStyle && aws.hostHeader(bucket: "b") == "b.s3.us-east-1.amazonaws.com" && aws.scheme == "https")
        // The config wins over the environment.
        let configured = try S3Endpoint.resolve(S3Settings(endpoint: "https://s3.example.net", region: "r1", pathStyle: true),
                                                environment: ["AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_REGION": "r2"])
        #expect(configured.host == "s3.example.net" && configured.region == "r1" && configured.pathStyle)
    }

    /// Credentials in an endpoint are refused without being echoed, whatever else is wrong with
    /// it (a typo in the scheme, no host); a path is refused, not silently dropped.
    @Test func anEndpointIsCheckedWithoutEchoingSecrets() throws {
        for text in ["htps://AKID:hunter2@s3.example.net", "http://AKID:hunter2@/", "s3://AKID:hunter2@bucket", "http://AKID:hunter2@127.0.0.1:9000"] {
            let error = try #require(throws: S3Error.self) { try S3Endpoint.parse(text) }
            #expect(error.code == .secretInLocation && !error.message.contains("hunter2"), "\(text): \(error.message)")
        }
        let path = try #require(throws: S3Error.self) { try S3Endpoint.parse("http://127.0.0.1:9000/gateway/s3") }
        #expect(path.message.contains("has a path or query"))
        #expect(try #require(throws: S3Error.self) { try S3Endpoint.parse("ftp://s3.example.net") }.code == .invalidLocation)
        #expect(try S3Endpoint.parse("http://127.0.0.1:9000/") == ("http", "127.0.0.1", 9000))
        #expect(try S3Endpoint.parse("HTTPS://s3.example.net") == ("https", "s3.example.net", nil))
    }

    @Test func credentialsFromTheStandardPlaces() throws {
        let dir = TestDirectory()
        let file = dir.file("credentials")
        try "[default]\naws_access_key_id = AK1\naws_secret_access_key = S1\n\n[profile ops]\naws_access_key_id=AK2\naws_secret_access_key=S2\naws_session_token=T2\n"
            .write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try S3Credentials.resolve(environment: ["AWS_ACCESS_KEY_ID": "E", "AWS_SECRET_ACCESS_KEY": "ES", "AWS_SHARED_CREDENTIALS_FILE": file]).accessKeyID == "E")
        #expect(try S3Credentials.resolve(environment: ["AWS_SHARED_CREDENTIALS_FILE": file]).accessKeyID == "AK1")
        let ops = try S3Credentials.resolve(environment: ["AWS_SHARED_CREDENTIALS_FILE": file, "AWS_PROFILE": "ops"])
        #expect(ops.accessKeyID == "AK2" && ops.sessionToken == "T2")
        let missing = #expect(throws: S3Error.self) {
            try S3Credentials.resolve(environment: ["AWS_SHARED_CREDENTIALS_FILE": dir.file("none"), "HOME": dir.path])
        }
        #expect(missing?.code == .credentials)
    }

    @Test func catalogOfAListing() {
        let files = [
            ("acme/jira/20261120T030000Z.tar.gz", 10), ("acme/jira/20261120T030000Z.tar.gz.sha256", 1),
            ("acme/jira/20261121T030000Z.tar.gz", 11), ("acme/contacts/20261121T030000Z.tar.gz", 5),
            ("README", 1), ("acme/notes.txt", 1), ("acme/jira/deep/x.tar.gz", 1), ("Bad Site/jira/20261121T030000Z.tar.gz", 1),
            ("acme/jira/garbage.tar.gz", 1), ("acme/jira/folder/", 0),
        ].map { SnapshotStore.ListedFile(relativePath: $0.0, size: Int64($0.1)) }
        let store = SnapshotStore(root: "s3://b/p", listing: files) { "s3://b/p/" + $0 }
        #expect(store.sites == ["acme"])
        let jira = store.snapshots(site: "acme", product: "jira")
        #expect(jira.count == 2)
        #expect(jira[0].path == "s3://b/p/acme/jira/20261120T030000Z.tar.gz" && jira[0].size == 10)
        #expect(jira[0].sidecarPath == "s3://b/p/acme/jira/20261120T030000Z.tar.gz.sha256" && jira[1].sidecarPath == nil)
        #expect(Set(store.strays.map(\.path)) == ["s3://b/p/README", "s3://b/p/acme/notes.txt", "s3://b/p/acme/jira/deep/x.tar.gz",
                                                  "s3://b/p/Bad Site", "s3://b/p/acme/jira/garbage.tar.gz"])
        // A key is the store's text: printed, its escape sequences are escaped.
        let hostile = SnapshotStore(root: "s3://b/p", listing: [.init(relativePath: "x\u{1B}]0;owned\u{07}\u{1B}[2J.txt", size: 1)]) { "s3://b/p/" + $0 }
        #expect(hostile.strays.map(\.description) == [#"s3://b/p/x\u{1b}]0;owned\u{7}\u{1b}[2J.txt: not a site directory"#])
    }

    @Test func errorClassification() {
        let slow = S3Error.from(status: 503, body: "<Error><Code>SlowDown</Code><Message>Please reduce</Message></Error>", method: "GET", bucket: "b", key: "k")
        #expect(slow.isTransient && slow.code == .unavailable)
        let missing = S3Error.from(status: 404, body: "<Error><Code>NoSuchKey</Code></Error>", method: "GET", bucket: "b", key: "a/k")
        #expect(!missing.isTransient && missing.code == .notFound && missing.description.contains("bucket b, key a/k"))
        let bucket = S3Error.from(status: 404, body: "<Error><Code>NoSuchBucket</Code></Error>", method: "GET", bucket: "b", key: nil)
        #expect(bucket.code == .noSuchBucket)
        let denied = S3Error.from(status: 403, body: "<Error><Code>InvalidAccessKeyId</Code></Error>", method: "GET", bucket: "b", key: nil)
        #expect(S3Error.from(status: 403, body: "", method: "HEAD", bucket: "b", key: "k", endpoint: "http://127.0.0.1:9000").message
                == "access denied for HEAD k at http://127.0.0.1:9000", "a HEAD has no body: the message names where it went")
        #expect(denied.code == .accessDenied && denied.description.contains("AWS_ACCESS_KEY_ID"))
        #expect(XMLText.decode("a&amp;b&lt;&#65;&#x42;") == "a&b<AB")
        // An element inside a comment is no element; a page far over 1,000 keys (a store that
        // ignores max-keys) is read whole.
        let commented = "<R><!-- <Contents><Key>phantom/x</Key></Contents> --><Contents><Key>real</Key></Contents></R>"
        #expect(XMLText.elements("Contents", in: commented).map { XMLText.all("Key", in: $0) } == [["real"]])
        let page = "<ListBucketResult>" + (0..<40_000).map { "<Contents><Key>k\($0)</Key><Size>1</Size></Contents>" }.joined() + "</ListBucketResult>"
        let keys = XMLText.elements("Contents", in: page).compactMap { XMLText.all("Key", in: $0).first }
        #expect(keys.count == 40_000 && keys.last == "k39999")
        // A bucket in another region: where it lives, and what to set.
        let moved = S3Error.from(status: 301, body: "<Error><Code>PermanentRedirect</Code><Message>use the endpoint</Message><Endpoint>b.s3.eu-west-1.amazonaws.com</Endpoint></Error>",
                                 method: "GET", bucket: "b", key: nil)
        #expect(!moved.isTransient && moved.description.contains("it names b.s3.eu-west-1.amazonaws.com") && moved.description.contains("s3.region (AWS_REGION)"),
                "\(moved.description)")
        // What the store says is shown, never played on the operator's terminal, and cut short.
        let hostile = S3Error.from(status: 500, body: "<Error><Code>Internal\u{1B}]0;x\u{07}</Code><Message>\u{1B}[2Jgone\u{202E}\(String(repeating: "x", count: 1_000))</Message></Error>",
                                   method: "GET", bucket: "b", key: "k")
        #expect(!hostile.description.unicodeScalars.contains { $0.properties.generalCategory == .control || $0.properties.generalCategory == .format },
                "\(hostile.description)")
        #expect(hostile.description.contains("\\u{1b}[2Jgone\\u{202e}") && hostile.description.contains("…") && hostile.description.count < 700)
    }
}
