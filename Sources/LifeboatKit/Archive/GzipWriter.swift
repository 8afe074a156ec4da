import CZlib

/// Compresses a stream into gzip format through zlib, handing compressed chunks to `sink`.
/// Used by the fleet generator; the gzip header carries no name and mtime 0, so output is
/// deterministic for the same input.
public final class GzipWriter {
    private var stream = z_stream()
    private var output: [UInt8]
    private let sink: (UnsafeRawBufferPointer) throws -> Void
    private var finished = false

    /// - Parameters:
    ///   - level: zlib compression level, 1 (fast) to 9 (small).
    ///   - sink: receives compressed bytes.
    public init(level: Int32 = 6, bufferSize: Int = 1 << 18, sink: @escaping (UnsafeRawBufferPointer) throws -> Void) throws {
        self.sink = sink
        output = [UInt8](repeating: 0, count: bufferSize)
        // windowBits 15 + 16: a gzip wrapper; memLevel 8 is zlib's default.
        let rc = lifeboat_deflateInit2(&stream, level, 15 + 16, 8)
        guard rc == Z_OK else { throw GzipWriterError(code: rc) }
    }

    deinit { deflateEnd(&stream) }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        try run(bytes, flush: Z_NO_FLUSH)
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Writes the gzip trailer. The writer cannot be used afterwards.
    public func finish() throws {
        guard !finished else { return }
        finished = true
        try run(UnsafeRawBufferPointer(start: nil, count: 0), flush: Z_FINISH)
    }

    private func run(_ input: UnsafeRawBufferPointer, flush: Int32) throws {
        stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(input.count)
        let capacity = output.count
        while true {
            let (rc, produced): (Int32, Int) = output.withUnsafeMutableBytes { out in
                stream.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(capacity)
                let rc = deflate(&stream, flush)
                return (rc, capacity - Int(stream.avail_out))
            }
            guard rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR else { throw GzipWriterError(code: rc) }
            if produced > 0 { try output.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) } }
            if flush == Z_FINISH {
                if rc == Z_STREAM_END { return }
            } else if stream.avail_in == 0 && produced < capacity {
                return
            }
        }
    }
}

public struct GzipWriterError: Error, CustomStringConvertible {
    public var code: Int32
    public var description: String { "zlib deflate failed (code \(code))" }
}
