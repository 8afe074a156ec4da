/// The kinds of tar entries Lifeboat knows.
enum TarEntryKind: Equatable {
    case regular, hardLink, symlink, directory, characterDevice, blockDevice, fifo
    case unsupported(UInt8)
}

/// One 512-byte tar header block, decoded (ustar, GNU, star and old V7 layouts).
struct TarHeader {
    var typeflag: UInt8
    var name: [UInt8]
    var linkName: [UInt8]
    var mode: UInt32
    var uid: Int64
    var gid: Int64
    var size: Int64
    var mtime: Int64
    /// An old GNU sparse file's ('S') real size; its map is read by `TarReader`.
    var oldGNURealSize: Int64 = 0

    static let blockSize = 512

    /// True when every byte of the block is zero (half of the end-of-archive marker).
    static func isZeroBlock(_ block: UnsafeRawBufferPointer) -> Bool {
        // Compare eight bytes at a time; the block is 512 bytes.
        var acc: UInt64 = 0
        var offset = 0
        while offset < blockSize {
            acc |= block.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            offset += 8
        }
        return acc == 0
    }

    /// Decodes a header block, verifying its checksum (signed and unsigned sums are both accepted,
    /// as GNU tar does for archives written by old tars).
    init(block b: UnsafeRawBufferPointer) throws {
        guard let stored = try? Self.number(b, 148, 8) else {
            throw ArchiveError(.corrupt, "a tar header has an unreadable checksum field (not a tar archive, or damaged)")
        }
        var unsigned: Int64 = 0
        var signed: Int64 = 0
        for i in 0..<Self.blockSize {
            let byte = (148..<156).contains(i) ? UInt8(ascii: " ") : b[i]
            unsigned += Int64(byte)
            signed += Int64(Int8(bitPattern: byte))
        }
        guard stored == unsigned || stored == signed else {
            throw ArchiveError(.corrupt, "a tar header checksum does not match (not a tar archive, or damaged)")
        }
        typeflag = b[156]
        mode = UInt32(truncatingIfNeeded: try Self.number(b, 100, 8, field: "mode"))
        uid = try Self.number(b, 108, 8, field: "uid")
        gid = try Self.number(b, 116, 8, field: "gid")
        size = try Self.number(b, 124, 12, field: "size")
        mtime = try Self.number(b, 136, 12, field: "mtime", allowNegative: true)
        guard size >= 0 else { throw ArchiveError(.corrupt, "a tar header has a negative size") }
        if typeflag == UInt8(ascii: "S") {
            oldGNURealSize = try Self.number(b, 483, 12, field: "sparse real size")
        }
        linkName = Self.string(b, 157, 100)
        let posixUstar = Self.matches(b, 257, [0x75, 0x73, 0x74, 0x61, 0x72, 0x00])  // "ustar\0"
        var name = Self.string(b, 0, 100)
        // POSIX ustar splits long names into prefix + name; GNU uses that area for other fields.
        if posixUstar {
            let prefix = Self.string(b, 345, 155)
            if !prefix.isEmpty { name = prefix + [UInt8(ascii: "/")] + name }
        }
        self.name = name
    }

    /// The entry kind, as GNU tar extracts it: an old-style regular file whose (final) name ends in
    /// "/" is a directory, and a type Lifeboat does not know (vendor extensions such as Solaris'
    /// ACL 'A' entries, the obsolete GNU 'N') is extracted as a regular file, with its data.
    static func kind(typeflag: UInt8, name: [UInt8]) -> TarEntryKind {
        switch typeflag {
        case UInt8(ascii: "1"): return .hardLink
        case UInt8(ascii: "2"): return .symlink
        case UInt8(ascii: "3"): return .characterDevice
        case UInt8(ascii: "4"): return .blockDevice
        case UInt8(ascii: "5"), UInt8(ascii: "D"): return .directory
        case UInt8(ascii: "6"): return .fifo
        // A GNU multi-volume continuation: the start of the file is on another volume.
        case UInt8(ascii: "M"): return .unsupported(typeflag)
        // A GNU sparse file is a regular file whose holes are left out (see `TarReader`).
        case UInt8(ascii: "S"): return .regular
        default:
            return name.last == UInt8(ascii: "/") ? .directory : .regular
        }
    }

