import Testing
@testable import LifeboatKit

@Suite struct SystemdNotifierTests {
    /// As sd_watchdog_enabled(): the watchdog is this process's only when WATCHDOG_PID is absent
    /// or names it.
    @Test func theWatchdogIsOursOnlyWhenItsPidIsOurs() {
        let environment = ["NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": "4000000"]
        #expect(SystemdNotifier(environment: environment, pid: 42).watchdogInterval == .seconds(4))
        #expect(SystemdNotifier(environment: environment.merging(["WATCHDOG_PID": "42"]) { $1 }, pid: 42).watchdogInterval == .seconds(4))
        #expect(SystemdNotifier(environment: environment.merging(["WATCHDOG_PID": "1"]) { $1 }, pid: 42).watchdogInterval == nil)
        #expect(SystemdNotifier(environment: environment.merging(["WATCHDOG_PID": "1"]) { $1 }, pid: 42).socketPath == "/run/systemd/notify")
    }
}
