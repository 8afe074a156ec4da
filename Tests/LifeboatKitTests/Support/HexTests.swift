import Foundation
import Testing
@testable import LifeboatKit

@Suite struct HexTests {
    /// The same digits `String(format: "%02x")` gives, for every byte value.
    @Test func everyByteAsPrintfWouldWriteIt() {
        let bytes = (0...255).map(UInt8.init)
        #expect(bytes.hexDigits == bytes.map { String(format: "%02x", $0) }.joined())
        #expect([UInt8]().hexDigits == "")
    }
}