    /// Whether data follows the header. GNU tar reads data only for the kinds it extracts as
    /// files (and the listing of a 'D' dumpdir); whatever the size field of a directory, link,
    /// device or FIFO says, no data follows it (old writers put sizes there).
    static func carriesData(typeflag: UInt8, kind: TarEntryKind) -> Bool {
        switch kind {
        case .regular, .unsupported: return true
        case .directory: return typeflag == UInt8(ascii: "D")
        case .hardLink, .symlink, .characterDevice, .blockDevice, .fifo: return false
        }
    }

    private static func matches(_ b: UnsafeRawBufferPointer, _ offset: Int, _ bytes: [UInt8]) -> Bool {
        for (i, byte) in bytes.enumerated() where b[offset + i] != byte { return false }
        return true
    }

    /// A NUL-terminated (or full-width) string field.
    static func string(_ b: UnsafeRawBufferPointer, _ offset: Int, _ length: Int) -> [UInt8] {
        var end = offset
        while end < offset + length, b[end] != 0 { end += 1 }
        return Array(b[offset..<end])
    }

    /// A numeric field: octal (space/NUL padded, terminated or not), GNU base-256 (high bit of the
    /// first byte set) or GNU 1.13's base-64 (a leading '+' or '-').
    static func number(
        _ b: UnsafeRawBufferPointer, _ offset: Int, _ length: Int, field: String = "checksum",
        allowNegative: Bool = false
    ) throws -> Int64 {
        let first = b[offset]
        if first & 0x80 != 0 {
            // Base-256: 0x80 marks a positive number, 0xFF a negative one in two's complement.
            let negative = first == 0xFF
            guard first == 0x80 || negative else {
                throw ArchiveError(.corrupt, "a tar header has a malformed base-256 \(field) field")
            }
            guard !negative || allowNegative else {
                throw ArchiveError(.corrupt, "a tar header has a negative \(field)")
            }
            var value: UInt64 = negative ? UInt64.max : 0
            for i in (offset + 1)..<(offset + length) {
                guard value >> 56 == (negative ? 0xFF : 0) else {
                    throw ArchiveError(.corrupt, "a tar header's \(field) does not fit in 64 bits")
                }
                value = value << 8 | UInt64(b[i])
            }
            let signed = Int64(bitPattern: value)
            guard negative == (signed < 0) else {
                throw ArchiveError(.corrupt, "a tar header's \(field) does not fit in 64 bits")
            }
            return signed
        }
        var i = offset
        let end = offset + length
        while i < end, b[i] == UInt8(ascii: " ") || b[i] == 0 { i += 1 }
        var value: Int64 = 0
        if i < end, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            // Base-64, written by GNU tar 1.13.14 to 1.13.25 for values octal could not hold.
            let negative = b[i] == UInt8(ascii: "-")
            guard !negative || allowNegative else {
                throw ArchiveError(.corrupt, "a tar header has a negative \(field)")
            }
            i += 1
            while i < end, let digit = base64Digit(b[i]) {
                guard value < (Int64.max >> 6) else {
                    throw ArchiveError(.corrupt, "a tar header's \(field) is too large")
                }
                value = value << 6 | Int64(digit)
                i += 1
            }
            if negative { value = -value }
        } else {
            while i < end, b[i] >= UInt8(ascii: "0"), b[i] <= UInt8(ascii: "7") {
                guard value < (Int64.max >> 3) else {
                    throw ArchiveError(.corrupt, "a tar header's \(field) is too large")
                }
                value = value << 3 | Int64(b[i] - UInt8(ascii: "0"))
                i += 1
            }
        }
        // Only spaces and NULs may follow the digits.
        while i < end {
            guard b[i] == UInt8(ascii: " ") || b[i] == 0 else {
                throw ArchiveError(.corrupt, "a tar header has a malformed \(field) field")
            }
            i += 1
        }
        return value
    }

    private static func base64Digit(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }
}
