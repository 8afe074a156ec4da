/// Decompressed archive bytes, read front to back in views that stay valid until the next call.
protocol DecompressedStream: AnyObject {
    /// The next at most `max` decompressed bytes, valid until the next call; nil at the end.
    func read(upTo max: Int) throws -> UnsafeRawBufferPointer?
}

extension DecompressedStream {
    /// Reads to the end of the stream, discarding the data (a gzip stream still has its CRC
    /// checked). Returns the number of bytes discarded; stops with an error beyond `limit`.
    func drain(limit: Int64) throws -> Int64 {
        var total: Int64 = 0
        while let chunk = try read(upTo: Int.max) {
            total += Int64(chunk.count)
            if total > limit {
                throw ArchiveError(.limitExceeded, "more than \(limit) bytes follow the tar end-of-archive marker")
            }
        }
        return total
    }
}

/// A gzip stream (one or more members) decompressed on demand into one fixed buffer.
///
/// `read(upTo:)` hands out views straight into the inflate output buffer, so file data goes from
/// zlib to `write(2)` without being copied. Truncation, a member that fails its CRC-32 or ISIZE,
/// and bytes after the last member that are not another member are all errors.
final class GzipReader: DecompressedStream {
    private enum State { case inMember, betweenMembers, finished }

    private let input: ArchiveInput
    private let inflater: GzipInflater
    private let inBuffer: UnsafeMutableRawBufferPointer
    private let outBuffer: UnsafeMutableRawBufferPointer
    private var inStart = 0, inEnd = 0, inputEOF = false
    private var outStart = 0, outEnd = 0
    private var state = State.inMember
    private var sawAnyInput = false
    /// Decompressed bytes handed out so far.
    private(set) var bytesOut: Int64 = 0

    /// Called with the number of compressed bytes read so far, after each input chunk.
    var onInput: ((Int64) -> Void)?

    init(input: ArchiveInput, inflater: GzipInflater, inputSize: Int = 256 << 10, outputSize: Int = 256 << 10) {
        self.input = input
        self.inflater = inflater
        inBuffer = .allocate(byteCount: inputSize, alignment: 64)
        outBuffer = .allocate(byteCount: outputSize, alignment: 64)
    }

    deinit {
        inBuffer.deallocate()
        outBuffer.deallocate()
    }

    /// The next at most `max` decompressed bytes, valid until the next call; nil at the end of the
    /// gzip stream.
    func read(upTo max: Int) throws -> UnsafeRawBufferPointer? {
        if outStart == outEnd {
            guard try refill() else { return nil }
        }
        let n = Swift.min(max, outEnd - outStart)
        let view = UnsafeRawBufferPointer(rebasing: outBuffer[outStart..<(outStart + n)])
        outStart += n
        bytesOut += Int64(n)
        return view
    }

    /// Whether output inflated earlier is still to be read (the next `read` hands it out).
    var hasBufferedOutput: Bool { outStart < outEnd }

    /// The compressed bytes read so far.
    var inputBytesRead: Int64 { input.bytesRead }

    private func refill() throws -> Bool {
        outStart = 0
        outEnd = try produce(into: outBuffer)
        return outEnd > 0
    }

    /// Inflates the next bytes into `output` (a whole buffer, as `read` refills its own): at
    /// least one byte, as many as one step of the inflater gives; 0 at the end of the stream.
    /// Only for a reader whose own buffer is drained (`hasBufferedOutput` false), as
    /// `ReadAhead` uses it; `bytesOut` does not count these.
    func produce(into output: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            switch state {
            case .finished:
                return 0
            case .betweenMembers:
                guard try ensureInput() else {
                    state = .finished
                    return 0
                }
                // Another member must start with the gzip magic; anything else is garbage.
                guard inBuffer[inStart] == 0x1F else {
                    throw ArchiveError(.corrupt, "unexpected data after the end of the gzip stream (trailing garbage)")
                }
                try inflater.beginMember()
                state = .inMember
            case .inMember:
                guard try ensureInput() else {
                    throw ArchiveError(.truncated, sawAnyInput
                        ? "the gzip stream ends in the middle of a member"
                        : "the archive is empty")
                }
                let progress = try inflater.inflate(UnsafeRawBufferPointer(rebasing: inBuffer[inStart..<inEnd]), into: output)
                inStart += progress.consumed
                if progress.memberEnded { state = .betweenMembers }
                if progress.consumed == 0, progress.produced == 0, !progress.memberEnded {
                    // zlib needs more input than is buffered: slide what is left and read more.
                    try readMore(forceCompact: true)
                }
                if progress.produced > 0 { return progress.produced }
            }
        }
    }

    /// Makes sure some input is buffered; false at end of file.
    private func ensureInput() throws -> Bool {
        if inStart < inEnd { return true }
        try readMore(forceCompact: false)
        return inStart < inEnd
    }

    private func readMore(forceCompact: Bool) throws {
        if inputEOF {
            if forceCompact { throw ArchiveError(.truncated, "the gzip stream ends in the middle of a member") }
            return
        }
        if inStart == inEnd {
            inStart = 0
            inEnd = 0
        } else if forceCompact || inEnd == inBuffer.count {
            let remaining = inEnd - inStart
            inBuffer.baseAddress!.copyMemory(from: inBuffer.baseAddress! + inStart, byteCount: remaining)
            inStart = 0
            inEnd = remaining
        }
        guard inEnd < inBuffer.count else {
            // A full buffer that the inflater cannot use: never spin on it.
            if forceCompact { throw ArchiveError(.corrupt, "the gzip stream cannot be decoded (no progress)") }
            return
        }
        let n = try input.read(into: UnsafeMutableRawBufferPointer(rebasing: inBuffer[inEnd...]))
        if n == 0 {
            inputEOF = true
        } else {
            sawAnyInput = true
            inEnd += n
            onInput?(input.bytesRead)
        }
    }
}
