import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Streams one object into the archive pipeline (blocking reads on the blocking pool), with
/// back-pressure and resume:
///
/// - The response body is taken only as fast as the pipeline reads it: past `highWater`
///   buffered bytes the delegate's future stays pending, so async-http-client stops reading the
///   socket and TCP holds the sender. Memory stays bounded whatever the object's size.
/// - A dropped connection, a stall longer than the timeout, a 5xx or throttling answer is retried
///   with backoff and jitter as a `Range: bytes=<next byte>-` request with `If-Match` on the
///   first answer's ETag: the bytes already handed on are never fetched or read again, so the
///   hash and the inflate state simply carry on. A changed object fails (`S3Error.changed`).
/// - A store that trickles (under `minimumRate` over a timeout's worth of waiting for it) is cut
///   off and resumed likewise: one that never stalls outright would otherwise hold a job forever.
/// - Attempts count failures in a row: a request that made progress (a timeout's worth of bytes
///   at the minimum rate) resets the count.
final class S3ObjectReader: ArchiveReading, @unchecked Sendable {
    let client: S3Client
    let bucket: String
    let key: String
    private let cancellation: CancellationFlag?
    private let highWater: Int
    private let lowWater: Int

    // Guarded by `condition`.
    private let condition = NSCondition()
    private var chunks: [ByteBuffer] = []
    private var chunkIndex = 0
    private var buffered = 0
    private var generation = 0
    private var finished = false
    private var failure: Error?
    private var pending: EventLoopPromise<Void>?
    private var lastProgress = Date()
    private var task: HTTPClient.Task<Void>?
    private var headSeen = false

    // Written by the reading thread; `etag` and `totalSize` by the first answer, under the lock.
    /// Bytes handed to the pipeline: where a resumed request starts.
    private(set) var offset: Int64 = 0
    private var etag: String?
    private var totalSize: Int64?
    private var failuresInARow = 0
    /// In the current window (a timeout's worth of waiting, from the request's start): seconds
    /// the pipeline waited for data, and bytes handed on (the rate the store gives while it is
    /// the one holding things up).
    private var waited: TimeInterval = 0
    private var received: Int64 = 0

    /// Bytes per second of waiting below which a store counts as trickling.
    static let minimumRate: Double = 16 * 1024
    /// Requests made (the first plus every resume), for tests and logs.
    private(set) var requests = 0

    /// `etag`: the object's as a HEAD saw it; every request is then conditional on it.
    init(client: S3Client, bucket: String, key: String, etag: String? = nil, cancellation: CancellationFlag?, highWater: Int = 4 << 20) {
        self.client = client
        self.bucket = bucket
        self.key = key
        self.etag = etag
        self.cancellation = cancellation
        self.highWater = highWater
        self.lowWater = highWater / 4
    }

