import Foundation
import LifeboatTestSupport
import Testing

/// The fault-injection suites (crash points, disk full, I/O errors, permissions, socket abuse)
/// run one test at a time: each starts daemons or heavy restores.
///
/// `LIFEBOAT_FAULTS=0` skips them (a quick local loop). Their tests block on child processes, and
/// on a 2-core machine Swift concurrency's pool has two threads: the in-process engine tests that
/// wait on timing therefore allow generous bounds.
@Suite(.serialized, .ownThread, .enabled(if: ProcessInfo.processInfo.environment["LIFEBOAT_FAULTS"] != "0",
                             "LIFEBOAT_FAULTS=0: fault suites skipped"))
enum FaultSuite {}
