import Foundation
import LifeboatKit

/// Input: tar bytes. They are gzipped in memory (so the fuzzer explores the tar reader and the
/// safety rules rather than gzip's CRC) and read by `verifyArchive`, the extractor without the
/// writes. Anything but an `ArchiveError` is a finding; a crash or hang is one too.
private let archivePath = (ProcessInfo.processInfo.environment["LIFEBOAT_FUZZ_TMP"] ?? "/tmp") + "/lifeboat-fuzz-\(getpid()).tar.gz"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTarReader(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var compressed: [UInt8] = []
    do {
        let gzip = try GzipWriter(level: 1, bufferSize: 1 << 16) { compressed += $0 }
        try gzip.write(UnsafeRawBufferPointer(start: data, count: size))
        try gzip.finish()
        try Data(compressed).write(to: URL(fileURLWithPath: archivePath))
    } catch {
        fatalError("fuzz harness: cannot write \(archivePath): \(error)")
    }
    for policy in [UnsafeEntryPolicy.reject, .skip] {
        do {
            _ = try verifyArchive(at: archivePath, options: ExtractOptions(maxBytes: 64 << 20, maxEntries: 10_000,
                                                                          unsafeEntries: policy, checksum: .off))
        } catch is ArchiveError {
        } catch {
            fatalError("verifyArchive threw a non-ArchiveError: \(type(of: error)) \(error)")
        }
    }
    return 0
}
