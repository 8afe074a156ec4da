import Foundation

/// A 5-field cron expression (minute hour day-of-month month day-of-week), evaluated in UTC.
///
/// Fields take `*`, numbers, lists (`1,15`), ranges (`1-5`), steps (`*/15`, `0-30/10`) and names
/// for months (`jan`) and weekdays (`mon`; 0 and 7 are Sunday). Macros: `@yearly` (`@annually`),
/// `@quarterly`, `@monthly`, `@weekly`, `@daily` (`@midnight`), `@hourly`. As in Vixie cron, when
/// both day-of-month and day-of-week are restricted, a day matching either fires.
public struct CronExpression: Sendable, Hashable, CustomStringConvertible {
    public let text: String
    let minutes: Set<Int>
    let hours: Set<Int>
    let daysOfMonth: Set<Int>
    let months: Set<Int>
    let daysOfWeek: Set<Int>
    let domRestricted: Bool
    let dowRestricted: Bool

    /// A parse problem: the character offset in the expression and what is wrong.
    public struct Problem: Error, Sendable, CustomStringConvertible {
        public var offset: Int
        public var message: String
        public var description: String { message }
    }

    private static let macros: [String: String] = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@quarterly": "0 0 1 1,4,7,10 *",
        "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0", "@daily": "0 0 * * *",
        "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]
    private static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    private static let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    public init(_ text: String) throws(Problem) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("@") {
            guard let expansion = Self.macros[trimmed.lowercased()] else {
                throw Problem(offset: 0, message: "unknown cron macro \"\(trimmed)\"; expected @yearly, @quarterly, @monthly, @weekly, @daily or @hourly")
            }
            try self.init(fields: expansion, offsetBase: nil, text: text)
        } else {
            try self.init(fields: text, offsetBase: 0, text: text)
        }
    }

    private init(fields source: String, offsetBase: Int?, text: String) throws(Problem) {
        self.text = text
        // Split into fields, remembering where each starts for error positions.
        var fields: [(String, Int)] = []
        var current = ""
        var start = 0
        for (i, c) in source.enumerated() {
            if c == " " || c == "\t" {
                if !current.isEmpty { fields.append((current, start)); current = "" }
            } else {
                if current.isEmpty { start = i }
                current.append(c)
            }
        }
        if !current.isEmpty { fields.append((current, start)) }
        if let zone = fields.first, zone.0.hasPrefix("CRON_TZ=") || zone.0.hasPrefix("TZ=") {
            throw Problem(offset: offsetBase.map { $0 + zone.1 } ?? 0,
                          message: "schedules are in UTC and take no time zone (\(zone.0)); give the UTC time of the local time meant, "
                                 + "and mind that it moves by an hour with daylight saving time")
        }
        guard fields.count == 5 else {
            throw Problem(offset: 0, message: "a cron expression has 5 fields (minute hour day-of-month month day-of-week), found \(fields.count) in \"\(text)\"")
        }
        func at(_ i: Int) -> Int { offsetBase.map { $0 + fields[i].1 } ?? 0 }
        minutes = try Self.parseField(fields[0].0, name: "minute", range: 0...59, names: [], offset: at(0))
        hours = try Self.parseField(fields[1].0, name: "hour", range: 0...23, names: [], offset: at(1))
        daysOfMonth = try Self.parseField(fields[2].0, name: "day-of-month", range: 1...31, names: [], offset: at(2))
        months = try Self.parseField(fields[3].0, name: "month", range: 1...12, names: Self.monthNames, offset: at(3), nameBase: 1)
        var dow = try Self.parseField(fields[4].0, name: "day-of-week", range: 0...7, names: Self.dayNames, offset: at(4))
        if dow.contains(7) { dow.remove(7); dow.insert(0) }
        daysOfWeek = dow
        domRestricted = !fields[2].0.hasPrefix("*")
        dowRestricted = !fields[4].0.hasPrefix("*")
    }

    private static func parseField(_ field: String, name: String, range: ClosedRange<Int>, names: [String],
                                   offset: Int, nameBase: Int = 0) throws(Problem) -> Set<Int> {
        var values = Set<Int>()
        var partOffset = offset
        for part in field.split(separator: ",", omittingEmptySubsequences: false) {
            defer { partOffset += part.count + 1 }
            let problem = { (what: String) in
                Problem(offset: partOffset, message: "cron \(name) field \"\(field)\": \(what)")
            }
            guard !part.isEmpty else { throw problem("empty list item") }
            let stepSplit = part.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            var step = 1
            if stepSplit.count == 2 {
                guard let s = Self.number(stepSplit[1]), s > 0 else { throw problem("step \"\(stepSplit[1])\" must be a positive number") }
                step = s
            }
            let base = stepSplit[0]
            var low: Int, high: Int
            if base == "*" {
                low = range.lowerBound
                high = name == "day-of-week" ? 6 : range.upperBound
            } else {
                let bounds = base.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
                func value(_ s: Substring) throws(Problem) -> Int {
                    if let n = Self.number(s) {
                        guard range.contains(n) else { throw problem("\(n) is outside \(range.lowerBound)-\(range.upperBound)") }
                        return n
                    }
                    if let i = names.firstIndex(of: s.lowercased()) { return i + nameBase }
                    throw problem("\"\(s)\" is not a number\(names.isEmpty ? "" : " or a name like \(names[0])")")
                }
                low = try value(bounds[0])
                high = bounds.count == 2 ? try value(bounds[1]) : low
                if bounds.count == 1 && stepSplit.count == 2 { high = range.upperBound }
                guard low <= high else { throw problem("range \(low)-\(high) runs backwards") }
            }
            values.formUnion(stride(from: low, through: high, by: step))
        }
        return values
    }

    /// Digits only, as cron writes numbers (`Int` would take `+5` and `-0`).
    private static func number(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.count <= 9, text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else { return nil }
        return Int(text)
    }

    public var description: String { text }

    /// The first fire time strictly after `date`, or nil if the expression never fires
    /// (e.g. `0 0 30 2 *`) within the next 8 years.
    public func nextFire(after date: Date) -> Date? {
        let calendar = Timestamp.utcCalendar
        // Start at the next whole minute.
        let start = floor(date.timeIntervalSince1970 / 60) * 60 + 60
        var c = calendar.dateComponents([.year, .month, .day, .hour, .minute], from: Date(timeIntervalSince1970: start))
        guard var year = c.year, var month = c.month, var day = c.day, var hour = c.hour, var minute = c.minute else { return nil }
        // The Gregorian calendar, weekdays included, repeats every 400 years: what does not fire
        // within them never does (`0 0 29 2 */7`, Feb 29 on a Sunday, can be 28 years apart).
        let lastYear = year + 400
        while year <= lastYear {
            if !months.contains(month) {
                month += 1; day = 1; hour = 0; minute = 0
                if month > 12 { month = 1; year += 1 }
                continue
            }
            let daysInMonth = Self.days(inMonth: month, year: year)
            if day > daysInMonth || !dayMatches(year: year, month: month, day: day) {
                day += 1; hour = 0; minute = 0
                if day > daysInMonth { day = 1; month += 1; if month > 12 { month = 1; year += 1 } }
                continue
            }
            if !hours.contains(hour) {
                hour += 1; minute = 0
                if hour > 23 { hour = 0; day += 1 }
                continue
            }
            if let m = minutes.filter({ $0 >= minute }).min() {
                c = DateComponents(year: year, month: month, day: day, hour: hour, minute: m)
                return calendar.date(from: c)
            }
            hour += 1; minute = 0
            if hour > 23 { hour = 0; day += 1 }
        }
        return nil
    }

    static func days(inMonth month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    private func dayMatches(year: Int, month: Int, day: Int) -> Bool {
        let domOK = daysOfMonth.contains(day)
        let weekday = Self.weekday(year: year, month: month, day: day)
        let dowOK = daysOfWeek.contains(weekday)
        if domRestricted && dowRestricted { return domOK || dowOK }
        return domOK && dowOK
    }

    /// 0 = Sunday (Sakamoto's method).
    static func weekday(year: Int, month: Int, day: Int) -> Int {
        let t = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4]
        let y = month < 3 ? year - 1 : year
        return (y + y / 4 - y / 100 + y / 400 + t[month - 1] + day) % 7
    }
}
