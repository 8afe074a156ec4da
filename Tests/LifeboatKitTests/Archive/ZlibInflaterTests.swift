import CLinux
import CZlib
import Foundation
@testable import LifeboatKit
import Testing

/// zlib inflates, Lifeboat reads the gzip framing and computes the CRC-32: the CRC is zlib's
/// whatever the length, alignment and split, and the framing holds however the bytes arrive.
@Suite struct ZlibInflaterTests {
    static func zlib(_ bytes: [UInt8], from crc: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBufferPointer { UInt32(truncatingIfNeeded: crc32_z(uLong(crc), $0.baseAddress, z_size_t($0.count))) }
    }

    static func ours(_ bytes: ArraySlice<UInt8>, from crc: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { CRC32.update(crc, $0) }
    }

    @Test func matchesZlibForEveryLengthAndAlignment() {
        var generator = SplitMix64(seed: 17)
        let data = (0..<(1 << 20)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        for offset in 0..<16 {
            for length in Array(0...300) + [1_023, 1_024, 4_095, 65_536 + 7, 1 << 19] {
                let slice = data[offset..<(offset + length)]
                #expect(Self.ours(slice) == Self.zlib(Array(slice)), "offset \(offset), length \(length)")
            }
        }
        // Bytes that stress the carries: all ones, all zeros.
        for byte: UInt8 in [0x00, 0xFF] {
            let run = [UInt8](repeating: byte, count: 4_099)
            #expect(Self.ours(run[...]) == Self.zlib(run))
        }
    }

    @Test func continuesAcrossCallsAsOneComputation() {
        var generator = SplitMix64(seed: 5)
        let data = (0..<200_000).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let whole = Self.zlib(data)
        for cut in [0, 1, 15, 16, 63, 64, 65, 1_000, 131_072, 199_999, 200_000] {
            #expect(Self.ours(data[cut...], from: Self.ours(data[..<cut])) == whole, "cut at \(cut)")
        }
        // The accelerated path is the one this machine's extractions take (x86-64 has PCLMULQDQ).
        #if arch(x86_64)
        #expect(CRC32.accelerated)
        #endif
    }

    /// Inflates `member` (one gzip member) handing the inflater `step` input bytes and at most
    /// `room` output bytes at a time; the output, or the error.
    static func inflate(_ member: [UInt8], step: Int, room: Int) throws -> [UInt8] {
        let inflater = try ZlibInflater()
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: room)
        var (at, window) = (0, step)
        while true {
            let end = min(at + window, member.count)
            let progress = try member[at..<end].withUnsafeBytes { input in
                try buffer.withUnsafeMutableBytes { try inflater.inflate(input, into: $0) }
            }
            output += buffer[..<progress.produced]
            at += progress.consumed
            if progress.memberEnded { return output }
            // No progress: more input, as GzipReader gives it (never the same call again).
            guard progress.consumed > 0 || progress.produced > 0 else {
                guard end < member.count else { throw ArchiveError(.truncated, "ends in the middle of the member") }
                window += step
                continue
            }
            window = step
        }
    }

    @Test func headerFieldsAndTrailerSplitAtEveryByte() throws {
        var tar = TarBuilder()
        for i in 0..<12 { tar.file("f\(i)", String(repeating: "line \(i)\n", count: 30 * i)) }
        tar.end()
        let dir = TestDirectory()
        let path = dir.sub("member.gz")
        try writeGzip(tar.bytes, to: path)
        let plain = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let member = InflateEngineTests.withHeaderFields(plain)
        for (step, room) in [(1, 5), (2, 1), (3, 4_096), (member.count, 1 << 20)] {
            #expect(try Self.inflate(member, step: step, room: room) == tar.bytes, "step \(step), room \(room)")
        }
        // Every check holds one byte at a time too: the header CRC, the data's CRC-32, ISIZE.
        let headerLength = member.count - plain.count + 10
        for (offset, message) in [(headerLength - 1, "header crc mismatch"), (member.count - 6, "incorrect data check"),
                                  (member.count - 3, "incorrect length check"), (2, "unknown compression method")] {
            var damaged = member
            damaged[offset] ^= 0x01
            do {
                _ = try Self.inflate(damaged, step: 1, room: 3)
                Issue.record("byte \(offset) damaged (\(message)): accepted")
            } catch let error as ArchiveError {
                #expect(error.code == .corrupt && error.description.contains(message), "\(error)")
            }
        }
    }
}
