import Foundation
import Synchronization

/// A gzip stream that, once it proves long and while a core would otherwise be idle, is read,
/// hashed and inflated on a thread of its own, a few buffers ahead of the tar reader and the
/// file writes.
///
/// A job then uses two cores where it used one: while one thread inflates, the other creates
/// files. That is what a single large restore waits for (1.6× faster measured), and the last job
/// of a run, alone on the host; `tar -xzf` gets the same from its `gzip` child. While every core
/// already has an extraction of its own, a second thread per job only costs hand-overs (10 % more
/// CPU measured on ext4), so it starts only once fewer extractions have run than there are cores
/// for a while (`idleFor`) — mid-stream, when the others end — and stops when they are as many
/// again. Small archives never start it: the first 4 MiB are read as they always were, on the
/// caller's thread.
///
/// Nothing about the outcome changes: the same bytes come in the same order, with the same
/// failure at the same point of the stream (the inflating thread's error is handed over after the
/// data before it). Memory is bounded by the buffers (`depth` × 256 KiB). When the reader is
/// released early (an unsafe entry, a cancel), the inflating thread is stopped and waited for:
/// nothing reads on after the job is over.
///
/// Progress (`onInput`) is reported on the caller's thread, as each buffer is taken.
final class ReadAhead: DecompressedStream {
    /// When the inflating thread starts.
    enum Policy: Sendable {
        /// Past `after` decompressed bytes, once fewer extractions have run than there are cores
        /// for `idleFor`.
        case whenACoreIsIdle(after: Int64)
        /// Past `after` bytes, whatever else runs (`Int64.max`: never).
        case after(Int64)

        static let standard = Policy.whenACoreIsIdle(after: 4 << 20)
    }

    private let gzip: GzipReader
    private let policy: Policy
    private let progress: ((Int64) -> Void)?
    private let depth: Int
    /// The inflating thread's side, once started.
    private var ahead: Shared?
    /// The buffer being read, and what is left of it.
    private var current: (slot: Int, start: Int, end: Int)?

    private let load: Load

    /// The extractions under way (one reader each), against the cores they share.
    final class Load: Sendable {
        let running = Atomic<Int>(0)
        let cores: Int

        init(cores: Int) { self.cores = max(1, cores) }

        /// This process's.
        static let process = Load(cores: ProcessInfo.processInfo.activeProcessorCount)

        var aCoreIsIdle: Bool { running.load(ordering: .relaxed) < cores }
    }

    /// - Parameters:
    ///   - policy: when the inflating thread starts.
    ///   - depth: the buffers (of 256 KiB) the inflating thread may fill ahead.
    ///   - load: the extractions this one counts among.
    ///   - progress: called with the compressed bytes read so far, on the caller's thread.
    init(_ gzip: GzipReader, policy: Policy = .standard, depth: Int = 4, load: Load = .process, progress: ((Int64) -> Void)?) {
        self.gzip = gzip
        self.policy = policy
        self.depth = depth
        self.load = load
        self.progress = progress
        gzip.onInput = progress
        load.running.add(1, ordering: .relaxed)
    }

    /// Whether the inflating thread runs.
    var isAhead: Bool { ahead != nil }

    /// Where (in decompressed bytes) a core was last seen idle without a break, if it is.
    private var idleSince: Int64?
    /// How long a core must stay idle, in this stream's bytes (about 80 ms of zlib's inflate):
    /// another job between two extractions (its commit, its next start) does not count.
    static let idleFor: Int64 = 16 << 20

    /// Whether the inflating thread starts now (asked where the caller's thread would inflate).
    private var startsNow: Bool {
        switch policy {
        case .after(let bytes):
            return gzip.bytesOut >= bytes
        case .whenACoreIsIdle(let bytes):
            guard load.aCoreIsIdle else {
                idleSince = nil
                return false
            }
            let since = idleSince ?? gzip.bytesOut
            idleSince = since
            return gzip.bytesOut >= bytes && gzip.bytesOut - since >= Self.idleFor
        }
    }

    deinit {
        ahead?.stop()
        load.running.subtract(1, ordering: .relaxed)
    }

