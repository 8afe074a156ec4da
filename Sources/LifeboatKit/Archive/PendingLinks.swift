import Foundation

/// The links an extraction holds back until every other entry exists (see `Extractor`), kept
/// compactly: a hostile or merely large archive may carry millions. A dictionary of structs
/// holding their own strings cost about 800 bytes a link (300,000 links: 250 MB); here a link is
/// a fixed 48-byte record, its path, target and entry name bytes in one shared buffer, and a slot
/// in an open-addressing index from path to record: about 150 bytes.
///
/// Records are numbered in archive order (that number is the link's serial). A link replaced by a
/// later entry of the same name stays as a dead record, skipped.
struct PendingLinks {
    private struct Record {
        var start: Int
        var keyLength: UInt32
        var targetLength: UInt32
        var nameLength: UInt32
        /// For a hard link to a held-back symbolic link: that link's record (-1: none).
        var source: Int32
        var mtimeSeconds: Int64
        var mtimeNanoseconds: Int32
        var uid: UInt32
        var gid: UInt32
        var mode: UInt16
        var flags: UInt8

        static let alive: UInt8 = 1, hasMtime: UInt8 = 2, hasOwner: UInt8 = 4
    }

    /// A held-back link, as `Extractor` reads it back.
    struct Link {
        var serial: Int
        var path: EntryPath
        var target: String
        var name: [UInt8]
        var metadata: StagingWriter.Metadata
        /// For a hard link to a held-back symbolic link: that link's serial.
        var source: Int?
    }

    private var bytes: [UInt8] = []
    private var records: [Record] = []
    /// Open addressing, linear probing: record numbers (-1: empty). Dead records stay until the
    /// index is rebuilt, and never match.
    private var slots: [Int32] = []
    /// Records entered into `slots` since it was built.
    private var occupied = 0
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    /// Every record, dead or alive (the serials given so far).
    var serials: Range<Int> { records.indices }

    /// Holds a link back, replacing a held-back link of the same path. Returns its serial.
    @discardableResult
    mutating func add(path: EntryPath, target: String, name: [UInt8], metadata: StagingWriter.Metadata, source: Int? = nil) -> Int {
        remove(path.key)
        let serial = records.count
        var record = Record(start: bytes.count, keyLength: UInt32(path.key.utf8.count), targetLength: UInt32(target.utf8.count),
                            nameLength: UInt32(name.count), source: source.map(Int32.init) ?? -1, mtimeSeconds: 0, mtimeNanoseconds: 0,
                            uid: 0, gid: 0, mode: UInt16(truncatingIfNeeded: metadata.mode), flags: Record.alive)
        if let mtime = metadata.mtime {
            record.mtimeSeconds = mtime.seconds
            record.mtimeNanoseconds = Int32(truncatingIfNeeded: mtime.nanoseconds)
            record.flags |= Record.hasMtime
        }
        if let owner = metadata.owner {
            (record.uid, record.gid) = (owner.uid, owner.gid)
            record.flags |= Record.hasOwner
        }
        bytes.append(contentsOf: path.key.utf8)
        bytes.append(contentsOf: target.utf8)
        bytes.append(contentsOf: name)
        records.append(record)
        count += 1
        if (occupied + 1) * 2 > slots.count { rebuild(capacity: max(64, count * 4)) }
        insert(serial)
        return serial
    }

    /// Drops the held-back link at `key`, if any (a later entry took its name).
    mutating func remove(_ key: String) {
        guard count > 0, let serial = serial(of: key) else { return }
        records[serial].flags &= ~Record.alive
        count -= 1
    }

    /// The serial of the live link at `key`.
    func serial(of key: String) -> Int? {
        guard count > 0 else { return nil }
        var key = key
        return key.withUTF8 { find($0) }
    }

    /// Whether a live link sits at `key` or any of its proper ancestors other than the root;
    /// returns the first such (outermost) as a string.
    func ancestorLink(of key: String) -> String? {
        guard count > 0 else { return nil }
        var key = key
        return key.withUTF8 { utf8 -> String? in
            for end in utf8.indices where utf8[end] == UInt8(ascii: "/") {
                let prefix = UnsafeBufferPointer(rebasing: utf8[..<end])
                if find(prefix) != nil { return String(decoding: prefix, as: UTF8.self) }
            }
            return nil
        }
    }

    /// The target of the live link at `key` (for resolving chains of links).
    func target(of key: String) -> String? {
        serial(of: key).map { target(records[$0]) }
    }

    /// The link with this serial, if it is still held back (not replaced since).
    func link(_ serial: Int) -> Link? {
        let record = records[serial]
        guard record.flags & Record.alive != 0 else { return nil }
        let key = string(record.start, Int(record.keyLength))
        let nameStart = record.start + Int(record.keyLength) + Int(record.targetLength)
        let metadata = StagingWriter.Metadata(
            mode: mode_t(record.mode),
            mtime: record.flags & Record.hasMtime != 0 ? (record.mtimeSeconds, Int(record.mtimeNanoseconds)) : nil,
            owner: record.flags & Record.hasOwner != 0 ? (record.uid, record.gid) : nil)
        return Link(serial: serial, path: EntryPath(components: key.split(separator: "/").map(String.init)),
                    target: target(record), name: Array(bytes[nameStart..<nameStart + Int(record.nameLength)]),
                    metadata: metadata, source: record.source >= 0 ? Int(record.source) : nil)
    }

    // MARK: The index

    private func target(_ record: Record) -> String {
        string(record.start + Int(record.keyLength), Int(record.targetLength))
    }

    private func string(_ start: Int, _ length: Int) -> String {
        bytes.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[start..<start + length]), as: UTF8.self) }
    }

    private func hash(_ key: UnsafeBufferPointer<UInt8>) -> Int {
        var hasher = Hasher()
        hasher.combine(bytes: UnsafeRawBufferPointer(key))
        return hasher.finalize()
    }

    private func find(_ key: UnsafeBufferPointer<UInt8>) -> Int? {
        guard !slots.isEmpty else { return nil }
        let mask = slots.count - 1
        var slot = hash(key) & mask
        return bytes.withUnsafeBufferPointer { arena -> Int? in
            while true {
                let serial = slots[slot]
                if serial < 0 { return nil }
                let record = records[Int(serial)]
                if record.flags & Record.alive != 0, Int(record.keyLength) == key.count,
                   UnsafeBufferPointer(rebasing: arena[record.start..<record.start + key.count]).elementsEqual(key) {
                    return Int(serial)
                }
                slot = (slot + 1) & mask
            }
        }
    }

    private mutating func insert(_ serial: Int) {
        let record = records[serial]
        let mask = slots.count - 1
        var slot = bytes.withUnsafeBufferPointer { hash(UnsafeBufferPointer(rebasing: $0[record.start..<record.start + Int(record.keyLength)])) } & mask
        while slots[slot] >= 0 { slot = (slot + 1) & mask }
        slots[slot] = Int32(serial)
        occupied += 1
    }

    /// A fresh index of the live records (dead ones dropped), a power of two at least `capacity`.
    private mutating func rebuild(capacity: Int) {
        var size = 64
        while size < capacity { size <<= 1 }
        slots = Array(repeating: -1, count: size)
        occupied = 0
        for serial in records.indices where records[serial].flags & Record.alive != 0 { insert(serial) }
    }
}
