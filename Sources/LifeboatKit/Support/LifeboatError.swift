/// The exit codes of the `lifeboat` CLI (DESIGN.md "CLI").
public enum CLIExit: Int32, Sendable {
    case success = 0
    /// The operation ran and failed (a job failed, verification failed).
    case failed = 1
    /// Usage error or rejected input (bad plan, unsafe archive).
    case rejected = 2
    /// The daemon cannot be reached.
    case unreachable = 3
    /// `--exit-on-halt`: a wave gate halted the run, which awaits `resume` or `cancel`.
    case halted = 4
}

/// Errors Lifeboat reports to operators carry the exit code they map to.
public protocol LifeboatError: Error, CustomStringConvertible {
    var exitCode: CLIExit { get }
}
