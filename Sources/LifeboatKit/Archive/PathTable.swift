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

/// A set of paths kept as 64-bit fingerprints, 8 to 16 bytes a path whatever its length: verify's
/// record of the regular files seen so far, millions in a large archive (a `PathTable` of them
/// cost 60 bytes and the path each).
///
/// Two paths share a fingerprint with a chance of 2⁻⁶⁴ a pair, so `contains` may say yes to a
/// path never added: verify would then accept a hard link that extraction refuses (it asks the
/// filesystem), never refuse one extraction accepts.
struct PathFingerprints {
    private static let empty: UInt64 = 0
    private static let removed: UInt64 = 1
    /// Linear probing; `empty` and `removed` are never fingerprints.
    private var slots: [UInt64] = []
    /// Slots not empty (fingerprints and removed ones).
    private var used = 0
    private(set) var count = 0

    mutating func insert(_ key: String) {
        let fingerprint = Self.fingerprint(key)
        guard find(fingerprint) == nil else { return }
        if (used + 1) * 4 > slots.count * 3 { rebuild(capacity: (count + 1) * 2) }
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: fingerprint) & mask
        while slots[slot] != Self.empty, slots[slot] != Self.removed { slot = (slot + 1) & mask }
        if slots[slot] == Self.empty { used += 1 }
        slots[slot] = fingerprint
        count += 1
    }

    mutating func remove(_ key: String) {
        guard let slot = find(Self.fingerprint(key)) else { return }
        slots[slot] = Self.removed
        count -= 1
    }

    func contains(_ key: String) -> Bool {
        find(Self.fingerprint(key)) != nil
    }

    private func find(_ fingerprint: UInt64) -> Int? {
        guard !slots.isEmpty else { return nil }
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: fingerprint) & mask
        while slots[slot] != Self.empty {
            if slots[slot] == fingerprint { return slot }
            slot = (slot + 1) & mask
        }
        return nil
    }

    /// A fresh table of the fingerprints, a power of two at least `capacity` slots.
    private mutating func rebuild(capacity: Int) {
        var size = 64
        while size < capacity { size <<= 1 }
        let old = slots
        slots = Array(repeating: Self.empty, count: size)
        used = 0
        let mask = size - 1
        for fingerprint in old where fingerprint != Self.empty && fingerprint != Self.removed {
            var slot = Int(truncatingIfNeeded: fingerprint) & mask
            while slots[slot] != Self.empty { slot = (slot + 1) & mask }
            slots[slot] = fingerprint
            used += 1
        }
    }

    private static func fingerprint(_ key: String) -> UInt64 {
        var key = key
        let hash = key.withUTF8 { utf8 in
            var hasher = Hasher()
            hasher.combine(bytes: UnsafeRawBufferPointer(utf8))
            return UInt64(bitPattern: Int64(hasher.finalize()))
        }
        return hash < 2 ? hash + 2 : hash
    }
}
