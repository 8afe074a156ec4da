import Foundation

/// A byte count written the way operators write it: `512MiB`, `2GiB`, `4096`, `10KB`.
public struct ByteSize: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var bytes: Int64

    public init(bytes: Int64) { self.bytes = bytes }

    private static let units: [(suffix: String, factor: Int64)] = [
        ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40),
        ("KB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("TB", 1_000_000_000_000),
        ("B", 1),
    ]

    /// Parses `512MiB`, `2GiB`, `1.5GiB`, `100` (bytes). Returns nil for anything else.
    public init?(parsing text: String) {
        let s = text.trimmingCharacters(in: .whitespaces)
        var number = Substring(s)
        var factor: Int64 = 1
        for unit in Self.units where s.hasSuffix(unit.suffix) {
            number = s.dropLast(unit.suffix.count)
            factor = unit.factor
            break
        }
        number = number.drop(while: { $0 == " " })
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }) else { return nil }
        if let whole = Int64(number) {
            let (product, overflow) = whole.multipliedReportingOverflow(by: factor)
            guard !overflow else { return nil }
            bytes = product
        } else if let fraction = Double(number), fraction.isFinite, fraction * Double(factor) < 9.2e18 {
            bytes = Int64((fraction * Double(factor)).rounded())
        } else {
            return nil
        }
    }

    public static func < (a: ByteSize, b: ByteSize) -> Bool { a.bytes < b.bytes }

    /// Human form with binary units: `1.5 GiB`, `512 B`.
    public var description: String { Self.format(bytes) }

    public static func format(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(bytes)
        var index = 0
        while abs(value) >= 1024, index < units.count - 1 {
            value /= 1024
            index += 1
        }
        if index == 0 { return "\(bytes) B" }
        // As `%.0f` / `%.1f` would print it (ties to even), without `String(format:)`, which
        // parses its format on every call: this runs for every job's event and report row.
        // `value` is bytes over a power of 1024, so `value * 10` is exact and so is the rounding.
        if value >= 100 { return "\(Int64(value.rounded(.toNearestOrEven))) \(units[index])" }
        let tenths = Int64((abs(value) * 10).rounded(.toNearestOrEven))
        return "\(value < 0 ? "-" : "")\(tenths / 10).\(tenths % 10) \(units[index])"
    }
}

/// A duration written as `90s`, `15m`, `4h`, `30d` (also `1h30m`).
public struct DurationSpec: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var seconds: Int64

    public init(seconds: Int64) { self.seconds = seconds }

    /// The longest a plan or config may say: 100 years (36525d). Anything longer is a slip of the
    /// keyboard, and counted in seconds could overflow where it is added to a time.
    public static let longest = DurationSpec(seconds: 36_525 * 86_400)

    public init?(parsing text: String) {
        let s = text.trimmingCharacters(in: .whitespaces)
        guard !s.isEmpty else { return nil }
        var total: Int64 = 0
        var digits = ""
        var sawUnit = false
        // Each unit once, largest first (`1h30m`): `1m1m` or `1s1d` is a slip, not a sum.
        var previous = Int64.max
        for ch in s {
            if ch.isASCII, ch.isNumber {
                digits.append(ch)
                continue
            }
            let factor: Int64
            switch ch {
            case "s": factor = 1
            case "m": factor = 60
            case "h": factor = 3_600
            case "d": factor = 86_400
            case "w": factor = 604_800
            default: return nil
            }
            guard factor < previous, let n = Int64(digits) else { return nil }
            previous = factor
            let (product, overflow) = n.multipliedReportingOverflow(by: factor)
            guard !overflow else { return nil }
            let (sum, overflow2) = total.addingReportingOverflow(product)
            guard !overflow2 else { return nil }
            total = sum
            digits = ""
            sawUnit = true
        }
        guard digits.isEmpty, sawUnit else { return nil }
        seconds = total
    }

    /// Whether `text` is written as a duration (numbers each with a unit, largest first) whose
    /// seconds do not fit in 64 bits: too long, rather than not a duration.
    public static func isOverflowing(_ text: String) -> Bool {
        guard DurationSpec(parsing: text) == nil, let last = text.last, "smhdw".contains(last) else { return false }
        // The same units with each number cut to one digit parse unless the form is wrong.
        var shape = ""
        var inNumber = false
        for ch in text {
            if ch.isASCII, ch.isNumber {
                if !inNumber { shape.append("1"); inNumber = true }
            } else {
                shape.append(ch)
                inNumber = false
            }
        }
        return DurationSpec(parsing: shape) != nil
    }

    public static func < (a: DurationSpec, b: DurationSpec) -> Bool { a.seconds < b.seconds }

    public var timeInterval: TimeInterval { TimeInterval(seconds) }

    /// Compact form: `4h`, `1h30m`, `45s`, `30d`.
    public var description: String { Self.format(seconds: Double(seconds)) }

    /// Formats a number of seconds compactly (`2h05m`, `3m12s`, `0.4s`), in at most two units,
    /// rounded up at the last unit shown: a value over an objective never reads as the objective
    /// (86,401 s against 1d reads `1d1m`, 3,600.05 s against 1h `1h01m`), and one within it never
    /// reads as more than it.
    public static func format(seconds: Double) -> String {
        if seconds.isNaN { return "-" }
        let negative = seconds < 0
        let s = abs(seconds)
        let text: String
        if s < 10 && s != s.rounded() {
            let tenths = Int64((s * 10).rounded(.up))
            text = "\(tenths / 10).\(tenths % 10)s"
        } else {
            var total = Int64(s.rounded(.up))
            let d = total / 86_400, h = (total % 86_400) / 3_600
            // What the two units shown leave out is rounded up into the last one.
            if d > 0, h > 0 {
                if total % 3_600 > 0 { total += 3_600 - total % 3_600 }
            } else if d > 0 || h > 0 {
                if total % 60 > 0 { total += 60 - total % 60 }
            }
            let days = total / 86_400, hours = (total % 86_400) / 3_600, m = (total % 3_600) / 60, sec = total % 60
            if days > 0 {
                // A remainder in minutes is not hidden either (24h35m against a 1d objective must
                // not read "1d (missed)").
                text = hours > 0 ? "\(days)d\(hours)h" : m > 0 ? "\(days)d\(m)m" : "\(days)d"
            } else if hours > 0 {
                text = m > 0 ? "\(hours)h\(m < 10 ? "0" : "")\(m)m" : "\(hours)h"
            } else if m > 0 {
                text = sec > 0 ? "\(m)m\(sec < 10 ? "0" : "")\(sec)s" : "\(m)m"
            } else {
                text = "\(sec)s"
            }
        }
        return negative ? "-" + text : text
    }
}