    deinit {
        condition.lock()
        let task = self.task
        let promise = pending
        pending = nil
        generation += 1
        condition.unlock()
        task?.cancel()
        promise?.succeed(())
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if requests == 0 { startRequest() }
        while true {
            if cancellation?.isCancelled == true || Task.isCancelled {
                abandon()
                throw CancellationError()
            }
            condition.lock()
            if chunkIndex < chunks.count {
                var chunk = chunks[chunkIndex]
                let n = min(buffer.count, chunk.readableBytes)
                chunk.withUnsafeReadableBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[..<n])) }
                chunk.moveReaderIndex(forwardBy: n)
                if chunk.readableBytes == 0 {
                    chunks[chunkIndex] = ByteBuffer()
                    chunkIndex += 1
                    if chunkIndex == chunks.count || chunkIndex > 64 {
                        chunks.removeFirst(chunkIndex)
                        chunkIndex = 0
                    }
                } else {
                    chunks[chunkIndex] = chunk
                }
                buffered -= n
                // The stall clock measures the store, not the pipeline: it starts when we wait.
                lastProgress = Date()
                var release: EventLoopPromise<Void>?
                if buffered <= lowWater { release = pending; pending = nil }
                condition.unlock()
                release?.succeed(())
                offset += Int64(n)
                received += Int64(n)
                if Double(received) >= Self.minimumRate * client.endpoint.timeout { failuresInARow = 0 }
                return n
            }
            if let error = failure {
                condition.unlock()
                try retry(after: error)
                continue
            }
            if finished {
                let totalSize = self.totalSize
                condition.unlock()
                if let totalSize, offset < totalSize {
                    // The body ended early: the connection was closed mid-object.
                    try retry(after: S3Error(.unavailable, "the connection closed after \(offset) of \(totalSize) bytes",
                                             bucket: bucket, key: key, isTransient: true))
                    continue
                }
                return 0
            }
            let deadline = lastProgress.addingTimeInterval(client.endpoint.timeout)
            if Date() >= deadline {
                condition.unlock()
                abandon()
                try retry(after: S3Error(.unavailable, "no data for \(client.endpoint.timeout) s while reading", bucket: bucket, key: key, isTransient: true))
                continue
            }
            if waited >= client.endpoint.timeout {
                guard Double(received) >= Self.minimumRate * waited else {
                    condition.unlock()
                    abandon()
                    try retry(after: S3Error(.unavailable, "the store sent \(received) bytes in \(DurationSpec.format(seconds: waited)) of waiting for it, "
                                             + "under the \(Int(Self.minimumRate) >> 10) KiB/s a restore needs at least", bucket: bucket, key: key, isTransient: true))
                    continue
                }
                (waited, received) = (0, 0)
            }
            let started = Date()
            _ = condition.wait(until: min(deadline, started.addingTimeInterval(0.2)))
            condition.unlock()
            waited += Date().timeIntervalSince(started)
        }
    }

    /// Another attempt from `offset`, after a backoff, or the error when it is final.
    private func retry(after error: Error) throws {
        let s3Error: S3Error
        switch error {
        case let e as S3Error: s3Error = e
        default: s3Error = S3Client.connectionFailure(error, method: "GET", bucket: bucket, key: key, endpoint: client.endpoint)
        }
        failuresInARow += 1
        guard s3Error.isTransient, failuresInARow < client.endpoint.attempts else {
            abandon()
            throw ArchiveError(.io, "cannot read the archive from the store: \(s3Error.description)", archive: client.url(bucket: bucket, key: key),
                               isTransient: s3Error.isTransient)
        }
        let pause = S3Client.backoff(attempt: failuresInARow)
        var slept: UInt64 = 0
        while slept < pause {
            if cancellation?.isCancelled == true || Task.isCancelled { throw CancellationError() }
            let step = min(pause - slept, 50_000_000)
            usleep(UInt32(step / 1000))
            slept += step
        }
        startRequest()
    }

    /// Cancels the request in flight and forgets its callbacks.
    private func abandon() {
        condition.lock()
        generation += 1
        let task = self.task
        self.task = nil
        let promise = pending
        pending = nil
        condition.unlock()
        task?.cancel()
        promise?.succeed(())
    }

    /// Starts a GET from `offset` (a ranged, conditional one when resuming).
    private func startRequest() {
        abandon()
        requests += 1
        (waited, received) = (0, 0)
        var headers: [(name: String, value: String)] = []
        if offset > 0 { headers.append(("range", "bytes=\(offset)-")) }
        condition.lock()
        let etag = self.etag
        condition.unlock()
        if let etag { headers.append(("if-match", etag)) }
        let prepared = client.prepare(method: "GET", bucket: bucket, key: key, headers: headers)
        condition.lock()
        chunks.removeAll()
        chunkIndex = 0
        buffered = 0
        finished = false
        failure = nil
        headSeen = false
        lastProgress = Date()
        let generation = self.generation
        condition.unlock()
        do {
            let request = try HTTPClient.Request(url: prepared.url, method: .GET, headers: prepared.headers)
            let delegate = Delegate(reader: self, generation: generation, expectedStart: offset)
            let task = S3Client.http.execute(request: request, delegate: delegate)
            condition.lock()
            if self.generation == generation { self.task = task } else { task.cancel() }
            condition.unlock()
        } catch {
            deliver(generation) { $0.failure = error }
        }
    }

    /// Runs `change` under the lock if `generation` is still current, and wakes the reader.
    fileprivate func deliver(_ generation: Int, _ change: (S3ObjectReader) -> Void) {
        condition.lock()
        if generation == self.generation {
            change(self)
            lastProgress = Date()
            condition.broadcast()
        }
        condition.unlock()
    }

    /// The first answer of a request: checks that a resume got the range it asked for.
    fileprivate func head(_ generation: Int, status: Int, headers: HTTPHeaders, expectedStart: Int64) -> S3Error? {
        guard status == 200 || status == 206 else { return nil }
        condition.lock()
        defer { condition.unlock() }
        guard generation == self.generation else { return nil }
        let etag = headers.first(name: "etag")
        // A store that ignored If-Match still names what it sent.
        if let known = self.etag, let etag, known != etag {
            return S3Error(.changed, "the object changed while it was read (ETag \(known), now \(etag))", bucket: bucket, key: key, status: status)
        }
        if expectedStart > 0 {
            guard status == 206, let range = headers.first(name: "content-range"),
                  let start = Self.rangeStart(range), start == expectedStart else {
                return S3Error(.failed, "the store ignored the Range request resuming at byte \(expectedStart) (HTTP \(status))", bucket: bucket, key: key)
            }
        } else {
            self.etag = etag
            if status == 206, let range = headers.first(name: "content-range"), let total = Self.rangeTotal(range) {
                totalSize = total
            } else {
                totalSize = headers.first(name: "content-length").flatMap { Int64($0) }
            }
        }
        return nil
    }

    /// Appends body bytes; the returned future completes once the reader has drained the
    /// buffer below the low-water mark (back-pressure).
    fileprivate func push(_ generation: Int, _ buffer: ByteBuffer, on eventLoop: EventLoop) -> EventLoopFuture<Void> {
        condition.lock()
        defer { condition.unlock() }
        guard generation == self.generation else { return eventLoop.makeSucceededVoidFuture() }
        chunks.append(buffer)
        buffered += buffer.readableBytes
        lastProgress = Date()
        condition.broadcast()
        guard buffered >= highWater else { return eventLoop.makeSucceededVoidFuture() }
        let promise = eventLoop.makePromise(of: Void.self)
        pending = promise
        return promise.futureResult
    }

    static func rangeStart(_ contentRange: String) -> Int64? {
        // bytes 100-199/200
        guard let space = contentRange.firstIndex(of: " "), let dash = contentRange.firstIndex(of: "-") else { return nil }
        return Int64(contentRange[contentRange.index(after: space)..<dash])
    }

    static func rangeTotal(_ contentRange: String) -> Int64? {
        guard let slash = contentRange.lastIndex(of: "/") else { return nil }
        return Int64(contentRange[contentRange.index(after: slash)...])
    }

    /// async-http-client's side: one per request, tagged with the generation it belongs to so the
    /// callbacks of an abandoned request change nothing.
    private final class Delegate: HTTPClientResponseDelegate, @unchecked Sendable {
        typealias Response = Void
        // Event-loop confined.
        private weak var reader: S3ObjectReader?
        private let generation: Int
        private let expectedStart: Int64
        private var errorStatus: Int?
        private var errorBody = ByteBuffer()
        private var failed = false

        init(reader: S3ObjectReader, generation: Int, expectedStart: Int64) {
            self.reader = reader
            self.generation = generation
            self.expectedStart = expectedStart
        }

        func didReceiveHead(task: HTTPClient.Task<Void>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
            guard let reader else { return task.eventLoop.makeSucceededVoidFuture() }
            let status = Int(head.status.code)
            if status != 200 && status != 206 {
                errorStatus = status
            } else if let problem = reader.head(generation, status: status, headers: head.headers, expectedStart: expectedStart) {
                failed = true
                reader.deliver(generation) { $0.failure = problem }
                task.cancel()
            }
            return task.eventLoop.makeSucceededVoidFuture()
        }

        func didReceiveBodyPart(task: HTTPClient.Task<Void>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
            guard let reader, !failed else { return task.eventLoop.makeSucceededVoidFuture() }
            if errorStatus != nil {
                if errorBody.readableBytes < 64 << 10 {
                    var copy = buffer
                    errorBody.writeBuffer(&copy)
                }
                return task.eventLoop.makeSucceededVoidFuture()
            }
            return reader.push(generation, buffer, on: task.eventLoop)
        }

        func didFinishRequest(task: HTTPClient.Task<Void>) throws {
            guard let reader, !failed else { return }
            if let status = errorStatus {
                let error = S3Error.from(status: status, body: String(buffer: errorBody), method: "GET", bucket: reader.bucket, key: reader.key,
                                         endpoint: reader.client.endpoint.display)
                reader.deliver(generation) { $0.failure = error }
            } else {
                reader.deliver(generation) { $0.finished = true }
            }
        }

        func didReceiveError(task: HTTPClient.Task<Void>, _ error: Error) {
            guard let reader, !failed else { return }
            failed = true
            reader.deliver(generation) { $0.failure = error }
        }
    }
}

extension S3Client {
    func url(bucket: String, key: String) -> String { "s3://\(bucket)/\(key)" }
}
