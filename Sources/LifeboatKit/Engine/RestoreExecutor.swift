import Foundation

/// The real job: stream the archive into fresh staging, verify, make it durable, commit
/// atomically with the displaced data in quarantine, then run `post_restore`
/// (DESIGN.md "One job, step by step").
public struct RestoreExecutor: JobExecutor {
    public init() {}

    public func execute(_ context: JobContext, observer: any JobObserver) async throws -> JobResult {
        // A delete run's jobs go through the same lifecycle; only the work differs.
        if context.run.mode == .delete { return try await SoftDeleteExecutor().execute(context, observer: observer) }
        if context.job.fromQuarantine { return try await SoftDeleteExecutor().restoreFromQuarantine(context, observer: observer) }
        let job = context.job, plan = context.plan
        if let again = try await postRestoreAgain(context) { return again }
        let snapshot = try context.requiredSnapshot()
        // An exercise never displaces anything: an existing sandbox destination is not its own.
        let exercise = context.run.mode == .exercise
        if exercise, FileSystem.exists(job.destination) {
            throw JobError(.sandbox, "\(job.name): the sandbox destination \(job.destination) already exists and this exercise did not create it; exercises never displace data: move it away, or choose another sandbox")
        }
        let flag = CancellationFlag()
        let options = ExtractOptions(maxBytes: plan.limits.maxBytes.bytes, maxEntries: plan.limits.maxEntries,
                                     unsafeEntries: plan.unsafeEntries, applyOwnership: plan.preserveOwnership,
                                     checksum: plan.verify.checksum, cancellation: flag)
        do {
            return try await withStagingDirectory(for: job.destination, name: "\(context.run.id).\(job.id ?? 0)",
                                                   noSymlinksBelow: exercise ? plan.sandbox?.literalRoot : nil,
                                                   parentResolvesTo: context.checkedParent,
                                                   reserve: { try await observer.reserved(stagingPath: $0) },
                                                   proceedIfHeldElsewhere: context.proceedsIfHeldElsewhere ? { observer.proceedingThoughHeld(job.destination) } : nil) { staging in
                try await observer.staged(identity: staging.identity.description)
                // A bucket's object is the one the run listed (its size; `JobRunner.context`).
                let source = try context.stores.archive(snapshot.path, listedSize: S3Location.isS3(snapshot.path) ? snapshot.size : nil)
                let report = try await extractArchive(from: source, into: staging.path, options: options) {
                    observer.progress(archiveBytesRead: $0)
                }
                CrashPoint.afterStaging.hit()

                var hookOutput: [String] = []
                if let command = plan.verify.command {
                    try await observer.verifying()
                    let result = try await staging.verify(with: render(command, path: staging.path, context: context),
                                                          timeout: .seconds(plan.hookTimeout.seconds), environment: hookEnvironment(context))
                    hookOutput.append("verify.command: \(result.summary)\n\(result.output)")
                }

                // An exercise's commit refuses an existing destination instead of displacing it.
                let quarantineName = exercise ? nil : QuarantineArea.entryName(run: context.run.id, site: job.site, product: job.product, attempt: job.attempt)
                let postRestore = context.plan.product(named: job.product)?.postRestore
                // A restore's tree is fingerprinted once the job's own work on it is done (after
                // post_restore, which may write there), for rollback to tell later changes.
                let digestAtCommit = !exercise && postRestore == nil
                let destination = job.destination
                let commitNow: @Sendable (DurableStaging) throws -> (CommitResult, String?) = { ready in
                    CrashPoint.afterCommitRecord.hit()
                    let commit = try commitStaging(ready, quarantineName: quarantineName) { step in
                        switch step {
                        case .stagingDurable: try observer.mayCommit()
                        case .swapped: CrashPoint.afterSwap.hit()
                        case .quarantined: CrashPoint.afterQuarantine.hit()
                        }
                    }
                    return (commit, digestAtCommit ? TreeDigest.of(destination) : nil)
                }
                // The commit's record and the tree's sync only have to precede the rename, not
                // each other: the record is written while the tree is synced. The rename follows
                // in the same trip to the blocking threads when the record was done by then (a
                // ledger write is usually quicker than a syncfs), else in a second trip once it
                // is: one trip fewer for most jobs, and no blocking thread waits for the ledger.
                let recorded = PendingOutcome()
                async let record: Void = recorded.settle { try await observer.willCommit() }
                let (ready, committed) = try await runBlocking(flag: CancellationFlag()) { () throws -> (DurableStaging, (CommitResult, String?)?) in
                    let ready = try staging.makeDurable()
                    guard let outcome = recorded.outcome else { return (ready, nil) }
                    try outcome.get()
                    return (ready, try commitNow(ready))
                }
                try await record
                let (commit, digest) = if let committed { committed } else {
                    try await runBlocking(flag: CancellationFlag()) { try commitNow(ready) }
                }
                if let quarantined = commit.quarantinePath {
                    try await observer.didQuarantine(path: quarantined, originalPath: job.destination, identity: commit.quarantinedIdentity)
                }
                CrashPoint.beforeLedgerCommit.hit()

                var result = JobResult(bytes: report.bytes, entries: Int64(report.entries), archiveBytes: report.archiveBytes,
                                       skippedEntries: report.skipped.count, quarantinePath: commit.quarantinePath)
                result.treeDigest = digest
                if !report.skipped.isEmpty {
                    hookOutput.append("skipped entries (unsafe_entries: skip): "
                                      + report.skipped.prefix(50).map { "\($0.name) [\($0.rule.rawValue)]" }.joined(separator: ", "))
                }
                if let command = postRestore {
                    defer {
                        if !exercise { result.treeDigest = TreeDigest.of(destination) }
                    }
                    do {
                        let hook = try await postRestoreRun(command, context, heading: "post_restore", qualifier: "")
                        if !hook.output.isEmpty { hookOutput.append(hook.output) }
                        result.postRestoreError = hook.error
                    } catch is CancellationError {
                        // The commit is done: a cancel stops only the hook (the runner says so);
                        // a drain leaves the job for the next start, which runs the hook again.
                        result.hookOutput = hookOutput.isEmpty ? nil : String(hookOutput.joined(separator: "\n").prefix(64 << 10))
                        throw PostRestoreInterrupted(result: result)
                    }
                }
                result.hookOutput = hookOutput.isEmpty ? nil : String(hookOutput.joined(separator: "\n").prefix(64 << 10))
                return result
            }
        } catch let held as DestinationHeldElsewhere {
            throw JobError(.sandbox, "\(job.name): destination \(held.description); let it finish, then run this job again: \(job.retryCommand)")
        } catch let error as ArchiveError {
            throw JobError(archive: error, job: job)
        } catch let error as HookError {
            throw JobError(.hook, "\(job.name): \(error.description)")
        } catch let error as S3Error {
            throw JobError(.io, "\(job.name): \(error.description)", transient: error.isTransient)
        }
    }

