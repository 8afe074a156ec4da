import Foundation
import Testing
@testable import LifeboatKit

/// Thousands of corrupted archives (byte flips, truncations, inserted and deleted bytes, in the
/// compressed stream and in the tar inside it), from real fleet archives and hostile tar builds,
/// through the real extractor: each is rejected with an `ArchiveError` or extracted safely —
/// nothing outside staging changes, no link leads out of it, no unsafe modes — and none crashes,
/// hangs or throws anything else. A fixed seed makes every failure replayable.
/// `LIFEBOAT_FAULTS=0` skips it (20 s of a core: `.ci/run` runs it apart from the latency tests).
@Suite(.enabled(if: ProcessInfo.processInfo.environment["LIFEBOAT_FAULTS"] != "0", "LIFEBOAT_FAULTS=0: archive mutation skipped"))
struct ArchiveMutationTests {
    static let seed: UInt64 = 0x11FE_B0A7
    static let minMutants = 1_000
    static let maxMutants = 4_000
    static let timeBudget: TimeInterval = 20
    /// One mutant taking longer than this is a hang: it is cancelled and reported.
    static let hangAfter: TimeInterval = 5

    /// Seed tars: a real fleet archive (decompressed) and hostile builds.
    func seedTars(_ dir: TestDirectory) async throws -> [(name: String, tar: [UInt8])] {
        let fleet = dir.sub("fleet")
        _ = try await FleetGenerator(sites: 1, products: ["contacts"], archiveSize: 48 << 10, seed: Self.seed,
                                     now: Date(timeIntervalSince1970: 1_795_000_000)).generate(into: fleet, parallelism: 1)
        let folder = fleet + "/acme/contacts"
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: folder).first { $0.hasSuffix(".tar.gz") })
        let tarPath = dir.sub("fleet.tar")
        #expect(try run(["sh", "-c", "gzip -dc \"$0\" > \"$1\"", folder + "/" + name, tarPath]) == 0)
        let real = try [UInt8](Data(contentsOf: URL(fileURLWithPath: tarPath)))

        var links = TarBuilder()
        links.directory("d/")
        links.file("d/a.txt", "alpha")
        links.symlink("d/inside", to: "a.txt")
        links.symlink("d/up", to: "../d/a.txt")
        links.symlink("d/escape", to: "../../sentinel/file")
        links.hardLink("d/hard", to: "d/a.txt")
        links.file("d/inside2", "through a link?")
        links.end()

        var names = TarBuilder()
        names.pax([("path", "pax/long/" + String(repeating: "p", count: 150)), ("mtime", "1700000000.5")])
        names.file("ignored-by-pax", "pax body")
        names.gnuLong("gnu/long/" + String(repeating: "g", count: 140))
        names.file("ignored-by-gnu", "gnu body")
        names.file("modes", "setuid", mode: 0o6777)
        names.entry(Array("fifo".utf8), type: "6")
        names.entry(Array("dev".utf8), type: "3")
        names.file("../dotdot", "no")
        names.file("/abs", "no")
        names.end()
        return [("fleet", real), ("links", links.bytes), ("names", names.bytes)]
    }

    func gzip(_ bytes: [UInt8]) throws -> [UInt8] {
        var out: [UInt8] = []
        let writer = try GzipWriter(level: 1) { out += $0 }
        try writer.write(bytes)
        try writer.finish()
        return out
    }

    /// One random corruption: flip bits, overwrite, truncate, insert or delete bytes.
    func mutate(_ input: [UInt8], rng: inout SplitMix64) -> [UInt8] {
        var bytes = input
        for _ in 0...rng.below(3) {
            guard !bytes.isEmpty else { break }
            let at = rng.below(bytes.count)
            switch rng.below(6) {
            case 0: bytes[at] ^= UInt8(1 << rng.below(8))
            case 1: bytes[at] = UInt8(truncatingIfNeeded: rng.next())
            case 2: bytes.removeSubrange(at...)
            case 3: bytes.insert(contentsOf: (0...rng.below(16)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: at)
            case 4: bytes.removeSubrange(at..<min(bytes.count, at + 1 + rng.below(600)))
            default:
                // Interesting values in a header field: NULs, octal overflow, base-256 sizes.
                let values: [UInt8] = [0, 0x80, 0xFF, 0x37, 0x20, 0x2F, 0x2E]
                for i in at..<min(bytes.count, at + 1 + rng.below(12)) { bytes[i] = values[rng.below(values.count)] }
            }
        }
        return bytes
    }

    /// Problems with what an extraction left: anything outside staging changed, a link out of
    /// staging, a device or FIFO, an unsafe mode.
    func problems(staging: String, sentinel: String, sentinelBefore: [String: String]) -> [String] {
        var found: [String] = []
        if snapshotTree(sentinel) != sentinelBefore { found.append("the sentinel tree outside staging changed") }
        var st = stat()
        if lstat(sentinel + "/file", &st) == 0, st.st_nlink != 1 { found.append("a hard link to a file outside staging was made") }
        var pending = [""]
        while let relative = pending.popLast() {
            let full = relative.isEmpty ? staging : staging + "/" + relative
            guard lstat(full, &st) == 0 else { continue }
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                for name in (try? FileManager.default.contentsOfDirectory(atPath: full)) ?? [] {
                    pending.append(relative.isEmpty ? name : relative + "/" + name)
                }
            case S_IFLNK:
                let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: full)) ?? "/"
                if !Self.staysInside(link: relative, target: target) { found.append("symlink \(relative) -> \(target) leaves staging") }
            case S_IFREG: break
            default: found.append("\(relative) is a device, FIFO or socket")
            }
            if st.st_mode & (S_ISUID | S_ISGID | S_ISVTX | S_IWGRP | S_IWOTH) != 0, st.st_mode & S_IFMT != S_IFLNK {
                found.append("\(relative) has mode \(String(st.st_mode & 0o7777, radix: 8))")
            }
        }
        return found
    }

    /// Whether a symlink at `link` (relative to the root) pointing at `target` stays inside the root, lexically.
    static func staysInside(link: String, target: String) -> Bool {
        guard !target.hasPrefix("/") else { return false }
        var depth = link.split(separator: "/").count - 1
        for part in target.split(separator: "/", omittingEmptySubsequences: true) {
            if part == ".." { depth -= 1 } else if part != "." { depth += 1 }
            if depth < 0 { return false }
        }
        return true
    }

    /// What a mutation loop saw.
    struct Outcome: Sendable {
        var mutants = 0
        var seconds: TimeInterval = 0
        var rejected = 0, extracted = 0, skippedSome = 0
        var rejections: [ArchiveError.Code: Int] = [:]
        var problems: [String] = []
    }

    /// The loop, synchronous: it runs on a thread of its own so that 20 s of CPU do not hold one
    /// of Swift concurrency's few pool threads away from the in-process engine tests.
    func mutateAndExtract(seeds: [(name: String, tar: [UInt8])], gzipped: [[UInt8]], sentinel: String,
                          sentinelBefore: [String: String], staging: String, archive: String) throws -> Outcome {
        var outcome = Outcome()
        var found: [String] = []
        var rng = SplitMix64(seed: Self.seed)
        let started = Date()
        // At least `minMutants` however slow the machine (a loaded CI host managed 709 in the
        // time budget), then more while the budget lasts.
        while outcome.mutants < Self.minMutants
                || (outcome.mutants < Self.maxMutants && Date().timeIntervalSince(started) < Self.timeBudget) {
            let pick = rng.below(seeds.count)
            // Half the mutants corrupt the compressed stream, half the tar inside a valid gzip.
            let bytes = rng.below(2) == 0 ? mutate(gzipped[pick], rng: &rng) : try gzip(mutate(seeds[pick].tar, rng: &rng))
            outcome.mutants += 1
            try Data(bytes).write(to: URL(fileURLWithPath: archive))
            try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: false)
            let policy: UnsafeEntryPolicy = rng.below(3) == 0 ? .skip : .reject
            let flag = CancellationFlag()
            let options = ExtractOptions(maxBytes: 16 << 20, maxEntries: 5_000, unsafeEntries: policy, checksum: .off, cancellation: flag)
            let watchdog = DispatchWorkItem { flag.cancel() }
            DispatchQueue.global().asyncAfter(deadline: .now() + Self.hangAfter, execute: watchdog)
            let label = "mutant \(outcome.mutants) of \(seeds[pick].name) (seed \(Self.seed), \(bytes.count) bytes)"
            var extracted = false
            do {
                let report = try extractArchive(at: archive, into: staging, options: options)
                extracted = true
                outcome.extracted += 1
                if !report.skipped.isEmpty { outcome.skippedSome += 1 }
            } catch let error as ArchiveError {
                outcome.rejected += 1
                outcome.rejections[error.code, default: 0] += 1
                if error.description.isEmpty { found.append("\(label): an ArchiveError without a message") }
            } catch is CancellationError {
                found.append("\(label) hung: still extracting after \(Self.hangAfter) s")
            } catch {
                found.append("\(label) threw a non-ArchiveError: \(type(of: error)) \(error)")
            }
            watchdog.cancel()
            for problem in problems(staging: staging, sentinel: sentinel, sentinelBefore: sentinelBefore) {
                found.append("\(label): \(problem)")
            }
            // What extraction accepted, verification accepts too (and the reverse never fails open).
            if extracted {
                do { _ = try verifyArchive(at: archive, options: ExtractOptions(maxBytes: 16 << 20, maxEntries: 5_000, unsafeEntries: policy, checksum: .off)) }
                catch { found.append("\(label) extracted but verify rejects it: \(error)") }
            }
            try FileManager.default.removeItem(atPath: staging)
            if FileManager.default.fileExists(atPath: staging) { found.append("\(label): staging could not be removed") }
        }
        outcome.seconds = Date().timeIntervalSince(started)
        outcome.problems = found
        return outcome
    }

    @Test func thousandsOfMutantsAreRejectedOrExtractedSafely() async throws {
        let dir = TestDirectory()
        let seeds = try await seedTars(dir)
        let gzipped = try seeds.map { try gzip($0.tar) }
        let sentinel = dir.sub("box/sentinel")
        try FileManager.default.createDirectory(atPath: sentinel + "/inner", withIntermediateDirectories: true)
        try Data("precious".utf8).write(to: URL(fileURLWithPath: sentinel + "/file"))
        try Data("deep".utf8).write(to: URL(fileURLWithPath: sentinel + "/inner/x"))
        let sentinelBefore = snapshotTree(sentinel)
        let staging = dir.sub("box/staging")
        let archive = dir.sub("mutant.tar.gz")

        let (seedList, zipped, box) = (seeds, gzipped, (sentinel, sentinelBefore, staging, archive))
        let outcome = try await onOwnThread { [self] in
            try mutateAndExtract(seeds: seedList, gzipped: zipped, sentinel: box.0, sentinelBefore: box.1, staging: box.2, archive: box.3)
        }
        for problem in outcome.problems { Issue.record(Comment(rawValue: problem)) }
        let (mutants, seconds) = (outcome.mutants, outcome.seconds)
        let counts = (rejected: outcome.rejected, extracted: outcome.extracted, skippedSome: outcome.skippedSome)
        let rejections = outcome.rejections
        // Both outcomes occur: the suite is not merely rejecting everything at the gzip layer.
        #expect(counts.rejected > 0 && counts.extracted > 0, "\(counts)")
        #expect(rejections.keys.count >= 3, "rejections: \(rejections)")
        print("archive mutation: \(mutants) mutants in \(String(format: "%.1f", seconds)) s: \(counts), rejections \(rejections)")
    }
}

/// Runs blocking work on a thread of its own and awaits its result.
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}
