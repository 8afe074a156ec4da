import Foundation

/// Encodes a value whose one long array is encoded a chunk at a time and spliced in.
///
/// `JSONEncoder` builds a tree of the whole value before it writes a byte. For a run of 10,000
/// jobs that tree takes several times the JSON it becomes (the JSON report: +29 MiB for 7 MB;
/// `run.show`: +45 MiB), and the daemon pays it at the start and the end of every run, when a
/// watcher opens and when the report is written. Encoding the value with the array left empty,
/// then the array's elements a chunk at a time, gives the same bytes for a fraction of that.
enum JSONSplice {
    /// `encoder.encode(shell)` with the empty array at `path` (object keys from the top, as they
    /// are on the wire) filled with `elements`: byte for byte what encoding the whole value
    /// gives, for an encoder without `.prettyPrinted` (whose arrays `RunReport.jsonData`
    /// re-indents itself).
    static func encode<Shell: Encodable, Element: Encodable>(
        _ shell: Shell, splicing elements: [Element], at path: [String], with encoder: JSONEncoder, chunk: Int = 500
    ) throws -> Data {
        let head = try encoder.encode(shell)
        guard let array = valueRange(of: path, in: head), head[array] == Data("[]".utf8) else {
            throw EncodingError.invalidValue(path, .init(codingPath: [], debugDescription: "no empty array at \(path.joined(separator: ".")) to splice into"))
        }
        var data = Data(capacity: head.count + 600 * elements.count)
        data.append(head[..<(array.lowerBound + 1)])
        let step = max(1, chunk)
        for start in stride(from: 0, to: elements.count, by: step) {
            // `[a,b]`: its elements, after a comma unless they are the first.
            let encoded = try encoder.encode(Array(elements[start..<min(start + step, elements.count)]))
            if start > 0 { data.append(UInt8(ascii: ",")) }
            data.append(encoded[(encoded.startIndex + 1)..<(encoded.endIndex - 1)])
        }
        data.append(head[(array.upperBound - 1)...])
        return data
    }

    /// Where the value at `path` (object keys from the top) lies in `json`, a document that
    /// `JSONEncoder` wrote (valid, compact or pretty printed); nil when a key on the way is
    /// missing or is not an object. Keys are compared as written: the ones looked for need no
    /// escaping. Strings are skipped as strings, so no text inside a value can pass for a key.
    static func valueRange(of path: [String], in json: Data) -> Range<Data.Index>? {
        json.withUnsafeBytes { raw -> Range<Data.Index>? in
            let bytes = raw.bindMemory(to: UInt8.self)
            var scanner = Scanner(bytes: bytes)
            guard let range = scanner.find(path[...]) else { return nil }
            return (json.startIndex + range.lowerBound)..<(json.startIndex + range.upperBound)
        }
    }

    private struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        var at = 0

        private static let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")

        /// The range of the value at `path` in the object that starts at the next byte.
        mutating func find(_ path: ArraySlice<String>) -> Range<Int>? {
            guard let key = path.first else { return nil }
            skipSpace()
            guard next == UInt8(ascii: "{") else { return nil }
            at += 1
            while true {
                skipSpace()
                guard next == Self.quote else { return nil }  // `}`: the key is not there
                let name = skipString()
                skipSpace()
                guard next == UInt8(ascii: ":") else { return nil }
                at += 1
                skipSpace()
                if bytes[name].elementsEqual(key.utf8) {
                    return path.count == 1 ? skipValue() : find(path.dropFirst())
                }
                _ = skipValue()
                skipSpace()
                guard next == UInt8(ascii: ",") else { return nil }
                at += 1
            }
        }

        private var next: UInt8? { at < bytes.count ? bytes[at] : nil }

        private mutating func skipSpace() {
            while let byte = next, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { at += 1 }
        }

        /// Skips the string that starts here; returns its contents' range, as written.
        private mutating func skipString() -> Range<Int> {
            at += 1
            let start = at
            while let byte = next, byte != Self.quote {
                at += byte == Self.backslash ? 2 : 1
            }
            defer { at += 1 }
            return start..<min(at, bytes.count)
        }

        /// Skips the value that starts here; returns its range.
        private mutating func skipValue() -> Range<Int> {
            let start = at
            var depth = 0
            while let byte = next {
                switch byte {
                case Self.quote:
                    _ = skipString()
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    if depth == 0 { return start..<at }  // the end of the enclosing value
                    depth -= 1
                case UInt8(ascii: ","), 0x20, 0x0A, 0x0D, 0x09:
                    if depth == 0 { return start..<at }
                default:
                    break
                }
                at += 1
                if depth == 0, byte == UInt8(ascii: "}") || byte == UInt8(ascii: "]") { return start..<at }
            }
            return start..<at
        }
    }
}
