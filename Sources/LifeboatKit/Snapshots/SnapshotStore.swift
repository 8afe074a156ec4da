import Foundation

/// The catalog of a snapshot store: `<store>/<site>/<product>/<taken-at>.tar.gz` (DESIGN.md
/// "Snapshot store"), with `.sha256` sidecars paired and stray files reported rather than guessed
/// at. Scanned from a directory here, or built from a bucket's listing (`BucketStore`).
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

    /// A file of a flat listing (an object store's keys under the store's prefix).
    public struct ListedFile: Sendable, Hashable {
        /// Relative to the store: `acme/jira/20261124T031500Z.tar.gz`.
        public var relativePath: String
        public var size: Int64

        public init(relativePath: String, size: Int64) {
            self.relativePath = relativePath
            self.size = size
        }
    }

    /// The catalog of a flat listing, with the layout rules of a directory scan; `url` gives a
    /// file's path or URL from its relative path.
    public init(root: String, listing: [ListedFile], url: (String) -> String) {
        self.root = root
        var products: [String: [String: [ListedFile]]] = [:]
        var reported: Set<String> = []
        var found: [StrayFile] = []
        func stray(_ path: String, _ reason: String) {
            if reported.insert(path).inserted { found.append(StrayFile(path: path, reason: reason)) }
        }
        for file in listing {
            // Zero-byte "folder" markers some tools create are no files.
            if file.relativePath.hasSuffix("/") || file.relativePath.isEmpty { continue }
            let parts = file.relativePath.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            switch parts.count {
            case 1:
                stray(url(parts[0]), "not a site directory")
            case 2:
                guard Identifier.isValid(parts[0]) else { stray(url(parts[0]), "not a valid site id (\(Identifier.rule))"); continue }
                stray(url(file.relativePath), "not a product directory")
            default:
                guard Identifier.isValid(parts[0]) else { stray(url(parts[0]), "not a valid site id (\(Identifier.rule))"); continue }
                guard Identifier.isValid(parts[1]) else {
                    stray(url(parts[0] + "/" + parts[1]), "not a valid product id (\(Identifier.rule))")
                    continue
                }
                guard parts.count == 3 else {
                    stray(url(file.relativePath), "not a snapshot (nested below the product; expected <site>/<product>/YYYYMMDDTHHMMSSZ.tar.gz)")
                    continue
                }
                products[parts[0], default: [:]][parts[1], default: []].append(file)
            }
        }
        strays = found
        for (site, byProduct) in products {
            for (product, files) in byProduct {
                let base = site + "/" + product + "/"
                let entries: [(name: String, regular: Bool, size: Int64?)] = files.map {
                    (name: String($0.relativePath.dropFirst(base.count)), regular: true, size: $0.size)
                }
                catalog(site: site, product: product, files: entries) { url(base + $0) }
            }
        }
        strays.sort { $0.path < $1.path }
    }

    private mutating func scanProduct(site: String, product: String, path: String) {
        guard let entries = try? FileSystem.directoryEntries(path) else {
            strays.append(StrayFile(path: path, reason: "cannot be read (\(FileSystem.lastError()))"))
            return
        }
        let files: [(name: String, regular: Bool, size: Int64?)] = entries.map { entry in
            let regular = entry.kind == .regular
            return (name: entry.name, regular: regular, size: regular ? FileSystem.size(of: path + "/" + entry.name) : nil)
        }
        catalog(site: site, product: product, files: files) { path + "/" + $0 }
    }

    /// Pairs archives with sidecars and reports the rest, for one product's files.
    private mutating func catalog(site: String, product: String, files entries: [(name: String, regular: Bool, size: Int64?)],
                                  path pathOf: (String) -> String) {
        let names = Set(entries.map(\.name))
        var found: [Snapshot] = []
        for entry in entries {
            let filePath = pathOf(entry.name)
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
            guard entry.regular, let size = entry.size else {
                strays.append(StrayFile(path: filePath, reason: "not a regular file"))
                continue
            }
            let sidecar = entry.name + ".sha256"
            found.append(Snapshot(site: site, product: product, takenAt: takenAt, path: filePath, size: size,
                                  sidecarPath: names.contains(sidecar) ? pathOf(sidecar) : nil))
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
