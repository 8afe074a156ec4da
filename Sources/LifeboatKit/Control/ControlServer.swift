import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Where the control socket listens: `socket: {path, mode, group}` in the daemon's config.
public struct ControlSocketConfig: Sendable {
    public var path: String
    /// Permission bits of the socket file (default 0660).
    public var mode: mode_t = 0o660
    /// Group owning the socket file, if set.
    public var group: String?
}

/// The control socket: a Unix stream socket speaking newline-delimited JSON. Many clients at
/// once; malformed, oversized or half-written requests get an error (or are dropped with their
/// client) and never disturb other clients.
public final class ControlServer: Service {
    private let socket: ControlSocketConfig
    private let handler: ControlHandler
    private let logger: Logger
    /// Waited for before binding (run recovery must finish first).
    private let startAfter: ReadySignal
    /// Signalled once the socket accepts connections.
    public let listening = ReadySignal()
    /// Open connections per user.
    let quota = ConnectionQuota(exempt: [0, geteuid()])
    /// Answers being made now (a run.watch's lasts as long as it follows its run).
    private let answering = Atomic<Int>(0)
    /// How long answers under way at a stop get to end by themselves before they are cut.
    static let answerGrace = Duration.seconds(2)

    public init(socket: ControlSocketConfig, handler: ControlHandler, startAfter: ReadySignal, logger: Logger) {
        self.socket = socket
        self.handler = handler
        self.startAfter = startAfter
        self.logger = logger
    }

    typealias Connection = NIOAsyncChannel<RequestLine, ByteBuffer>

    public func run() async throws {
        guard await startAfter.waitForStart() else { return }
        // A thread of the control socket's own: its connections are served there, and `status`
        // is answered there. Swift's shared pool has a thread per core, which a starting run
        // (its plan, a watcher's first snapshot of every job) keeps busy for a tenth of a second
        // at a time; the operator asking how things go should not wait behind it. Every other
        // command is answered on the shared pool, so a large answer never holds `status` up.
        let lane = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            try await listen(on: lane)
        } catch {
            try? await lane.shutdownGracefully()
            throw error
        }
        try? await lane.shutdownGracefully()
    }

    private func listen(on lane: MultiThreadedEventLoopGroup) async throws {
        let executor = EventLoopTaskExecutor(lane.next())
        let path = socket.path
        try SocketFile.prepare(path)
        if let risk = SocketFile.directoryRisk(path) {
            logger.warning("the control socket's directory lets other users replace the socket (and receive the commands meant for lifeboatd): \(risk); put socket.path in a directory only root or this user can write",
                           metadata: ["socket": "\(path)"])
        }
        let temporary = try SocketFile.temporaryName(for: path)
        let server = try await ServerBootstrap(group: lane)
            .serverChannelOption(.backlog, value: 512)
            // A client that shuts down its sending side after its requests (`nc -N`, `socat`)
            // still reads: its requests are answered before the connection closes.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .bind(unixDomainSocketPath: temporary) { channel in
                Self.peerCredentials(of: channel).flatMapThrowing { peer in
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RequestLineDecoder()))
                    return (try Connection(wrappingChannelSynchronously: channel), peer)
                }
            }
        do {
            try SocketFile.publish(temporary, as: path, mode: socket.mode, group: socket.group)
        } catch {
            // Nothing will listen: the bound channel is closed (its writer finished, as NIO
            // requires of every async channel) before the failure is told.
            try? await server.executeThenClose { _ in }
            throw error
        }
        let identity = FileIdentity(path: path)
        logger.info("control socket listening", metadata: ["socket": "\(path)", "mode": "\(String(socket.mode, radix: 8))"])
        listening.signal()
        defer {
            // Remove the socket file only if it is still ours.
            if let identity, FileIdentity(path: path) == identity { _ = unlink(path) }
        }
        try await withGracefulShutdownHandler {
            try await server.executeThenClose { inbound in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await (connection, peer) in inbound {
                        group.addTask(executorPreference: executor) { await self.serve(connection, peer: peer) }
                    }
                    // The listener closed (shutdown). The runs drained before it: a run.watch
                    // has its run's last events (recorded interrupted) to send, and ends by
                    // itself once it has; answers under way get a moment for that, then every
                    // connection ends.
                    let deadline = ContinuousClock.now + Self.answerGrace
                    while answering.load(ordering: .relaxed) > 0, ContinuousClock.now < deadline {
                        try? await Task.sleep(for: .milliseconds(10))
                    }
                    group.cancelAll()
                }
            }
        } onGracefulShutdown: {
            server.channel.close(promise: nil)
        }
    }

    private func serve(_ connection: Connection, peer: PeerCredentials) async {
        switch quota.enter(peer.uid) {
        case .accepted:
            break
        case .refused(let first):
            // Answered and closed at once: a user's idle connections must not use up the
            // daemon's descriptors (its jobs open archives with them) or lock operators out.
            if first {
                logger.warning("control connections refused: too many open; told once until one is accepted again",
                               metadata: ["uid": "\(peer.uid)", "pid": "\(peer.pid)"])
            }
            try? await connection.executeThenClose { _, outbound in
                try await outbound.write(ByteBuffer(bytes: ControlResponse.failure(id: .null, ControlError(.unavailable,
                    "too many connections open to lifeboatd (at most \(ConnectionQuota.perUser) per user and \(ConnectionQuota.total) in all, "
                    + "root's and the daemon's own user's apart); close some and retry"))))
            }
            return
        }
        defer { quota.leave(peer.uid) }
        do {
            // A long answer (run.watch) is not reading the requests while it waits: the channel's
            // closing is how it hears that its client is gone.
            let hangup = ReadySignal()
            connection.channel.closeFuture.whenComplete { _ in hangup.signal() }
            try await connection.executeThenClose { inbound, outbound in
                let send: @Sendable (Data) async throws -> Void = { data in
                    try await outbound.write(ByteBuffer(bytes: data))
                }
                for try await message in inbound {
                    switch message {
                    case .tooLong:
                        try await send(ControlResponse.failure(id: .null, ControlError(.tooLarge, "request line longer than 64 KiB; it was discarded")))
                    case .line(let buffer):
                        guard buffer.readableBytes > 0 else { continue }
                        switch ControlRequest.parse(buffer.readableBytesView) {
                        case .failure(let failure):
                            try await send(ControlResponse.failure(id: failure.id, failure.error))
                        case .success(let request):
                            answering.add(1, ordering: .relaxed)
                            defer { answering.subtract(1, ordering: .relaxed) }
                            if request.command == Control.Status.name {
                                try await handler.handle(request, peer: peer, hangup: hangup, send: send)
                            } else {
                                try await withTaskExecutorPreference(globalConcurrentExecutor) {
                                    try await handler.handle(request, peer: peer, hangup: hangup, send: send)
                                }
                            }
                        }
                    }
                }
            }
        } catch {
            // The client went away or the connection broke: nothing to answer.
            logger.debug("control connection ended", metadata: ["error": "\(error)", "uid": "\(peer.uid)"])
        }
    }

    /// The peer's SO_PEERCRED. `struct ucred` is three 32-bit fields: pid, uid, gid.
    private static func peerCredentials(of channel: Channel) -> EventLoopFuture<PeerCredentials> {
        struct UCred: Sendable {
            var pid: Int32 = 0
            var uid: UInt32 = 0
            var gid: UInt32 = 0
        }
        guard let provider = channel as? SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(ControlError(.internalError, "no peer credentials"))
        }
        let future: EventLoopFuture<UCred> = provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
        return future.map { PeerCredentials(pid: $0.pid, uid: $0.uid, gid: $0.gid) }
    }
}

