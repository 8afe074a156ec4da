import Foundation
import Testing
@testable import LifeboatKit

@Suite struct UnitsTests {
    @Test(arguments: [("90s", 90), ("15m", 900), ("4h", 14_400), ("30d", 2_592_000), ("1h30m", 5_400), ("2w", 1_209_600)])
    func durations(text: String, seconds: Int64) {
        #expect(DurationSpec(parsing: text)?.seconds == seconds)
    }

    @Test(arguments: ["", "4", "h", "4x", "-4h", "4h3", "99999999999999999999d"])
    func badDurations(text: String) {
        #expect(DurationSpec(parsing: text) == nil)
    }

    @Test(arguments: [("512MiB", Int64(512) << 20), ("2GiB", Int64(2) << 30), ("100", 100), ("10KB", 10_000), ("1.5GiB", Int64(3) << 29)])
    func sizes(text: String, bytes: Int64) {
        #expect(ByteSize(parsing: text)?.bytes == bytes)
    }

    @Test(arguments: ["", "GiB", "12XB", "-1MiB", "1e3", "99999999999TiB"])
    func badSizes(text: String) {
        #expect(ByteSize(parsing: text) == nil)
    }

    @Test func basicTimestampsRoundTrip() throws {
        let date = try #require(Timestamp.parseBasic("20261124T031500Z"))
        #expect(Timestamp.formatBasic(date) == "20261124T031500Z")
        #expect(Timestamp.iso(date) == "2026-11-24T03:15:00Z")
        #expect(Timestamp.parse("2026-11-24T03:15:00Z") == date)
        #expect(Timestamp.parse("2026-11-24T04:15:00+01:00") == date)
    }

    @Test(arguments: ["20261124T031500", "20261324T031500Z", "20260230T000000Z", "2026112xT031500Z", "20261124 031500Z", "20261124T246000Z"])
    func malformedBasicTimestamps(text: String) {
        #expect(Timestamp.parseBasic(text) == nil)
    }

    @Test func wireTimesRoundTripWithoutFormatters() throws {
        let date = try #require(Timestamp.parse("2026-11-24T03:15:00.123Z"))
        #expect(Timestamp.isoMillis(date) == "2026-11-24T03:15:00.123Z")
        #expect(Timestamp.iso(date) == "2026-11-24T03:15:00Z")
        #expect(Timestamp.parse("2026-11-24T03:15:00Z")?.timeIntervalSince1970 == 1_795_490_100)
        #expect(Timestamp.parseWire("2026-02-30T00:00:00Z") == nil)
        #expect(Timestamp.parseWire("2028-02-29T00:00:00Z") != nil)
        #expect(Timestamp.isoMillis(Date(timeIntervalSince1970: 0.9996)) == "1970-01-01T00:00:01.000Z")
    }

    @Test func humanFormats() {
        #expect(ByteSize.format(512) == "512 B")
        #expect(ByteSize.format(3 << 29) == "1.5 GiB")
        #expect(DurationSpec.format(seconds: 7_500) == "2h05m")
        #expect(DurationSpec.format(seconds: 192) == "3m12s")
        // A day and minutes is not rounded to "1d": against a 1d objective it would read met.
        #expect(DurationSpec.format(seconds: 86_400 + 35 * 60) == "1d35m")
        #expect(DurationSpec.format(seconds: 2 * 86_400) == "2d")
        // What two units leave out is rounded up into the last: a value over an objective never
        // reads as the objective, one within it never as more.
        #expect(DurationSpec.format(seconds: 86_400 + 2 * 3_600 + 35 * 60) == "1d3h")
        #expect(DurationSpec.format(seconds: 86_401) == "1d1m")
        #expect(DurationSpec.format(seconds: 86_400) == "1d" && DurationSpec.format(seconds: 86_399) == "1d")
        #expect(DurationSpec.format(seconds: 3_600.05) == "1h01m" && DurationSpec.format(seconds: 3_599.997) == "1h")
        #expect(DurationSpec.format(seconds: 3_660) == "1h01m" && DurationSpec.format(seconds: 59.5) == "1m")
        #expect(DurationSpec.format(seconds: 0.04) == "0.1s" && DurationSpec.format(seconds: 0) == "0s")
        #expect(DurationSpec.format(seconds: 23 * 3_600 + 59 * 60 + 30) == "1d")
    }
}
