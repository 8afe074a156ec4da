import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Prometheus
import ServiceLifecycle

/// The daemon's HTTP listener (`http.listen`, loopback only): `/metrics`, the read-only web view
/// and `/api/v1/`. Nothing that changes state is reachable here.
public final class HTTPService: Service {
    let address: MetricsAddress
    let routes: WebRoutes
    let limits: HTTPLimits
    let logger: Logger
    /// Signalled once the listener is bound.
    public let listening = ReadySignal()
    /// What the listener waits for: with a shared ledger, this host's registration under its
    /// name (a daemon whose name a live host holds would answer, and be scraped, as that host).
    let startAfter: ReadySignal

    init(address: MetricsAddress, routes: WebRoutes, limits: HTTPLimits = HTTPLimits(), startAfter: ReadySignal = .signalled, logger: Logger) {
        self.address = address
        self.routes = routes
        self.limits = limits
        self.startAfter = startAfter
        self.logger = logger
    }

    public func run() async throws {
        guard await startAfter.waitForStart() else { return }
        let routes = self.routes
        let server: Channel
        do {
            server = try await HTTPListener(address: address, limits: limits, logger: logger, router: { await routes.respond($0) }).bind()
        } catch {
            throw ListenFailure(address: address, reason: (error as? IOError).map { String(cString: strerror($0.errnoCode)) } ?? "\(error)")
        }
        logger.info("http listening", metadata: ["listen": "\(address.host):\(address.port)", "paths": "/ /runs/RUN /api/v1/ /metrics"])
        listening.signal()
        try? await gracefulShutdown()
        try await server.close()
    }

    /// The listener could not bind its address (taken, or not this machine's).
    public struct ListenFailure: LifeboatError {
        var address: MetricsAddress
        var reason: String
        public var exitCode: CLIExit { .failed }
        public var description: String {
            "cannot serve HTTP on \(address.host.contains(":") ? "[\(address.host)]" : address.host):\(address.port): \(reason); free that port or choose another address (http.listen)"
        }
    }
}

/// Maps paths to answers. Every JSON answer comes from ``RunQueries`` and is encoded like the
/// control socket's results, so `/api/v1/runs/RUN` is what `lifeboat show RUN --json` prints.
struct WebRoutes: Sendable {
    let queries: RunQueries
    let registry: PrometheusCollectorRegistry

    func respond(_ request: HTTPRequest) async -> HTTPResponse {
        let parts = request.path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        do {
            switch parts.first {
            case nil:
                return page()
            case "runs" where parts.count == 2 && Identifier.isValid(parts[1]):
                return page()
            case "static" where parts.count == 2:
                switch parts[1] {
                case "app.js": return HTTPResponse(contentType: "text/javascript; charset=utf-8", body: Array(WebAssets.script.utf8))
                case "app.css": return HTTPResponse(contentType: "text/css; charset=utf-8", body: Array(WebAssets.css.utf8))
                default: break
                }
            case "metrics" where parts.count == 1:
                return HTTPResponse(contentType: "text/plain; version=0.0.4; charset=utf-8", body: registry.emitToBuffer() + scrapedMetrics())
            case "api" where parts.count >= 2 && parts[1] == "v1":
                return try await api(Array(parts.dropFirst(2)), request)
            default: break
            }
            return notFound(request)
        } catch let error as ControlError {
            return json(error.code == .notFound ? .notFound : error.code == .unavailable ? .serviceUnavailable : .badRequest, ErrorBody(error: error))
        } catch {
            return json(.internalServerError, ErrorBody(error: ControlError(.internalError, "\(error)")))
        }
    }

    private func api(_ parts: [String], _ request: HTTPRequest) async throws -> HTTPResponse {
        switch parts.count {
        case 0:
            return json(.ok, Index())
        case 1 where parts[0] == "status":
            return json(.ok, try await queries.status())
        case 1 where parts[0] == "runs":
            return json(.ok, try await queries.runs(limit: try int(request, "limit", minimum: 1) ?? 50))
        case 2 where parts[0] == "runs":
            return json(.ok, try await queries.detail(try runId(parts[1])))
        case 3 where parts[0] == "runs":
            let run = try runId(parts[1])
            switch parts[2] {
            case "overview": return json(.ok, try await queries.overview(run))
            case "sites": return json(.ok, try await queries.sites(run))
            case "jobs":
                var state: JobState?
                if let text = request.query["state"], !text.isEmpty {
                    guard let s = JobState(rawValue: text) else {
                        throw ControlError(.invalidParams, "state must be one of \(JobState.allCases.map(\.rawValue).joined(separator: ", ")), found \"\(text.prefix(40))\"")
                    }
                    state = s
                }
                return json(.ok, try await queries.jobs(run, offset: try int(request, "offset") ?? 0, limit: try int(request, "limit", minimum: 1) ?? 50, state: state))
            case "events":
                return json(.ok, try await queries.events(run, after: Int64(try int(request, "after") ?? 0), limit: try int(request, "limit", minimum: 1) ?? 200))
            case "timeline.svg":
                // Opened on its own, an SVG is a document: no script, nothing fetched.
                return HTTPResponse(contentType: "image/svg+xml; charset=utf-8", body: Array(try await queries.timelineSVG(run).utf8),
                                    headers: [("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'")])
            default: break
            }
        default: break
        }
        return json(.notFound, ErrorBody(error: ControlError(.notFound, "no such API path \(request.path.prefix(200)); see /api/v1/ for the paths")))
    }

