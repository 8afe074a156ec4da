import Testing
@testable import LifeboatKit

/// `sha256sum` output as sidecars hold it, and what is not.
@Suite struct ChecksumSidecarTests {
    static let digest = String(repeating: "ab", count: 32)

    @Test(arguments: [
        ("\(digest)  a.tar.gz\n", digest),                                  // text mode
        ("\(digest) *a.tar.gz\n", digest),                                  // binary mode
        ("\t \(digest.uppercased())  a.tar.gz \t\r\n", digest),             // blanks around, CRLF, upper case
        ("# comment\n\n\(digest)  other-name.tar.gz\n", digest),            // one line: any name
        ("\u{00A0}\(digest)  a.tar.gz\u{2003}\n", digest),                  // Unicode spaces, trimmed as before
        ("\(String(repeating: "0", count: 64))  x/b.tar.gz\n\(digest)  x/a.tar.gz\n", digest), // several: by name
        ("\(digest)a.tar.gz\n", nil),                                       // no separator
        ("\(digest.dropLast())  a.tar.gz\n", nil),                          // short
        ("", nil),
    ] as [(String, String?)])
    func parse(text: String, expected: String?) {
        #expect(ChecksumSidecar.parse(text, archiveName: "a.tar.gz") == expected)
    }
}
