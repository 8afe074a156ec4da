import Foundation
import Testing
@testable import LifeboatKit

/// Builds tar archives byte by byte, hostile ones included.
struct TarBuilder {
    var bytes: [UInt8] = []

    enum Format { case ustar, gnu, v7 }

    /// Writes `bytes` into a header at `offset`.
    static func put(_ bytes: [UInt8], into header: inout [UInt8], at offset: Int) {
        for (i, b) in bytes.enumerated() { header[offset + i] = b }
    }

    /// Appends one header (and its data, padded to a block). `edit` changes the header before its
    /// checksum is computed (fields this builder does not write, odd encodings); the checksum is
    /// the unsigned sum, or the signed one old tars computed, or a wrong one.
    mutating func entry(
        _ name: [UInt8], type: Character = "0", data: [UInt8] = [], size: Int? = nil, link: [UInt8] = [],
        mode: Int = 0o644, uid: Int = 0, gid: Int = 0, mtime: Int = 1_700_000_000, format: Format = .ustar,
        badChecksum: Bool = false, signedChecksum: Bool = false, edit: (inout [UInt8]) -> Void = { _ in }
    ) {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ field: [UInt8], _ offset: Int, _ length: Int) {
            for (i, b) in field.prefix(length).enumerated() { h[offset + i] = b }
        }
        func octal(_ value: Int, _ offset: Int, _ length: Int) {
            put(Array(String(format: "%0\(length - 1)o", value).utf8), offset, length - 1)
        }
        put(name, 0, 100)
        octal(mode, 100, 8)
        octal(uid, 108, 8)
        octal(gid, 116, 8)
        octal(size ?? data.count, 124, 12)
        octal(mtime, 136, 12)
        h[156] = type.asciiValue ?? 0x30
        put(link, 157, 100)
        switch format {
        case .ustar: put(Array("ustar\u{0}00".utf8), 257, 8)
        case .gnu: put(Array("ustar  \u{0}".utf8), 257, 8)
        case .v7: break
        }
        if format != .v7 {
            put(Array("root".utf8), 265, 32)
            put(Array("root".utf8), 297, 32)
        }
        edit(&h)
        for i in 148..<156 { h[i] = 0x20 }
        var sum = signedChecksum ? h.reduce(0) { $0 + Int(Int8(bitPattern: $1)) } : h.reduce(0) { $0 + Int($1) }
        if badChecksum { sum += 1 }
        put(Array(String(format: "%06o", sum).utf8) + [0, 0x20], 148, 8)
        bytes += h
        bytes += data
        bytes += [UInt8](repeating: 0, count: (512 - data.count % 512) % 512)
    }

    mutating func file(_ name: String, _ content: String = "", mode: Int = 0o644, uid: Int = 0) {
        entry(Array(name.utf8), data: Array(content.utf8), mode: mode, uid: uid)
    }

    mutating func directory(_ name: String, mode: Int = 0o755) {
        entry(Array(name.utf8), type: "5", mode: mode)
    }

    mutating func symlink(_ name: String, to target: String) {
        entry(Array(name.utf8), type: "2", link: Array(target.utf8), mode: 0o777)
    }

    mutating func hardLink(_ name: String, to target: String) {
        entry(Array(name.utf8), type: "1", link: Array(target.utf8))
    }

    /// A pax extended header (`x`, or `g` when global) with exact record lengths.
    mutating func pax(_ records: [(String, String)], global: Bool = false) {
        var data: [UInt8] = []
        for (key, value) in records {
            let body = " \(key)=\(value)\n"
            var length = body.utf8.count + 1
            while String(length).count + body.utf8.count != length { length += 1 }
            data += Array("\(length)\(body)".utf8)
        }
        entry(Array("PaxHeaders/x".utf8), type: global ? "g" : "x", data: data)
    }

    /// A GNU long name (`L`) or long link (`K`) header.
    mutating func gnuLong(_ name: String, type: Character = "L") {
        entry(Array("././@LongLink".utf8), type: type, data: Array(name.utf8) + [0], format: .gnu)
    }

    /// The end-of-archive marker: two zero blocks.
    mutating func end() {
        bytes += [UInt8](repeating: 0, count: 1024)
    }
}

/// Runs a program and returns its exit status.
@discardableResult
func run(_ argv: [String], stdin: Data? = nil, cwd: String? = nil) throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = argv
    if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    let input = Pipe()
    if stdin != nil { process.standardInput = input }
    try process.run()
    if let stdin {
        input.fileHandleForWriting.write(stdin)
        try input.fileHandleForWriting.close()
    }
    process.waitUntilExit()
    return process.terminationStatus
}

