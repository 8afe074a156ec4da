/// The keys of pax extended headers (`x`, Solaris `X`, and `g` for all entries that follow)
/// Lifeboat uses; the rest (atime, comments, ACLs, extended attributes, charset…) are ignored.
struct PaxRecords {
    var path: [UInt8]?
    var linkPath: [UInt8]?
    var size: Int64?
    var mtime: (seconds: Int64, nanoseconds: Int)?
    var uid: Int64?
    var gid: Int64?
    /// `GNU.sparse.*`.
    var sparse = Sparse()

    /// The `GNU.sparse.*` keys of GNU tar's pax sparse formats 0.0, 0.1 and 1.0.
    struct Sparse {
        /// `GNU.sparse.major` / `minor`: 1.0 keeps the map at the start of the entry's data.
        var major: Int64?
        var minor: Int64?
        /// `GNU.sparse.name`: the file's name (0.1 and 1.0 put a made-up name in the header); it
        /// wins over `path`, as in GNU tar.
        var name: [UInt8]?
        /// `GNU.sparse.size` (0.x) or `GNU.sparse.realsize` (1.0).
        var realSize: Int64?
        /// The 0.x map (`GNU.sparse.offset`/`numbytes` pairs, or `GNU.sparse.map`).
        var regions: [SparseMap.Region]?
        /// What was wrong with these records, reported with the entry they describe.
        var problem: ArchiveError?

        /// Whether the entry is a sparse file.
        var isPresent: Bool { major != nil || regions != nil || realSize != nil || problem != nil }
        /// Whether the map is at the start of the data (format 1.0).
        var mapInData: Bool { (major ?? 0) >= 1 }
    }

    /// Records of `other` override those of `self`.
    func merged(with other: PaxRecords) -> PaxRecords {
        var m = self
        if let v = other.path { m.path = v }
        if let v = other.linkPath { m.linkPath = v }
        if let v = other.size { m.size = v }
        if let v = other.mtime { m.mtime = v }
        if let v = other.uid { m.uid = v }
        if let v = other.gid { m.gid = v }
        if let v = other.sparse.major { m.sparse.major = v }
        if let v = other.sparse.minor { m.sparse.minor = v }
        if let v = other.sparse.name { m.sparse.name = v }
        if let v = other.sparse.realSize { m.sparse.realSize = v }
        if let v = other.sparse.regions { m.sparse.regions = v }
        if let v = other.sparse.problem { m.sparse.problem = v }
        return m
    }

    static func decimal(_ bytes: ArraySlice<UInt8>) -> Int64? {
        guard !bytes.isEmpty, bytes.count <= 18 else { return nil }
        var value: Int64 = 0
        for b in bytes {
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int64(b - UInt8(ascii: "0"))
        }
        return value
    }

    /// `seconds[.fraction]`, possibly negative. Malformed times are ignored (the header's applies).
    static func time(_ bytes: [UInt8]) -> (seconds: Int64, nanoseconds: Int)? {
        var s = bytes[...]
        let negative = s.first == UInt8(ascii: "-")
        if negative { s = s.dropFirst() }
        let dot = s.firstIndex(of: UInt8(ascii: ".")) ?? s.endIndex
        guard let whole = decimal(s[s.startIndex..<dot]) else { return nil }
        var nanos = 0
        if dot < s.endIndex {
            var scale = 100_000_000
            for b in s[(dot + 1)...] {
                guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return nil }
                nanos += Int(b - UInt8(ascii: "0")) * scale
                scale /= 10
            }
        }
        if negative {
            return nanos == 0 ? (-whole, 0) : (-whole - 1, 1_000_000_000 - nanos)
        }
        return (whole, nanos)
    }
}

/// Parses the `"<length> <key>=<value>\n"` records of one pax extended header as its bytes
/// arrive, keeping only the values Lifeboat uses (names up to one byte past the longest name the
/// safety rules allow, numbers up to 64 bytes). A header of any size — long comments, ACLs and
/// extended attributes make them megabytes — needs no more memory than that; its size counts
/// against `max_bytes` instead (see `TarReader`).
struct PaxParser {
    private(set) var records = PaxRecords()
    private let maxSparseRegions: Int

    private enum State { case length, key, value, padding }
    private var state = State.length
    /// The current record's declared length, and how many of its bytes were seen.
    private var length = 0
    private var consumed = 0
    private var key: [UInt8] = []
    private var value: [UInt8] = []
    private var valueCap = 0
    private var valueOverflow = false
    /// `GNU.sparse.map` values are parsed as they stream.
    private var map: SparseNumberParser?
    /// A 0.0 `GNU.sparse.offset` waiting for its `GNU.sparse.numbytes`.
    private var pendingOffset: Int64?

    private static let maxKeptKey = 64
    private static let maxNumber = 64

    init(maxSparseRegions: Int) {
        self.maxSparseRegions = maxSparseRegions
    }

