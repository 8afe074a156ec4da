import ArgumentParser
import Foundation
import LifeboatKit

struct RollbackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Put back the data a restore displaced (the restored data goes to quarantine in turn), or undelete a delete run.",
        discussion: "Refuses when there is nothing to roll back or a destination changed since the restore. Of a delete run: renames the soft-deleted data back, refusing where the target was re-created since unless --force-aside.")
    @Argument(help: ArgumentHelp("The restore run.", valueName: "run")) var runID: String
    @Option(help: "Only this site.") var site: String?
    @Option(help: "Only this product.") var product: String?
    @Flag(help: "Also roll back trees changed since the restore (the changes go to quarantine with the restored data).")
    var force = false
    @Flag(help: "Undelete: move data re-created at a target since the delete to quarantine first (it is kept there).")
    var forceAside = false
    @OptionGroup var daemon: DaemonOptions

    func run() throws {
        let outcomes = try daemon.call(Control.Rollback(run: runID, site: site, product: product, force: force, forceAside: forceAside))
        guard !daemon.json else { return }
        for o in outcomes {
            if o.alreadyDone == true {
                print("\(o.site)/\(o.product): done before (by an earlier rollback or undelete); left as it is")
                continue
            }
            if let seconds = o.seconds {
                // An undelete.
                print("\(o.site)/\(o.product): undeleted: back at \(o.destination) in \(String(format: "%.3f", seconds)) s"
                      + (o.identical == true ? ", tree identical to the one deleted" : o.identical == false ? ", the tree DIFFERS from the one deleted" : "")
                      + (o.aside.map { "; the data re-created there is kept at \($0)" } ?? ""))
                continue
            }
            print("\(o.site)/\(o.product): " + (o.destinationRemoved ? "restored data moved out of \(o.destination) (nothing was there before)"
                                                                      : "previous data back in \(o.destination)") + "; restored data kept at \(o.quarantined)"
                  + (o.changedSinceRestore ? " (including the changes made to it after the restore)" : ""))
        }
    }
}

struct QuarantineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "quarantine", abstract: "Data displaced by restores and rollbacks, and soft-deleted data.",
                                                    subcommands: [QuarantineList.self, QuarantinePurge.self])
}

struct QuarantineList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Quarantined data: run, site, product, size, age, purgeable.")
    @OptionGroup var daemon: DaemonOptions

    func run() throws {
        try daemon.show(Control.QuarantineList()) { entries in
            TextTable.print(["ID", "RUN", "SITE", "PRODUCT", "SIZE", "AGE", "PURGEABLE", "WHY", "PATH"], entries) { e in
                ["\(e.id)", e.run, e.site, e.product, e.bytes.map(ByteSize.format) ?? "missing", DurationSpec.format(seconds: e.ageSeconds),
                 e.purgeable ? "yes" : "after \(Timestamp.iso(e.retainUntil))", e.reason, e.path]
            }
        }
    }
}

struct QuarantinePurge: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "purge", abstract: "Remove quarantined data past its retention (and older than --older-than).")
    @Option(help: "Only entries at least this old, e.g. 60d (never inside retention).") var olderThan: String?
    @Flag(help: "Show what would be removed; remove nothing.") var dryRun = false
    @Flag(help: "Confirm purging entries kept under a day (a quarantine retention below 1d).") var yes = false
    @OptionGroup var daemon: DaemonOptions

    func run() throws {
        let result = try daemon.call(Control.QuarantinePurge(olderThan: olderThan, dryRun: dryRun, yes: yes))
        guard !daemon.json else { return }
        for e in result.purged {
            print("\(dryRun ? "would purge" : "purged") \(e.path) (\(e.site)/\(e.product), \(e.bytes.map(ByteSize.format) ?? "?"), \(DurationSpec.format(seconds: e.ageSeconds)) old)")
        }
        var why: [String] = []
        if result.keptInsideRetention > 0 {
            why.append("\(result.keptInsideRetention) inside retention"
                       + (result.keptSoftDeleted > 0 ? ", of which \(result.keptSoftDeleted) soft-deleted site data never purged before its retention" : ""))
        }
        if result.keptInUse > 0 { why.append("\(result.keptInUse) of or needed by a run going now, or holding a mount") }
        for e in result.replaced {
            print("left alone \(e.path) (\(e.site)/\(e.product)): it is not the data quarantined there (moved or replaced outside Lifeboat); "
                  + "look at it, remove it yourself if it is not wanted, and a later purge closes the entry")
        }
        if !result.replaced.isEmpty { why.append("\(result.replaced.count) not the data quarantined there") }
        if result.keptYounger > 0 { why.append("\(result.keptYounger) past retention but younger than --older-than \(olderThan ?? "")") }
        print("\(result.purged.count) \(dryRun ? "would be " : "")purged, \(result.kept) kept" + (why.isEmpty ? "" : " (\(why.joined(separator: ", ")))")
              + (result.gone > 0 ? "; \(result.gone) entr\(result.gone == 1 ? "y's" : "ies'") data already gone (removed outside Lifeboat)\(dryRun ? "" : ", closed")" : ""))
    }
}

/// Checked while parsing, so a wrong format gets `report`'s usage, not the top-level one.
extension ReportFormat: ExpressibleByArgument {}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "report", abstract: "A run's report: per-job RPO/RTO, summaries, failures, timeline.")
    @Argument(help: ArgumentHelp("The run id.", valueName: "run")) var runID: String
    @Option(help: "md, json or html (default: md; json with --json).") var format: ReportFormat?
    @Option(name: .shortAndLong, help: "Write to this file instead of standard output.") var output: String?
    @OptionGroup var daemon: DaemonOptions

    func run() throws {
        let result = try daemon.connect().call(Control.Report(run: runID, format: format ?? (daemon.json ? .json : .md)))
        if let output {
            try result.content.write(toFile: output, atomically: true, encoding: .utf8)
            print("wrote \(output)")
        } else {
            print(result.content, terminator: result.content.hasSuffix("\n") ? "" : "\n")
        }
    }
}

struct SchedulesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "schedules", abstract: "Scheduled exercises and their next fires (UTC).")
    @OptionGroup var daemon: DaemonOptions

    func run() throws {
        try daemon.show(Control.Schedules()) { upcoming in
            TextTable.print(["PLAN", "SCHEDULE", "NEXT", "LAST", "EXERCISES", "NEXT SCALE"], upcoming) { u in
                [u.plan, u.expression, u.next.map(Timestamp.iso) ?? "never", u.last.map(Timestamp.iso) ?? "-", "\(u.exercises)",
                 // Capped at the sites the plan selects now; the run samples from what it has then.
                 u.nextScale == Int.max ? "all sites" : "up to \(u.nextScale) site(s)"]
            }
            for u in upcoming { if let why = u.notFired { print("\(u.plan): \(why)") } }
        }
    }
}
