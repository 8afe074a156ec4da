/// The links an extraction holds back until every other entry exists (see `Extractor`), in a
/// `PathTable`: a link's target and entry name are kept as extra bytes beside its path. Serials
/// are the table's positions: archive order, a link replaced later left dead.
struct PendingLinks {
    private struct Value {
        var metadata: StagingWriter.Metadata
        var targetLength: UInt32
        /// For a hard link to a held-back symbolic link: that link's serial (-1: none).
        var source: Int32
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

    private var table = PathTable<Value>()

    var isEmpty: Bool { table.isEmpty }
    var count: Int { table.count }

    /// Every serial given so far, in archive order.
    var serials: Range<Int> { table.positions }

    /// Holds a link back, replacing a held-back link of the same path. Returns its serial.
    @discardableResult
    mutating func add(path: EntryPath, target: String, name: [UInt8], metadata: StagingWriter.Metadata, source: Int? = nil) -> Int {
        table.add(path.key, Value(metadata: metadata, targetLength: UInt32(target.utf8.count), source: source.map(Int32.init) ?? -1),
                  extra: Array(target.utf8) + name)
    }

    /// Drops the held-back link at `key`, if any (a later entry took its name).
    mutating func remove(_ key: String) { table.remove(key) }

    /// The serial of the live link at `key`.
    func serial(of key: String) -> Int? { table.position(of: key) }

    /// The outermost held-back link a path at `key` would go through, if any.
    func link(above key: String) -> String? { table.ancestor(of: key) }

    /// The serial of the live link at the path `walk` reached (resolving chains of links).
    func serial(of walk: PathWalk) -> Int? { table.position(of: walk) }

    /// The target of the live link with this serial.
    func target(_ serial: Int) -> String? {
        guard let value = table.value(at: serial) else { return nil }
        return String(decoding: table.extra(at: serial).prefix(Int(value.targetLength)), as: UTF8.self)
    }

    /// The link with this serial, if it is still held back (not replaced since).
    func link(_ serial: Int) -> Link? {
        guard let value = table.value(at: serial) else { return nil }
        let key = table.key(at: serial)
        let extra = table.extra(at: serial)
        return Link(serial: serial, path: EntryPath(components: key.split(separator: "/").map(String.init)),
                    target: String(decoding: extra.prefix(Int(value.targetLength)), as: UTF8.self),
                    name: Array(extra.dropFirst(Int(value.targetLength))), metadata: value.metadata,
                    source: value.source >= 0 ? Int(value.source) : nil)
    }
}
