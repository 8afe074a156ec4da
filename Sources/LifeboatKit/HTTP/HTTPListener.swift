import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// One parsed request, as the router sees it: read-only methods only (the listener answers
/// anything else 405 before routing).
public struct HTTPRequest: Sendable {
    public var method: HTTPMethod
    /// The percent-decoded path, without the query.
    public var path: String
    public var query: [String: String]

    public init(method: HTTPMethod, uri: String) {
        self.method = method
        var uri = Substring(uri)
        // An absolute-form target (`http://127.0.0.1:9464/api/v1/status`, as proxies send):
        // routed by its path.
        for scheme in ["http://", "https://"] where uri.lowercased().hasPrefix(scheme) {
            let authority = uri.dropFirst(scheme.count)
            uri = authority.firstIndex(where: { $0 == "/" || $0 == "?" }).map { authority[$0...] } ?? "/"
            if uri.hasPrefix("?") { uri = "/" + uri }
        }
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        path = String(parts.first ?? "/").removingPercentEncoding ?? String(parts.first ?? "/")
        var query: [String: String] = [:]
        if parts.count > 1 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = String(kv[0]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(kv[0])
                let value = kv.count > 1 ? (String(kv[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(kv[1])) : ""
                query[key] = value
            }
        }
        self.query = query
    }
}

/// What the router answers.
public struct HTTPResponse: Sendable {
    public var status: HTTPResponseStatus
    public var contentType: String
    public var body: [UInt8]
    public var headers: [(String, String)] = []

    public init(status: HTTPResponseStatus = .ok, contentType: String, body: [UInt8], headers: [(String, String)] = []) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
    }

    public static func text(_ status: HTTPResponseStatus, _ text: String) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "text/plain; charset=utf-8", body: Array((text + "\n").utf8))
    }
}

/// Bounds that keep a loopback listener from being a way to disturb the daemon.
public struct HTTPLimits: Sendable {
    /// Bytes a connection may send in all (one GET needs a few hundred; there are no bodies).
    public var maxRequestBytes = 16 * 1_024
    /// Connections open at once; more are answered 503 and closed.
    public var maxConnections = 64
    /// A connection that sends nothing for this long is closed, and so is one that reads nothing
    /// of its answer for this long.
    public var idleTimeout: TimeAmount = .seconds(10)
    /// A request must have arrived whole this long after the connection opened; else it is
    /// answered 408 and closed (a client trickling bytes holds no slot).
    public var requestTimeout: TimeAmount = .seconds(10)

    public init() {}
}

/// A small HTTP/1.1 listener on a loopback address: GET and HEAD only (others 405), one request
/// per connection (`Connection: close`, so no pipelining state), bounded request size and
/// connection count, malformed requests answered 400 by NIO's protocol error handler. Routing is
/// the caller's: an async function from request to response.
public struct HTTPListener: Sendable {
    public typealias Router = @Sendable (HTTPRequest) async -> HTTPResponse

    let address: MetricsAddress
    let limits: HTTPLimits
    let router: Router
    let refusals: RefusalLog

    public init(address: MetricsAddress, limits: HTTPLimits = HTTPLimits(), logger: Logger, router: @escaping Router) {
        self.address = address
        self.limits = limits
        self.router = router
        refusals = RefusalLog(logger: logger)
    }

    /// Binds; the returned channel serves until closed.
    public func bind() async throws -> Channel {
        let limits = self.limits
        let router = self.router
        let refusals = self.refusals
        let open = ConnectionCount()
        return try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            // Room for a burst past `maxConnections` in the kernel's queue, so that those are
            // answered 503 at once instead of waiting out a dropped SYN's retransmission.
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // A client that shuts down its sending side after its request (`nc -N`) still reads
            // the answer; the connection closes once it is written.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                guard open.enter(limit: limits.maxConnections) else {
                    refusals.refused("busy", "over \(limits.maxConnections) connections open at once, so new ones are answered 503 until some close "
                                     + "(a local client holding connections open? each open web view uses one at a time)", level: .warning)
                    return channel.pipeline.addHandler(Busy())
                }
                channel.closeFuture.whenComplete { _ in open.leave() }
                // Idle events travel towards the tail: the size limit behind the idle handler closes.
                // (The initializer runs on the channel's event loop: the handlers are added there.)
                return channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(IdleStateHandler(readTimeout: limits.idleTimeout))
                    try pipeline.addHandler(RequestSizeLimit(maxBytes: limits.maxRequestBytes, refusals: refusals))
                    try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: true)
                    try pipeline.addHandler(HTTPRouterHandler(router: router, requestTimeout: limits.requestTimeout, maxRequestBytes: limits.maxRequestBytes,
                                                              refusals: refusals))
                }
            }
            .bind(host: address.host, port: address.port).get()
    }
}

