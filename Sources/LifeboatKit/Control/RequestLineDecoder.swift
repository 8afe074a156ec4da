import NIOCore

/// A request line from the control socket, or the news that one was too long.
enum RequestLine: Sendable {
    case line(ByteBuffer)
    /// A line over the cap; its bytes were discarded up to the next newline.
    case tooLong
}

/// Splits the stream at newlines, capping lines at `maxLength` bytes without ever buffering more:
/// an oversized line is reported once and skipped to its newline, and the connection goes on.
struct RequestLineDecoder: ByteToMessageDecoder {
    typealias InboundOut = RequestLine

    let maxLength: Int
    private var discarding = false

    init(maxLength: Int = 64 << 10) { self.maxLength = maxLength }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
            let length = newline - buffer.readerIndex
            if discarding {
                discarding = false
                buffer.moveReaderIndex(forwardBy: length + 1)
            } else if length > maxLength {
                buffer.moveReaderIndex(forwardBy: length + 1)
                context.fireChannelRead(wrapInboundOut(.tooLong))
            } else {
                let line = buffer.readSlice(length: length)!
                buffer.moveReaderIndex(forwardBy: 1)
                context.fireChannelRead(wrapInboundOut(.line(Self.withoutCR(line))))
            }
            return .continue
        }
        if buffer.readableBytes > maxLength {
            if !discarding {
                discarding = true
                context.fireChannelRead(wrapInboundOut(.tooLong))
            }
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
        }
        return .needMoreData
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        // The client closed its side after a last request without a newline (`printf … | nc -N`):
        // it may still read, so that request is answered too. Anything else left is dropped.
        if seenEOF, !discarding, buffer.readableBytes > 0, let line = buffer.readSlice(length: buffer.readableBytes) {
            context.fireChannelRead(wrapInboundOut(.line(Self.withoutCR(line))))
        }
        buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
        return .needMoreData
    }

    /// A line without the `\r` of a CRLF ending (tolerated).
    private static func withoutCR(_ line: ByteBuffer) -> ByteBuffer {
        guard line.readableBytesView.last == UInt8(ascii: "\r") else { return line }
        return line.getSlice(at: line.readerIndex, length: line.readableBytes - 1)!
    }
}
