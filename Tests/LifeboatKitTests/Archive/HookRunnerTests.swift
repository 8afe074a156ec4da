import Foundation
import Testing
@testable import LifeboatKit

@Suite struct HookRunnerTests {
    @Test func exitStatusAndOutputAreCaptured() async throws {
        let ok = try await HookRunner.run(HookCommand(["sh", "-c", "echo out; echo err >&2; exit 0"]))
        #expect(ok.succeeded)
        #expect(ok.output == "out\nerr\n")
        let failed = try await HookRunner.run(HookCommand(["sh", "-c", "exit 3"]))
        #expect(!failed.succeeded && failed.exitStatus == 3)
    }

    @Test func stdinIsPassedAndOutputIsCapped() async throws {
        let echoed = try await HookRunner.run(HookCommand(["cat"], stdin: Array("{\"event\":1}".utf8)))
        #expect(echoed.output == "{\"event\":1}")
        let big = try await HookRunner.run(HookCommand(["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x"], outputLimit: 1000))
        #expect(big.succeeded && big.output.utf8.count == 1000 && big.outputTruncated)
    }

    @Test func aTimeoutKillsTheWholeProcessGroup() async throws {
        let result = try await HookRunner.run(HookCommand(
            ["sh", "-c", "trap '' TERM; sleep 30 & sleep 30; wait"], timeout: .milliseconds(200), killGrace: .milliseconds(200)))
        #expect(result.timedOut)
        #expect(!result.succeeded)
        #expect(result.signal == SIGKILL)
    }

    @Test func cancellationTerminatesTheCommand() async throws {
        let task = Task { try await HookRunner.run(HookCommand(["sleep", "30"])) }
        try await Task.sleep(for: .milliseconds(100))
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
    }

    /// A hook gets stdin, stdout and stderr and nothing else of the daemon's, inheritable or not:
    /// a hook left running after a crash must not hold the daemon's listening socket.
    @Test func aHookInheritsNoOtherDescriptor() async throws {
        let inheritable = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        try #require(inheritable > 2)
        defer { close(inheritable) }
        let listed = try await HookRunner.run(HookCommand(["/bin/sh", "-c", "ls /proc/$$/fd"]))
        #expect(listed.succeeded)
        #expect(listed.output.split(separator: "\n").compactMap { Int($0) }.filter { $0 > 2 }.isEmpty, "\(listed.output)")
    }

    @Test func aMissingProgramIsAnError() async throws {
        await #expect(throws: HookError.self) { try await HookRunner.run(HookCommand(["/nonexistent/lifeboat-hook"])) }
    }

    /// A job's hooks are told which job they run for: verify.command as post_restore (the
    /// README promises LIFEBOAT_RUN, _SITE, _PRODUCT to hooks; verify.command got none).
    @Test func verifyCommandGetsTheJobsVariables() async throws {
        let out = TestDirectory("hook-env")
        let fx = try await DRFixture(sites: 1, planExtra: """
            verify: { command: ["/bin/sh", "-c", "echo \\"$LIFEBOAT_RUN $LIFEBOAT_SITE $LIFEBOAT_PRODUCT $LIFEBOAT_MODE\\" > \(out.path)/$LIFEBOAT_PRODUCT"] }
            """)
        let (run, _) = try await fx.run(.restore)
        #expect(run.state == .succeeded)
        for product in ["contacts", "jira"] {
            #expect(try String(contentsOfFile: out.file(product), encoding: .utf8) == "\(run.id) acme \(product) restore\n")
        }
    }
}