    /// A hook's argv with `{site}`, `{product}`, `{run}` and `{path}` filled in.
    private func render(_ argv: [String], path: String, context: JobContext) -> [String] {
        var values = context.templateValues
        values[.path] = path
        return argv.map { (try? PathTemplate($0, allowed: Set(TemplateVariable.allCases)))?.render(values) ?? $0 }
    }

    private func runHook(_ argv: [String], path: String, context: JobContext, timeout: DurationSpec) async throws -> HookResult {
        try await HookRunner.run(HookCommand(render(argv, path: path, context: context), timeout: .seconds(timeout.seconds),
                                             environment: hookEnvironment(context)))
    }

    /// What every hook of a job is told besides its argv (verify.command and post_restore alike).
    private func hookEnvironment(_ context: JobContext) -> [String: String] {
        ["LIFEBOAT_RUN": context.run.id, "LIFEBOAT_SITE": context.job.site, "LIFEBOAT_PRODUCT": context.job.product,
         "LIFEBOAT_MODE": context.run.mode.rawValue]
    }

    public func recover(_ context: JobContext, observer: any JobObserver) async throws -> RecoveryOutcome {
        if context.run.mode == .delete { return try await SoftDeleteExecutor().recover(context, observer: observer) }
        if context.job.fromQuarantine { return SoftDeleteExecutor().recoverFromQuarantine(context) }
        let job = context.job
        guard let stagingPath = job.stagingPath else { return .restart }
        guard let recorded = job.commitIdentity.flatMap(FileIdentity.init(parsing:)) else {
            // Killed before the commit record: whatever holds the reserved name is a partial
            // extraction of ours.
            try StagingRecovery.removeLeftover(path: stagingPath, identity: nil)
            return .restart
        }
        if FileIdentity(path: job.destination) == recorded {
            // The commit happened; post_restore, which follows it, is run (again): the crash or
            // the drain came before the job's end was recorded, so it may not have run, or not whole.
            let quarantinePath = try await displacedBeforeRestart(context, stagingPath: stagingPath, observer: observer)
            return .committed(quarantinePath: quarantinePath, postRestore: try await postRestoreAfterRestart(context))
        }
        try StagingRecovery.removeLeftover(path: stagingPath, identity: recorded)
        return .restart
    }

