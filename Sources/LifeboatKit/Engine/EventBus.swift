import Synchronization

/// Fans run events out to any number of subscribers as `AsyncStream`s. A slow subscriber loses
/// the oldest buffered events rather than growing memory (progress is sampled anyway).
public final class EventBus: Sendable {
    private struct State {
        var nextID = 0
        var subscribers: [Int: (runId: String?, continuation: AsyncStream<RunEvent>.Continuation)] = [:]
    }

    private let state = Mutex(State())
    private let bufferSize: Int

    public init(bufferSize: Int = 1_024) { self.bufferSize = bufferSize }

    /// Events of one run (or of every run when `runId` is nil), from now on.
    public func subscribe(runId: String? = nil) -> AsyncStream<RunEvent> {
        let (stream, continuation) = AsyncStream<RunEvent>.makeStream(bufferingPolicy: .bufferingNewest(bufferSize))
        let id = state.withLock { s in
            let id = s.nextID
            s.nextID += 1
            s.subscribers[id] = (runId, continuation)
            return id
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    public func publish(_ event: RunEvent) {
        let targets = state.withLock { s in
            s.subscribers.values.filter { $0.runId == nil || $0.runId == event.runId }.map(\.continuation)
        }
        for continuation in targets { continuation.yield(event) }
        // Subscribers of one run end with their run.
        if event.kind == .finished {
            let ending = state.withLock { s in
                s.subscribers.filter { $0.value.runId == event.runId }.map(\.value.continuation)
            }
            for continuation in ending { continuation.finish() }
        }
    }

    public var subscriberCount: Int { state.withLock { $0.subscribers.count } }
}