/// Times as Lifeboat writes and reads them.
public enum Timestamp {
    /// Parses the snapshot store's `YYYYMMDDTHHMMSSZ` (UTC, ISO-8601 basic format), strictly.
    public static func parseBasic(_ text: some StringProtocol) -> Date? {
        let u = Array(text.utf8)
        guard u.count == 16, u[8] == UInt8(ascii: "T"), u[15] == UInt8(ascii: "Z") else { return nil }
        func num(_ range: Range<Int>) -> Int? {
            var v = 0
            for i in range {
                let c = u[i]
                guard c >= 48, c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            return v
        }
        guard let year = num(0..<4), let month = num(4..<6), let day = num(6..<8),
              let hour = num(9..<11), let minute = num(11..<13), let second = num(13..<15)
        else { return nil }
        return makeUTC(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
    }

    /// Formats a date as `YYYYMMDDTHHMMSSZ`.
    public static func formatBasic(_ date: Date) -> String {
        let c = utcCalendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return String(format: "%04d%02d%02dT%02d%02d%02dZ", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
    }

    /// Parses what an operator may type for `--incident-at`/`--as-of`: ISO-8601 extended
    /// (`2026-11-24T03:15:00Z`, with an offset, with fractional seconds), the basic store format,
    /// or a date alone (`2026-11-24`, midnight UTC).
    public static func parse(_ text: String) -> Date? {
        // What Lifeboat writes (every time in an answer) first, as it is: trimming goes through
        // NSString, whose first use in a process costs the CLI more than the rest of its decoding.
        if let d = parseWire(text) ?? parseBasic(text) { return d }
        let s = text.trimmingCharacters(in: .whitespaces)
        if let d = parseBasic(s) ?? parseWire(s) { return d }
        // The formatters roll an impossible date or time over (Feb 30 is Mar 2): an incident time
        // an operator mistyped must be refused, not moved.
        guard fieldsExist(s) else { return nil }
        let withFraction = ISO8601DateFormatter()
        withFraction.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = withFraction.date(from: s) { return d }
        let plain = ISO8601DateFormatter()
        plain.formatOptions = [.withInternetDateTime]
        if let d = plain.date(from: s) { return d }
        let dateOnly = ISO8601DateFormatter()
        dateOnly.formatOptions = [.withFullDate]
        if s.count == 10, let d = dateOnly.date(from: s) { return d }
        return nil
    }

    /// Whether the date `YYYY-MM-DD` that `text` starts with exists, and the time after it
    /// (`THH:MM` or `THH:MM:SS`), if any, is within the day.
    private static func fieldsExist(_ text: String) -> Bool {
        let u = Array(text.utf8)
        func num(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= u.count else { return nil }
            var v = 0
            for i in range {
                guard u[i] >= 48, u[i] <= 57 else { return nil }
                v = v * 10 + Int(u[i] - 48)
            }
            return v
        }
        guard u.count >= 10, u[4] == UInt8(ascii: "-"), u[7] == UInt8(ascii: "-"),
              let year = num(0..<4), let month = num(5..<7), let day = num(8..<10) else { return true }
        guard u.count >= 16, u[10] == UInt8(ascii: "T"), u[13] == UInt8(ascii: ":"), let hour = num(11..<13), let minute = num(14..<16) else {
            return makeUTC(year: year, month: month, day: day, hour: 0, minute: 0, second: 0) != nil
        }
        let second = u.count >= 19 && u[16] == UInt8(ascii: ":") ? num(17..<19) ?? 0 : 0
        return makeUTC(year: year, month: month, day: day, hour: hour, minute: minute, second: min(second, 59)) != nil
    }

    /// Formats a date as ISO-8601 UTC with seconds: `2026-11-24T03:15:00Z`.
    public static func iso(_ date: Date) -> String { format(date, millis: false) }

    /// ISO-8601 UTC with milliseconds: `2026-11-24T03:15:00.123Z` (the wire format).
    public static func isoMillis(_ date: Date) -> String { format(date, millis: true) }

    /// By hand with `gmtime_r`: every job record on the socket carries several times, and a
    /// formatter object per time cost more than the rest of the encoding.
    private static func format(_ date: Date, millis: Bool) -> String {
        let interval = date.timeIntervalSince1970
        var seconds = Int(interval.rounded(.down))
        var ms = Int(((interval - Double(seconds)) * 1_000).rounded())
        if ms == 1_000 { seconds += 1; ms = 0 }
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        func pad(_ v: Int32, _ width: Int) -> String {
            let digits = String(v)
            return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
        }
        var text = "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))"
        if millis { text += "." + pad(Int32(ms), 3) }
        return text + "Z"
    }

    /// Parses exactly `YYYY-MM-DDTHH:MM:SSZ` or `YYYY-MM-DDTHH:MM:SS.fffZ` (what Lifeboat writes)
    /// without a formatter; anything else goes to the general parser.
    static func parseWire(_ text: String) -> Date? {
        let u = Array(text.utf8)
        guard u.count == 20 || u.count == 24, u[4] == UInt8(ascii: "-"), u[7] == UInt8(ascii: "-"), u[10] == UInt8(ascii: "T"),
              u[13] == UInt8(ascii: ":"), u[16] == UInt8(ascii: ":"), u[u.count - 1] == UInt8(ascii: "Z") else { return nil }
        func num(_ range: Range<Int>) -> Int? {
            var v = 0
            for i in range {
                guard u[i] >= 48, u[i] <= 57 else { return nil }
                v = v * 10 + Int(u[i] - 48)
            }
            return v
        }
        guard let year = num(0..<4), let month = num(5..<7), let day = num(8..<10),
              let hour = num(11..<13), let minute = num(14..<16), let second = num(17..<19),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var fraction = 0.0
        if u.count == 24 {
            guard u[19] == UInt8(ascii: "."), let ms = num(20..<23) else { return nil }
            fraction = Double(ms) / 1_000
        }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let t = timegm(&parts)
        // timegm normalises Feb 30 to Mar 2: reject dates that are not real.
        guard parts.tm_mday == Int32(day), parts.tm_mon == Int32(month - 1) else { return nil }
        return Date(timeIntervalSince1970: Double(t) + fraction)
    }

    static let utcCalendar: Calendar = {
        var c = Calendar(identifier: .gregorian)
        c.timeZone = TimeZone(identifier: "UTC")!
        return c
    }()

    static func makeUTC(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) -> Date? {
        guard (1...12).contains(month), (1...31).contains(day), (0...23).contains(hour),
              (0...59).contains(minute), (0...60).contains(second), year >= 1970 else { return nil }
        let comps = DateComponents(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
        guard let date = utcCalendar.date(from: comps) else { return nil }
        // Reject dates the calendar silently normalised (Feb 30 → Mar 2).
        let back = utcCalendar.dateComponents([.year, .month, .day], from: date)
        guard back.year == year, back.month == month, back.day == day else { return nil }
        return date
    }
}
