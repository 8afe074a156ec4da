/// Writes POSIX ustar archives (with pax headers for long names) to a byte sink. Used by the fleet
/// generator and tests; the restore path only reads tar.
public struct TarWriter {
    public enum EntryType: UInt8 {
        case file = 0x30      // '0'
        case hardLink = 0x31  // '1'
        case symlink = 0x32   // '2'
        case directory = 0x35 // '5'
    }

    private let sink: (UnsafeRawBufferPointer) throws -> Void
    private var header = [UInt8](repeating: 0, count: 512)
    private static let zeros = [UInt8](repeating: 0, count: 1024)

    public init(sink: @escaping (UnsafeRawBufferPointer) throws -> Void) {
        self.sink = sink
    }

    /// Writes a header; for files, follow with exactly `size` bytes via `writeData` then `pad(size)`.
    public mutating func writeHeader(name: String, type: EntryType, size: Int64 = 0, mode: Int = 0o644,
                                     mtime: Int64 = 0, linkName: String = "", uid: Int = 0, gid: Int = 0) throws {
        let nameBytes = Array(name.utf8), linkBytes = Array(linkName.utf8)
        if nameBytes.count > 100 || linkBytes.count > 100 {
            var records = ""
            if nameBytes.count > 100 { records += Self.paxRecord("path", name) }
            if linkBytes.count > 100 { records += Self.paxRecord("linkpath", linkName) }
            let payload = Array(records.utf8)
            try writeRawHeader(name: Array("PaxHeaders/\(name.utf8.count)".utf8), type: 0x78, size: Int64(payload.count),
                               mode: 0o644, mtime: mtime, link: [], uid: 0, gid: 0)
            try payload.withUnsafeBytes { try sink($0) }
            try pad(Int64(payload.count))
        }
        try writeRawHeader(name: Array(nameBytes.prefix(100)), type: type.rawValue, size: size, mode: mode,
                           mtime: mtime, link: Array(linkBytes.prefix(100)), uid: uid, gid: gid)
    }

    public func writeData(_ bytes: UnsafeRawBufferPointer) throws { try sink(bytes) }

    /// Pads file data to the 512-byte block boundary.
    public func pad(_ size: Int64) throws {
        let rest = Int(size % 512)
        if rest != 0 { try Self.zeros.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<(512 - rest)])) } }
    }

    /// Writes the end-of-archive marker (two zero blocks).
    public func finish() throws {
        try Self.zeros.withUnsafeBytes { try sink($0) }
    }

    private static func paxRecord(_ key: String, _ value: String) -> String {
        let body = " \(key)=\(value)\n"
        var length = body.utf8.count + 1
        while "\(length)".count + body.utf8.count != length { length = "\(length)".count + body.utf8.count }
        return "\(length)\(body)"
    }

    private mutating func writeRawHeader(name: [UInt8], type: UInt8, size: Int64, mode: Int, mtime: Int64,
                                         link: [UInt8], uid: Int, gid: Int) throws {
        for i in 0..<512 { header[i] = 0 }
        func put(_ bytes: [UInt8], at offset: Int) { for (i, b) in bytes.enumerated() { header[offset + i] = b } }
        func octal(_ value: Int64, at offset: Int, width: Int) {
            let digits = Array(String(value, radix: 8).utf8)
            let padded = [UInt8](repeating: UInt8(ascii: "0"), count: max(0, width - 1 - digits.count)) + digits
            put(padded, at: offset)
        }
        put(name, at: 0)
        octal(Int64(mode), at: 100, width: 8)
        octal(Int64(uid), at: 108, width: 8)
        octal(Int64(gid), at: 116, width: 8)
        octal(size, at: 124, width: 12)
        octal(mtime, at: 136, width: 12)
        for i in 148..<156 { header[i] = UInt8(ascii: " ") }
        header[156] = type
        put(link, at: 157)
        put(Array("ustar\u{0}00".utf8), at: 257)
        let sum = header.reduce(0) { $0 + Int64($1) }
        let digits = Array(String(sum, radix: 8).utf8)
        put([UInt8](repeating: UInt8(ascii: "0"), count: max(0, 6 - digits.count)) + digits + [0, UInt8(ascii: " ")], at: 148)
        try header.withUnsafeBytes { try sink($0) }
    }
}
