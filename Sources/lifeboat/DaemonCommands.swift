import ArgumentParser
import Foundation
import LifeboatKit

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "The daemon's state: runs going, plans, throughput.")
    @OptionGroup var daemon: DaemonOptions

    func run() throws { try daemon.show(Control.Status(), Self.describe) }

    /// `status` for a person: the daemon, plan problems, hosts, runs going.
    static func describe(_ status: DaemonStatus) {
        print("lifeboatd \(status.version) (pid \(status.pid)), up \(DurationSpec.format(seconds: status.uptimeSeconds)), socket \(status.socket)")
        print("ledger \(status.ledger); \(status.plans) plan(s) loaded; \(ByteSize.format(Int64(status.bytesPerSecond)))/s restored over the last minute")
        for problem in status.planProblems {
            print("plan problem: \(problem.file)" + (problem.keptPrevious.map { " (serving the previous version of \($0))" } ?? ""))
            for error in problem.errors { print("  \(error)") }
        }
        if let problem = status.ledgerProblem {
            let age = DurationSpec.format(seconds: max(0, Date().timeIntervalSince(problem.since)))
            if status.host == nil {
                // One host's ledger: it reads on, its writes wait.
                print("LEDGER WRITES WAITING for \(age) (since \(Timestamp.iso(problem.since))): \(problem.reason)")
                print("  every job waits for its next record; nothing is given up, and they go on once the ledger takes writes")
            } else {
                print("LEDGER NOT ANSWERING for \(age) (since \(Timestamp.iso(problem.since))): \(problem.reason)")
                print("  this host claims nothing and commits nothing it cannot record until it answers; shown: this host's runs and throughput only")
            }
        }
        if let since = status.stoppingSince {
            print("STOPPING since \(Timestamp.iso(since)): lifeboatd drains its runs and takes no command that changes anything")
            print(status.host == nil ? "  its runs are recorded interrupted and resume at its next start"
                  : "  its runs and jobs go back to the ledger, for another host to take over or this one at its next start")
        }
        if let hosts = status.hosts {
            // The fleet sharing the ledger: who is alive, how fresh, what each holds.
            var table = TextTable(["HOST", "STATE", "HEARTBEAT", "PID", "VERSION", "JOBS", "THROUGHPUT"])
            for host in hosts {
                table.add([host.name + (host.name == status.host ? " (this)" : ""), host.state,
                           "\(DurationSpec.format(seconds: max(0, host.heartbeatAgeSeconds))) ago", "\(host.pid)", host.version,
                           "\(host.claimedJobs)", "\(ByteSize.format(Int64(host.bytesPerSecond)))/s"])
            }
            print("\(hosts.filter { $0.state == "alive" }.count) of \(hosts.count) host(s) alive")
            print(table.render(), terminator: "")
        }
        if status.runs.isEmpty { print("no runs going"); return }
        // With several hosts, the host that coordinates each run (gates, halts, the report).
        let fleet = status.hosts != nil
        var table = TextTable(["RUN", "PLAN", "MODE", "STATE", "DONE", "FAILED", "FORECAST"] + (fleet ? ["COORDINATOR"] : []) + ["NOTE"])
        for run in status.runs {
            let failed = (run.counts["failed"] ?? 0) + (run.counts["skipped"] ?? 0)
            table.add([run.id, run.plan, run.mode.rawValue, run.state.rawValue, "\(run.done)/\(run.jobs)", "\(failed)",
                       run.forecast.missesObjective ? "RTO MISS" : run.forecast.halted == true ? "halted" : (run.forecast.finishAt == nil ? "-" : "on track")]
                      + (fleet ? [run.coordinator ?? "-"] : []) + [run.note ?? ""])
        }
        print(table.render(), terminator: "")
        for run in status.runs where run.forecast.finishAt != nil || run.forecast.halted == true { print("\(run.id): \(run.forecast.summary)") }
        for run in status.runs { if let waiting = run.waiting { print("\(run.id): \(waiting.message)") } }
    }
}

