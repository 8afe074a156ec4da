import Foundation
import Testing

/// The loopback port of a test's HTTP listener: one per test (`offset`, below 300) and test
/// process, below the kernel's ephemeral range (32768 and up), where the servers other tests
/// start on free ports and every outgoing connection take theirs: a port taken there meanwhile
/// made the daemon's bind fail ("Address already in use").
func listenerTestPort(offset: Int) -> Int {
    20_000 + Int(getpid() % 12_000) + offset
}

/// The daemon's HTTP listener in tests: a port per test (apart from MetricsTests' one), and
/// plain requests with curl, the way a user or a monitoring system would make them.
extension DaemonHarness {
    /// Rewrites the config with `http.listen` on a free-looking loopback port; returns the base URL.
    func enableHTTP(offset: Int, extra: String = "") -> String {
        let port = listenerTestPort(offset: offset)
        dir.write("lifeboatd.yaml", """
            plans_dir: plans
            state_dir: state
            socket: { path: lifeboatd.sock, mode: "0666" }
            http: { listen: "127.0.0.1:\(port)" }
            log: { level: debug }
            \(extra)
            """)
        return "http://127.0.0.1:\(port)"
    }

    /// Writes plan `name` over the store (contacts, then jira after it), restoring into `target`
    /// with objectives RTO 1h and RPO 24h, `verify` (a script's path) as its verify command, and
    /// `extra` lines.
    func writeVerifiedPlan(_ name: String = "main", target: String = "../out/{site}/{product}", verify: String, extra: String = "") {
        dir.write("plans/\(name).yaml", """
            name: \(name)
            snapshots: ../store
            target: \(target)
            products:
              - name: contacts
              - name: jira
                after: [contacts]
            objectives: { rto: 1h, rpo: 24h }
            verify: { command: ["\(verify)", "{site}", "{product}", "{path}"] }
            \(extra)
            """)
    }

    /// A verify script that sleeps `delay` seconds, then fails for the given `site/product`
    /// pairs, printing `message` (the job's error carries the output).
    /// With `waitingFor`, each verification first waits (up to 2 min) for that file to exist.
    func writeVerifyScript(delay: String = "0", failing: [String], message: String = "checksum of customer data differs",
                           waitingFor gate: String? = nil) -> String {
        let cases = failing.map { "\"\($0)\") printf '%s\\n' '\(message.replacingOccurrences(of: "'", with: "'\\''"))'; exit 3 ;;" }.joined(separator: "\n  ")
        let wait = gate.map { "i=0; while [ ! -e '\($0)' ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done" } ?? ""
        let script = dir.write("verify.sh", """
            #!/bin/sh
            \(wait)
            sleep \(delay)
            case "$1/$2" in
              \(cases)
            esac
            exit 0

            """)
        chmod(script, 0o755)
        return script
    }
}

/// GET with curl: status code and body.
func httpGet(_ url: String) throws -> (status: Int, body: String) {
    let result = try run("/usr/bin/curl", ["-s", "--max-time", "20", "-w", "\n%{http_code}", url])
    var lines = result.stdout.components(separatedBy: "\n")
    let status = Int(lines.popLast() ?? "") ?? 0
    return (status, lines.joined(separator: "\n"))
}

func jsonObject(_ text: String) -> Any? { try? JSONSerialization.jsonObject(with: Data(text.utf8)) }
