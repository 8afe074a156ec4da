/// One entry of a tar archive, after pax and GNU long-name headers were applied.
struct TarEntry {
    var kind: TarEntryKind
    /// The path as stored (`GNU.sparse.name`, pax `path` or GNU `L` take precedence over the
    /// header's name).
    var name: [UInt8]
    /// The link target for symbolic and hard links.
    var linkName: [UInt8]
    /// Bytes of data that follow the header (a sparse file's: its regions' data, after the map).
    var size: Int64
    /// For a sparse file: where its data goes, and its real size.
    var sparse: SparseMap?
    var mode: UInt32
    var uid: Int64
    var gid: Int64
    var mtime: (seconds: Int64, nanoseconds: Int)
}

/// Reads tar entries from a decompressed stream, the way GNU tar reads them: ustar, pax (`x`,
/// Solaris `X`, `g`), GNU (`L`/`K` long names, `S` sparse files, `D` dumpdirs, `V` labels), pax
/// sparse files (0.0, 0.1, 1.0), star and V7 archives.
///
/// After `next()` returns an entry, its data can be consumed with `readData`; whatever is left
/// unread is skipped by the following `next()`.
///
/// `max_bytes` bounds everything the archive declares, before any of it is read: every entry's
/// data (a sparse file's real size) and every metadata header (pax, long names, sparse maps).
/// Metadata is never held whole: pax headers are parsed as they stream and only the values
/// Lifeboat uses are kept, so memory stays bounded whatever their size.
final class TarReader {
    /// The cap on metadata headers in a row before a real entry.
    static let maxMetadataRun = 64

    private let stream: GzipReader
    private let header = UnsafeMutableRawBufferPointer.allocate(byteCount: TarHeader.blockSize, alignment: 8)
    private var dataRemaining: Int64 = 0
    private var paddingRemaining: Int64 = 0
    /// The current entry's sparse map, until its data is read.
    private var sparse: SparseMap?
    private var globals = PaxRecords()
    private var finished = false
    private let maxBytes: Int64
    private let maxSparseRegions: Int
    /// What is left of `max_bytes`.
    private(set) var bytesLeft: Int64
    /// The last entry's name, to locate damage in messages.
    private(set) var lastName: [UInt8]?

    /// - Parameters:
    ///   - maxBytes: the bound on the entries' data and the metadata (`max_bytes`).
    ///   - maxSparseRegions: the bound on one sparse file's regions (`max_entries`).
    init(stream: GzipReader, maxBytes: Int64, maxSparseRegions: Int) {
        self.stream = stream
        self.maxBytes = maxBytes
        self.maxSparseRegions = maxSparseRegions
        bytesLeft = maxBytes
    }

    deinit { header.deallocate() }