/// Gzips `data` into `path` with /usr/bin/gzip.
func writeGzip(_ data: [UInt8], to path: String) throws {
    let raw = path + ".raw"
    try Data(data).write(to: URL(fileURLWithPath: raw))
    #expect(try run(["sh", "-c", "gzip -n -c \"$0\" > \"$1\" && rm \"$0\"", raw, path]) == 0)
}

/// A description of a tree for before/after comparisons: every path with its type, mode, size,
/// content or link target.
func snapshotTree(_ root: String) -> [String: String] {
    var result: [String: String] = [:]
    var pending = [""]
    while let relative = pending.popLast() {
        let full = relative.isEmpty ? root : root + "/" + relative
        var st = stat()
        guard lstat(full, &st) == 0 else { continue }
        let mode = String(st.st_mode & 0o7777, radix: 8)
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            result[relative] = "dir \(mode)"
            for name in (try? FileManager.default.contentsOfDirectory(atPath: full)) ?? [] {
                pending.append(relative.isEmpty ? name : relative + "/" + name)
            }
        case S_IFLNK:
            result[relative] = "link -> " + ((try? FileManager.default.destinationOfSymbolicLink(atPath: full)) ?? "?")
        default:
            let content = (try? Data(contentsOf: URL(fileURLWithPath: full))) ?? Data()
            result[relative] = "file \(mode) \(String(decoding: content, as: UTF8.self))"
        }
    }
    return result
}

func readText(_ path: String) -> String? {
    (try? Data(contentsOf: URL(fileURLWithPath: path))).map { String(decoding: $0, as: UTF8.self) }
}

/// A scene for hostile-archive tests: a sentinel tree next to the destination that must never
/// change, and helpers to restore into `<dir>/restore/dest` through staging and commit.
struct RestoreScene: Sendable {
    let dir: TestDirectory
    var sentinel: String { dir.sub("sentinel") }
    var restoreParent: String { dir.sub("restore") }
    var destination: String { restoreParent + "/dest" }
    var archive: String { dir.sub("a.tar.gz") }

    init() throws {
        dir = TestDirectory()
        try FileManager.default.createDirectory(atPath: sentinel + "/inner", withIntermediateDirectories: true)
        try Data("precious".utf8).write(to: URL(fileURLWithPath: sentinel + "/file"))
        try Data("deep".utf8).write(to: URL(fileURLWithPath: sentinel + "/inner/x"))
        try FileManager.default.createDirectory(atPath: restoreParent, withIntermediateDirectories: true)
    }

    func write(_ tar: TarBuilder) throws {
        try writeGzip(tar.bytes, to: archive)
    }

    /// Extracts through staging and commits; the archive must already be written.
    @discardableResult
    func restore(_ options: ExtractOptions = ExtractOptions(), quarantine: String? = "q1") async throws -> ExtractReport {
        let archive = self.archive
        return try await withStagingDirectory(for: destination, name: "test") { staging in
            let report = try extractArchive(at: archive, into: staging.path, options: options)
            _ = try commitStaging(staging.makeDurable(), quarantineName: quarantine)
            return report
        }
    }

    /// Restores an archive that must be rejected, and checks nothing outside staging changed and
    /// no staging is left. Returns the error.
    func expectRejected(_ tar: TarBuilder, _ options: ExtractOptions = ExtractOptions(),
                        sourceLocation: SourceLocation = #_sourceLocation) async throws -> ArchiveError? {
        try write(tar)
        return try await expectRejectedArchive(options, sourceLocation: sourceLocation)
    }

    func expectRejectedArchive(_ options: ExtractOptions = ExtractOptions(),
                               sourceLocation: SourceLocation = #_sourceLocation) async throws -> ArchiveError? {
        let before = snapshotTree(dir.path)
        let beforeEntries = try FileManager.default.contentsOfDirectory(atPath: restoreParent)
        var caught: ArchiveError?
        do {
            try await restore(options)
            Issue.record("the archive was not rejected", sourceLocation: sourceLocation)
        } catch let error as ArchiveError {
            caught = error
        }
        #expect(snapshotTree(dir.path) == before, "something outside staging changed", sourceLocation: sourceLocation)
        #expect((try? FileManager.default.contentsOfDirectory(atPath: restoreParent)) == beforeEntries,
                "staging was left behind", sourceLocation: sourceLocation)
        // `snapshot verify`, which has no filesystem to ask, refuses it for the same reason: an
        // operator who checked a snapshot first must not be told it is fine.
        if let caught, caught.code != .io, caught.code != .checksumMissing || !FileManager.default.fileExists(atPath: archive + ".sha256") {
            do {
                _ = try verifyArchive(at: archive, options: options)
                Issue.record("verify passed what the restore refused (\(caught))", sourceLocation: sourceLocation)
            } catch let error as ArchiveError {
                #expect(error.code == caught.code && error.rule == caught.rule, "verify: \(error); restore: \(caught)", sourceLocation: sourceLocation)
            }
        }
        return caught
    }
}
