import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1

/// One object of a listing.
public struct S3Object: Sendable, Hashable {
    public var key: String
    public var size: Int64
    public var etag: String?
}

/// A small S3 client on async-http-client: SigV4-signed requests, retries with backoff and jitter
/// for throttling, server errors, timeouts and dropped connections, and the few operations a
/// snapshot store needs (list, head, get, put, multipart upload). Streaming reads of archives are
/// `S3ObjectReader`.
public struct S3Client: Sendable {
    public let endpoint: S3Endpoint
    let credentials: S3Credentials

    public init(endpoint: S3Endpoint, credentials: S3Credentials) {
        self.endpoint = endpoint
        self.credentials = credentials
    }

    /// A client for the config's `s3:` settings, the standard AWS variables and credentials.
    public static func make(_ settings: S3Settings, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> S3Client {
        S3Client(endpoint: try S3Endpoint.resolve(settings, environment: environment),
                 credentials: try S3Credentials.resolve(environment: environment))
    }

    /// One HTTP client for the process: pooled connections, no redirects (a redirect from S3 means
    /// a wrong region or endpoint, said as an error), no read timeout of its own (ours is per
    /// request, and per wait while streaming).
    static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow,
                                                     timeout: .init(connect: .seconds(10), read: nil))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        configuration.httpVersion = .http1Only
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    // MARK: Requests

    struct Prepared {
        var url: String
        var headers: HTTPHeaders
    }

    /// The URL and signed headers of a request.
    func prepare(method: String, bucket: String, key: String, query: [(String, String)] = [],
                 headers extra: [(name: String, value: String)] = [], payloadHash: String = SigV4Signer.emptyPayloadHash,
                 date: Date = Date()) -> Prepared {
        let host = endpoint.hostHeader(bucket: bucket)
        let path = endpoint.path(bucket: bucket, key: key)
        var headers: [(name: String, value: String)] = [("host", host), ("x-amz-content-sha256", payloadHash)]
        headers += extra
        let signed = SigV4Signer(credentials: credentials, region: endpoint.region).sign(
            method: method, path: path, query: query, headers: headers, payloadHash: payloadHash, date: date)
        let queryText = SigV4Signer.canonicalQuery(query)
        let url = "\(endpoint.scheme)://\(host)\(SigV4Signer.canonicalPath(path))" + (queryText.isEmpty ? "" : "?" + queryText)
        return Prepared(url: url, headers: HTTPHeaders(signed.headers.map { ($0.name, $0.value) }))
    }

