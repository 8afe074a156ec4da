import Foundation
import Testing

/// The fault-injection suites (crash points, disk full, I/O errors, permissions, socket abuse)
/// run one test at a time: each starts daemons or heavy restores.
///
/// `LIFEBOAT_FAULTS=0` skips them. `.ci/run` runs the rest of `swift test` that way first, then
/// the fault suites on their own: their tests block on child processes, and on a 2-core machine
/// Swift concurrency's pool has two threads, so alongside the other integration tests they
/// starve the in-process engine tests that measure latency (cancel within 2 s).
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["LIFEBOAT_FAULTS"] != "0",
                             "LIFEBOAT_FAULTS=0: fault suites skipped (.ci/run runs them separately)"))
enum FaultSuite {}
