import ArgumentParser
import Foundation
import LifeboatKit

/// `lifeboat sites RUN`: every site of a run with its state, products done and restored-at or
/// ETA — the list support works from while telling customers.
struct SitesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sites",
        abstract: "Each site of a run: waiting, restoring, restored or failed; products done; restored at or ETA.",
        discussion: "--csv prints site,state,products_done,products_total,restored_at,eta,failed_products,reason (times in UTC, ISO-8601).")
    @Argument(help: ArgumentHelp("The run id.", valueName: "run")) var runID: String
    @Flag(help: "Print CSV (a header line, then one line per site).") var csv = false
    @OptionGroup var daemon: DaemonOptions

    func validate() throws {
        if csv && daemon.json { throw ValidationError("choose one of --csv and --json") }
    }

    func run() throws {
        let report = try daemon.call(Control.RunSites(run: runID))
        if daemon.json { return }
        if csv {
            print("site,state,products_done,products_total,restored_at,eta,failed_products,reason")
            for site in report.sites {
                let fields = [site.site, site.state.rawValue, "\(site.productsDone)", "\(site.productsTotal)",
                              Self.done(site, report.mode).map(Timestamp.iso) ?? "", site.eta.map(Timestamp.iso) ?? "",
                              site.failures.map(\.product).joined(separator: " "),
                              Self.reasons(site).joined(separator: "; ")]
                print(fields.map(Self.csvField).joined(separator: ","))
            }
            return
        }
        var table = TextTable(["SITE", "STATE", "PRODUCTS", report.mode == .delete ? "DELETED / ETA" : "RESTORED / ETA", "WHY NOT"])
        for site in report.sites {
            let when = Self.done(site, report.mode).map { Timestamp.iso($0) } ?? site.eta.map { "ETA " + Timestamp.iso($0) } ?? "-"
            table.add([site.site, site.state.rawValue, "\(site.productsDone)/\(site.productsTotal)", when,
                       Self.reasons(site).map { String($0.prefix(70)) }.joined(separator: "; ")])
        }
        print(table.render(), terminator: "")
        let counts = SiteStatus.State.states(of: report.mode).map { "\(report.counts[$0.rawValue] ?? 0) \($0.rawValue)" }.joined(separator: ", ")
        print("run \(report.run) (\(report.runState.rawValue)): \(report.sites.count) site(s): \(counts)")
    }

    /// When the site was back (restored), or its data moved to quarantine (a delete's).
    static func done(_ site: SiteStatus, _ mode: RunMode) -> Date? {
        mode == .delete ? (site.state == .deleted ? site.finishedAt : nil) : site.restoredAt
    }

    /// The site's failures in words, each said once (the products skipped for one failed
    /// dependency share its reason).
    static func reasons(_ site: SiteStatus) -> [String] {
        var seen = Set<String>()
        return site.failures.map(reason).filter { seen.insert($0).inserted }
    }

    /// A failure on one line (errors carry hook output with line breaks): spreadsheets and
    /// line-based tools read one site per line.
    static func reason(_ failure: SiteStatus.Failure) -> String {
        (failure.error ?? "\(failure.product): \(failure.state.rawValue)").split(whereSeparator: \.isNewline).joined(separator: " ")
    }

    /// RFC 4180: quote a field holding a comma, quote or line break; double the quotes.
    static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