    /// The next entry, or nil after the end-of-archive marker: two zero blocks, or a single one at
    /// the very end of the stream (GNU tar warns of "a lone zero block" and stops there too).
    func next() throws -> TarEntry? {
        guard !finished else { return nil }
        try skip(dataRemaining + paddingRemaining)
        dataRemaining = 0
        paddingRemaining = 0
        sparse = nil
        var local = PaxRecords()
        var longName: [UInt8]?
        var longLink: [UInt8]?
        var metadataRun = 0
        while true {
            guard try readBlock() else {
                throw ArchiveError(.truncated, "the tar stream ends without its end-of-archive marker" + after)
            }
            if TarHeader.isZeroBlock(UnsafeRawBufferPointer(header)) {
                guard try readBlock(), !TarHeader.isZeroBlock(UnsafeRawBufferPointer(header)) else {
                    finished = true
                    return nil
                }
                // GNU tar stops at a lone zero block with a warning and leaves out everything after
                // it; a restore must not silently drop entries.
                throw ArchiveError(.corrupt, "a lone zero block inside the archive is followed by more data (GNU tar would stop there and leave the rest out)" + after)
            }
            let h: TarHeader
            do {
                h = try TarHeader(block: UnsafeRawBufferPointer(header))
            } catch var error as ArchiveError {
                error.detail += after
                throw error
            }
            switch h.typeflag {
            case UInt8(ascii: "x"), UInt8(ascii: "X"), UInt8(ascii: "g"), UInt8(ascii: "L"), UInt8(ascii: "K"):
                metadataRun += 1
                guard metadataRun <= Self.maxMetadataRun else {
                    throw ArchiveError(.corrupt, "more than \(Self.maxMetadataRun) metadata headers in a row" + after)
                }
                switch h.typeflag {
                case UInt8(ascii: "L"): longName = try readLongName(size: h.size)
                case UInt8(ascii: "K"): longLink = try readLongName(size: h.size)
                default:
                    var parser = PaxParser(maxSparseRegions: maxSparseRegions)
                    try readMetadata(size: h.size, what: "pax extended header") { try parser.feed($0) }
                    let records: PaxRecords
                    do {
                        records = try parser.finish()
                    } catch var error as ArchiveError {
                        error.detail += after
                        throw error
                    }
                    if h.typeflag == UInt8(ascii: "g") {
                        globals = globals.merged(with: records)
                    } else {
                        local = local.merged(with: records)
                    }
                }
                continue
            case UInt8(ascii: "V"):
                // A GNU volume label names the archive, not a file.
                try readMetadata(size: h.size, what: "GNU volume label") { _ in }
                continue
            default:
                break
            }
            let pax = globals.merged(with: local)
            let name = pax.sparse.name ?? pax.path ?? longName ?? h.name
            let kind = TarHeader.kind(typeflag: h.typeflag, name: name)
            lastName = name
            var entry = TarEntry(
                kind: kind,
                name: name,
                linkName: pax.linkPath ?? longLink ?? h.linkName,
                size: TarHeader.carriesData(typeflag: h.typeflag, kind: kind) ? pax.size ?? h.size : 0,
                mode: h.mode,
                uid: pax.uid ?? h.uid,
                gid: pax.gid ?? h.gid,
                mtime: pax.mtime ?? (h.mtime, 0))
            do {
                if kind == .regular, h.typeflag == UInt8(ascii: "S") {
                    try charge(entry.size, realSize: h.oldGNURealSize, entry: name)
                    entry.sparse = try readOldGNUSparseMap(realSize: h.oldGNURealSize)
                } else if kind == .regular, pax.sparse.isPresent {
                    if let problem = pax.sparse.problem { throw problem }
                    guard let realSize = pax.sparse.realSize else {
                        throw SparseMap.malformed("no GNU.sparse.size or GNU.sparse.realsize")
                    }
                    try charge(entry.size, realSize: realSize, entry: name)
                    if pax.sparse.mapInData {
                        guard pax.sparse.major == 1, pax.sparse.minor == 0 else {
                            throw ArchiveError(.corrupt, "the pax sparse format \(pax.sparse.major ?? 0).\(pax.sparse.minor ?? 0) is unknown (GNU tar writes 0.0, 0.1 and 1.0)")
                        }
                        let (regions, mapBytes) = try readSparseMapInData(size: entry.size)
                        entry.size -= mapBytes
                        entry.sparse = SparseMap(realSize: realSize, regions: regions)
                    } else {
                        entry.sparse = SparseMap(realSize: realSize, regions: pax.sparse.regions ?? [])
                    }
                } else {
                    try charge(entry.size, realSize: 0, entry: name)
                }
                try entry.sparse?.validate(dataSize: entry.size)
            } catch var error as ArchiveError {
                if error.entry == nil { error.entry = ArchiveError.displayName(name) }
                throw error
            }
            sparse = entry.sparse
            dataRemaining = entry.size
            paddingRemaining = Self.padded(entry.size) - entry.size
            return entry
        }
    }

    /// Feeds the current entry's remaining data to `body`, chunk by chunk, straight from the
    /// inflate buffer, with the offset in the file where each chunk goes (sequential, except
    /// across the holes of a sparse file).
    func readData(_ body: (UnsafeRawBufferPointer, Int64) throws -> Void) throws {
        if let map = sparse {
            sparse = nil
            for region in map.regions { try deliver(region.length, at: region.offset, body) }
        } else {
            try deliver(dataRemaining, at: 0, body)
        }
    }

    /// Reads the rest of the gzip stream after the end-of-archive marker (tar pads archives to
    /// whole records, and GNU tar ignores whatever follows the marker); the gzip CRC of it is
    /// still checked, but it must not be a way around max_bytes.
    func finish() throws -> Int64 {
        try stream.drain(limit: bytesLeft + (1 << 20))
    }

    private var after: String {
        lastName.map { " (after entry \"\(ArchiveError.displayName($0))\")" } ?? ""
    }

    private func deliver(_ count: Int64, at offset: Int64, _ body: (UnsafeRawBufferPointer, Int64) throws -> Void) throws {
        var left = count
        var position = offset
        while left > 0 {
            guard let chunk = try stream.read(upTo: Int(clamping: left)) else {
                throw ArchiveError(.truncated, "the tar stream ends inside the data of an entry" + after)
            }
            dataRemaining -= Int64(chunk.count)
            left -= Int64(chunk.count)
            try body(chunk, position)
            position += Int64(chunk.count)
        }
    }