struct PlansCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "plans", abstract: "Plans the daemon has loaded, and problems with plan files.")
    @OptionGroup var daemon: DaemonOptions

    func run() throws {
        try daemon.show(Control.Plans()) { result in
            TextTable.print(["PLAN", "PRODUCTS", "WAVES", "SCHEDULE", "NEXT EXERCISE", "FILE"], result.plans) { plan in
                [plan.name, plan.products.joined(separator: ","), "\(plan.waves)", plan.schedule ?? "-", plan.nextExercise.map(Timestamp.iso) ?? "-", plan.file]
            }
            for problem in result.problems {
                printError("problem in \(problem.file)" + (problem.keptPrevious.map { " (serving the previous version of \($0))" } ?? ""))
                for error in problem.errors { printError("  \(error)") }
            }
        }
    }
}

/// `--follow` and `--exit-on-halt` of `restore` and `exercise`.
struct FollowOptions: ParsableArguments {
    @Flag(help: "Watch the run until it ends (exit 1 if any job did not succeed). A wave gate's halt is said at once and following goes on.")
    var follow = false
    @Flag(help: "Follow the run, and end with exit 4 as soon as a wave gate halts it (for scripts).")
    var exitOnHalt = false

    var following: Bool { follow || exitOnHalt }
}

/// `restore`, `exercise` and `dry-run`: start a run of a loaded plan on the daemon.
struct StartRun {
    static func start(plan: String, mode: RunMode, selection: RunSelectionOptions, exercise: ExerciseOptions? = nil,
                      follow: FollowOptions?, fromSnapshots: Bool = false, rehearse: String? = nil, daemon: DaemonOptions) throws {
        var command = Control.RunStart(plan: plan, mode: mode, sites: try selection.siteList())
        command.products = try selection.productList()
        command.rehearse = rehearse
        if fromSnapshots { command.fromSnapshots = true }
        // Validated here (as `lifeboat run` does) so a typo is a usage error before any request.
        command.incidentAt = try selection.time(selection.incidentAt, "--incident-at")
        command.asOf = try selection.time(selection.asOf, "--as-of")
        command.declaredAt = try selection.time(selection.declaredAt, "--declared-at")
        if let exercise {
            command.scale = exercise.scale
            command.seed = exercise.seed
            if exercise.keep { command.keep = true }
        }
        let client = try daemon.connect()
        // Choosing snapshots means listing the store, which a slow bucket can make take minutes:
        // said when it does, with what Ctrl-C does then.
        let slow = DispatchWorkItem {
            StandardOutput.write(Data("lifeboatd is still planning the run (listing the store, choosing each job's snapshot, recording it in the ledger: `lifeboat status` says if the ledger waits); Ctrl-C now starts nothing\n".utf8), to: STDERR_FILENO)
        }
        if !daemon.json, mode != .dryRun { DispatchQueue.global().asyncAfter(deadline: .now() + 3, execute: slow) }
        let answer = try client.answer(command)
        slow.cancel()
        let outcome = try command.decodeResult(answer)
        if case .dryRun(let report) = outcome {
            try DryRunPrinter.finish(report, json: daemon.json) { _ in try printJSON(try answer.json()) }
            return
        }
        guard let run = outcome.run else { throw CLIFailure(code: .failed, message: "error: the daemon started no run") }
        let following = follow?.following ?? false
        if daemon.json && !following { try printJSON(try answer.json()); return }
        if !daemon.json {
            print("started \(mode.rawValue) run \(run.id) of plan \(run.plan)")
            // Said at once when it does not run yet: an urgent restore queued behind exercises
            // must not look as if it were going.
            if !following, let waiting = try? client.call(Control.RunShow(run: run.id)).waiting { print(waiting.message) }
        }
        guard following else {
            if !daemon.json { print("follow it with: lifeboat watch \(run.id)") }
            return
        }
        try Watch.follow(run.id, client: client, json: daemon.json, exitOnHalt: follow?.exitOnHalt ?? false)
    }
}

struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "restore", abstract: "Restore a plan's sites into production (target).")
    @Argument(help: "A loaded plan's name.") var plan: String
    @OptionGroup var selection: RunSelectionOptions
    @Flag(help: "Restore from the archives even where a soft delete's data is still in quarantine (by default that is renamed back: RPO 0).")
    var fromSnapshots = false
    @OptionGroup var follow: FollowOptions
    @OptionGroup var daemon: DaemonOptions

    func run() throws {
        try StartRun.start(plan: plan, mode: .restore, selection: selection, follow: follow, fromSnapshots: fromSnapshots, daemon: daemon)
    }
}