    /// A job retried after its `post_restore` failed: its commit is in place (the destination is
    /// the very tree it committed), so only the hook runs again. Restoring the archive a second
    /// time would cost a whole restore and move the committed data into quarantine. Nil when
    /// the job has no such commit in place (it failed before committing, or the data was
    /// replaced since): it is restored as usual.
    private func postRestoreAgain(_ context: JobContext) async throws -> JobResult? {
        let job = context.job
        guard let command = context.plan.product(named: job.product)?.postRestore,
              let committed = job.commitIdentity.flatMap(FileIdentity.init(parsing:)),
              FileIdentity(path: job.destination) == committed else { return nil }
        var result = JobResult(bytes: job.bytes, entries: job.entries, archiveBytes: job.archiveBytes, skippedEntries: job.skippedEntries,
                               quarantinePath: job.quarantinePath)
        do {
            let hook = try await postRestoreRun(command, context, heading: "post_restore (run again on the data committed before)", qualifier: " again")
            result.hookOutput = hook.output.isEmpty ? nil : String(hook.output.prefix(64 << 10))
            result.postRestoreError = hook.error
        } catch is CancellationError {
            throw PostRestoreInterrupted(result: result)
        }
        // Fingerprinted after the hook, which may write there, for rollback to tell later changes.
        if context.run.mode != .exercise { result.treeDigest = TreeDigest.of(job.destination) }
        return result
    }

    /// `post_restore` of a job whose commit a restart found, when its product has one.
    private func postRestoreAfterRestart(_ context: JobContext) async throws -> PostRestoreRun? {
        let job = context.job
        guard let command = context.plan.product(named: job.product)?.postRestore else { return nil }
        return try await postRestoreRun(command, context, heading: "post_restore (run again after a restart)", qualifier: " when run again after a restart")
    }

    /// Runs `post_restore` on the job's committed data: its output for the ledger, under
    /// `heading`, and the job's error when it failed (`qualifier` says when it ran). A cancel
    /// comes through as `CancellationError`, for the caller to say what stays.
    private func postRestoreRun(_ command: [String], _ context: JobContext, heading: String, qualifier: String) async throws -> PostRestoreRun {
        let job = context.job
        let kept = "; the restored data is committed and kept"
        do {
            let hook = try await runHook(command, path: job.destination, context: context, timeout: context.plan.hookTimeout)
            let error = hook.succeeded ? nil : "\(job.name): post_restore \(command[0]) failed\(qualifier) (\(hook.summary))"
                + (hook.lastWords(500).map { "; its output: \($0)" } ?? "") + kept
            return PostRestoreRun(output: "\(heading): \(hook.summary)\n\(hook.output)", error: error)
        } catch let error as HookError {
            return PostRestoreRun(output: "", error: "\(job.name): \(error.description)\(qualifier)\(kept)")
        }
    }

    /// A commit found in place after a restart: the data it displaced, still at the staging path
    /// or in quarantine unrecorded, is recorded in quarantine. Returns its quarantine path.
    private func displacedBeforeRestart(_ context: JobContext, stagingPath: String, observer: any JobObserver) async throws -> String? {
        let job = context.job
        let quarantineName = QuarantineArea.entryName(run: context.run.id, site: job.site, product: job.product, attempt: job.attempt)
        // Data still at the staging path is what the commit displaced.
        guard FileSystem.exists(stagingPath) else {
            StagingRecovery.removeEmptyArea(of: stagingPath)
            // A crash between the move to quarantine and its record leaves the displaced
            // data in quarantine unknown to the ledger (so `quarantine list`, rollback and
            // purge could not find it): record it now.
            if job.quarantinePath == nil, let area = try? QuarantineArea.directory(for: job.destination) {
                let path = area + "/" + quarantineName
                if let found = FileIdentity(path: path) {
                    try await observer.didQuarantine(path: path, originalPath: job.destination, identity: found)
                    return path
                }
            }
            return job.quarantinePath
        }
        let quarantined = try StagingRecovery.quarantineLeftover(
            path: stagingPath, destination: job.destination, quarantineName: quarantineName)
        try await observer.didQuarantine(path: quarantined, originalPath: job.destination, identity: FileIdentity(path: quarantined))
        return quarantined
    }
}

extension JobError {
    /// Classifies an archive error: integrity and safety are never retried; I/O may be.
    init(archive error: ArchiveError, job: JobRecord) {
        let code: Code
        switch error.code {
        case .unsafeEntry: code = .unsafeEntry
        case .corrupt, .truncated, .checksumMismatch, .checksumMissing: code = .integrity
        case .limitExceeded: code = .limit
        case .io, .commitFailed: code = .io
        case .verifyFailed: code = .verify
        }
        // A full (or over-quota) filesystem is the operator's to fix; then the job goes again.
        let full = error.errno == ENOSPC || error.errno == EDQUOT
        let remedy = full ? "; free space there, then run the job again: \(job.retryCommand)" : ""
        self.init(code, "\(job.name): \(error.description)\(remedy)", transient: error.isTransient)
    }
}
