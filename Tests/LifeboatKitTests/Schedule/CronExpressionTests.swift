import Foundation
import Testing
@testable import LifeboatKit

@Suite struct CronExpressionTests {
    @Test(arguments: [
        // (expression, after, next fire)
        ("@quarterly", "2026-11-25T10:00:00Z", "2027-01-01T00:00:00Z"),
        ("@quarterly", "2027-01-01T00:00:00Z", "2027-04-01T00:00:00Z"),
        ("@yearly", "2026-11-25T10:00:00Z", "2027-01-01T00:00:00Z"),
        ("@monthly", "2026-11-25T10:00:00Z", "2026-12-01T00:00:00Z"),
        ("@weekly", "2026-11-25T10:00:00Z", "2026-11-29T00:00:00Z"), // 2026-11-29 is a Sunday
        ("@daily", "2026-11-25T10:00:00Z", "2026-11-26T00:00:00Z"),
        ("*/15 * * * *", "2026-11-25T10:07:30Z", "2026-11-25T10:15:00Z"),
        ("0 3 * * 1-5", "2026-11-27T04:00:00Z", "2026-11-30T03:00:00Z"), // Friday after 3am → Monday
        ("30 2 29 2 *", "2026-03-01T00:00:00Z", "2028-02-29T02:30:00Z"), // leap day
        ("0 0 31 * *", "2026-11-01T00:00:00Z", "2026-12-31T00:00:00Z"), // November has no 31st
        ("0 12 1 * mon", "2026-11-25T00:00:00Z", "2026-11-30T12:00:00Z"), // day-of-month OR day-of-week
        ("0 0 * jan,jul sun", "2026-11-25T00:00:00Z", "2027-01-03T00:00:00Z"),
        ("5 4 * * 7", "2026-11-25T00:00:00Z", "2026-11-29T04:05:00Z"), // 7 is Sunday
        ("0 0-6/3 * * *", "2026-11-25T04:00:00Z", "2026-11-25T06:00:00Z"),
        ("59 23 31 12 *", "2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z"),
        // Feb 29 on a Sunday: 28 years apart, and once 40 (2088 to 2128: 2100 is not a leap year).
        ("0 0 29 2 */7", "2032-03-01T00:00:00Z", "2060-02-29T00:00:00Z"),
        ("0 0 29 2 */7", "2088-03-01T00:00:00Z", "2128-02-29T00:00:00Z"),
    ])
    func nextFireTimes(expression: String, after: String, expected: String) throws {
        let cron = try CronExpression(expression)
        let next = try #require(cron.nextFire(after: Timestamp.parse(after)!))
        #expect(Timestamp.iso(next) == expected)
    }

    @Test func neverFiringExpressionReturnsNil() throws {
        #expect(try CronExpression("0 0 30 2 *").nextFire(after: Date()) == nil)
    }

    @Test(arguments: [
        ("0 0 * *", 0, "5 fields"), ("60 * * * *", 0, "60 is outside 0-59"), ("* 24 * * *", 2, "24 is outside 0-23"),
        ("* * 0 * *", 4, "0 is outside 1-31"), ("* * * 13 *", 6, "13 is outside 1-12"), ("* * * * 8", 8, "8 is outside 0-7"),
        ("*/0 * * * *", 0, "step"), ("5-1 * * * *", 0, "backwards"), ("@sometimes", 0, "unknown cron macro"),
        ("0 0 * foo *", 6, "not a number"), ("1,,2 * * * *", 2, "empty list item"),
        ("+5 * * * *", 0, "not a number"), ("*/+2 * * * *", 0, "step"), ("0 0 1 +1 *", 6, "not a number"),
        ("CRON_TZ=Europe/Berlin 0 3 * * *", 0, "schedules are in UTC and take no time zone (CRON_TZ=Europe/Berlin)"),
        ("TZ=UTC 0 3 * * *", 0, "schedules are in UTC"),
    ])
    func parseErrorsPointAtTheField(expression: String, offset: Int, fragment: String) {
        do {
            _ = try CronExpression(expression)
            Issue.record("\(expression) parsed")
        } catch {
            #expect(error.offset == offset)
            #expect(error.message.contains(fragment))
        }
    }
}