    func read(upTo max: Int) throws -> UnsafeRawBufferPointer? {
        guard let ahead else {
            if gzip.hasBufferedOutput || !startsNow { return try gzip.read(upTo: max) }
            // The caller's thread stops reading here: from now on only the inflating thread does.
            gzip.onInput = nil
            self.ahead = Shared(gzip, depth: depth)
            return try read(upTo: max)
        }
        while true {
            if let (slot, start, end) = current {
                if start < end {
                    let n = Swift.min(max, end - start)
                    current = (slot, start + n, end)
                    return UnsafeRawBufferPointer(rebasing: ahead.buffer(slot)[start..<(start + n)])
                }
                ahead.give(back: slot)
                current = nil
                // Every core has an extraction again: once what was read ahead is used, this
                // thread reads on its own, as before.
                if case .whenACoreIsIdle = policy, !load.aCoreIsIdle { ahead.stop() }
            }
            switch try ahead.take() {
            case .buffer(let slot, let count, let inputBytes):
                current = (slot, 0, count)
                progress?(inputBytes)
            case .end:
                return nil
            case .stopped:
                self.ahead = nil
                idleSince = nil
                gzip.onInput = progress
                return try read(upTo: max)
            }
        }
    }

    /// The buffers and their hand-over, shared with the inflating thread (under `condition`).
    private final class Shared: @unchecked Sendable {
        private let gzip: GzipReader
        private let slotSize = 256 << 10
        private let memory: UnsafeMutableRawBufferPointer
        private let condition = NSCondition()
        private var free: [Int]
        /// Filled buffers in stream order: (slot, bytes, compressed bytes read by then).
        private var filled: [(slot: Int, count: Int, inputBytes: Int64)] = []
        /// How the stream ended, after the buffers in `filled`: nil while it goes on.
        private var end: Result<Void, Error>?
        private var stopping = false
        private var exited = false

        init(_ gzip: GzipReader, depth: Int) {
            self.gzip = gzip
            memory = .allocate(byteCount: slotSize * depth, alignment: 64)
            free = Array((0..<depth).reversed())
            let thread = Thread { [self] in fill() }
            thread.name = "lifeboat-inflate"
            thread.stackSize = 256 << 10
            thread.start()
        }

        deinit { memory.deallocate() }

        func buffer(_ slot: Int) -> UnsafeMutableRawBufferPointer {
            UnsafeMutableRawBufferPointer(rebasing: memory[(slot * slotSize)..<((slot + 1) * slotSize)])
        }

        enum Taken {
            /// A filled buffer: its bytes, and the compressed bytes read by then.
            case buffer(slot: Int, count: Int, inputBytes: Int64)
            /// The end of the stream.
            case end
            /// Stopped (`stop()`) with every buffer filled taken: the stream goes on inline.
            case stopped
        }

        /// The next filled buffer, or how the stream ended (its error after the data before it),
        /// or `stopped`.
        func take() throws -> Taken {
            condition.lock()
            defer { condition.unlock() }
            while filled.isEmpty && end == nil && !exited { condition.wait() }
            if !filled.isEmpty {
                let next = filled.removeFirst()
                return .buffer(slot: next.slot, count: next.count, inputBytes: next.inputBytes)
            }
            if let end {
                try end.get()
                return .end
            }
            return .stopped
        }

        func give(back slot: Int) {
            condition.lock()
            free.append(slot)
            condition.signal()
            condition.unlock()
        }

        /// Stops the inflating thread and waits for it (it finishes the buffer it is filling; the
        /// buffers filled stay to be taken).
        func stop() {
            condition.lock()
            stopping = true
            condition.broadcast()
            while !exited { condition.wait() }
            condition.unlock()
        }

        private func fill() {
            condition.lock()
            while true {
                while free.isEmpty && !stopping { condition.wait() }
                if stopping { break }
                let slot = free.removeLast()
                condition.unlock()
                let outcome = Result { try gzip.produce(into: buffer(slot)) }
                let inputBytes = gzip.inputBytesRead
                condition.lock()
                switch outcome {
                case .success(let count) where count > 0:
                    filled.append((slot, count, inputBytes))
                case .success:
                    free.append(slot)
                    end = .success(())
                case .failure(let error):
                    free.append(slot)
                    end = .failure(error)
                }
                condition.broadcast()
                if end != nil { break }
            }
            exited = true
            condition.broadcast()
            condition.unlock()
        }
    }
}
