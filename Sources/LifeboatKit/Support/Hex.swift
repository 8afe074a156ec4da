extension Sequence<UInt8> {
    /// The bytes as lowercase hex digits (digests, checksums). Built directly: `String(format:)`
    /// per byte cost a third of a millisecond per SHA-256 digest, paid on every job.
    var hexDigits: String {
        var digits: [UInt8] = []
        digits.reserveCapacity(underestimatedCount * 2)
        for byte in self {
            digits.append(Self.hexDigit(byte >> 4))
            digits.append(Self.hexDigit(byte & 0xf))
        }
        return String(decoding: digits, as: UTF8.self)
    }

    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }
}
