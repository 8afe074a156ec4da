import Foundation

/// A scanned snapshot store: `<store>/<site>/<product>/<taken-at>.tar.gz` (DESIGN.md "Snapshot
/// store"), with `.sha256` sidecars paired and stray files reported rather than guessed at.
public struct SnapshotStore: Sendable {
    public let root: String
    /// Snapshots per site and product, oldest first.
    public private(set) var snapshots: [String: [String: [Snapshot]]] = [:]
    /// Files and directories that do not fit the layout.
    public private(set) var strays: [StrayFile] = []

    public static let archiveSuffix = ".tar.gz"
    public static let sidecarSuffix = ".tar.gz.sha256"

    /// Scans the store. Throws when the root itself cannot be read.
    public init(scanning root: String) throws {
        self.root = root
        let siteEntries = try FileSystem.directoryEntries(root)
        for site in siteEntries {
            let sitePath = root + "/" + site.name
            guard site.kind == .directory else {
                strays.append(StrayFile(path: sitePath, reason: "not a site directory"))
                continue
            }
            guard Identifier.isValid(site.name) else {
                strays.append(StrayFile(path: sitePath, reason: "not a valid site id (\(Identifier.rule))"))
                continue
            }
            guard let productEntries = try? FileSystem.directoryEntries(sitePath) else {
                strays.append(StrayFile(path: sitePath, reason: "cannot be read (\(FileSystem.lastError()))"))
                continue
            }
            for product in productEntries {
                let productPath = sitePath + "/" + product.name
                guard product.kind == .directory else {
                    strays.append(StrayFile(path: productPath, reason: "not a product directory"))
                    continue
                }
                guard Identifier.isValid(product.name) else {
                    strays.append(StrayFile(path: productPath, reason: "not a valid product id (\(Identifier.rule))"))
                    continue
                }
                scanProduct(site: site.name, product: product.name, path: productPath)
            }
        }
        strays.sort { $0.path < $1.path }
    }

    private mutating func scanProduct(site: String, product: String, path: String) {
        guard let entries = try? FileSystem.directoryEntries(path) else {
            strays.append(StrayFile(path: path, reason: "cannot be read (\(FileSystem.lastError()))"))
            return
        }
        let names = Set(entries.map(\.name))
        var found: [Snapshot] = []
        for entry in entries {
            let filePath = path + "/" + entry.name
            if entry.name.hasSuffix(Self.sidecarSuffix) {
                let archive = String(entry.name.dropLast(".sha256".count))
                if !names.contains(archive) { strays.append(StrayFile(path: filePath, reason: "checksum sidecar without its archive")) }
                continue
            }
            guard entry.name.hasSuffix(Self.archiveSuffix) else {
                strays.append(StrayFile(path: filePath, reason: "not a snapshot (expected YYYYMMDDTHHMMSSZ.tar.gz)"))
                continue
            }
            let stamp = entry.name.dropLast(Self.archiveSuffix.count)
            guard let takenAt = Timestamp.parseBasic(stamp) else {
                strays.append(StrayFile(path: filePath, reason: "malformed taken-at \"\(stamp)\" (expected UTC YYYYMMDDTHHMMSSZ)"))
                continue
            }
            guard entry.kind == .regular, let size = FileSystem.size(of: filePath) else {
                strays.append(StrayFile(path: filePath, reason: "not a regular file"))
                continue
            }
            let sidecar = entry.name + ".sha256"
            found.append(Snapshot(site: site, product: product, takenAt: takenAt, path: filePath, size: size,
                                  sidecarPath: names.contains(sidecar) ? path + "/" + sidecar : nil))
        }
        guard !found.isEmpty else { return }
        snapshots[site, default: [:]][product] = found.sorted { $0.takenAt < $1.takenAt }
    }

    /// Every site id in the store, sorted.
    public var sites: [String] { snapshots.keys.sorted() }

    /// All snapshots of a site's product, oldest first.
    public func snapshots(site: String, product: String) -> [Snapshot] {
        snapshots[site]?[product] ?? []
    }

    /// The newest snapshot taken at or before `asOf` (DESIGN.md "Point in time").
    public func select(site: String, product: String, asOf: Date) -> Snapshot? {
        snapshots(site: site, product: product).last { $0.takenAt <= asOf }
    }

    /// Sites of the store matching a plan's selector, optionally narrowed to an explicit list.
    public func selectSites(_ selector: SiteSelector, only explicit: [String]? = nil) -> [String] {
        let matching = sites.filter(selector.matches)
        guard let explicit else { return matching }
        let wanted = Set(explicit)
        return matching.filter(wanted.contains)
    }
}
