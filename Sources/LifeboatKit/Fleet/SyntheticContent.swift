/// The contents of one synthetic archive: JSON records (compressible) and binary attachments
/// (half noise, half pattern) in nested folders, plus a few relative symlinks.
struct SyntheticContent {
    let site: String
    let product: String
    let mtime: Int64

    private static let words = ["alpha", "beta", "ticket", "page", "contact", "status", "open", "closed", "review",
                                "release", "customer", "support", "billing", "invoice", "project", "sprint",
                                "comment", "attachment", "priority", "assignee", "reporter", "summary", "label"]

    /// Writes entries until about `targetSize` bytes of file data; returns the counts.
    func write(into tar: inout TarWriter, rng: inout SplitMix64, targetSize: Int64) throws -> (files: Int, bytes: Int64) {
        var bytes: Int64 = 0
        var files = 0
        var buffer = [UInt8]()
        buffer.reserveCapacity(300 << 10)
        try tar.writeHeader(name: "records/", type: .directory, mode: 0o755, mtime: mtime)
        try tar.writeHeader(name: "attachments/", type: .directory, mode: 0o755, mtime: mtime)
        var directories = Set<String>()
        var firstRecord: String?
        var record = 0, attachment = 0
        // About 40% of the bytes in records, 60% in attachments.
        while bytes < targetSize || files < 2 {
            buffer.removeAll(keepingCapacity: true)
            let name: String
            let dir: String
            if rng.below(100) < 92 {
                record += 1
                dir = "records/\(2020 + record % 6)/\(String(format: "%02d", 1 + record % 12))"
                name = "\(dir)/\(product)-\(String(format: "%06d", record)).json"
                fillRecord(&buffer, id: record, rng: &rng, remaining: max(256, targetSize - bytes))
                firstRecord = firstRecord ?? name
            } else {
                attachment += 1
                dir = "attachments/\(String(format: "%02x", rng.below(16)))"
                name = "\(dir)/att-\(String(format: "%05d", attachment)).bin"
                fillAttachment(&buffer, rng: &rng, remaining: max(512, targetSize - bytes))
            }
            // Each new folder gets its own entry, parents first.
            let parts = dir.split(separator: "/")
            for depth in 2...parts.count {
                let prefix = parts.prefix(depth).joined(separator: "/")
                if directories.insert(prefix).inserted {
                    try tar.writeHeader(name: prefix + "/", type: .directory, mode: 0o755, mtime: mtime)
                }
            }
            try tar.writeHeader(name: name, type: .file, size: Int64(buffer.count), mode: 0o644, mtime: mtime)
            try buffer.withUnsafeBytes { try tar.writeData($0) }
            try tar.pad(Int64(buffer.count))
            bytes += Int64(buffer.count)
            files += 1
        }
        // A manifest and a few relative symlinks, all pointing inside the archive.
        buffer = Array("{\"site\":\"\(site)\",\"product\":\"\(product)\",\"records\":\(record),\"attachments\":\(attachment)}\n".utf8)
        try tar.writeHeader(name: "manifest.json", type: .file, size: Int64(buffer.count), mode: 0o644, mtime: mtime)
        try buffer.withUnsafeBytes { try tar.writeData($0) }
        try tar.pad(Int64(buffer.count))
        if let firstRecord {
            try tar.writeHeader(name: "latest.json", type: .symlink, mode: 0o777, mtime: mtime, linkName: firstRecord)
            let year = firstRecord.split(separator: "/")[1]
            try tar.writeHeader(name: "records/current", type: .symlink, mode: 0o777, mtime: mtime, linkName: String(year))
        }
        return (files + 1, bytes + Int64(buffer.count))
    }

    private func fillRecord(_ out: inout [UInt8], id: Int, rng: inout SplitMix64, remaining: Int64) {
        let target = min(Int(remaining), 512 + rng.below(6 << 10))
        out += Array("{\"id\":\(id),\"site\":\"\(site)\",\"product\":\"\(product)\",\"fields\":[".utf8)
        var first = true
        while out.count < target {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            let key = Self.words[rng.below(Self.words.count)]
            out += Array("{\"\(key)\":\"".utf8)
            for w in 0..<(3 + rng.below(8)) {
                if w > 0 { out.append(UInt8(ascii: " ")) }
                out += Array(Self.words[rng.below(Self.words.count)].utf8)
            }
            out += Array("\",\"n\":\(rng.below(1_000_000))}".utf8)
        }
        out += Array("]}\n".utf8)
    }

    private func fillAttachment(_ out: inout [UInt8], rng: inout SplitMix64, remaining: Int64) {
        let size = min(Int(remaining), (16 << 10) + rng.below(240 << 10))
        let noise = size / 2
        out.reserveCapacity(size)
        var i = 0
        while i + 8 <= noise {
            withUnsafeBytes(of: rng.next().littleEndian) { out += $0 }
            i += 8
        }
        let pattern = UInt8(truncatingIfNeeded: rng.next())
        while out.count < size { out.append(pattern &+ UInt8(truncatingIfNeeded: out.count >> 6)) }
    }
}
