import ArgumentParser
import Foundation
import LifeboatKit

/// `lifeboat delete PLAN --sites … [--dry-run | --confirm TOKEN]`: a soft delete (DESIGN.md "Soft
/// deletes"). The daemon resolves and checks everything; this prints what it resolved.
struct DeleteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Soft-delete sites: move their targets into quarantine, in waves (undo with `rollback RUN`).",
        discussion: """
            First run it with --dry-run: it lists the sites, products, sizes and file counts it resolved and prints a confirmation \
            token. Then run the very same command with --confirm TOKEN instead. The token changes when the selection, the plan or \
            the targets' content changes. Every id must name an existing target of the plan (an unknown id refuses the whole \
            request); a plan may cap one delete (delete: { max_sites: N }); only root or the daemon config's `deleters` may \
            delete. Nothing is unlinked: `lifeboat rollback RUN [--site S]` puts the data back.
            """)
    @Argument(help: "A loaded plan's name.") var plan: String
    @Option(help: "Comma-separated site ids to delete.") var sites: String?
    @Option(help: "A file with one site id per line (# comments allowed).") var sitesFile: String?
    @Option(help: "Comma-separated products (default: every product of the plan with data at each site).") var products: String?
    @Option(help: "Why (recorded in the ledger with who and when).") var reason: String?
    @Flag(help: "Resolve and list what would be deleted, with the confirmation token; move nothing.") var dryRun = false
    @Option(help: "The token printed by --dry-run over the same selection.") var confirm: String?
    @OptionGroup var follow: FollowOptions
    @OptionGroup var daemon: DaemonOptions

    /// Sites left out are refused by the daemon (which says a delete never defaults to every site).
    func validate() throws {
        if dryRun, confirm != nil { throw ValidationError("give --dry-run or --confirm, not both") }
    }

    /// The ids as given: checked by the daemon, which lists every unknown one at once.
    func siteList() throws -> [String] {
        var list: [String] = []
        if let sites { list += sites.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
        if let sitesFile {
            guard let text = try? String(contentsOfFile: sitesFile, encoding: .utf8) else {
                throw CLIFailure(code: .rejected, message: "error: cannot read --sites-file \(sitesFile)")
            }
            list += text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        }
        return list
    }

    func run() throws {
        var command = Control.RunStart(plan: plan, mode: .delete, sites: try siteList())
        command.products = products.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        command.reason = reason
        let client = try daemon.connect()
        guard let confirm else {
            command.dryRun = true
            let answer = try client.answer(command)
            if daemon.json { try printJSON(try answer.json()) } else { Self.printSelection(try Self.answer(command, answer).selection) }
            if dryRun { return }
            // Without --dry-run and without a token: refused (and recorded by the daemon).
            command.dryRun = nil
            _ = try client.answer(command).json()
            return
        }
        command.confirm = confirm
        let reply = try client.answer(command)
        let answer = try Self.answer(command, reply)
        if daemon.json && !follow.following { try printJSON(try reply.json()); return }
        guard let run = answer.run else { throw CLIFailure(code: .failed, message: "error: the daemon started no run") }
        if !daemon.json {
            Self.printSelection(answer.selection, confirmed: true)
            print("started delete run \(run.id) of plan \(run.plan); undo with: lifeboat rollback \(run.id) [--site S]")
        }
        guard follow.following else {
            if !daemon.json { print("follow it with: lifeboat watch \(run.id)") }
            return
        }
        try Watch.follow(run.id, client: client, json: daemon.json, exitOnHalt: follow.exitOnHalt)
    }

    /// What the daemon answered a delete.
    static func answer(_ command: Control.RunStart, _ reply: ControlClient.Answer) throws -> DeleteAnswer {
        guard case .delete(let answer) = try command.decodeResult(reply) else { throw CLIFailure(code: .failed, message: "error: the daemon answered no delete") }
        return answer
    }

    static func printSelection(_ s: DeleteSelection, confirmed: Bool = false) {
        print("\(confirmed ? "deleting" : "would delete") \(s.sites.count) site(s) of plan \(s.plan), products \(s.products.joined(separator: ", ")): "
              + "\(s.targets.count) target(s), \(ByteSize.format(s.bytes)) in \(s.files) file(s), moved into quarantine (nothing is unlinked)")
        var table = TextTable(["SITE", "PRODUCT", "FILES", "SIZE", "TARGET"])
        // Where a link on the way leads elsewhere, the real place is shown: that is what moves.
        for t in s.targets {
            table.add([t.site, t.product, "\(t.files)", ByteSize.format(t.bytes),
                       t.destination + (t.resolved == t.destination ? "" : " (really \(t.resolved))")])
        }
        print(table.render(), terminator: "")
        print("waves: " + s.waves.enumerated().map { "\($0.offset + 1): \($0.element.joined(separator: ","))" }.joined(separator: "; ")
              + (s.maxSites.map { " (plan cap: \($0) site(s) per delete)" } ?? ""))
        if !confirmed {
            print("token: \(s.token)")
            print("to delete exactly this, run the same command with --confirm \(s.token) instead of --dry-run")
        }
    }
}
