import Testing

/// The fault-injection suites (crash points, disk full, I/O errors, permissions, socket abuse)
/// run one test at a time: each starts daemons or heavy restores, and running them all at once
/// on a small CI machine would starve the timing-sensitive tests of other suites.
@Suite(.serialized) enum FaultSuite {}
