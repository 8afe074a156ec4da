/// One entry of a tar archive, after pax and GNU long-name headers were applied.
struct TarEntry {
    var kind: TarEntryKind
    /// The path as stored (pax `path` or GNU `L` take precedence over the header's name).
    var name: [UInt8]
    /// The link target for symbolic and hard links.
    var linkName: [UInt8]
    /// Bytes of data that follow the header.
    var size: Int64
    var mode: UInt32
    var uid: Int64
    var gid: Int64
    var mtime: (seconds: Int64, nanoseconds: Int)
}

/// Reads tar entries (ustar, pax `x`/`g`, GNU `L`/`K`) from a decompressed stream.
///
/// After `next()` returns an entry, its data can be consumed with `readData`; whatever is left
/// unread is skipped by the following `next()`.
final class TarReader {
    /// The cap on pax extended headers and GNU long names.
    static let maxMetadataSize = 1 << 20
    /// The cap on metadata headers in a row before a real entry.
    static let maxMetadataRun = 64

    private let stream: GzipReader
    private let header = UnsafeMutableRawBufferPointer.allocate(byteCount: TarHeader.blockSize, alignment: 8)
    private var dataRemaining: Int64 = 0
    private var paddingRemaining: Int64 = 0
    private var globals = PaxRecords()
    private var finished = false
    /// The last entry's name, to locate damage in messages.
    private(set) var lastName: [UInt8]?

    init(stream: GzipReader) {
        self.stream = stream
    }

    deinit { header.deallocate() }

    /// The next entry, or nil after the end-of-archive marker (two zero blocks).
    func next() throws -> TarEntry? {
        guard !finished else { return nil }
        try skip(dataRemaining + paddingRemaining)
        dataRemaining = 0
        paddingRemaining = 0
        var local = PaxRecords()
        var longName: [UInt8]?
        var longLink: [UInt8]?
        var metadataRun = 0
        var sawZeroBlock = false
        while true {
            guard try readBlock() else {
                throw ArchiveError(.truncated, "the tar stream ends without its end-of-archive marker" + after)
            }
            if TarHeader.isZeroBlock(UnsafeRawBufferPointer(header)) {
                if sawZeroBlock {
                    finished = true
                    return nil
                }
                sawZeroBlock = true
                continue
            }
            // A lone zero block followed by a header is tolerated, as GNU tar does.
            sawZeroBlock = false
            let h: TarHeader
            do {
                h = try TarHeader(block: UnsafeRawBufferPointer(header))
            } catch var error as ArchiveError {
                error.detail += after
                throw error
            }
            switch h.typeflag {
            case UInt8(ascii: "x"), UInt8(ascii: "g"), UInt8(ascii: "L"), UInt8(ascii: "K"):
                metadataRun += 1
                guard metadataRun <= Self.maxMetadataRun else {
                    throw ArchiveError(.corrupt, "more than \(Self.maxMetadataRun) metadata headers in a row" + after)
                }
                let data = try readMetadata(size: h.size, kind: h.typeflag)
                switch h.typeflag {
                case UInt8(ascii: "x"): local = local.merged(with: try PaxRecords(parsing: data))
                case UInt8(ascii: "g"): globals = globals.merged(with: try PaxRecords(parsing: data))
                case UInt8(ascii: "L"): longName = Self.untilNUL(data)
                default: longLink = Self.untilNUL(data)
                }
                continue
            case UInt8(ascii: "V"):
                // A GNU volume label names the archive, not a file.
                try skip(Self.padded(h.size))
                continue
            default:
                break
            }
            let pax = globals.merged(with: local)
            var kind = h.kind
            if pax.sparse { kind = .sparse }
            let size = pax.size ?? h.size
            let entry = TarEntry(
                kind: kind,
                name: pax.path ?? longName ?? h.name,
                linkName: pax.linkPath ?? longLink ?? h.linkName,
                size: size,
                mode: h.mode,
                uid: pax.uid ?? h.uid,
                gid: pax.gid ?? h.gid,
                mtime: pax.mtime ?? (h.mtime, 0))
            dataRemaining = size
            paddingRemaining = Self.padded(size) - size
            lastName = entry.name
            return entry
        }
    }

    /// Feeds the current entry's remaining data to `body`, chunk by chunk, straight from the
    /// inflate buffer.
    func readData(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        while dataRemaining > 0 {
            guard let chunk = try stream.read(upTo: Int(clamping: dataRemaining)) else {
                throw ArchiveError(.truncated, "the tar stream ends inside the data of an entry" + after)
            }
            dataRemaining -= Int64(chunk.count)
            try body(chunk)
        }
    }

    /// Reads the rest of the gzip stream after the end-of-archive marker (tar pads archives to
    /// whole records); the gzip CRC of it is still checked.
    func finish(limit: Int64) throws -> Int64 {
        try stream.drain(limit: limit)
    }

    private var after: String {
        lastName.map { " (after entry \"\(ArchiveError.displayName($0))\")" } ?? ""
    }

    private func readBlock() throws -> Bool {
        var filled = 0
        while filled < TarHeader.blockSize {
            guard let chunk = try stream.read(upTo: TarHeader.blockSize - filled) else {
                if filled == 0 { return false }
                throw ArchiveError(.truncated, "the tar stream ends inside a header" + after)
            }
            UnsafeMutableRawBufferPointer(rebasing: header[filled..<(filled + chunk.count)]).copyMemory(from: chunk)
            filled += chunk.count
        }
        return true
    }

    private func readMetadata(size: Int64, kind: UInt8) throws -> [UInt8] {
        guard size <= Self.maxMetadataSize else {
            let what = kind == UInt8(ascii: "x") || kind == UInt8(ascii: "g") ? "pax extended header" : "GNU long name"
            throw ArchiveError(.limitExceeded, "a \(what) of \(size) bytes exceeds the 1 MiB limit" + after)
        }
        var data = [UInt8]()
        data.reserveCapacity(Int(size))
        var remaining = size
        while remaining > 0 {
            guard let chunk = try stream.read(upTo: Int(remaining)) else {
                throw ArchiveError(.truncated, "the tar stream ends inside a metadata header" + after)
            }
            data.append(contentsOf: chunk)
            remaining -= Int64(chunk.count)
        }
        try skip(Self.padded(size) - size)
        return data
    }

    private func skip(_ count: Int64) throws {
        var remaining = count
        while remaining > 0 {
            guard let chunk = try stream.read(upTo: Int(clamping: remaining)) else {
                throw ArchiveError(.truncated, "the tar stream ends inside the data of an entry" + after)
            }
            remaining -= Int64(chunk.count)
        }
    }

    /// The size rounded up to whole blocks (saturating: an absurd size reads as truncation).
    static func padded(_ size: Int64) -> Int64 {
        size > Int64.max - 511 ? Int64.max : (size + 511) & ~511
    }

    private static func untilNUL(_ data: [UInt8]) -> [UInt8] {
        if let nul = data.firstIndex(of: 0) { return Array(data[..<nul]) }
        return data
    }
}
