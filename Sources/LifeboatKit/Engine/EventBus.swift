import Synchronization

/// Fans run events out to any number of subscribers. A stream subscriber (`subscribe`) that falls
/// behind loses the oldest buffered events rather than growing memory; a watcher (`watch`) takes
/// them in batches, each job's events collapsed to its latest, so it loses no job's last state
/// however slow it is.
public final class EventBus: Sendable {
    private enum Subscriber {
        case stream(AsyncStream<RunEvent>.Continuation)
        case batches(RunEventBatches.Buffer)
    }

    private struct State {
        var nextID = 0
        var subscribers: [Int: (runId: String?, subscriber: Subscriber)] = [:]
    }

    private let state = Mutex(State())
    private let bufferSize: Int

    public init(bufferSize: Int = 1_024) { self.bufferSize = bufferSize }

    /// Events of one run (or of every run when `runId` is nil), from now on.
    public func subscribe(runId: String? = nil) -> AsyncStream<RunEvent> {
        let (stream, continuation) = AsyncStream<RunEvent>.makeStream(bufferingPolicy: .bufferingNewest(bufferSize))
        let id = add(runId, .stream(continuation))
        continuation.onTermination = { [weak self] _ in self?.remove(id) }
        return stream
    }

    /// Events of one run from now on, in batches: whatever arrived since the last batch was
    /// taken, in order, with each job's events (`job`, `progress`) collapsed to its latest.
    /// Memory stays within one event per job of the run.
    public func watch(runId: String) -> RunEventBatches {
        let buffer = RunEventBatches.Buffer()
        let id = add(runId, .batches(buffer))
        buffer.signal.onTermination = { [weak self] _ in self?.remove(id) }
        return RunEventBatches(buffer: buffer)
    }

    private func add(_ runId: String?, _ subscriber: Subscriber) -> Int {
        state.withLock { s in
            let id = s.nextID
            s.nextID += 1
            s.subscribers[id] = (runId, subscriber)
            return id
        }
    }

    private func remove(_ id: Int) {
        _ = state.withLock { $0.subscribers.removeValue(forKey: id) }
    }

    public func publish(_ event: RunEvent) {
        let targets = state.withLock { s in
            s.subscribers.values.filter { $0.runId == nil || $0.runId == event.runId }
        }
        for (runId, target) in targets {
            // Subscribers of one run end with their run.
            let ends = runId != nil && event.kind == .finished
            switch target {
            case .stream(let continuation):
                continuation.yield(event)
                if ends { continuation.finish() }
            case .batches(let buffer):
                buffer.add(event, last: ends)
            }
        }
    }

    public var subscriberCount: Int { state.withLock { $0.subscribers.count } }
}

/// A watcher's events of one run (`EventBus.watch`): each element is what arrived since the one
/// before, never empty; the sequence ends after the batch holding the run's `finished`.
public struct RunEventBatches: AsyncSequence, Sendable {
    public typealias Element = [RunEvent]

    /// The events not yet taken, and a signal that there are some.
    final class Buffer: Sendable {
        private struct Pending {
            /// In order; a job's earlier event is nil once a later one of the job came.
            var events: [RunEvent?] = []
            /// Where each job's latest event is in `events`.
            var latest: [Int64: Int] = [:]
            var ended = false
        }

        private let pending = Mutex(Pending())
        let signal: AsyncStream<Void>.Continuation
        let signals: AsyncStream<Void>
        /// Nudged by the run's `finished`.
        let ended = Nudge()

        init() { (signals, signal) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1)) }

        func add(_ event: RunEvent, last: Bool) {
            pending.withLock { p in
                if p.ended { return }
                if let id = event.job?.id, event.kind == .job || event.kind == .progress {
                    if let earlier = p.latest[id] { p.events[earlier] = nil }
                    p.latest[id] = p.events.count
                }
                p.events.append(event)
                p.ended = last
            }
            signal.yield()
            if last {
                signal.finish()
                ended.nudge()
            }
        }

        var isEnded: Bool { pending.withLock { $0.ended } }

        func take() -> [RunEvent] {
            pending.withLock { p in
                defer {
                    p.events.removeAll(keepingCapacity: true)
                    p.latest.removeAll(keepingCapacity: true)
                }
                return p.events.compactMap { $0 }
            }
        }
    }

    let buffer: Buffer

    /// Waits `interval` between two batches (a watcher's pace), or less when the run ended: its
    /// last batch is not held back.
    func pause(_ interval: Duration) async {
        guard !buffer.isEnded else { return }
        await buffer.ended.wait(upTo: interval)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let buffer: Buffer
        var signals: AsyncStream<Void>.AsyncIterator
        var done = false

        public mutating func next() async -> [RunEvent]? {
            while !done {
                if await signals.next() == nil { done = true }
                let batch = buffer.take()
                if !batch.isEmpty { return batch }
            }
            return nil
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(buffer: buffer, signals: buffer.signals.makeAsyncIterator()) }

    /// Ends the subscription: the bus forgets it (an iteration under way ends). A watcher that
    /// stops early must close, or the bus would keep its buffer for good.
    public func close() { buffer.signal.finish() }
}