/// Says in the daemon's log what the listener refuses, at most once a minute for each kind (a
/// flood of bad requests does not flood the log), with how many went unsaid in between.
final class RefusalLog: Sendable {
    private let logger: Logger
    private let told = Mutex<[String: (at: ContinuousClock.Instant, unsaid: Int)]>([:])

    init(logger: Logger) { self.logger = logger }

    func refused(_ kind: String, _ why: @autoclosure () -> String, level: Logger.Level = .notice) {
        let now = ContinuousClock.now
        let unsaid = told.withLock { told -> Int? in
            if let last = told[kind], now - last.at < .seconds(60) {
                told[kind]?.unsaid += 1
                return nil
            }
            defer { told[kind] = (now, 0) }
            return told[kind]?.unsaid ?? 0
        }
        guard let unsaid else { return }
        logger.log(level: level, "http request refused: \(why())",
                   metadata: ["refusal": "\(kind)", "unsaid_since_last_told": "\(unsaid)"])
    }
}

/// Open connections, shared by every child channel of one listener.
final class ConnectionCount: Sendable {
    private let count = Atomic<Int>(0)

    func enter(limit: Int) -> Bool {
        let now = count.add(1, ordering: .relaxed).newValue
        if now > limit {
            count.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func leave() { count.subtract(1, ordering: .relaxed) }
}

/// Answers a connection over the limit 503 as soon as it is active, and closes it.
final class Busy: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelActive(context: ChannelHandlerContext) {
        let body = "too many connections; try again soon\n"
        let text = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\nRetry-After: 1\r\n\r\n" + body
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: text))).whenComplete { _ in bound.value.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

/// Counts the bytes a connection sends; past the limit it answers 413 and closes, before any
/// parsing happens, so a huge header or body costs the daemon nothing.
final class RequestSizeLimit: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let maxBytes: Int
    private let refusals: RefusalLog
    private var seen = 0
    private var refused = false

    init(maxBytes: Int, refusals: RefusalLog) {
        self.maxBytes = maxBytes
        self.refusals = refusals
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        let buffer = unwrapInboundIn(data)
        seen += buffer.readableBytes
        guard seen <= maxBytes else {
            refused = true
            refusals.refused("too-large", "a request over \(maxBytes) bytes was answered 413")
            let body = "request over \(maxBytes) bytes; only small GET requests are served\n"
            let text = "HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: text))).whenComplete { _ in bound.value.close(promise: nil) }
            return
        }
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil); return }
        context.fireUserInboundEventTriggered(event)
    }
}

