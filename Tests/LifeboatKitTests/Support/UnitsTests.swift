import Foundation
import Testing
@testable import LifeboatKit

@Suite struct UnitsTests {
    @Test(arguments: [("90s", 90), ("15m", 900), ("4h", 14_400), ("30d", 2_592_000), ("1h30m", 5_400), ("2w", 1_209_600)])
    func durations(text: String, seconds: Int64) {
        #expect(DurationSpec(parsing: text)?.seconds == seconds)
    }

    @Test(arguments: ["", "4", "h", "4x", "-4h", "4h3", "99999999999999999999d", "1m1m", "1s1d", "4ms"])
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
        // What an operator types may come with spaces around it, or as a date alone.
        #expect(Timestamp.parse(" 2026-11-24T03:15:00Z\t") == date)
        #expect(Timestamp.parse(" 20261124T031500Z ") == date)
        #expect(Timestamp.parse("2026-11-24") == Timestamp.parseBasic("20261124T000000Z"))
        #expect(Timestamp.parse("2026-11-24T03:15Z") == nil)
        // An impossible date or time is refused, not rolled over into the next month or day.
        for impossible in ["2026-02-30T00:00:00Z", "2026-11-31T12:00:00Z", "2026-11-31T12:00:00.5+01:00", "2026-02-29", "2026-04-31",
                           "2026-11-24T24:00:00Z", "2026-11-24T23:60:00+02:00"] {
            #expect(Timestamp.parse(impossible) == nil, "\(impossible)")
        }
        #expect(Timestamp.parse("2028-02-29") != nil && Timestamp.parse("2026-11-30T23:59:59.5+01:00") != nil)
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

    /// Sizes and short durations read as `String(format:)` printed them (ties to even), which
    /// they no longer call: the report and every job's event use them.
    @Test func formatsReadAsPrintfDid() {
        var sizes: [Int64] = [0, 1, 1023, 1024, 1280, 1331, 1_536, 102_348, 102_349, 102_400, 103_936, 1_048_575, 1_048_576, -1_536, 3 << 29]
        var generator = SystemRandomNumberGenerator()
        for shift in 10..<50 {
            for _ in 0..<200 { sizes.append(Int64.random(in: (1 << shift)..<(1 << (shift + 1)), using: &generator)) }
            // Exact ties at a tenth and at a unit: x.x5 and xxx.5 of the unit.
            sizes.append((Int64(1) << shift) / 20 * 25)
            sizes.append((Int64(1) << (shift - 1)) * 201)
        }
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        for bytes in sizes where bytes != 0 && abs(bytes) >= 1024 {
            var value = Double(bytes), index = 0
            while abs(value) >= 1024, index < units.count - 1 { value /= 1024; index += 1 }
            let printf = String(format: value >= 100 ? "%.0f %@" : "%.1f %@", value, units[index])
            #expect(ByteSize.format(bytes) == printf, "\(bytes)")
        }
        for tenth in 1..<100 {
            for offset in [-0.04, -0.001, 0.001, 0.049] {
                let seconds = Double(tenth) / 10 + offset
                guard seconds > 0, seconds < 10, seconds != seconds.rounded() else { continue }
                #expect(DurationSpec.format(seconds: seconds) == String(format: "%.1fs", (seconds * 10).rounded(.up) / 10), "\(seconds)")
            }
        }
        #expect(DurationSpec.format(seconds: 3_600 + 5 * 60) == "1h05m")
        #expect(DurationSpec.format(seconds: 65) == "1m05s")
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
