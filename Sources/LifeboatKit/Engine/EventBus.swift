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
        buffer.whenClosed { [weak self] in self?.remove(id) }
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
/// before, never empty; the sequence ends after the batch holding the run's `finished`, or when
/// the watcher closes it (or its task is cancelled).
public struct RunEventBatches: AsyncSequence, Sendable {
    public typealias Element = [RunEvent]

    /// The events not yet taken, and nudges that there are some.
    final class Buffer: Sendable {
        private struct Pending {
            /// In order; a job's earlier event is nil once a later one of the job came.
            var events: [RunEvent?] = []
            /// Where each job's latest event is in `events`.
            var latest: [Int64: Int] = [:]
            /// The run's `finished` came: nothing is added after it.
            var ended = false
            /// The watcher is done: nothing is added or taken.
            var closed = false
            /// Tells the bus to forget the subscription (once).
            var onClose: (@Sendable () -> Void)?
        }

        private let pending = Mutex(Pending())
        /// Nudged by each event.
        let news = Nudge()
        /// Nudged by the run's `finished` (and by a close).
        let ended = Nudge()

        func whenClosed(_ action: @escaping @Sendable () -> Void) { pending.withLock { $0.onClose = action } }

        /// Adds an event; the `last` (the run's `finished`) also has the bus forget the
        /// subscription, whose buffer keeps what was not taken yet.
        func add(_ event: RunEvent, last: Bool) {
            let (added, onClose) = pending.withLock { p -> (Bool, (@Sendable () -> Void)?) in
                if p.ended || p.closed { return (false, nil) }
                if let id = event.job?.id, event.kind == .job || event.kind == .progress {
                    if let earlier = p.latest[id] { p.events[earlier] = nil }
                    p.latest[id] = p.events.count
                }
                p.events.append(event)
                p.ended = last
                guard last else { return (true, nil) }
                defer { p.onClose = nil }
                return (true, p.onClose)
            }
            guard added else { return }
            onClose?()
            news.nudge()
            if last { ended.nudge() }
        }

        var isEnded: Bool { pending.withLock { $0.ended || $0.closed } }

        /// What arrived since the last take, in order; nil once nothing more comes (closed, or
        /// the run's last batch was taken).
        func take() -> [RunEvent]? {
            pending.withLock { p in
                guard !p.closed else { return nil }
                defer {
                    p.events.removeAll(keepingCapacity: true)
                    p.latest.removeAll(keepingCapacity: true)
                }
                let events = p.events.compactMap { $0 }
                return events.isEmpty && p.ended ? nil : events
            }
        }

        func close() {
            let onClose = pending.withLock { p in
                p.closed = true
                defer { p.onClose = nil }
                return p.onClose
            }
            onClose?()
            news.nudge()
            ended.nudge()
        }
    }

    let buffer: Buffer

    /// What arrived since the last batch, waiting up to `interval` for something (empty when
    /// nothing came meanwhile); nil once nothing more comes: after the run's last batch, or
    /// once closed.
    public func batch(waitingUpTo interval: Duration) async -> [RunEvent]? {
        guard let events = buffer.take() else { return nil }
        guard events.isEmpty else { return events }
        await buffer.news.wait(upTo: interval)
        return buffer.take()
    }

    /// Waits `interval` between two batches (a watcher's pace), or less when the run ended: its
    /// last batch is not held back.
    func pause(_ interval: Duration) async {
        guard !buffer.isEnded else { return }
        await buffer.ended.wait(upTo: interval)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let batches: RunEventBatches

        /// The next batch that is not empty; nil at the end, and when the task is cancelled
        /// (which closes the subscription).
        public mutating func next() async -> [RunEvent]? {
            while !Task.isCancelled {
                guard let batch = await batches.batch(waitingUpTo: .seconds(3_600)) else { return nil }
                if !batch.isEmpty { return batch }
            }
            batches.close()
            return nil
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(batches: self) }

    /// Ends the subscription: the bus forgets it (an iteration under way ends). A watcher that
    /// stops early must close, or the bus would keep its buffer for good.
    public func close() { buffer.close() }
}
