import CLinux
import Foundation

/// Keeps an extraction's written data flowing to disk while it goes, so that the commit's
/// `syncfs` finds little left to write.
///
/// On a host with plenty of memory the kernel starts writeback only when dirty pages pass
/// `dirty_background_ratio` (10% of RAM) or age 30 s: a restore would otherwise write all its data
/// during the commit's `syncfs`, with the CPU idle. After every `interval` bytes written this asks
/// a helper thread (started on first need, so small archives never pay for it) to `syncfs` the
/// staging filesystem; the extracting thread never waits for it. If a request comes while one is
/// under way, they merge.
///
/// The helper syncs a duplicate of the staging root descriptor, opened before anything was
/// written, so a writeback error during extraction is reported to it; `finish()` throws it. The
/// commit's own `syncfs` stays the durability point.
final class BackgroundWriteback: @unchecked Sendable {
    private let fd: Int32
    private let interval: Int64
    private var sinceLast: Int64 = 0  // the extracting thread's only

    // Shared with the helper thread, under `condition`.
    private let condition = NSCondition()
    private var requested = false
    private var stopping = false
    private var started = false
    private var exited = false
    private var failure: Int32?

    /// - Parameter rootFD: the staging directory (duplicated; the caller keeps its own).
    init(rootFD: Int32, interval: Int64 = 32 << 20) throws {
        fd = fcntl(rootFD, F_DUPFD_CLOEXEC, 0)
        guard fd >= 0 else { throw ArchiveError(.io, "cannot duplicate the staging directory descriptor", errno: errno) }
        self.interval = interval
    }

    deinit { close(fd) }

    /// Notes `bytes` more written; past the interval, asks for a background writeback.
    func wrote(_ bytes: Int64) {
        sinceLast += bytes
        guard sinceLast >= interval else { return }
        sinceLast = 0
        condition.lock()
        requested = true
        if !started {
            started = true
            let thread = Thread { [self] in loop() }
            thread.name = "lifeboat-writeback"
            thread.stackSize = 64 << 10
            thread.start()
        }
        condition.signal()
        condition.unlock()
    }

    /// Stops the helper (waiting for a writeback under way) and throws a writeback error it saw.
    func finish() throws {
        condition.lock()
        stopping = true
        condition.broadcast()
        while started && !exited { condition.wait() }
        let failure = self.failure
        condition.unlock()
        if let failure {
            throw ArchiveError(.io, "writing the restored data to disk failed (syncfs)", errno: failure)
        }
    }

    private func loop() {
        condition.lock()
        while true {
            while !requested && !stopping { condition.wait() }
            if stopping { break }
            requested = false
            condition.unlock()
            let rc = lifeboat_syncfs(fd)
            let e = errno
            condition.lock()
            if rc != 0, failure == nil { failure = e }
        }
        exited = true
        condition.broadcast()
        condition.unlock()
    }
}
