import ArgumentParser
import Foundation
import LifeboatKit

struct SnapshotListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List a snapshot store: per site and product, the snapshots and the newest one at or before --as-of."
    )

    @Argument(help: "The snapshot store: a directory or s3://BUCKET/PREFIX (endpoint and region from AWS_ENDPOINT_URL, AWS_REGION).")
    var store: String

    @Option(help: "Point in time (ISO-8601, e.g. 2026-11-24T03:15:00Z); default now.")
    var asOf: String?

    @Flag(help: "Print results as JSON.")
    var json = false

    struct Row: Encodable {
        var site: String
        var product: String
        var snapshots: Int
        var newest: Snapshot?
    }

    struct Listing: Encodable {
        var store: String
        var asOf: Date
        var rows: [Row]
        var strays: [StrayFile]
    }

    func run() async throws {
        let asOfDate: Date
        if let asOf {
            guard let parsed = Timestamp.parse(asOf) else {
                throw CLIFailure(code: .rejected, message: "error: --as-of \"\(asOf)\" is not a time; use ISO-8601 like 2026-11-24T03:15:00Z")
            }
            asOfDate = parsed
        } else {
            asOfDate = Date()
        }
        let scan: SnapshotStore
        do {
            scan = try await SnapshotStores().open(store).scan()
        } catch let error as FileSystemError {
            throw CLIFailure(code: .rejected, message: "error: \(error.description) (is it a snapshot store?)")
        } catch let error as S3Error {
            throw CLIFailure(code: error.exitCode, message: "error: \(store): \(error.description)")
        }
        var rows: [Row] = []
        for site in scan.sites {
            for product in (scan.snapshots[site] ?? [:]).keys.sorted() {
                rows.append(Row(site: site, product: product, snapshots: scan.snapshots(site: site, product: product).count,
                                newest: scan.select(site: site, product: product, asOf: asOfDate)))
            }
        }
        if json {
            try printJSON(Listing(store: store, asOf: asOfDate, rows: rows, strays: scan.strays))
            return
        }
        var table = TextTable(["SITE", "PRODUCT", "SNAPSHOTS", "NEWEST", "SIZE", "SIDECAR"])
        for row in rows {
            table.add([row.site, row.product, "\(row.snapshots)",
                       row.newest.map { Timestamp.iso($0.takenAt) } ?? "none at or before as-of",
                       row.newest.map { ByteSize.format($0.size) } ?? "-",
                       row.newest.map { $0.sidecarPath == nil ? "missing" : "yes" } ?? "-"])
        }
        print(table.render(), terminator: "")
        let sites = Set(rows.map(\.site)).count
        print("\(sites) site(s), \(rows.count) site/product pair(s), as of \(Timestamp.iso(asOfDate))")
        for stray in scan.strays { printError("warning: ignored \(stray)") }
    }
}
