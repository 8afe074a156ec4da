import Foundation

/// A gzip stream that, once it proves long, is read, hashed and inflated on a thread of its own,
/// a few buffers ahead of the tar reader and the file writes.
///
/// A job then uses two cores where it used one: while one thread inflates, the other creates
/// files. That is what a single large restore waits for (and the last job of a run, alone on the
/// host); `tar -xzf` gets the same from its `gzip` child. Small archives never start the thread:
/// the first `startAfter` bytes are read as they always were, on the caller's thread.
///
/// Nothing about the outcome changes: the same bytes come in the same order, with the same
/// failure at the same point of the stream (the inflating thread's error is handed over after the
/// data before it). Memory is bounded by the buffers (`depth` × 256 KiB). When the reader is
/// released early (an unsafe entry, a cancel), the inflating thread is stopped and waited for:
/// nothing reads on after the job is over.
///
/// Progress (`onInput`) is reported on the caller's thread, as each buffer is taken.
final class ReadAhead: DecompressedStream {
    private let gzip: GzipReader
    private let startAfter: Int64
    private let progress: ((Int64) -> Void)?
    /// The inflating thread's side, once started.
    private var ahead: Shared?
    /// The buffer being read, and what is left of it.
    private var current: (slot: Int, start: Int, end: Int)?

    private let depth: Int

    /// 4 MiB: a restore of that much is worth a thread (tens of milliseconds of inflate); the
    /// many small archives of a mass restore never pay for one.
    static let defaultStart: Int64 = 4 << 20

    /// - Parameters:
    ///   - startAfter: the decompressed bytes read on the caller's thread before the inflating
    ///     thread starts.
    ///   - depth: the buffers (of 256 KiB) the inflating thread may fill ahead.
    ///   - progress: called with the compressed bytes read so far, on the caller's thread.
    init(_ gzip: GzipReader, startAfter: Int64 = defaultStart, depth: Int = 4, progress: ((Int64) -> Void)?) {
        self.gzip = gzip
        self.startAfter = startAfter
        self.depth = depth
        self.progress = progress
        gzip.onInput = progress
    }

    deinit { ahead?.stop() }

    func read(upTo max: Int) throws -> UnsafeRawBufferPointer? {
        guard let ahead else {
            if gzip.hasBufferedOutput || gzip.bytesOut < startAfter { return try gzip.read(upTo: max) }
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
            }
            guard let next = try ahead.take() else { return nil }
            current = (next.slot, 0, next.count)
            progress?(next.inputBytes)
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

        /// The next filled buffer; nil at the end of the stream; the stream's error after the
        /// data before it.
        func take() throws -> (slot: Int, count: Int, inputBytes: Int64)? {
            condition.lock()
            defer { condition.unlock() }
            while filled.isEmpty && end == nil { condition.wait() }
            if !filled.isEmpty { return filled.removeFirst() }
            try end?.get()
            return nil
        }

        func give(back slot: Int) {
            condition.lock()
            free.append(slot)
            condition.signal()
            condition.unlock()
        }

        /// Stops the inflating thread and waits for it (it finishes the buffer it is filling).
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