/// Turns one request into one routed response, then closes the connection.
final class HTTPRouterHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let router: HTTPListener.Router
    private let requestTimeout: TimeAmount
    /// What `RequestSizeLimit` lets through: a request that declares a larger body is answered at once.
    private let maxRequestBytes: Int
    private let refusals: RefusalLog
    private var head: HTTPRequestHead?
    private var answered = false
    private var deadline: Scheduled<Void>?

    init(router: @escaping HTTPListener.Router, requestTimeout: TimeAmount, maxRequestBytes: Int, refusals: RefusalLog) {
        self.router = router
        self.requestTimeout = requestTimeout
        self.maxRequestBytes = maxRequestBytes
        self.refusals = refusals
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: requestTimeout) {
            let (handler, context) = bound.value
            guard !handler.answered else { return }
            handler.answered = true
            handler.refusals.refused("timeout", "a request that did not arrive whole within \(handler.requestTimeout.nanoseconds / 1_000_000_000) s was answered 408")
            handler.write(.text(.requestTimeout, "the request did not arrive whole within the time allowed"),
                          for: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/"), context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) { deadline?.cancel() }

    /// A request NIO could not parse was answered 400 with `Connection: close` by its protocol
    /// error handler, before this: that was the answer, so the connection closes now (neither a
    /// second 400 for the bytes after it, nor the deadline's 408, nor a slot held for 10 s).
    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if !answered { refusals.refused("malformed", "a request that is not HTTP/1.1 was answered 400 (\(error))") }
        answered = true
        deadline?.cancel()
        context.close(promise: nil)
    }

    /// The client has sent all it will (half-closed, or gone): without a whole request there is
    /// nothing to answer, so the connection closes now rather than holding its slot; with one,
    /// it closes once the answer is written.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed, !answered {
            answered = true
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard !answered else { return }
            // A body declared larger than any request served would only be waited for, to be
            // refused at its end or at the deadline (408): refused now.
            if let declared = head.headers["Content-Length"].first, (Int(declared) ?? Int.max) > maxRequestBytes {
                answered = true
                deadline?.cancel()
                refusals.refused("too-large", "a request declaring a body of \(String(reflecting: String(declared.prefix(40)))) bytes was answered 413")
                write(.text(.payloadTooLarge, "request over \(maxRequestBytes) bytes; only small GET requests are served"), for: head, context: context)
                return
            }
            self.head = head
        case .body: break
        case .end:
            guard let head, !answered else { return }
            answered = true
            deadline?.cancel()
            self.head = nil
            guard head.method == .GET || head.method == .HEAD else {
                refusals.refused("method", "a \(String(reflecting: String(head.method.rawValue.prefix(20)))) request was answered 405: this listener is read-only")
                var response = HTTPResponse.text(.methodNotAllowed, "only GET and HEAD: this listener is read-only; use the lifeboat CLI to change things")
                response.headers.append(("Allow", "GET, HEAD"))
                write(response, for: head, context: context)
                return
            }
            if let refusal = Self.hostRefusal(head) ?? Self.pathRefusal(head.uri) {
                refusals.refused("\(refusal.status.code)", "a request for \(String(reflecting: String(head.uri.prefix(100)))) with Host "
                                 + "\(String(reflecting: String((head.headers["Host"].first ?? "none").prefix(100)))) was answered \(refusal.status.code): "
                                 + String(decoding: refusal.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
                write(refusal, for: head, context: context)
                return
            }
            let router = self.router
            let request = HTTPRequest(method: head.method, uri: head.uri)
            let promise = context.eventLoop.makePromise(of: HTTPResponse.self)
            promise.completeWithTask { await router(request) }
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            promise.futureResult.whenSuccess { response in
                let (handler, context) = bound.value
                handler.write(response, for: head, context: context)
            }
        }
    }

    /// The listener is on loopback and has no authentication of its own, so only requests for a
    /// loopback name are answered: a web page that points its own host name at 127.0.0.1 (DNS
    /// rebinding) gets 421, not the API. HTTP/1.1 requires a Host. An absolute-form target
    /// names its host itself (RFC 9112 §3.2.2: it takes the place of Host): a loopback one too.
    static func hostRefusal(_ head: HTTPRequestHead) -> HTTPResponse? {
        let uri = head.uri.lowercased()
        for scheme in ["http://", "https://"] where uri.hasPrefix(scheme) {
            var authority = uri.dropFirst(scheme.count).prefix { $0 != "/" && $0 != "?" && $0 != "#" }
            if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
            guard isLoopback(String(authority)) else {
                return .text(.misdirectedRequest, "this listener answers requests for localhost, 127.0.0.1 or [::1] only, and the request's target names another host")
            }
        }
        let hosts = head.headers["Host"]
        guard let host = hosts.first else {
            return (head.version.major, head.version.minor) >= (1, 1) ? .text(.badRequest, "an HTTP/1.1 request needs a Host header") : nil
        }
        guard hosts.count == 1, isLoopback(host) else {
            return .text(.misdirectedRequest, "this listener answers requests for localhost, 127.0.0.1 or [::1] only; a reverse proxy in front must send one of those as Host")
        }
        return nil
    }

    /// A path's parts are separated by plain `/`: an encoded one (`/api%2fv1`) would be a
    /// separator here and data to a proxy in front whose rules match the raw path, and an encoded
    /// NUL is no part of any name. Both are refused, as RFC 3986 lets a server do.
    static func pathRefusal(_ uri: String) -> HTTPResponse? {
        let path = uri.prefix { $0 != "?" && $0 != "#" }.lowercased()
        guard path.contains("%2f") || path.contains("%00") else { return nil }
        return .text(.badRequest, "an encoded / (%2F) or NUL (%00) in the path is refused; separate a path's parts with a plain /")
    }

    /// `localhost`, an IPv4 address in 127.0.0.0/8 or `[::1]`, with or without a port.
    static func isLoopback(_ host: String) -> Bool {
        var name = Substring(host.lowercased())
        func isDigits(_ text: Substring) -> Bool { !text.isEmpty && text.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") } }
        func isPort(_ text: Substring) -> Bool { isDigits(text) && UInt16(text) != nil }
        if name.hasPrefix("[") {
            guard let close = name.firstIndex(of: "]") else { return false }
            let rest = name[name.index(after: close)...]
            guard rest.isEmpty || (rest.hasPrefix(":") && isPort(rest.dropFirst())) else { return false }
            var address = in6_addr()
            guard inet_pton(AF_INET6, String(name[name.index(after: name.startIndex)..<close]), &address) == 1 else { return false }
            var loopback = in6addr_loopback
            return withUnsafeBytes(of: &address) { a in withUnsafeBytes(of: &loopback) { a.elementsEqual($0) } }
        }
        if let colon = name.lastIndex(of: ":") {
            guard isPort(name[name.index(after: colon)...]) else { return false }
            name = name[..<colon]
        }
        if name.hasSuffix(".") { name = name.dropLast() }  // `localhost.`, fully qualified
        if name == "localhost" { return true }
        let octets = name.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { isDigits($0) && UInt8($0) != nil }
    }

    private func write(_ response: HTTPResponse, for head: HTTPRequestHead, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: "\(response.body.count)")
        headers.add(name: "Connection", value: "close")
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "X-Content-Type-Options", value: "nosniff")
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers))), promise: nil)
        if head.method != .HEAD { context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: response.body)))), promise: nil) }
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in bound.value.close(promise: nil) }
    }
}
