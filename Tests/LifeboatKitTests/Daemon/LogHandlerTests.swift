import Foundation
import Logging
import Testing
@testable import LifeboatKit

/// The daemon's log lines: one line per message whatever its words, fields that cannot pass for
/// others, levels journald can read.
@Suite struct LogHandlerTests {
    static let date = Date(timeIntervalSince1970: 1_796_000_000)

    static func text(_ message: String, _ metadata: Logger.Metadata, journald: Bool = false) -> String {
        LifeboatLogHandler.format(level: .notice, message: message, metadata: metadata, label: "lifeboatd", source: "test",
                                  format: .text, journald: journald, date: date)
    }

    @Test func aClientsFreeTextCannotForgeALineOrAField() {
        // A delete's reason as a reader may send it (found by a hostile-client review).
        let reason = "cleanup\n2026-12-05T15:31:00Z NOTICE delete started plan=small uid=0 pid=1"
        let line = Self.text("delete dry run", ["reason": "\(reason)", "uid": "65534", "pid": "4242"])
        #expect(!line.contains("\n"))
        #expect(line.hasSuffix(#"NOTICE delete dry run pid=4242 reason="cleanup\n2026-12-05T15:31:00Z NOTICE delete started plan=small uid=0 pid=1" uid=65534"#), "\(line)")

        let tricky = Self.text("a\r\u{1B}[2Kb\u{2028}c\u{85}", ["k": "\"quoted\" back\\slash", "empty": "", "plain": "acme/contacts"])
        #expect(tricky.hasSuffix(#"NOTICE a\r\u{1b}[2Kb\u{2028}c\u{85} empty="" k="\"quoted\" back\\slash" plain=acme/contacts"#), "\(tricky)")
    }

    @Test func plainLinesAreUnchanged() {
        #expect(Self.text("ledger ready", ["ledger": "/var/lib/lifeboat/ledger.sqlite", "runs": "3"])
                == "2026-11-30T00:53:20Z NOTICE ledger ready ledger=/var/lib/lifeboat/ledger.sqlite runs=3")
        #expect(Self.text("stopping", [:], journald: true) == "<5>NOTICE stopping")
    }

    @Test func jsonLinesStayOneLineOfJSON() throws {
        let line = LifeboatLogHandler.format(level: .error, message: "bad\nthing", metadata: ["reason": "x\ny"], label: "lifeboatd",
                                             source: "test", format: .json, journald: true, date: Self.date)
        #expect(!line.contains("\n") && line.hasPrefix("<3>{"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.dropFirst(3).utf8)) as? [String: String])
        #expect(object["message"] == "bad\nthing" && object["reason"] == "x\ny" && object["level"] == "error")
    }
}
