/// Where the data of a sparse file goes: the regions that hold data, in archive order, and the
/// file's real size. Everything outside the regions is a hole (zeros). The regions' data follow
/// the entry's header one after the other.
///
/// Three encodings, all written by GNU tar and read here as GNU tar reads them: the old GNU 'S'
/// header (four regions in the header, more in extension blocks), pax 0.0 and 0.1
/// (`GNU.sparse.offset`/`numbytes` records, or `GNU.sparse.map`) and pax 1.0 (a decimal map at
/// the start of the entry's data; bsdtar writes it too).
struct SparseMap: Equatable {
    struct Region: Equatable {
        var offset: Int64
        var length: Int64
    }

    var realSize: Int64
    var regions: [Region]

    /// The checks GNU tar makes ("invalid sparse archive member"): no negative numbers, every
    /// region inside the real size, and no more region data than the entry carries.
    func validate(dataSize: Int64) throws {
        guard realSize >= 0 else { throw Self.malformed("a negative real size") }
        var total: Int64 = 0
        for r in regions {
            guard r.offset >= 0, r.length >= 0, r.offset <= realSize, r.length <= realSize - r.offset else {
                throw Self.malformed("a region (offset \(r.offset), \(r.length) bytes) outside the file's \(realSize) bytes")
            }
            guard r.length <= dataSize - total else {
                throw Self.malformed("regions holding more data than the entry's \(dataSize) bytes")
            }
            total += r.length
        }
    }

    static func malformed(_ what: String) -> ArchiveError {
        ArchiveError(.corrupt, "a sparse file's map is malformed: \(what)")
    }

    /// Reads `count` old GNU sparse descriptors (12-byte offset, 12-byte length) at `offset` of a
    /// header or extension block. Returns false once an empty descriptor ends the map.
    static func readOldGNU(_ block: UnsafeRawBufferPointer, at offset: Int, count: Int, into regions: inout [Region],
                           max: Int) throws -> Bool {
        for i in 0..<count {
            let at = offset + i * 24
            // GNU tar: a length field starting with NUL ends the map.
            if block[at + 12] == 0 { return false }
            guard regions.count < max else { throw tooManyRegions(max) }
            regions.append(Region(offset: try TarHeader.number(block, at, 12, field: "sparse offset"),
                                  length: try TarHeader.number(block, at + 12, 12, field: "sparse length")))
        }
        return true
    }

    static func tooManyRegions(_ max: Int) -> ArchiveError {
        ArchiveError(.limitExceeded, "a sparse file's map has more than \(max) regions (max_entries)")
    }
}

/// Decimal numbers separated by one byte (',' in `GNU.sparse.map`, '\n' in a pax 1.0 map), fed a
/// byte at a time so that a map of any length needs no buffer.
struct SparseNumberParser {
    private var value: Int64 = 0
    private var digits = 0
    private(set) var numbers: [Int64] = []
    let max: Int

    init(max: Int) {
        self.max = max
    }

    var isEmpty: Bool { numbers.isEmpty && digits == 0 }

    /// A digit, or the separator ending a number.
    mutating func feed(_ byte: UInt8, separator: UInt8) throws {
        if byte == separator {
            try end()
        } else if byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
            guard digits < 18 else { throw SparseMap.malformed("a number of more than 18 digits") }
            value = value * 10 + Int64(byte - UInt8(ascii: "0"))
            digits += 1
        } else {
            throw SparseMap.malformed("\(String(reflecting: String(UnicodeScalar(byte)))) where a number was expected")
        }
    }

    /// Ends the number being read (a map's last number has no separator after it).
    mutating func end() throws {
        guard digits > 0 else { throw SparseMap.malformed("an empty number") }
        // Two numbers per region.
        guard numbers.count < 2 * max + 1 else { throw SparseMap.tooManyRegions(max) }
        numbers.append(value)
        value = 0
        digits = 0
    }

    /// The numbers from `start` on as (offset, length) pairs.
    func regions(from start: Int = 0) throws -> [SparseMap.Region] {
        guard (numbers.count - start) % 2 == 0 else { throw SparseMap.malformed("an offset without a length") }
        return stride(from: start, to: numbers.count, by: 2).map { SparseMap.Region(offset: numbers[$0], length: numbers[$0 + 1]) }
    }
}