    mutating func feed(_ bytes: UnsafeRawBufferPointer) throws {
        var i = 0
        while i < bytes.count {
            switch state {
            case .padding:
                // A GNU tar quirk: the data may be NUL padded after the last record.
                return
            case .length:
                let c = bytes[i]
                if consumed == 0, c == 0 { state = .padding; return }
                consumed += 1
                i += 1
                if c == UInt8(ascii: " "), consumed > 1 {
                    guard length > consumed else { throw Self.malformed("a record shorter than its length field") }
                    state = .key
                } else if c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9"), length < Int.max / 20 {
                    length = length * 10 + Int(c - UInt8(ascii: "0"))
                } else {
                    throw Self.malformed("a record that does not start with its length")
                }
            case .key:
                let c = bytes[i]
                consumed += 1
                i += 1
                guard consumed < length else { throw Self.malformed("a record without '='") }
                if c == UInt8(ascii: "=") {
                    beginValue()
                    state = .value
                } else if key.count <= Self.maxKeptKey {
                    key.append(c)   // a key longer than every known one is kept just long enough to be unknown
                }
            case .value:
                let left = length - consumed   // the value's remaining bytes and the final "\n"
                if left == 1 {
                    guard bytes[i] == UInt8(ascii: "\n") else { throw Self.malformed("a record whose length does not match") }
                    i += 1
                    try endRecord()
                    continue
                }
                let n = min(left - 1, bytes.count - i)
                try take(UnsafeRawBufferPointer(rebasing: bytes[i..<(i + n)]))
                consumed += n
                i += n
            }
        }
    }

    /// The records, once every byte of the header was fed.
    func finish() throws -> PaxRecords {
        guard state == .padding || (state == .length && consumed == 0) else {
            throw Self.malformed("a record that runs past the end of the header")
        }
        var records = records
        if pendingOffset != nil, records.sparse.problem == nil {
            records.sparse.problem = SparseMap.malformed("a GNU.sparse.offset without its GNU.sparse.numbytes")
        }
        return records
    }

    private mutating func beginValue() {
        value.removeAll(keepingCapacity: true)
        valueOverflow = false
        map = nil
        switch String(decoding: key, as: UTF8.self) {
        case "path", "linkpath", "GNU.sparse.name":
            valueCap = EntryPath.maxPathBytes + 1   // longer is rejected by the name rules anyway
        case "size", "uid", "gid", "mtime", "GNU.sparse.size", "GNU.sparse.realsize", "GNU.sparse.major",
             "GNU.sparse.minor", "GNU.sparse.offset", "GNU.sparse.numbytes", "GNU.sparse.numblocks":
            valueCap = Self.maxNumber
        case "GNU.sparse.map":
            valueCap = 0
            map = SparseNumberParser(max: maxSparseRegions)
        default:
            valueCap = 0
        }
    }

    private mutating func take(_ bytes: UnsafeRawBufferPointer) throws {
        if map != nil {
            do {
                for b in bytes { try map!.feed(b, separator: UInt8(ascii: ",")) }
            } catch let error as ArchiveError {
                map = nil
                records.sparse.problem = records.sparse.problem ?? error
            }
            return
        }
        let room = valueCap - value.count
        if room > 0 { value.append(contentsOf: bytes.prefix(room)) }
        if bytes.count > room, valueCap > 0 { valueOverflow = true }
    }

    private mutating func endRecord() throws {
        let key = String(decoding: key, as: UTF8.self)
        do {
            try apply(key: key)
        } catch let error as ArchiveError where key.hasPrefix("GNU.sparse.") {
            // Reported with the sparse entry's name once its header is read.
            records.sparse.problem = records.sparse.problem ?? error
        }
        state = .length
        length = 0
        consumed = 0
        self.key.removeAll(keepingCapacity: true)
    }

    private mutating func apply(key: String) throws {
        // An empty value removes a global setting; the header field applies again.
        let number = valueOverflow ? nil : PaxRecords.decimal(value[...])
        switch key {
        case "path": records.path = value.isEmpty ? nil : value
        case "linkpath": records.linkPath = value.isEmpty ? nil : value
        case "size":
            guard !value.isEmpty else { records.size = nil; return }
            guard let number else { throw ArchiveError(.corrupt, "a pax size record is not a non-negative integer") }
            records.size = number
        case "uid": records.uid = number
        case "gid": records.gid = number
        case "mtime":
            guard !value.isEmpty else { records.mtime = nil; return }
            // As a malformed size is: read as damage, not passed over for the header's time.
            guard !valueOverflow, let time = PaxRecords.time(value) else {
                throw ArchiveError(.corrupt, "a pax mtime record is not a time in seconds (\(String(reflecting: String(decoding: value.prefix(40), as: UTF8.self))))")
            }
            records.mtime = time
        case "GNU.sparse.name": records.sparse.name = value.isEmpty ? nil : value
        case "GNU.sparse.size", "GNU.sparse.realsize": records.sparse.realSize = try sparseNumber(key, number)
        case "GNU.sparse.major": records.sparse.major = try sparseNumber(key, number)
        case "GNU.sparse.minor": records.sparse.minor = try sparseNumber(key, number)
        case "GNU.sparse.numblocks":
            _ = try sparseNumber(key, number)
            if records.sparse.regions == nil { records.sparse.regions = [] }
        case "GNU.sparse.offset":
            guard pendingOffset == nil else { throw SparseMap.malformed("two GNU.sparse.offset records in a row") }
            pendingOffset = try sparseNumber(key, number)
        case "GNU.sparse.numbytes":
            guard let offset = pendingOffset else { throw SparseMap.malformed("a GNU.sparse.numbytes without its GNU.sparse.offset") }
            var regions = records.sparse.regions ?? []
            guard regions.count < maxSparseRegions else { throw SparseMap.tooManyRegions(maxSparseRegions) }
            regions.append(SparseMap.Region(offset: offset, length: try sparseNumber(key, number)))
            records.sparse.regions = regions
            pendingOffset = nil
        case "GNU.sparse.map":
            guard var map else { return }   // malformed: the problem is recorded
            if !map.isEmpty { try map.end() }
            records.sparse.regions = try map.regions()
        default:
            break
        }
    }

    private func sparseNumber(_ key: String, _ number: Int64?) throws -> Int64 {
        guard let number else { throw SparseMap.malformed("\(key) is not a non-negative integer") }
        return number
    }

    private static func malformed(_ what: String) -> ArchiveError {
        ArchiveError(.corrupt, "a pax extended header is malformed: \(what)")
    }
}
