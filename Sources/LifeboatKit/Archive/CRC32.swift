import CLinux
import CZlib

/// gzip's CRC-32 (as zlib's `crc32` computes it): by carry-less multiplication where the CPU has
/// it (PCLMULQDQ, 3.4 times as fast), by zlib otherwise.
enum CRC32 {
    static let accelerated = lifeboat_crc32_accelerated() != 0

    /// `crc` continued over `bytes` (start from 0).
    static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return crc }
        if accelerated { return lifeboat_crc32(crc, base, bytes.count) }
        return UInt32(truncatingIfNeeded: crc32_z(uLong(crc), base.assumingMemoryBound(to: Bytef.self), z_size_t(bytes.count)))
    }
}