    struct Answer: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: ByteBuffer
    }

    /// Sends a request, retrying transient failures with exponential backoff and full jitter;
    /// a non-2xx answer not in `accept` becomes an `S3Error` naming bucket and key.
    func send(_ method: HTTPMethod, bucket: String, key: String?, query: [(String, String)] = [],
              headers: [(name: String, value: String)] = [], body: ByteBuffer? = nil, accept: Set<Int> = [],
              maxBody: Int = 16 << 20) async throws -> Answer {
        var payloadHash = SigV4Signer.emptyPayloadHash
        if let body {
            var hasher = SHA256()
            body.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            payloadHash = SigV4Signer.hex(hasher.finalize())
        }
        var attempt = 0
        while true {
            try Task.checkCancellation()
            let prepared = prepare(method: method.rawValue, bucket: bucket, key: key ?? "", query: query, headers: headers, payloadHash: payloadHash)
            var request = HTTPClientRequest(url: prepared.url)
            request.method = method
            request.headers = prepared.headers
            if let body {
                request.body = .bytes(body)
                request.headers.replaceOrAdd(name: "content-length", value: "\(body.readableBytes)")
            }
            let failure: S3Error
            do {
                // The whole exchange, body included, within the timeout: async-http-client's own
                // covers the answer's head only, and a store that then trickles its body would
                // hold a listing or a sidecar forever. (An upload's time grows with its part.)
                let (timeout, request) = (endpoint.timeout, request)
                let exchange: @Sendable () async throws -> (HTTPClientResponse, ByteBuffer) = {
                    let response = try await Self.http.execute(request, timeout: .milliseconds(Int64(timeout * 1000)))
                    return (response, try await response.body.collect(upTo: maxBody))
                }
                let (response, data) = body == nil ? try await withDeadline(seconds: timeout, exchange) : try await exchange()
                let status = Int(response.status.code)
                if (200..<300).contains(status) || accept.contains(status) {
                    return Answer(status: status, headers: response.headers, body: data)
                }
                failure = S3Error.from(status: status, body: String(buffer: data), method: method.rawValue, bucket: bucket, key: key, endpoint: endpoint.display)
            } catch let error as CancellationError {
                throw error
            } catch let error where error is DeadlineExceeded || (error as? HTTPClientError) == .deadlineExceeded {
                // Ours, or async-http-client's (set to the same time, it may fire first).
                failure = S3Error(.unavailable, "\(method.rawValue) \(key ?? "on the bucket") at \(endpoint.display) did not complete within \(DurationSpec.format(seconds: endpoint.timeout)) (s3.timeout, LIFEBOAT_S3_TIMEOUT)",
                                  bucket: bucket, key: key, isTransient: true)
            } catch is NIOTooManyBytesError {
                // Not a passing failure: the same answer would come again.
                throw S3Error(.failed, "the answer to \(method.rawValue) \(key ?? "on the bucket") at \(endpoint.display) is larger than \(ByteSize.format(Int64(maxBody))), more than such an answer can be; check the endpoint and the key",
                              bucket: bucket, key: key)
            } catch {
                failure = Self.connectionFailure(error, method: method.rawValue, bucket: bucket, key: key, endpoint: endpoint)
            }
            attempt += 1
            guard failure.isTransient, attempt < endpoint.attempts else { throw failure }
            try await Task.sleep(nanoseconds: Self.backoff(attempt: attempt))
        }
    }

    /// Connection-level failures (refused, reset, timed out): transient.
    static func connectionFailure(_ error: Error, method: String, bucket: String, key: String?, endpoint: S3Endpoint) -> S3Error {
        S3Error(.unavailable, "\(method) \(key ?? "on the bucket") at \(endpoint.display) failed: \(error)", bucket: bucket, key: key, isTransient: true)
    }

    /// Full jitter over an exponential ceiling: 0.2 s, 0.4 s, 0.8 s, … capped at 5 s.
    static func backoff(attempt: Int) -> UInt64 {
        let ceiling = min(5.0, 0.2 * pow(2.0, Double(max(0, attempt - 1))))
        return UInt64(Double.random(in: 0.05...max(0.05, ceiling)) * 1e9)
    }

    // MARK: Operations

    /// The most pages a listing may take (a million keys at the usual 1,000 a page).
    static let maxListPages = 1_000

    /// Every object under `prefix`, through as many ListObjectsV2 pages as it takes. A store
    /// that hands out a continuation token again, or pages without end, is an error: a listing
    /// must end.
    public func list(bucket: String, prefix: String) async throws -> [S3Object] {
        var objects: [S3Object] = []
        var token: String?
        var tokens: Set<String> = []
        repeat {
            guard tokens.count < Self.maxListPages else {
                throw S3Error(.failed, "the listing of \(String(reflecting: prefix)) at \(endpoint.display) goes on past \(Self.maxListPages) pages; narrow the plan's prefix or check the store", bucket: bucket, key: prefix)
            }
            var query = [("list-type", "2"), ("prefix", prefix), ("max-keys", "1000")]
            if let token { query.append(("continuation-token", token)) }
            let answer = try await send(.GET, bucket: bucket, key: nil, query: query)
            let xml = String(buffer: answer.body)
            // What came back must be a listing: an error document or a cut-off body with a
            // success status would otherwise read as an empty store.
            guard xml.contains("<ListBucketResult"), xml.contains("</ListBucketResult>") else {
                let code = XMLText.first("Code", in: xml).map { " (\(S3Error.printable($0, limit: 64)))" } ?? ""
                throw S3Error(.failed, "the store at \(endpoint.display) answered the listing of \(String(reflecting: prefix)) with something that is not a complete ListObjectsV2 result\(code)", bucket: bucket, key: prefix)
            }
            for element in XMLText.elements("Contents", in: xml) {
                guard let key = XMLText.all("Key", in: element).first else { continue }
                let size = XMLText.all("Size", in: element).first.flatMap { Int64($0) } ?? 0
                objects.append(S3Object(key: key, size: size, etag: XMLText.all("ETag", in: element).first))
            }
            let truncated = XMLText.first("IsTruncated", in: xml) == "true"
            token = truncated ? XMLText.first("NextContinuationToken", in: xml) : nil
            if truncated, token == nil {
                throw S3Error(.failed, "the listing is truncated but the store gave no continuation token", bucket: bucket, key: prefix)
            }
            if let token, !tokens.insert(token).inserted {
                throw S3Error(.failed, "the store at \(endpoint.display) gave the continuation token \(String(reflecting: token)) twice: the listing would never end", bucket: bucket, key: prefix)
            }
        } while token != nil
        return objects
    }

    /// Size and ETag of an object; nil when it does not exist.
    public func head(bucket: String, key: String) async throws -> S3Object? {
        let answer = try await send(.HEAD, bucket: bucket, key: key, accept: [404])
        if answer.status == 404 {
            // A HEAD's 404 has no body to tell a missing key from a missing bucket: ask the bucket.
            if try await send(.HEAD, bucket: bucket, key: nil, accept: [403, 404]).status == 404 {
                throw S3Error(.noSuchBucket, "the bucket does not exist", bucket: bucket, key: key, status: 404)
            }
            return nil
        }
        return S3Object(key: key, size: answer.headers.first(name: "content-length").flatMap { Int64($0) } ?? 0,
                        etag: answer.headers.first(name: "etag"))
    }

    /// A small object whole (a sidecar); nil when it does not exist.
    public func get(bucket: String, key: String, maxBytes: Int) async throws -> ByteBuffer? {
        let answer = try await send(.GET, bucket: bucket, key: key, accept: [404], maxBody: maxBytes)
        if answer.status == 404 {
            // A missing bucket is not a missing sidecar.
            let error = S3Error.from(status: 404, body: String(buffer: answer.body), method: "GET", bucket: bucket, key: key)
            if error.code == .noSuchBucket { throw error }
            return nil
        }
        return answer.body
    }

    public func put(bucket: String, key: String, body: ByteBuffer, contentType: String = "application/octet-stream") async throws {
        _ = try await send(.PUT, bucket: bucket, key: key, headers: [("content-type", contentType)], body: body)
    }

    public func delete(bucket: String, key: String) async throws {
        _ = try await send(.DELETE, bucket: bucket, key: key, accept: [404])
    }

    /// Parts of a multipart upload: 16 MiB (S3's minimum is 5 MiB; 10,000 parts reach 156 GiB).
    public static let partSize = 16 << 20

    /// Uploads a local file: one PUT when small, a multipart upload (aborted on failure) when
    /// larger than one part. Memory holds one part at a time.
    public func upload(file path: String, bucket: String, key: String, partSize: Int = S3Client.partSize) async throws {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw FileSystemError(path: path, operation: "open for upload", errno: errno)
        }
        defer { try? handle.close() }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0
        if size <= partSize {
            let data = try handle.readToEnd() ?? Data()
            try await put(bucket: bucket, key: key, body: ByteBuffer(bytes: data))
            return
        }
        let created = try await send(.POST, bucket: bucket, key: key, query: [("uploads", "")])
        guard let uploadID = XMLText.first("UploadId", in: String(buffer: created.body)) else {
            throw S3Error(.failed, "the store started no multipart upload (no UploadId)", bucket: bucket, key: key)
        }
        do {
            var parts: [(Int, String)] = []
            var number = 1
            while let data = try handle.read(upToCount: partSize), !data.isEmpty {
                let answer = try await send(.PUT, bucket: bucket, key: key, query: [("partNumber", "\(number)"), ("uploadId", uploadID)],
                                            body: ByteBuffer(bytes: data))
                guard let etag = answer.headers.first(name: "etag") else {
                    throw S3Error(.failed, "the store gave no ETag for part \(number)", bucket: bucket, key: key)
                }
                parts.append((number, etag))
                number += 1
            }
            let xml = "<CompleteMultipartUpload>" + parts.map { "<Part><PartNumber>\($0.0)</PartNumber><ETag>\(XMLText.escape($0.1))</ETag></Part>" }.joined()
                + "</CompleteMultipartUpload>"
            let done = try await send(.POST, bucket: bucket, key: key, query: [("uploadId", uploadID)], body: ByteBuffer(string: xml))
            // CompleteMultipartUpload can fail with 200 and an <Error> body.
            let text = String(buffer: done.body)
            if text.contains("<Error>") {
                throw S3Error.from(status: 500, body: text, method: "POST", bucket: bucket, key: key)
            }
        } catch {
            _ = try? await send(.DELETE, bucket: bucket, key: key, query: [("uploadId", uploadID)], accept: [404])
            throw error
        }
    }
}
