/// A gzip stream (one or more members) decompressed on demand into one fixed buffer.
///
/// `read(upTo:)` hands out views straight into the inflate output buffer, so file data goes from
/// zlib to `write(2)` without being copied. Truncation, a member that fails its CRC-32 or ISIZE,
/// and bytes after the last member that are not another member are all errors — except zeros to
/// the end of the file (padding, which gzip ignores too).
final class GzipReader {
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

    /// Reads to the end of the gzip stream, discarding the data (which still has its CRC checked).
    /// Returns the number of bytes discarded; stops with an error beyond `limit`.
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

    private func refill() throws -> Bool {
        outStart = 0
        outEnd = 0
        while true {
            switch state {
            case .finished:
                return false
            case .betweenMembers:
                guard try ensureInput() else {
                    state = .finished
                    return false
                }
                // Zero padding to the end (a tape's or dd's blocks): gzip ignores it, and so does
                // this, as long as nothing but zeros follows.
                if inBuffer[inStart] == 0 {
                    repeat {
                        guard inBuffer[inStart..<inEnd].allSatisfy({ $0 == 0 }) else {
                            throw ArchiveError(.corrupt, "unexpected data after the end of the gzip stream (trailing garbage after zero padding)")
                        }
                        inStart = inEnd
                    } while try ensureInput()
                    state = .finished
                    return false
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
                let progress = try inflater.inflate(
                    UnsafeRawBufferPointer(rebasing: inBuffer[inStart..<inEnd]),
                    into: UnsafeMutableRawBufferPointer(rebasing: outBuffer[outEnd...]))
                inStart += progress.consumed
                outEnd += progress.produced
                if progress.memberEnded { state = .betweenMembers }
                if progress.consumed == 0, progress.produced == 0, !progress.memberEnded {
                    // zlib needs more input than is buffered: slide what is left and read more.
                    try readMore(forceCompact: true)
                }
                if outEnd > 0 { return true }
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
