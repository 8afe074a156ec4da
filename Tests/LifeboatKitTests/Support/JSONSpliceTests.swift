import Foundation
import Testing
@testable import LifeboatKit

/// Long arrays encoded a chunk at a time (memory): the bytes are the whole value's encoding,
/// whatever the chunk, the strings inside and the client's request id.
@Suite struct JSONSpliceTests {
    /// A run whose jobs' errors and note hold what the splice must not take for structure.
    private func detail(jobs count: Int) -> RunDetail {
        var (run, jobs) = ReportFixtures.large(jobs: count, concurrency: 8)
        for i in stride(from: 0, to: jobs.count, by: 89) {
            jobs[i].state = .failed
            jobs[i].errorCode = "io"
            jobs[i].error = #"the "jobs":[] key, a \ and }],{"result":{"jobs":[]}} é 🚒"# + "\u{1}\n"
        }
        run.note = #"{"jobs":[],"snapshot":{"jobs":[]}}"#
        return RunDetail(run: run, jobs: jobs, summary: RunSummary(run: run, jobs: jobs), active: true)
    }

    /// What `ControlResponse` would write for the whole value, encoded at once.
    private struct Whole<T: Encodable>: Encodable {
        var id: JSONValue
        var ok = true
        var result: T
    }

    private func whole(id: JSONValue, _ result: some Encodable) throws -> Data {
        var data = try ControlResponse.encoder.encode(Whole(id: id, result: result))
        data.append(UInt8(ascii: "\n"))
        return data
    }

    @Test func runShowWatchAndAPIAnswersAreTheWholeEncodingByteForByte() throws {
        let detail = detail(jobs: 1_203)
        // Ids that hold the keys the splice looks for: it must find the result's, not the id's.
        let ids: [JSONValue] = [.integer(7), .string(#""result":{"jobs":[]}"#),
                                .object(["result": .object(["jobs": .array([]), "snapshot": .object(["jobs": .array([])])])])]
        for id in ids {
            #expect(ControlResponse.success(id: id, detail) == (try whole(id: id, detail)), "run.show, id \(id)")
            for event in [WatchEvent(snapshot: detail), WatchEvent(done: detail)] {
                #expect(event.spliceParts != nil)
                #expect(ControlResponse.success(id: id, event) == (try whole(id: id, event)), "run.watch, id \(id)")
            }
        }
        // The web view's API answers with the value alone.
        #expect(try ControlResponse.encode(detail, wrappedAt: []) { $0 } == ControlResponse.encoder.encode(detail))
        var empty = detail
        empty.jobs = []
        #expect(empty.spliceParts == nil)
        #expect(ControlResponse.success(id: .integer(1), WatchEvent(done: empty)) == (try whole(id: .integer(1), WatchEvent(done: empty))))
    }

    @Test(arguments: [1, 2, 7, 500, 5_000])
    func anyChunkGivesTheSameBytes(chunk: Int) throws {
        let detail = detail(jobs: 1_203)
        let parts = try #require(WatchEvent(snapshot: detail).spliceParts)
        let spliced = try JSONSplice.encode(Whole(id: .integer(1), result: parts.shell), splicing: parts.elements,
                                            at: ["result"] + parts.path, with: ControlResponse.encoder, chunk: chunk)
        var expected = try whole(id: .integer(1), WatchEvent(snapshot: detail))
        expected.removeLast()
        #expect(spliced == expected)
        let object = try JSONSerialization.jsonObject(with: spliced) as? [String: Any]
        let snapshot = (object?["result"] as? [String: Any])?["snapshot"] as? [String: Any]
        #expect((snapshot?["jobs"] as? [Any])?.count == 1_203)
    }

    @Test func valueRangeFollowsKeysNotText() throws {
        let json = Data(#"{"a":"{\"b\":1}","b":{"c":[1,{"d":"]"}],"d":{"e":"x\\"}},"e":true}"#.utf8)
        func value(_ path: [String]) -> String? {
            JSONSplice.valueRange(of: path, in: json).map { String(decoding: json[$0], as: UTF8.self) }
        }
        #expect(value(["a"]) == #""{\"b\":1}""#)
        #expect(value(["b", "c"]) == #"[1,{"d":"]"}]"#)
        #expect(value(["b", "d", "e"]) == #""x\\""#)
        #expect(value(["e"]) == "true")
        #expect(value(["c"]) == nil)
        #expect(value(["a", "b"]) == nil)  // a string, not an object
        let pretty = Data("{\n  \"a\" : [\n\n  ],\n  \"b\" : 2\n}".utf8)
        #expect(JSONSplice.valueRange(of: ["b"], in: pretty).map { String(decoding: pretty[$0], as: UTF8.self) } == "2")
        #expect(JSONSplice.valueRange(of: ["a"], in: pretty).map { String(decoding: pretty[$0], as: UTF8.self) } == "[\n\n  ]")
    }

    @Test func refusesAPathWithoutAnEmptyArray() {
        #expect(throws: EncodingError.self) {
            try JSONSplice.encode(["jobs": [1]], splicing: [2], at: ["jobs"], with: JSONEncoder())
        }
        #expect(throws: EncodingError.self) {
            try JSONSplice.encode(["other": [Int]()], splicing: [2], at: ["jobs"], with: JSONEncoder())
        }
    }
}
