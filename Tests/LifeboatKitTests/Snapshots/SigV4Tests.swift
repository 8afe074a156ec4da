import Foundation
import Testing
@testable import LifeboatKit

/// SigV4 against AWS's published vectors: the "get-vanilla" family of the Signature Version 4
/// test suite (AKIDEXAMPLE, 2015-08-30T12:36:00Z, service "service"), and the examples of the S3
/// guide "Signature Calculations for the Authorization Header" (examplebucket, 2013-05-24).
@Suite struct SigV4Tests {
    static let suiteSigner = SigV4Signer(
        credentials: S3Credentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        region: "us-east-1", service: "service")
    static let suiteDate = Date(timeIntervalSince1970: 1_440_938_160)  // 20150830T123600Z

    static let s3Signer = SigV4Signer(
        credentials: S3Credentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        region: "us-east-1")
    static let s3Date = Date(timeIntervalSince1970: 1_369_353_600)  // 20130524T000000Z
    static let s3Host = "examplebucket.s3.amazonaws.com"

    @Test func dates() {
        #expect(Timestamp.formatBasic(Self.suiteDate) == "20150830T123600Z")
        #expect(Timestamp.formatBasic(Self.s3Date) == "20130524T000000Z")
    }

    @Test func getVanilla() {
        let signed = Self.suiteSigner.sign(method: "GET", path: "/", query: [], headers: [("Host", "example.amazonaws.com")],
                                           payloadHash: SigV4Signer.emptyPayloadHash, date: Self.suiteDate)
        #expect(signed.canonicalRequest == """
            GET
            /

            host:example.amazonaws.com
            x-amz-date:20150830T123600Z

            host;x-amz-date
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            """)
        #expect(signed.authorization == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
    }

    @Test func getVanillaQueryOrderKeyCase() {
        // Sent as ?Param2=value2&Param1=value1; signed sorted.
        let signed = Self.suiteSigner.sign(method: "GET", path: "/", query: [("Param2", "value2"), ("Param1", "value1")],
                                           headers: [("Host", "example.amazonaws.com")], payloadHash: SigV4Signer.emptyPayloadHash,
                                           date: Self.suiteDate)
        #expect(signed.signature == "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")
    }

    @Test func s3GetObjectWithRange() {
        let signed = Self.s3Signer.sign(method: "GET", path: "/test.txt", query: [],
                                        headers: [("Host", Self.s3Host), ("Range", "bytes=0-9"), ("x-amz-content-sha256", SigV4Signer.emptyPayloadHash)],
                                        payloadHash: SigV4Signer.emptyPayloadHash, date: Self.s3Date)
        #expect(signed.authorization.contains("SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"))
        #expect(signed.signature == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    @Test func s3PutObject() {
        // The key "test$file.text": `$` is encoded in the canonical URI.
        let payload = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"  // SHA-256 of "Welcome to Amazon S3."
        #expect(SigV4Signer.sha256Hex(Data("Welcome to Amazon S3.".utf8)) == payload)
        let signed = Self.s3Signer.sign(method: "PUT", path: "/test$file.text", query: [],
                                        headers: [("Host", Self.s3Host), ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
                                                  ("x-amz-storage-class", "REDUCED_REDUNDANCY"), ("x-amz-content-sha256", payload)],
                                        payloadHash: payload, date: Self.s3Date)
        #expect(signed.canonicalRequest.hasPrefix("PUT\n/test%24file.text\n"))
        #expect(signed.signature == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }

    @Test func s3GetBucketLifecycle() {
        let signed = Self.s3Signer.sign(method: "GET", path: "/", query: [("lifecycle", "")],
                                        headers: [("Host", Self.s3Host), ("x-amz-content-sha256", SigV4Signer.emptyPayloadHash)],
                                        payloadHash: SigV4Signer.emptyPayloadHash, date: Self.s3Date)
        #expect(signed.signature == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
    }

    @Test func s3ListObjects() {
        let signed = Self.s3Signer.sign(method: "GET", path: "/", query: [("prefix", "J"), ("max-keys", "2")],
                                        headers: [("Host", Self.s3Host), ("x-amz-content-sha256", SigV4Signer.emptyPayloadHash)],
                                        payloadHash: SigV4Signer.emptyPayloadHash, date: Self.s3Date)
        #expect(signed.signature == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    @Test func encoding() {
        #expect(SigV4Signer.uriEncode("a b/c~d-_.é", encodeSlash: false) == "a%20b/c~d-_.%C3%A9")
        #expect(SigV4Signer.uriEncode("a/b+c=", encodeSlash: true) == "a%2Fb%2Bc%3D")
        #expect(SigV4Signer.canonicalQuery([("b", "2"), ("a", "x y"), ("continuation-token", "1/2+3=")])
                == "a=x%20y&b=2&continuation-token=1%2F2%2B3%3D")
    }

    @Test func sessionTokenIsSigned() {
        var signer = Self.s3Signer
        signer.credentials.sessionToken = "token"
        let signed = signer.sign(method: "GET", path: "/k", query: [], headers: [("host", "h")],
                                 payloadHash: SigV4Signer.emptyPayloadHash, date: Self.s3Date)
        #expect(signed.authorization.contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"))
        #expect(signed.headers.contains { $0.name == "x-amz-security-token" && $0.value == "token" })
    }
}

