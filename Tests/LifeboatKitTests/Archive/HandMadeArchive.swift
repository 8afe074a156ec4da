import Foundation
import Testing
@testable import LifeboatKit

/// Archives built byte by byte for the corpus: what old or unusual writers produced that no
/// installed tool writes any more, each checked against GNU tar like the writers' archives —
/// and the few that GNU tar extracts but DESIGN.md's safety rules reject, on purpose.
struct HandMadeArchive: Sendable, CustomTestStringConvertible {
    enum Expectation: Sendable {
        /// GNU tar extracts it; Lifeboat must extract the same tree.
        case sameAsGNUTar
        /// Lifeboat rejects it although GNU tar extracts something: a safety rule of DESIGN.md.
        case rejected(ArchiveError.Code, UnsafeRule?)
    }

    var name: String
    var expectation: Expectation = .sameAsGNUTar
    var build: @Sendable () -> [UInt8]

    var testDescription: String { name }

    init(_ name: String, _ expectation: Expectation = .sameAsGNUTar, build: @escaping @Sendable () -> [UInt8]) {
        self.name = name
        self.expectation = expectation
        self.build = build
    }

    /// Builds with a fresh `TarBuilder`, ending with the end-of-archive marker.
    static func tar(_ name: String, _ expectation: Expectation = .sameAsGNUTar, end: Bool = true,
                    _ body: @escaping @Sendable (inout TarBuilder) -> Void) -> HandMadeArchive {
        HandMadeArchive(name, expectation) {
            var t = TarBuilder()
            body(&t)
            if end { t.end() }
            return t.bytes
        }
    }

