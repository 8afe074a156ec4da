/// Site and product ids: `[a-z0-9][a-z0-9._-]{0,62}` (DESIGN.md "Words").
public enum Identifier {
    public static func isValid(_ id: some StringProtocol) -> Bool {
        let u = id.utf8
        guard let first = u.first, u.count <= 63, isAlnum(first) else { return false }
        return u.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    public static let rule = "ids are 1 to 63 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"

    private static func isAlnum(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
    }
}
