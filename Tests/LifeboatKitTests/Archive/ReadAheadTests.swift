import Foundation
import Synchronization
import Testing
@testable import LifeboatKit

/// Inflating ahead on a thread of its own changes nothing but the time taken: the same trees,
/// reports and failures (message for message) as reading inline; progress on the caller's
/// thread; and a reader given up early stops reading.
@Suite struct ReadAheadTests {
    /// A tar of about 700 KiB: many small files and a few large ones, compressible and not, over
    /// several of the inflating thread's buffers (a debug build extracts it in about a second).
    static func longTar() -> [UInt8] {
        var generator = SplitMix64(seed: 11)
        var tar = TarBuilder()
        for i in 0..<100 { tar.file("small/f\(i).txt", String(repeating: "entry \(i) ", count: (i * 37) % 900)) }
        tar.entry(Array("noise.bin".utf8), data: (0..<(128 << 10)).map { _ in UInt8(truncatingIfNeeded: generator.next()) })
        tar.entry(Array("pattern.bin".utf8), data: (0..<(384 << 10)).map { UInt8(truncatingIfNeeded: $0 / 13 &* 7 &+ $0 >> 10) })
        tar.symlink("link", to: "small/f1.txt")
        tar.end()
        return tar.bytes
    }

    @Test func sameTreesReportsAndFailuresAsReadingInline() async throws {
        let dir = TestDirectory()
        var archives = try await InflateEngineTests.archives()
        let longPath = dir.sub("long.gz")
        try writeGzip(Self.longTar(), to: longPath)
        let long = try [UInt8](Data(contentsOf: URL(fileURLWithPath: longPath)))
        archives.append(("long", long))
        var damaged = try InflateEngineTests.damagedArchives(in: dir)
        for (offset, label) in [(long.count / 3, "a third in"), (long.count - 7, "CRC-32")] {
            var flipped = long
            flipped[offset] ^= 0x55
            damaged.append(("long: \(label) flipped", flipped))
        }
        damaged.append(("long: cut at two thirds", Array(long[..<(long.count * 2 / 3)])))
        let cases = archives + damaged
        // Inline throughout; ahead from the first byte; for the long archive, ahead from inside
        // the second buffer too.
        let results = try await runBlocking(flag: CancellationFlag()) {
            cases.enumerated().map { i, item in
                let starts: [Int64] = item.0.hasPrefix("long") ? [.max, 0, 300 << 10] : [.max, 0]
                return (item.0, starts, starts.map { InflateEngineTests.extract(item.1, engine: .current, readAheadAfter: $0, in: dir, "case\(i)") })
            }
        }
        #expect(results.count == cases.count)
        for (name, starts, outcomes) in results {
            let inline = outcomes[0]
            #expect(inline.unexpected == nil, "\(name): \(inline.unexpected ?? "")")
            for (start, ahead) in zip(starts.dropFirst(), outcomes.dropFirst()) {
                #expect(ahead.unexpected == nil, "\(name), ahead after \(start): \(ahead.unexpected ?? "")")
                #expect(ahead.report == inline.report, "\(name), ahead after \(start): reports differ")
                #expect(ahead.tree == inline.tree, "\(name), ahead after \(start): trees differ")
                #expect(Self.unplaced(ahead.error) == Self.unplaced(inline.error),
                        "\(name), ahead after \(start): \(String(describing: ahead.error)) vs inline \(String(describing: inline.error))")
            }
        }
        // The cases are what they claim: the good ones extract, the damaged ones fail.
        for (name, _, outcomes) in results.prefix(archives.count) {
            #expect(outcomes[0].error == nil && !outcomes[0].tree.isEmpty, "\(name) should extract")
        }
        for (name, _, outcomes) in results.dropFirst(archives.count) {
            #expect(outcomes[0].error != nil, "\(name) should fail")
        }
        #expect(results.last?.2[1].tree.isEmpty == false, "a cut archive keeps what was extracted before the cut")
    }

    /// The error's words without the archive's path (each run extracts its own copy).
    static func unplaced(_ error: ArchiveError?) -> String? {
        guard var error else { return nil }
        error.archive = nil
        return error.description
    }

    /// While every core has an extraction, none reads ahead; once one ends, a long one still
    /// going starts reading ahead, mid-stream.
    @Test func readsAheadOnlyWhileACoreIsIdle() throws {
        let dir = TestDirectory()
        let path = dir.sub("long.gz")
        let tar = Array(repeatElement(Self.longTar(), count: 32).joined())  // about 22 MiB
        try writeGzip(tar, to: path)
        let load = ReadAhead.Load(cores: 2)
        func reader() throws -> ReadAhead {
            ReadAhead(GzipReader(input: try ArchiveInput(path: path, hashing: false), inflater: try ZlibInflater()),
                      policy: .whenACoreIsIdle(after: 300 << 10), load: load, progress: nil)
        }
        let first = try reader()
        var bytes: [UInt8] = []
        var second: ReadAhead? = try reader()
        var read = 0
        while read < 1 << 20, let chunk = try first.read(upTo: 65_536) { read += chunk.count; bytes += chunk }
        _ = try second?.read(upTo: 65_536)
        #expect(!first.isAhead && second?.isAhead == false, "two extractions on two cores")
        second = nil
        #expect(load.running.load(ordering: .relaxed) == 1)
        // Not at once: a core must stay idle for a while (another job between two extractions
        // does not count).
        let alone = read
        while read < alone + Int(ReadAhead.idleFor) - (512 << 10), let chunk = try first.read(upTo: 65_536) { read += chunk.count; bytes += chunk }
        #expect(!first.isAhead)
        while read < alone + Int(ReadAhead.idleFor) + (512 << 10), let chunk = try first.read(upTo: 65_536) { read += chunk.count; bytes += chunk }
        #expect(first.isAhead, "alone on two cores from \(alone) to \(read) bytes")
        // Another extraction starts: what was read ahead is used, then the reader is inline again.
        let third = try reader()
        let busy = read
        while read < busy + (2 << 20), let chunk = try first.read(upTo: 65_536) { read += chunk.count; bytes += chunk }
        #expect(!first.isAhead, "back inline \(read - busy) bytes after every core was busy again")
        _ = third
        while let chunk = try first.read(upTo: 65_536) { read += chunk.count; bytes += chunk }
        #expect(read == tar.count && bytes == tar)
    }

    /// Counts the archive's reads, as a store's reader would see them.
    final class CountingReader: ArchiveReading {
        let inner: LocalFileReader
        let reads = Atomic<Int>(0)
        init(_ path: String) throws { inner = try LocalFileReader(path: path) }
        func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
            reads.add(1, ordering: .relaxed)
            return try inner.read(into: buffer)
        }
    }

    @Test func progressComesOnTheCallersThreadAndAnAbandonedReaderStopsReading() throws {
        let dir = TestDirectory()
        let path = dir.sub("long.gz")
        // Eight times over: many times what the buffers hold ahead.
        let tar = Array(repeatElement(Self.longTar(), count: 8).joined())
        try writeGzip(tar, to: path)
        let size = try #require(FileSystem.size(of: path))

        // Read to the end: the same bytes, through two buffers used over and over; progress grows
        // to the whole file, always on this thread.
        let caller = pthread_self()
        var seen: [Int64] = []
        var offThread = 0
        let reader = ReadAhead(GzipReader(input: try ArchiveInput(path: path, hashing: true), inflater: try ZlibInflater()),
                               policy: .after(0), depth: 2) { bytes in
            if pthread_equal(pthread_self(), caller) == 0 { offThread += 1 }
            seen.append(bytes)
        }
        var read: [UInt8] = []
        read.reserveCapacity(tar.count)
        while let chunk = try reader.read(upTo: 10_000) { read += chunk }
        #expect(read == tar)
        #expect(offThread == 0)
        #expect(seen.count > 3 && seen == seen.sorted())
        #expect(seen.last == size)

        // Given up after a little: the inflating thread stops with the reader, having read at most
        // its buffers' worth ahead (2 × 256 KiB of output), not the whole file.
        let counting = try CountingReader(path)
        let input = try ArchiveInput(path: path, reader: counting, hashing: false)
        var abandoned: ReadAhead? = ReadAhead(GzipReader(input: input, inflater: try ZlibInflater()), policy: .after(0), depth: 2,
                                               progress: nil)
        for _ in 0..<3 { _ = try abandoned?.read(upTo: 4_096) }
        abandoned = nil
        let readsAtRelease = counting.reads.load(ordering: .relaxed)
        let bytesAtRelease = input.bytesRead
        Thread.sleep(forTimeInterval: 0.2)
        #expect(counting.reads.load(ordering: .relaxed) == readsAtRelease, "the archive was read after its reader was released")
        #expect(bytesAtRelease < size / 2, "read \(bytesAtRelease) of \(size) bytes for 12 KiB taken")
    }
}
