import CLinux
import Foundation

/// `syncfs` shared by the commits that need one at the same time on one filesystem.
///
/// Many small jobs finishing together each asked for their own `syncfs`, one journal commit
/// apiece. A caller here waits for the first `syncfs` of that filesystem that *starts* after it
/// asked (so it covers everything the caller wrote before), and callers that arrive while one is
/// under way share the next: one leader runs it, the others take its result. When commits come
/// together, the leader first waits a moment for company (`gathering`, a commit delay as
/// PostgreSQL's `commit_delay`, which it too spends only when others are busy:
/// `commit_siblings`): callers that arrive meanwhile share its call instead of needing another.
/// The guarantee is the one a private `syncfs` gives: when `sync` returns 0, everything written
/// to the filesystem before the call is on disk; an error of the shared `syncfs` is every
/// sharer's error.
final class SharedSync: @unchecked Sendable {
    static let shared = SharedSync()

    private struct Filesystem {
        var running = false
        /// `syncfs` calls started and finished; each caller waits for number `started + 1` as of its arrival.
        var started = 0
        var finished = 0
        /// errno of the recent calls that failed, by number.
        var failures: [Int: Int32] = [:]
        /// Callers that the next call to start will cover (they asked after the last one started).
        var forNext = 0
        /// Whether the last call started was shared: the next leader gathers only then.
        var gather = false
    }

    private let condition = NSCondition()
    private var filesystems: [UInt64: Filesystem] = [:]
    private var waiting = 0
    /// `syncfs(2)`: 0, or -1 with errno set (tests count and hold the calls).
    private let syncfs: @Sendable (Int32) -> Int32
    /// How long a leader waits for company before its call, in microseconds. Without it the
    /// 10,000-job run's jobs, finishing a millisecond or so apart, shared few calls, each a
    /// journal commit and a device flush that cost CPU. Measured there (8 jobs at once, 2 cores):
    /// 3 ms gave the shortest run with the most CPU to spare (a quarter of the machine idle,
    /// against a tenth with 1 or 2 ms); 5 ms left the jobs waiting, 13% slower.
    ///
    /// A leader gathers only when the call before it was shared: commits are coming together (the
    /// 10,000-job run's, in bursts as its jobs finish). Jobs of large archives commit a tenth of a
    /// second or more apart: each of them spent the whole gathering alone, a slot idle at every
    /// commit. A call that is not shared stops the gathering; callers that pile up behind a call
    /// (they share the next) start it again.
    private let gathering: UInt32

    init(gathering: Duration = .milliseconds(3), syncfs: @escaping @Sendable (Int32) -> Int32 = { lifeboat_syncfs($0) }) {
        self.syncfs = syncfs
        let (seconds, attoseconds) = gathering.components
        self.gathering = UInt32(clamping: seconds * 1_000_000 + attoseconds / 1_000_000_000_000)
    }

    /// Callers waiting for another's `syncfs` now.
    var waitingCallers: Int {
        condition.lock()
        defer { condition.unlock() }
        return waiting
    }

    /// Makes everything written to `fd`'s filesystem before this call durable. 0 or an errno.
    func sync(_ fd: Int32) -> Int32 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return errno }
        let device = UInt64(st.st_dev)
        condition.lock()
        defer { condition.unlock() }
        if filesystems[device] == nil { filesystems[device] = Filesystem() }
        filesystems[device]!.forNext += 1
        let mine = filesystems[device]!.started + 1
        while filesystems[device]!.finished < mine {
            guard !filesystems[device]!.running else {
                waiting += 1
                condition.wait()
                waiting -= 1
                continue
            }
            // This caller leads the next call. Whoever comes while it gathers takes this call as
            // theirs (`started + 1`: it is counted started only once the gathering is over);
            // whoever comes once it is under way shares the one after.
            filesystems[device]!.running = true
            if gathering > 0, filesystems[device]!.gather {
                condition.unlock()
                usleep(gathering)
                condition.lock()
            }
            filesystems[device]!.gather = filesystems[device]!.forNext > 1
            filesystems[device]!.forNext = 0
            filesystems[device]!.started += 1
            let number = filesystems[device]!.started
            condition.unlock()
            let rc = syncfs(fd)
            let failure = rc == 0 ? nil : errno
            condition.lock()
            filesystems[device]!.running = false
            filesystems[device]!.finished = number
            if let failure { filesystems[device]!.failures[number] = failure }
            filesystems[device]!.failures = filesystems[device]!.failures.filter { $0.key > number - 1_000 }
            condition.broadcast()
        }
        return filesystems[device]!.failures[mine] ?? 0
    }
}
