import CZlib

/// What one call to an inflater did.
struct InflateProgress {
    /// Input bytes consumed.
    var consumed: Int
    /// Output bytes produced.
    var produced: Int
    /// The current gzip member ended (its CRC-32 and ISIZE were checked).
    var memberEnded: Bool
}

/// Decompresses gzip members. Implementations (zlib today, ISA-L later) must produce identical
/// output and check each member's header, CRC-32 and ISIZE themselves.
protocol GzipInflater: AnyObject {
    /// Prepares for a new gzip member.
    func beginMember() throws
    /// Inflates as much of `input` into `output` as possible. Throws `ArchiveError(.corrupt)` on
    /// bad data.
    func inflate(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> InflateProgress
}

/// The zlib inflater: `inflateInit2` with windowBits 15+16, so zlib parses the gzip header and
/// verifies CRC-32 and ISIZE of each member.
final class ZlibInflater: GzipInflater {
    // zlib's state keeps a pointer back to its z_stream, so the stream must not move.
    private let stream: UnsafeMutablePointer<z_stream>

    init() throws {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let rc = lifeboat_inflateInit2(stream, 15 + 16)
        guard rc == Z_OK else {
            stream.deinitialize(count: 1)
            stream.deallocate()
            throw ArchiveError(.io, "zlib could not be initialised (code \(rc))")
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    func beginMember() throws {
        let rc = inflateReset(stream)
        guard rc == Z_OK else { throw ArchiveError(.io, "zlib could not be reset (code \(rc))") }
    }

    func inflate(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> InflateProgress {
        guard let outBase = output.baseAddress, output.count > 0 else {
            return InflateProgress(consumed: 0, produced: 0, memberEnded: false)
        }
        let inCount = input.count
        stream.pointee.next_in = input.baseAddress.map {
            UnsafeMutablePointer(mutating: $0.assumingMemoryBound(to: Bytef.self))
        }
        stream.pointee.avail_in = uInt(inCount)
        stream.pointee.next_out = outBase.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = uInt(output.count)
        let rc = CZlib.inflate(stream, Z_NO_FLUSH)
        let consumed = inCount - Int(stream.pointee.avail_in)
        let produced = output.count - Int(stream.pointee.avail_out)
        stream.pointee.next_in = nil
        switch rc {
        case Z_OK, Z_BUF_ERROR:
            // Z_BUF_ERROR only means "no progress possible": the caller supplies more input.
            return InflateProgress(consumed: consumed, produced: produced, memberEnded: false)
        case Z_STREAM_END:
            return InflateProgress(consumed: consumed, produced: produced, memberEnded: true)
        default:
            let message = stream.pointee.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
            throw ArchiveError(.corrupt, "gzip data is corrupt: \(message)")
        }
    }
}