struct ExerciseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "exercise", abstract: "Rehearse a plan into its sandbox (production is never touched).")
    @Argument(help: "A loaded plan's name.") var plan: String
    @OptionGroup var selection: RunSelectionOptions
    @OptionGroup var exercise: ExerciseOptions
    @Option(help: "After the restore, rehearse this in the sandbox: delete (soft-delete the sampled sites in waves, undelete them, prove the trees byte-identical and report the undelete RTO).")
    var rehearse: String?
    @OptionGroup var follow: FollowOptions
    @OptionGroup var daemon: DaemonOptions

    func validate() throws {
        if let rehearse, rehearse != "delete" { throw ValidationError("--rehearse takes \"delete\", found \"\(rehearse)\"") }
    }

    func run() throws {
        try StartRun.start(plan: plan, mode: .exercise, selection: selection, exercise: exercise, follow: follow, rehearse: rehearse, daemon: daemon)
    }
}

struct DryRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dry-run", abstract: "Resolve sites, snapshots, order, waves and RPO, and forecast the duration; writes nothing.")
    @Argument(help: "A loaded plan's name.") var plan: String
    @OptionGroup var selection: RunSelectionOptions
    @Flag(help: "Plan every job from the archives even where a soft delete's data is still in quarantine.")
    var fromSnapshots = false
    @OptionGroup var daemon: DaemonOptions

    func run() throws { try StartRun.start(plan: plan, mode: .dryRun, selection: selection, follow: nil, fromSnapshots: fromSnapshots, daemon: daemon) }
}

struct RunsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "runs", abstract: "Recent runs, newest first.")
    @Option(help: "How many.") var limit = 20
    @OptionGroup var daemon: DaemonOptions

    func run() throws {
        try daemon.show(Control.RunList(limit: limit)) { runs in
            TextTable.print(["RUN", "PLAN", "MODE", "STATE", "CREATED", "BY", "NOTE"], runs) { run in
                [run.id, run.plan, run.mode.rawValue, run.state.rawValue, Timestamp.iso(run.createdAt), run.startedBy, run.note ?? ""]
            }
        }
    }
}

struct ShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "A run with its jobs, RPO and RTO.")
    @Argument(help: ArgumentHelp("The run id.", valueName: "run")) var runID: String
    @OptionGroup var daemon: DaemonOptions

    func run() throws {
        let detail = try daemon.call(Control.RunShow(run: runID))
        guard !daemon.json else { return }
        print("run \(detail.run.id): \(detail.run.mode.rawValue) of \(detail.run.plan) by \(detail.run.startedBy)")
        if let reason = detail.run.reason { print("reason: \(reason)") }
        print("declared \(Timestamp.iso(detail.run.declaredAt)), incident \(Timestamp.iso(detail.run.incidentAt)), as of \(Timestamp.iso(detail.run.asOf))")
        if let waiting = detail.waiting { print("\(detail.run.state.rawValue), \(waiting.message)") }
        for line in HaltNotice.lines(run: detail.run, jobs: detail.jobs) { print(line) }
        var table = TextTable(["JOB", "SITE", "PRODUCT", "WAVE", "STATE", "SOURCE", "SNAPSHOT", "RPO", "RTO", "SIZE", "ERROR"])
        func duration(_ value: Double?, _ met: Bool?) -> String {
            guard let value else { return "-" }
            return DurationSpec.format(seconds: value) + (met == false ? " MISSED" : "")
        }
        for job in detail.jobs {
            table.add(["\(job.id ?? 0)", job.site, job.product, "\(job.wave + 1)", job.state.rawValue,
                       job.source ?? (detail.run.mode == .delete ? "-" : "snapshot"),
                       job.snapshotTakenAt.map(Timestamp.iso) ?? "-", duration(job.rpoSeconds, job.rpoMet), duration(job.rtoSeconds, job.rtoMet),
                       ByteSize.format(job.bytes), job.error.map { String($0.prefix(80)) } ?? ""])
        }
        print(table.render(), terminator: "")
        SummaryPrinter.print(run: detail.run, jobs: detail.jobs)
    }
}

