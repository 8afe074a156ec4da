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

/// The zlib inflater. zlib inflates each member's raw deflate data; the gzip framing around it
/// (RFC 1952: header, optional fields and header CRC, then CRC-32 and ISIZE) is read and checked
/// here, so that the output's CRC-32 is `CRC32`'s: zlib's own took a tenth of a zlib extraction's
/// CPU, `CRC32` is 3.4 times as fast where the CPU multiplies carry-less. The checks and their
/// messages are zlib's.
final class ZlibInflater: GzipInflater {
    // zlib's state keeps a pointer back to its z_stream, so the stream must not move.
    private let stream: UnsafeMutablePointer<z_stream>
    private var header = GzipHeaderReader()
    private var inBody = false
    /// The member's trailer as read so far, and what the output must match.
    private var trailer: [UInt8] = []
    private var crc: UInt32 = 0
    private var size: UInt32 = 0

    init() throws {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let rc = lifeboat_inflateInit2(stream, -15)
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
        header = GzipHeaderReader()
        inBody = false
        trailer.removeAll(keepingCapacity: true)
        crc = 0
        size = 0
    }

    func inflate(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> InflateProgress {
        guard let outBase = output.baseAddress, output.count > 0 else {
            return InflateProgress(consumed: 0, produced: 0, memberEnded: false)
        }
        var consumed = 0
        if !header.done {
            consumed = try header.read(input)
            guard header.done else { return InflateProgress(consumed: consumed, produced: 0, memberEnded: false) }
            inBody = true
        }
        var produced = 0
        if inBody {
            let rest = UnsafeRawBufferPointer(rebasing: input[consumed...])
            stream.pointee.next_in = rest.baseAddress.map { UnsafeMutablePointer(mutating: $0.assumingMemoryBound(to: Bytef.self)) }
            stream.pointee.avail_in = uInt(rest.count)
            stream.pointee.next_out = outBase.assumingMemoryBound(to: Bytef.self)
            stream.pointee.avail_out = uInt(output.count)
            let rc = CZlib.inflate(stream, Z_NO_FLUSH)
            consumed += rest.count - Int(stream.pointee.avail_in)
            produced = output.count - Int(stream.pointee.avail_out)
            stream.pointee.next_in = nil
            crc = CRC32.update(crc, UnsafeRawBufferPointer(start: outBase, count: produced))
            size &+= UInt32(truncatingIfNeeded: produced)
            switch rc {
            case Z_OK, Z_BUF_ERROR:
                // Z_BUF_ERROR only means "no progress possible": the caller supplies more input.
                return InflateProgress(consumed: consumed, produced: produced, memberEnded: false)
            case Z_STREAM_END:
                inBody = false
            default:
                let message = stream.pointee.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
                throw ArchiveError(.corrupt, "gzip data is corrupt: \(message)")
            }
        }
        // The trailer: CRC-32 and ISIZE (the length modulo 2^32), little-endian.
        while trailer.count < 8, consumed < input.count {
            trailer.append(input[consumed])
            consumed += 1
        }
        guard trailer.count == 8 else { return InflateProgress(consumed: consumed, produced: produced, memberEnded: false) }
        let field = { [trailer] (at: Int) in trailer[at..<(at + 4)].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) } }
        guard field(0) == crc else { throw ArchiveError(.corrupt, "gzip data is corrupt: incorrect data check") }
        guard field(4) == size else { throw ArchiveError(.corrupt, "gzip data is corrupt: incorrect length check") }
        return InflateProgress(consumed: consumed, produced: produced, memberEnded: true)
    }
}

/// A gzip member's header (RFC 1952), read as it comes, checked as zlib checks it: the magic,
/// method 8 (deflate), no reserved flag, and with FHCRC the CRC-32 of the header's bytes. The
/// optional fields (FEXTRA, FNAME, FCOMMENT) are skipped, whatever their length.
struct GzipHeaderReader {
    private enum Part { case fixed, extraLength, extra, name, comment, headerCRC, done }
    private static let (fhcrc, fextra, fname, fcomment): (UInt8, UInt8, UInt8, UInt8) = (0x02, 0x04, 0x08, 0x10)

    private var part = Part.fixed
    private var flags: UInt8 = 0
    /// The bytes of the part being read, when it has a fixed length.
    private var bytes: [UInt8] = []
    private var extraLeft = 0
    /// The CRC-32 of every header byte before the header CRC.
    private var crc: UInt32 = 0

    var done: Bool { part == .done }

    /// Reads what it can of `input`; returns the bytes it took (all of them until the header ends).
    mutating func read(_ input: UnsafeRawBufferPointer) throws -> Int {
        var at = 0
        while part != .done, at < input.count {
            let start = at
            switch part {
            case .headerCRC:
                // The low 16 bits of the CRC-32 of the bytes before it (not of its own).
                let take = min(2 - bytes.count, input.count - at)
                bytes.append(contentsOf: input[at..<(at + take)])
                at += take
                guard bytes.count == 2 else { continue }
                guard UInt16(bytes[0]) | UInt16(bytes[1]) << 8 == UInt16(truncatingIfNeeded: crc) else {
                    throw ArchiveError(.corrupt, "gzip data is corrupt: header crc mismatch")
                }
                part = .done
                continue
            case .fixed, .extraLength:
                let need = part == .fixed ? 10 : 2
                let take = min(need - bytes.count, input.count - at)
                bytes.append(contentsOf: input[at..<(at + take)])
                at += take
                guard bytes.count == need else { break }
                if part == .fixed {
                    guard bytes[0] == 0x1F, bytes[1] == 0x8B else { throw ArchiveError(.corrupt, "gzip data is corrupt: incorrect header check") }
                    guard bytes[2] == 8 else { throw ArchiveError(.corrupt, "gzip data is corrupt: unknown compression method") }
                    guard bytes[3] & 0xE0 == 0 else { throw ArchiveError(.corrupt, "gzip data is corrupt: unknown header flags set") }
                    flags = bytes[3]
                    part = .extraLength
                    if flags & Self.fextra == 0 { advance(from: .extraLength) }
                } else {
                    extraLeft = Int(bytes[0]) | Int(bytes[1]) << 8
                    part = .extra
                    if extraLeft == 0 { advance(from: .extra) }
                }
                bytes.removeAll(keepingCapacity: true)
            case .extra:
                let take = min(extraLeft, input.count - at)
                at += take
                extraLeft -= take
                if extraLeft == 0 { advance(from: .extra) }
            case .name, .comment:
                // Up to and with the terminating zero.
                if let zero = input[at...].firstIndex(of: 0) {
                    at = zero + 1
                    advance(from: part)
                } else {
                    at = input.count
                }
            case .done:
                break
            }
            crc = CRC32.update(crc, UnsafeRawBufferPointer(rebasing: input[start..<at]))
        }
        return at
    }

    /// The part after `part` that this header has.
    private mutating func advance(from part: Part) {
        let order: [(Part, UInt8)] = [(.extraLength, Self.fextra), (.extra, Self.fextra), (.name, Self.fname),
                                      (.comment, Self.fcomment), (.headerCRC, Self.fhcrc)]
        let after = order.firstIndex { $0.0 == part }.map { order.index(after: $0) } ?? order.endIndex
        self.part = order[after...].first { $0.0 != .extra && flags & $0.1 != 0 }?.0 ?? .done
    }
}
