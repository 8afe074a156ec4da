import CIsal

/// The ISA-L inflater (`isal_inflate` with the gzip wrapper): ISA-L parses each member's header
/// and checks its CRC-32 and ISIZE, like `ZlibInflater`, about 2–3× faster per core.
///
/// ISA-L is loaded at run time (see `CIsal`); `init` throws when it is unavailable. Use
/// `InflateEngine.make()` to get whichever inflater applies.
final class IsalInflater: GzipInflater {
    private let stream: OpaquePointer
    /// Bytes of the current member's header checked here so far (see `checkFlags`).
    private var headerChecked = 0

    init() throws {
        guard let stream = lifeboat_isal_new() else {
            throw ArchiveError(.io, "ISA-L inflate is unavailable: \(InflateEngine.isalUnavailableReason ?? "out of memory")")
        }
        self.stream = stream
    }

    deinit { lifeboat_isal_free(stream) }

    func beginMember() throws {
        lifeboat_isal_reset(stream)
        headerChecked = 0
    }

    /// ISA-L ignores the reserved FLG bits (5–7) of a gzip header; zlib rejects them, and so must
    /// this inflater, to fail the same archives the same way.
    private func checkFlags(_ input: UnsafeRawBufferPointer) throws {
        let flagOffset = 3 - headerChecked
        if flagOffset < input.count, input[flagOffset] & 0xE0 != 0 {
            throw ArchiveError(.corrupt, "gzip data is corrupt: unknown header flags set")
        }
    }

    func inflate(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> InflateProgress {
        guard let outBase = output.baseAddress, output.count > 0 else {
            return InflateProgress(consumed: 0, produced: 0, memberEnded: false)
        }
        // ISA-L counts in UInt32; the reader's buffers are far smaller, but never trust that here.
        let inCount = min(input.count, Int(UInt32.max))
        let outCount = min(output.count, Int(UInt32.max))
        if headerChecked < 4 { try checkFlags(input) }
        var consumed: UInt32 = 0, produced: UInt32 = 0
        var finished: Int32 = 0
        let rc = lifeboat_isal_inflate(stream, input.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt32(inCount),
                                       outBase.assumingMemoryBound(to: UInt8.self), UInt32(outCount),
                                       &consumed, &produced, &finished)
        guard rc >= 0 else {
            throw ArchiveError(.corrupt, "gzip data is corrupt: \(String(cString: lifeboat_isal_describe(rc)))")
        }
        if headerChecked < 4 { headerChecked += Int(consumed) }
        return InflateProgress(consumed: Int(consumed), produced: Int(produced), memberEnded: finished != 0)
    }
}
