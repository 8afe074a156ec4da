/// The keys of pax extended headers (`x` for the next entry, `g` for all that follow) Lifeboat
/// uses; the rest (atime, xattrs, charset…) are ignored.
struct PaxRecords {
    var path: [UInt8]?
    var linkPath: [UInt8]?
    var size: Int64?
    var mtime: (seconds: Int64, nanoseconds: Int)?
    var uid: Int64?
    var gid: Int64?
    /// A `GNU.sparse.*` key was present: the entry is a sparse file.
    var sparse = false

    /// Records of `other` override those of `self`.
    func merged(with other: PaxRecords) -> PaxRecords {
        var m = self
        if let v = other.path { m.path = v }
        if let v = other.linkPath { m.linkPath = v }
        if let v = other.size { m.size = v }
        if let v = other.mtime { m.mtime = v }
        if let v = other.uid { m.uid = v }
        if let v = other.gid { m.gid = v }
        m.sparse = m.sparse || other.sparse
        return m
    }

    /// Parses `"<length> <key>=<value>\n"` records; every length must be exact.
    init(parsing data: [UInt8]) throws {
        var i = 0
        while i < data.count {
            // A GNU tar quirk: the data may be NUL padded.
            if data[i] == 0 { break }
            var length = 0
            var j = i
            while j < data.count, data[j] >= UInt8(ascii: "0"), data[j] <= UInt8(ascii: "9"), length < 1 << 24 {
                length = length * 10 + Int(data[j] - UInt8(ascii: "0"))
                j += 1
            }
            guard j > i, j < data.count, data[j] == UInt8(ascii: " "), length > j - i + 1,
                  i + length <= data.count, data[i + length - 1] == UInt8(ascii: "\n")
            else { throw ArchiveError(.corrupt, "a pax extended header has a malformed record") }
            let record = data[(j + 1)..<(i + length - 1)]
            guard let eq = record.firstIndex(of: UInt8(ascii: "=")) else {
                throw ArchiveError(.corrupt, "a pax extended header record has no '='")
            }
            let key = String(decoding: record[record.startIndex..<eq], as: UTF8.self)
            let value = Array(record[(eq + 1)...])
            try apply(key: key, value: value)
            i += length
        }
    }

    init() {}

    private mutating func apply(key: String, value: [UInt8]) throws {
        // An empty value removes a global setting; the header field applies again.
        switch key {
        case "path": path = value.isEmpty ? nil : value
        case "linkpath": linkPath = value.isEmpty ? nil : value
        case "size":
            guard !value.isEmpty else { size = nil; return }
            guard let n = Self.decimal(value[...]), n >= 0 else {
                throw ArchiveError(.corrupt, "a pax size record is not a non-negative integer")
            }
            size = n
        case "uid": uid = value.isEmpty ? nil : Self.decimal(value[...])
        case "gid": gid = value.isEmpty ? nil : Self.decimal(value[...])
        case "mtime": mtime = value.isEmpty ? nil : Self.time(value)
        default:
            if key.hasPrefix("GNU.sparse.") { sparse = true }
        }
    }

    static func decimal(_ bytes: ArraySlice<UInt8>) -> Int64? {
        guard !bytes.isEmpty, bytes.count <= 19 else { return nil }
        var value: Int64 = 0
        for b in bytes {
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int64(b - UInt8(ascii: "0"))
        }
        return value
    }

    /// `seconds[.fraction]`, possibly negative. Malformed times are ignored, as GNU tar does.
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
