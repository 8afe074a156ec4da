import Foundation

/// A table from entry path keys to small values, for what an extraction keeps per entry until the
/// end (held-back links, directories awaiting their final modes): a hostile or merely large
/// archive may carry millions of those. A `[String: Struct]` cost 300 to 800 bytes an entry
/// (300,000 symbolic links: 250 MB); here the keys (and any extra bytes) share one buffer, the
/// values one array, and an open-addressing index maps keys to positions: under 150 bytes.
///
/// Positions count entries in the order they were added. An entry replaced or removed stays as a
/// dead position, skipped; the index is rebuilt without them as it grows. (Memory grows with
/// every entry added, replaced ones included: bounded by the archive's `max_entries`. Callers
/// that need no order update a present key's value in place instead, `setValue`.)
struct PathTable<Value> {
    private struct Entry {
        var start: Int
        var keyLength: UInt32
        var extraLength: UInt32
        var alive: Bool
        var value: Value
    }

    private var bytes: [UInt8] = []
    private var entries: [Entry] = []
    /// Linear probing over positions (-1: empty). Dead positions never match a key.
    private var slots: [Int32] = []
    /// Positions entered into `slots` since it was built.
    private var occupied = 0
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    /// The bytes of the keys (and extras) kept, those of dead positions included.
    var byteCount: Int { bytes.count }

    /// Every position given so far, in order (dead ones included: `value(at:)` is nil).
    var positions: Range<Int> { entries.indices }

    /// Adds `key` with its value and `extra` bytes kept beside it, replacing an entry of the same
    /// key (its slot in the index then points at the new position). Returns its position.
    @discardableResult
    mutating func add(_ key: String, _ value: Value, extra: [UInt8] = []) -> Int {
        let replaced = slot(of: key)
        let position = entries.count
        entries.append(Entry(start: bytes.count, keyLength: UInt32(key.utf8.count), extraLength: UInt32(extra.count), alive: true, value: value))
        bytes.append(contentsOf: key.utf8)
        bytes.append(contentsOf: extra)
        if let replaced {
            entries[Int(slots[replaced])].alive = false
            slots[replaced] = Int32(position)
        } else {
            count += 1
            if (occupied + 1) * 2 > slots.count { rebuild(capacity: count * 4) }
            insert(position)
        }
        return position
    }

    /// Removes the entry of `key`, if any (its slot stays, dead, until the next rebuild).
    mutating func remove(_ key: String) {
        guard let slot = slot(of: key) else { return }
        entries[Int(slots[slot])].alive = false
        count -= 1
    }

    /// The live entry of `key`.
    func position(of key: String) -> Int? {
        slot(of: key).map { Int(slots[$0]) }
    }

    /// The index slot holding the live entry of `key`.
    private func slot(of key: String) -> Int? {
        guard count > 0 else { return nil }
        var key = key
        return key.withUTF8 { find($0) }
    }

    /// The outermost proper ancestor of `key` (a prefix ending before a `/`) that has a live
    /// entry, if any. Each prefix's hash extends the one before (a copy of the hasher at each
    /// `/`): the cost grows with the key's length, not with its length times its depth.
    func ancestor(of key: String) -> String? {
        guard count > 0 else { return nil }
        var key = key
        return key.withUTF8 { utf8 -> String? in
            var hasher = Hasher()
            var hashed = 0
            for end in utf8.indices where utf8[end] == UInt8(ascii: "/") {
                hasher.combine(bytes: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: utf8[hashed..<end])))
                hashed = end
                let prefix = UnsafeBufferPointer(rebasing: utf8[..<end])
                let state = hasher
                if find(prefix, hash: state.finalize()) != nil { return String(decoding: prefix, as: UTF8.self) }
            }
            return nil
        }
    }

    /// The live entry of the path `walk` has reached.
    func position(of walk: PathWalk) -> Int? {
        guard count > 0 else { return nil }
        return walk.bytes.withUnsafeBufferPointer { find($0, hash: walk.hash) }.map { Int(slots[$0]) }
    }

    /// The value at `position`; nil once replaced or removed.
    func value(at position: Int) -> Value? {
        entries[position].alive ? entries[position].value : nil
    }

    mutating func setValue(_ value: Value, at position: Int) {
        entries[position].value = value
    }

    func key(at position: Int) -> String {
        let entry = entries[position]
        return bytes.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[entry.start..<entry.start + Int(entry.keyLength)]), as: UTF8.self) }
    }

    func extra(at position: Int) -> ArraySlice<UInt8> {
        let entry = entries[position]
        let start = entry.start + Int(entry.keyLength)
        return bytes[start..<start + Int(entry.extraLength)]
    }

    // MARK: The index

    private func hash(_ key: UnsafeBufferPointer<UInt8>) -> Int {
        var hasher = Hasher()
        hasher.combine(bytes: UnsafeRawBufferPointer(key))
        return hasher.finalize()
    }

    /// The slot holding the live entry of `key` (whose `hash`, if known).
    private func find(_ key: UnsafeBufferPointer<UInt8>, hash known: Int? = nil) -> Int? {
        guard !slots.isEmpty else { return nil }
        let mask = slots.count - 1
        var slot = (known ?? hash(key)) & mask
        return bytes.withUnsafeBufferPointer { arena -> Int? in
            while true {
                let position = Int(slots[slot])
                if position < 0 { return nil }
                let entry = entries[position]
                if entry.alive, Int(entry.keyLength) == key.count,
                   UnsafeBufferPointer(rebasing: arena[entry.start..<entry.start + key.count]).elementsEqual(key) {
                    return slot
                }
                slot = (slot + 1) & mask
            }
        }
    }

    private mutating func insert(_ position: Int) {
        let entry = entries[position]
        let mask = slots.count - 1
        var slot = bytes.withUnsafeBufferPointer { hash(UnsafeBufferPointer(rebasing: $0[entry.start..<entry.start + Int(entry.keyLength)])) } & mask
        while slots[slot] >= 0 { slot = (slot + 1) & mask }
        slots[slot] = Int32(position)
        occupied += 1
    }

    /// A fresh index of the live entries, a power of two at least `capacity` slots: made from
    /// the old index (dead slots dropped), so its cost is the index's size, not every entry
    /// ever added (an archive repeating one name over and over would make that quadratic).
    private mutating func rebuild(capacity: Int) {
        var size = 64
        while size < capacity { size <<= 1 }
        let old = slots
        slots = Array(repeating: -1, count: size)
        occupied = 0
        for position in old where position >= 0 && entries[Int(position)].alive { insert(Int(position)) }
    }
}