    /// Counts an entry against `max_bytes` before any of its data is read: a bomb stops here.
    private func charge(_ size: Int64, realSize: Int64, entry name: [UInt8]) throws {
        let declared = max(size, realSize)
        guard declared <= bytesLeft else {
            throw ArchiveError(.limitExceeded,
                               "the entries' data exceeds \(ByteSize.format(maxBytes)) (max_bytes); this entry alone declares \(ByteSize.format(declared))",
                               entry: ArchiveError.displayName(name))
        }
        bytesLeft -= declared
    }

    /// Reads a metadata header's data (padded to whole blocks) through `body`, counted against
    /// `max_bytes` first.
    private func readMetadata(size: Int64, what: String, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let padded = Self.padded(size)
        guard padded <= bytesLeft else {
            throw ArchiveError(.limitExceeded,
                               "a \(what) of \(ByteSize.format(size)) exceeds what is left of \(ByteSize.format(maxBytes)) (max_bytes)" + after)
        }
        bytesLeft -= padded
        var remaining = size
        while remaining > 0 {
            guard let chunk = try stream.read(upTo: Int(clamping: remaining)) else {
                throw ArchiveError(.truncated, "the tar stream ends inside a \(what)" + after)
            }
            remaining -= Int64(chunk.count)
            try body(chunk)
        }
        try skip(padded - size)
    }

    /// A GNU long name or link target (`L`, `K`), NUL-terminated or not. Only one byte more than
    /// the longest name the safety rules allow is kept: a longer name is rejected all the same.
    private func readLongName(size: Int64) throws -> [UInt8] {
        var name: [UInt8] = []
        let keep = EntryPath.maxPathBytes + 1
        try readMetadata(size: size, what: "GNU long name") { chunk in
            if name.count < keep { name.append(contentsOf: chunk.prefix(keep - name.count)) }
        }
        if let nul = name.firstIndex(of: 0) { name.removeSubrange(nul...) }
        return name
    }

    /// The map of an old GNU sparse file ('S'): four regions in the header, more in extension
    /// blocks while the "extended" flag is set. As in GNU tar, an empty descriptor ends the map
    /// and no extension block is read after it.
    private func readOldGNUSparseMap(realSize: Int64) throws -> SparseMap {
        var regions: [SparseMap.Region] = []
        var more = try SparseMap.readOldGNU(UnsafeRawBufferPointer(header), at: 386, count: 4, into: &regions, max: maxSparseRegions)
        var extended = header[482] != 0
        while more, extended {
            guard TarHeader.blockSize <= bytesLeft else {
                throw ArchiveError(.limitExceeded, "a sparse file's map exceeds what is left of \(ByteSize.format(maxBytes)) (max_bytes)")
            }
            bytesLeft -= Int64(TarHeader.blockSize)
            guard try readBlock() else {
                throw ArchiveError(.truncated, "the tar stream ends inside a sparse file's map")
            }
            more = try SparseMap.readOldGNU(UnsafeRawBufferPointer(header), at: 0, count: 21, into: &regions, max: maxSparseRegions)
            extended = header[504] != 0
        }
        return SparseMap(realSize: realSize, regions: regions)
    }

    /// The map of a pax 1.0 sparse file, at the start of its data: the number of regions, then
    /// each region's offset and length, in decimal, one per line, padded to a whole block.
    /// Returns the regions and the bytes of data the map took.
    private func readSparseMapInData(size: Int64) throws -> ([SparseMap.Region], Int64) {
        var parser = SparseNumberParser(max: maxSparseRegions)
        var mapBytes: Int64 = 0
        var wanted: Int?
        while wanted.map({ parser.numbers.count < 1 + 2 * $0 }) ?? true {
            guard mapBytes + Int64(TarHeader.blockSize) <= size else {
                throw SparseMap.malformed("the map runs past the entry's data")
            }
            guard try readBlock() else {
                throw ArchiveError(.truncated, "the tar stream ends inside a sparse file's map")
            }
            mapBytes += Int64(TarHeader.blockSize)
            for byte in header {
                try parser.feed(byte, separator: UInt8(ascii: "\n"))
                if wanted == nil, let count = parser.numbers.first {
                    guard count <= maxSparseRegions else { throw SparseMap.tooManyRegions(maxSparseRegions) }
                    wanted = Int(count)
                }
                if let wanted, parser.numbers.count == 1 + 2 * wanted { break }   // the rest is padding
            }
        }
        return (try parser.regions(from: 1), mapBytes)
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
}
