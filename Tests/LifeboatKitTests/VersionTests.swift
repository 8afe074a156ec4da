import Testing
@testable import LifeboatKit
@Test func version() { #expect(!LifeboatVersion.string.isEmpty) }