    static let all: [HandMadeArchive] = [
        tar("signed header checksums (old Sun, Ultrix and Java tars)") { t in
            t.entry(Array("résumé €.txt".utf8), data: Array("signed\n".utf8), signedChecksum: true)
            t.entry(Array("dir-ü/".utf8), type: "5", signedChecksum: true)
        },
        tar("sizes on directories, hard links and symlinks, with no data after them") { t in
            t.file("a", "target\n")
            t.entry(Array("d/".utf8), type: "5", size: 1000)
            t.entry(Array("h".utf8), type: "1", size: 700, link: Array("a".utf8))
            t.entry(Array("s".utf8), type: "2", size: 600, link: Array("a".utf8), mode: 0o777)
            t.file("after", "still in step\n")
        },
        tar("V7 archive: type NUL, directories as regular entries ending in '/'") { t in
            t.entry(Array("v7dir/".utf8), type: "\0", size: 5, mode: 0o755, format: .v7)
            t.entry(Array("v7dir/file".utf8), type: "\0", data: Array("v7\n".utf8), format: .v7)
            t.entry(Array("v7dir/sub/".utf8), type: "0", mode: 0o750, format: .v7)
            t.entry(Array("v7dir/sub/link".utf8), type: "1", link: Array("v7dir/file".utf8), format: .v7)
        },
        tar("a pax path ending in '/' on a regular-type entry is a directory") { t in
            t.pax([("path", "pax-dir/")])
            t.entry(Array("header-name".utf8), mode: 0o755)
            t.file("pax-dir/f", "inside\n")
        },
        tar("a 3 MiB pax header (a long extended attribute) and a pax path") { t in
            t.pax([("SCHILY.xattr.user.big", String(repeating: "x", count: 3 << 20)), ("path", "named-by-pax.txt")])
            t.file("header-name", "pax wins\n")
        },
        tar("a GNU long name of 3000 bytes") { t in
            let name = Array(repeating: String(repeating: "c", count: 199), count: 15).joined(separator: "/")
            t.gnuLong(name)
            t.file(name, "long\n")
        },
        tar("GNU long name and long link without a terminating NUL") { t in
            let name = "unterminated/" + String(repeating: "u", count: 140)
            t.entry(Array("././@LongLink".utf8), type: "L", data: Array(name.utf8), format: .gnu)
            t.entry(Array("ignored".utf8), data: Array("x\n".utf8), format: .gnu)
            t.entry(Array("././@LongLink".utf8), type: "K", data: Array(name.utf8), format: .gnu)
            t.entry(Array("link".utf8), type: "2", link: Array("ignored".utf8), mode: 0o777, format: .gnu)
        },
        tar("a Solaris 'X' extended header") { t in
            t.entry(Array("X".utf8), type: "X", data: TarBuilder.paxRecords([("path", "named-by-solaris.txt"), ("mtime", "1300000000.75")]))
            t.file("short", "solaris\n")
        },
        tar("a pax global header, overridden per file") { t in
            t.pax([("mtime", "1234567890.25"), ("comment", "global")], global: true)
            t.file("a", "global time\n")
            t.pax([("mtime", "1500000000.5")])
            t.file("b", "own time\n")
            t.file("c", "global time again\n")
        },
        tar("pax records with NUL padding and keys Lifeboat ignores") { t in
            let records = TarBuilder.paxRecords([("hdrcharset", "ISO-IEC 10646 2000 UTF-8"), ("SCHILY.acl.access", "user::rw-"),
                                                  ("LIBARCHIVE.creationtime", "1"), ("atime", "1.5"), ("comment", "multi\nline"),
                                                  ("path", "padded.txt")])
            t.entry(Array("PaxHeaders/x".utf8), type: "x", data: records + [0, 0, 0, 0])
            t.file("x", "padded\n")
        },
        tar("a Solaris ACL entry ('A') before its file") { t in
            t.entry(Array("acl.txt".utf8), type: "A", data: Array("user::rw-,group::r--,other::r--\n".utf8))
            t.file("acl.txt", "the file itself\n")
        },
        tar("unknown types ('N', vendor letters) are files, as GNU tar extracts them") { t in
            t.entry(Array("names".utf8), type: "N", data: Array("Rename a to b\n".utf8))
            t.entry(Array("vendor".utf8), type: "Z", data: Array("vendor data\n".utf8))
        },
        tar("a GNU dumpdir ('D') carries its listing as data") { t in
            t.entry(Array("incremental/".utf8), type: "D", data: Array("Nold\u{0}Yfile\u{0}\u{0}".utf8), mode: 0o755, format: .gnu)
            t.entry(Array("incremental/file".utf8), data: Array("kept\n".utf8), format: .gnu)
        },
        tar("a GNU volume label ('V')") { t in
            t.entry(Array("Backup of 1999-12-31".utf8), type: "V", format: .gnu)
            t.file("labelled", "volume\n")
        },
        tar("base-256 size, uid, gid and a negative mtime (GNU)") { t in
            t.entry(Array("b256".utf8), data: Array("12345".utf8), format: .gnu) { h in
                TarBuilder.put([0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5], into: &h, at: 124)
                TarBuilder.put([0x80, 0, 0, 0, 0, 0x98, 0x96, 0x80], into: &h, at: 108)
                TarBuilder.put([0x80, 0, 0, 0, 0, 0x98, 0x96, 0x81], into: &h, at: 116)
                TarBuilder.put([UInt8](repeating: 0xFF, count: 10) + [0xFE, 0x00], into: &h, at: 136)
            }
        },
        tar("base-64 numbers (GNU tar 1.13.14 to 1.13.25)") { t in
            t.entry(Array("b64".utf8), data: Array("abc".utf8), format: .gnu) { h in
                TarBuilder.put(Array("+D".utf8) + [UInt8](repeating: 0, count: 10), into: &h, at: 124)   // 3
                TarBuilder.put(Array("+BXXX".utf8) + [0, 0, 0, 0, 0, 0, 0], into: &h, at: 136)          // 357847: in 1970
            }
        },
        tar("octal fields full width, space-terminated, with leading spaces, mode with type bits") { t in
            t.entry(Array("octal".utf8), data: Array("abc".utf8)) { h in
                TarBuilder.put(Array("000000000003".utf8), into: &h, at: 124)
                TarBuilder.put(Array("0100750\u{0}".utf8), into: &h, at: 100)
                TarBuilder.put(Array("    12 \u{0}".utf8), into: &h, at: 108)
                TarBuilder.put(Array("13000000000 ".utf8), into: &h, at: 136)
            }
        },
        HandMadeArchive("checksums written three ways: 7 digits and NUL, leading spaces, no terminator") {
            var t = TarBuilder()
            t.file("a", "one\n")
            t.file("b", "two\n")
            t.file("c", "three\n")
            t.end()
            t.restyleChecksum(at: 0) { Array(String(format: "%07o", $0).utf8) + [0] }
            t.restyleChecksum(at: 1024) { Array(String(format: "%6o", $0).utf8) + [0x20, 0] }
            t.restyleChecksum(at: 2048) { Array(String(format: "%08o", $0).utf8) }
            return t.bytes
        },
        tar("a lone zero block at the end", end: false) { t in
            t.file("a", "complete\n")
            t.bytes += [UInt8](repeating: 0, count: 512)
        },
        tar("junk after the end-of-archive marker") { t in
            t.file("a", "before the junk\n")
            t.end()
            t.bytes += TreeBuilder.random(3000)
        },
        tar("two archives concatenated: GNU tar reads the first") { t in
            t.file("first", "1\n")
            t.end()
            t.file("second", "2\n")
        },
        tar("a './' entry with its mode; duplicates: the last wins, a directory replaces a file") { t in
            t.directory("./", mode: 0o750)
            t.file("a", "first\n")
            t.file("./a", "second\n")
            t.file("d", "a file first\n")
            t.directory("d/")
            t.file("d/x", "then a directory\n")
        },
        tar("a hard link to a file that a later entry replaces") { t in
            t.file("a", "one\n")
            t.hardLink("h", to: "a")
            t.file("a", "two\n")
        },
        tar("pax times: more than nine fraction digits, before 1970") { t in
            t.pax([("mtime", "1600000000.1234567891234")])
            t.file("fraction", "ns\n")
            t.pax([("mtime", "-86400")])
            t.file("old", "1969\n")
        },
        tar("a star header: 131-byte prefix, atime and ctime") { t in
            t.entry(Array("star.txt".utf8), data: Array("star\n".utf8)) { h in
                TarBuilder.put(Array("star/prefix".utf8), into: &h, at: 345)
                TarBuilder.put(Array("14000000000 ".utf8), into: &h, at: 476)
                TarBuilder.put(Array("14000000001 ".utf8), into: &h, at: 488)
                TarBuilder.put(Array("tar\u{0}".utf8), into: &h, at: 508)
            }
        },
        tar("a ustar prefix field") { t in
            t.entry(Array("name.txt".utf8), data: Array("prefixed\n".utf8)) { h in
                TarBuilder.put(Array("ustar/pre/fix".utf8), into: &h, at: 345)
            }
        },
        tar("a contiguous file ('7')") { t in
            t.entry(Array("contiguous".utf8), type: "7", data: Array("contiguous\n".utf8))
        },
        tar("a pax linkpath and size override the header's") { t in
            t.file("target-file", "t\n")
            t.pax([("linkpath", "target-file")])
            t.hardLink("h", to: "wrong")
            t.pax([("size", "5")])
            t.entry(Array("sized".utf8), data: Array("hello".utf8), size: 0o777)
        },
        tar("an empty archive") { _ in },

        // What GNU tar extracts and DESIGN.md's rules reject, on purpose.
        tar("missing end-of-archive marker: truncation", .rejected(.truncated, nil), end: false) { t in
            t.file("a", "is there more?\n")
        },
        tar("a lone zero block followed by entries: GNU tar silently drops them", .rejected(.corrupt, nil)) { t in
            t.file("a", "1\n")
            t.bytes += [UInt8](repeating: 0, count: 512)
            t.file("b", "dropped by GNU tar\n")
        },
        tar("an absolute name: GNU tar strips the '/'", .rejected(.unsafeEntry, .absoluteName)) { t in
            t.file("/etc/lifeboat-corpus", "absolute\n")
        },
        tar("a symbolic link out of the tree", .rejected(.unsafeEntry, .linkEscapesRoot)) { t in
            t.symlink("up", to: "../../etc")
        },
        tar("a Latin-1 name from a pre-UTF-8 writer", .rejected(.unsafeEntry, .invalidUTF8)) { t in
            t.entry([0x63, 0x61, 0x66, 0xE9], data: Array("latin-1\n".utf8))
        },
        tar("a file written through an in-tree symbolic link", .rejected(.unsafeEntry, .throughSymlink)) { t in
            t.directory("d")
            t.symlink("l", to: "d")
            t.file("l/f", "through the link\n")
        },
        tar("a character device", .rejected(.unsafeEntry, .device)) { t in
            t.entry(Array("null".utf8), type: "3")
        },
    ]
}

extension TarBuilder {
    /// The data of a pax extended header, with exact record lengths.
    static func paxRecords(_ records: [(String, String)]) -> [UInt8] {
        var data: [UInt8] = []
        for (key, value) in records {
            let body = " \(key)=\(value)\n"
            var length = body.utf8.count + 1
            while String(length).count + body.utf8.count != length { length += 1 }
            data += Array("\(length)\(body)".utf8)
        }
        return data
    }

    /// Rewrites the checksum field of the header at `offset` in another style.
    mutating func restyleChecksum(at offset: Int, _ style: (Int) -> [UInt8]) {
        for i in 148..<156 { bytes[offset + i] = 0x20 }
        let sum = bytes[offset..<(offset + 512)].reduce(0) { $0 + Int($1) }
        let field = style(sum)
        for i in 0..<8 { bytes[offset + 148 + i] = i < field.count ? field[i] : 0 }
    }
}