struct WatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch", abstract: "Live progress of a run until it ends: bars per wave and product, throughput, ETA against the RTO.",
        discussion: "Without a run id: the newest run going (pending, running, halted or interrupted), of --plan when given.")
    @Argument(help: ArgumentHelp("The run id (default: the newest run going).", valueName: "run")) var runID: String?
    @Option(help: "Follow the newest run going of this plan.") var plan: String?
    @Flag(help: "End with exit 4 as soon as a wave gate halts the run (for scripts).") var exitOnHalt = false
    @OptionGroup var daemon: DaemonOptions

    func validate() throws {
        if runID != nil, plan != nil { throw ValidationError("give a run id or --plan, not both") }
    }

    func run() throws {
        let client = try daemon.connect()
        let runId = try runID ?? newestGoing(client)
        if runID == nil, !daemon.json { print("watching run \(runId)" + (plan.map { " (the newest run going of plan \($0))" } ?? " (the newest run going)")) }
        try Watch.follow(runId, client: client, json: daemon.json, exitOnHalt: exitOnHalt)
    }

    /// The newest run that has not ended, of `plan` if given.
    private func newestGoing(_ client: ControlClient) throws -> String {
        let runs = try client.call(Control.RunList(limit: 10_000))
        let going = runs.filter { !$0.state.isFinal && (plan == nil || $0.plan == plan) }
        guard let newest = going.max(by: { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }) else {
            throw CLIFailure(code: .failed, message: "no run is going" + (plan.map { " of plan \($0)" } ?? "")
                             + "; start one with `lifeboat restore PLAN`, or see ended runs with `lifeboat runs`")
        }
        return newest.id
    }
}

/// The run `cancel` and `resume` act on, and the daemon to ask.
struct RunTarget: ParsableArguments {
    @Argument(help: "The run id.") var run: String
    @OptionGroup var daemon: DaemonOptions

    /// Asks for the change; says it in a line, with where it went when another host coordinates
    /// the run (nothing with --json, which prints the answer).
    func change<C: ControlCommand>(_ command: C, saying text: String) throws where C.Result == RunStateChange {
        let answer = try daemon.call(command)
        if !daemon.json { print(text + (answer.note.map { ": " + $0 } ?? "")) }
    }
}

struct CancelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Stop a run: no new jobs; running jobs stop within 2 s; destinations untouched.")
    @OptionGroup var target: RunTarget

    func run() throws { try target.change(Control.RunCancel(run: target.run), saying: "cancelling run \(target.run)") }
}

struct ResumeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resume", abstract: "Let a run halted by a wave gate go on.")
    @OptionGroup var target: RunTarget

    func run() throws { try target.change(Control.RunResume(run: target.run), saying: "resumed run \(target.run)") }
}

struct RetryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry", abstract: "Run a failed, skipped or cancelled job of an ended run again.",
        discussion: "Its dependencies that did not succeed run first, and the jobs of its site that were skipped run after it. The run goes on for those jobs only (gates hold back nothing that already ran); it ends succeeded only if every job has.")
    @Argument(help: ArgumentHelp("The run id.", valueName: "run")) var runID: String
    @Argument(help: "The job: its id (see `lifeboat show RUN`), or SITE/PRODUCT.") var job: String
    @OptionGroup var daemon: DaemonOptions

    func run() throws {
        guard let job = JobRef(job) else {
            throw CLIFailure(code: .rejected, message: "error: \"\(self.job)\" is neither a job id nor SITE/PRODUCT; see lifeboat show \(runID)")
        }
        let record = try daemon.call(Control.JobRetry(run: runID, job: job))
        if !daemon.json { print("run \(runID): \(record.note ?? "job \(job) queued again")\nfollow with: lifeboat watch \(runID)") }
    }
}

struct ReloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reload", abstract: "Re-read the config and plans (like SIGHUP); an invalid plan keeps its previous version.")
    @OptionGroup var daemon: DaemonOptions

    func run() throws {
        let result = try daemon.call(Control.Reload())
        guard !daemon.json else { return }
        print("reloaded: \(result.plans.count) plan(s): \(result.plans.joined(separator: ", "))")
        for problem in result.problems {
            printError("problem in \(problem.file)" + (problem.keptPrevious.map { " (still serving the previous version of \($0))" } ?? ""))
            for error in problem.errors { printError("  \(error)") }
        }
        if !result.problems.isEmpty { throw CLIFailure(code: .rejected, message: "") }
    }
}