    /// What the event-fed registry has no notion of, read at scrape time from memory (never
    /// from the ledger, so that a scrape answers while it does not): `lifeboat_run_halted{run,plan} 1`
    /// per run halted at a wave gate, and `lifeboat_ledger_up` (`{host}` with a shared ledger).
    private func scrapedMetrics() -> [UInt8] {
        let services = queries.services
        var text = "# HELP lifeboat_run_halted 1 while the run is halted at a wave gate, awaiting resume or cancel\n# TYPE lifeboat_run_halted gauge\n"
        for active in services.runs.activeRuns where active.halted {
            text += "lifeboat_run_halted{run=\"\(active.id)\",plan=\"\(Self.labelEscape(active.plan))\"} 1\n"
        }
        // The embedded SQLite ledger always answers (a failing disk fails the jobs instead).
        text += "# HELP lifeboat_ledger_up 1 while the ledger answers this host, 0 while it does not\n# TYPE lifeboat_ledger_up gauge\n"
        if let shared = services.ledger as? any SharedLedger {
            text += "lifeboat_ledger_up{host=\"\(Self.labelEscape(services.identity.host))\"} \(shared.problem == nil ? 1 : 0)\n"
        } else {
            text += "lifeboat_ledger_up 1\n"
        }
        return Array(text.utf8)
    }

    /// Prometheus label values escape backslash, quote and newline.
    static func labelEscape(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    private func runId(_ text: String) throws -> String {
        guard Identifier.isValid(text) else { throw ControlError(.invalidParams, "\"\(text.prefix(64))\" is not a run id; see /api/v1/runs") }
        return text
    }

    /// A whole-number query parameter; nil when absent. A limit above its maximum is served as
    /// the maximum (the answer says the limit it used).
    private func int(_ request: HTTPRequest, _ name: String, minimum: Int = 0) throws -> Int? {
        guard let text = request.query[name], !text.isEmpty else { return nil }
        guard let value = Int(text), value >= minimum else {
            throw ControlError(.invalidParams, "\(name) must be a whole number ≥ \(minimum), found \"\(text.prefix(40))\"")
        }
        return value
    }

    private func page() -> HTTPResponse {
        HTTPResponse(contentType: "text/html; charset=utf-8", body: Array(WebAssets.page.utf8),
                     headers: [("Content-Security-Policy", WebAssets.contentSecurityPolicy)])
    }

    private func notFound(_ request: HTTPRequest) -> HTTPResponse {
        .text(.notFound, "nothing at \(request.path.prefix(200)); the web view is at /, the API at /api/v1/, metrics at /metrics")
    }

    struct ErrorBody: Encodable { var error: ControlError }

    /// `/api/v1/`: what there is.
    struct Index: Encodable {
        var version = "v1"
        var openapi = "docs/openapi.yaml in the Lifeboat repository"
        var paths = ["/api/v1/status", "/api/v1/runs?limit=", "/api/v1/runs/{run}", "/api/v1/runs/{run}/overview",
                     "/api/v1/runs/{run}/jobs?offset=&limit=&state=", "/api/v1/runs/{run}/events?after=&limit=",
                     "/api/v1/runs/{run}/sites", "/api/v1/runs/{run}/timeline.svg"]
    }

    private func json<T: Encodable>(_ status: HTTPResponseStatus, _ value: T) -> HTTPResponse {
        var body = (try? ControlResponse.encode(value, wrappedAt: []) { $0 }) ?? Data(#"{"error":{"code":"internal","message":"the result could not be encoded"}}"#.utf8)
        body.append(UInt8(ascii: "\n"))
        return HTTPResponse(status: status, contentType: "application/json", body: Array(body))
    }
}