/// A path made one component at a time (a resolver's walk through a tree), with its hash kept
/// as it grows and shrinks: looking each step up in a `PathTable` costs its new component, not
/// the whole path again. (`Hasher` gives the same hash whatever the pieces its bytes came in.)
struct PathWalk {
    private(set) var bytes: [UInt8] = []
    private var hasher = Hasher()
    /// Before each component: the length and the hasher then.
    private var marks: [(length: Int, hasher: Hasher)] = []

    init(components: some Sequence<String>) {
        for component in components { push(component) }
    }

    var isEmpty: Bool { marks.isEmpty }

    mutating func push(_ component: String) {
        marks.append((bytes.count, hasher))
        var added = bytes.isEmpty ? [] : [UInt8(ascii: "/")]
        added.append(contentsOf: component.utf8)
        added.withUnsafeBytes { hasher.combine(bytes: $0) }
        bytes.append(contentsOf: added)
    }

    mutating func pop() {
        let mark = marks.removeLast()
        bytes.removeSubrange(mark.length...)
        hasher = mark.hasher
    }

    /// The hash `PathTable` gives these bytes.
    var hash: Int {
        let state = hasher
        return state.finalize()
    }

    var key: String { String(decoding: bytes, as: UTF8.self) }
}

/// The names an extraction makes, for verification, which has no filesystem to ask: the rules a
/// restore meets in staging (a hard link's target is a regular file extracted before it; a parent
/// that is a file; a non-empty directory an entry would replace) are met here the same way, so
/// that `snapshot verify` passes exactly the archives a restore accepts.
///
/// Each name is kept as a 64-bit fingerprint with its kind (about 35 bytes a name whatever its
/// length: millions in a large archive). Two paths share a fingerprint with a chance of 2⁻⁶⁴ a
/// pair.
struct VerifyTree {
    /// A regular file (or a link, once made), or a directory and how many names it holds.
    private static let file: Int32 = -1
    private var nodes: [UInt64: Int32] = [:]

    /// Whether a regular file is at `path`.
    func isFile(_ path: EntryPath) -> Bool { nodes[Self.fingerprint(path.key)] == Self.file }

    /// The directories above `path`, made where missing as a restore does; one that is a file
    /// breaks `parent-not-directory`.
    mutating func makeParents(of path: EntryPath) throws {
        var key = ""
        var parent = Self.fingerprint(key)
        for component in path.components.dropLast() {
            key = key.isEmpty ? component : key + "/" + component
            let here = Self.fingerprint(key)
            switch nodes[here] {
            case Self.file?: throw RuleViolation(.parentNotDirectory)
            case nil:
                nodes[here] = 0
                added(under: parent)
            default: break
            }
            parent = here
        }
    }

    /// A directory at `path`: kept if there, made over a file.
    mutating func makeDirectory(_ path: EntryPath) {
        guard !path.isRoot else { return }
        let here = Self.fingerprint(path.key)
        switch nodes[here] {
        case nil:
            nodes[here] = 0
            added(under: Self.fingerprint(path.parent.key))
        case Self.file?: nodes[here] = 0
        default: break
        }
    }

    /// A regular file (or a link) at `path`, over what had the name: a non-empty directory breaks
    /// `replaces-non-empty-directory`.
    mutating func makeFile(_ path: EntryPath) throws {
        try clear(path)
        nodes[Self.fingerprint(path.key)] = Self.file
        added(under: Self.fingerprint(path.parent.key))
    }

    /// Nothing at `path` (a link held back until the end takes the name then).
    mutating func clear(_ path: EntryPath) throws {
        let here = Self.fingerprint(path.key)
        guard let node = nodes[here] else { return }
        if node > 0 { throw RuleViolation(.replacesDirectory) }
        nodes[here] = nil
        let parent = Self.fingerprint(path.parent.key)
        if let count = nodes[parent], count > 0 { nodes[parent] = count - 1 }
    }

    private mutating func added(under parent: UInt64) {
        if let count = nodes[parent], count >= 0 { nodes[parent] = count + 1 }
    }

    private static func fingerprint(_ key: String) -> UInt64 {
        var key = key
        return key.withUTF8 { utf8 in
            var hasher = Hasher()
            hasher.combine(bytes: UnsafeRawBufferPointer(utf8))
            return UInt64(bitPattern: Int64(hasher.finalize()))
        }
    }
}