/// Connections open at once: at most `perUser` for one user and `total` for all users, but root
/// and the daemon's own user (who may do anything anyway) are not counted.
final class ConnectionQuota: Sendable {
    static let perUser = 64
    static let total = 512

    enum Admission: Equatable {
        case accepted
        /// `first`: the user's first refusal since one of its connections was last accepted.
        case refused(first: Bool)
    }

    private struct Open {
        var total = 0
        var byUser: [uid_t: Int] = [:]
        var refusing: Set<uid_t> = []
    }

    private let exempt: Set<uid_t>
    private let open = Mutex(Open())

    init(exempt: Set<uid_t>) { self.exempt = exempt }

    func enter(_ uid: uid_t) -> Admission {
        guard !exempt.contains(uid) else { return .accepted }
        return open.withLock { open in
            guard open.total < Self.total, open.byUser[uid, default: 0] < Self.perUser else {
                return .refused(first: open.refusing.insert(uid).inserted)
            }
            open.total += 1
            open.byUser[uid, default: 0] += 1
            open.refusing.remove(uid)
            return .accepted
        }
    }

    func leave(_ uid: uid_t) {
        guard !exempt.contains(uid) else { return }
        open.withLock { open in
            open.total -= 1
            open.byUser[uid] = open.byUser[uid].flatMap { $0 > 1 ? $0 - 1 : nil }
        }
    }
}

/// Runs tasks on one NIO event loop's thread (a task executor preference: what they await
/// resumes there too).
final class EventLoopTaskExecutor: TaskExecutor {
    private let loop: any EventLoop

    init(_ loop: any EventLoop) { self.loop = loop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
