extension StagingDirectory {
    /// Runs the plan's `verify.command` on the staging directory (DESIGN.md "One job, step by
    /// step", 4): exit status 0 within the timeout passes; anything else vetoes the commit with
    /// `ArchiveError(.verifyFailed)` carrying the command's captured output.
    ///
    /// - Parameters:
    ///   - argv: the command with its templates already expanded (`{path}` is `self.path`).
    ///   - environment: added to the daemon's (the job's `LIFEBOAT_*` variables).
    /// - Returns: the hook's result, for the ledger.
    @discardableResult
    public func verify(with argv: [String], timeout: Duration, environment: [String: String] = [:]) async throws -> HookResult {
        let result = try await HookRunner.run(HookCommand(argv, timeout: timeout, environment: environment))
        guard result.succeeded else {
            let output = result.lastWords(2_000).map { "; its output: \($0)" } ?? ""
            throw ArchiveError(.verifyFailed, "verify.command \(argv.first.map { String(reflecting: $0) } ?? "") rejected the restored data (\(result.summary))\(output)")
        }
        return result
    }
}
