import Foundation
import Testing

/// The built executables, next to the test bundle in `.build/<config>/`.
enum Binaries {
    static let directory: String = {
        // The test runner is `.build/<config>/LifeboatPackageTests.xctest` (a file on Linux).
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.isExecutableFile(atPath: url.appendingPathComponent("lifeboat").path) { return url.path }
        }
        // Fall back to the package's default build directory.
        let package = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return package.appendingPathComponent(".build/debug").path
    }()

    static var lifeboat: String { directory + "/lifeboat" }
    static var lifeboatd: String { directory + "/lifeboatd" }

    /// The package root (for the example plans).
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
}

struct ProcessResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs an executable to completion, capturing stdout and stderr separately.
func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, cwd: String? = nil) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Drain both pipes concurrently so a chatty child never blocks on a full pipe.
    nonisolated(unsafe) var errData = Data()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        errData = err.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

/// `run` on a thread of its own, for long waits in async tests: a blocking wait on Swift
/// Testing's few shared threads stalls every other test's tasks (and their deadlines) meanwhile.
func runOffPool(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, cwd: String? = nil) async throws -> ProcessResult {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try run(executable, arguments, environment: environment, cwd: cwd) })
        }
    }
}

/// A fresh temporary directory per test, removed afterwards.
final class TempDir: @unchecked Sendable {
    let path: String

    /// - Parameter parent: where to make it (default: the temporary directory).
    init(_ name: String = #function, in parent: String? = nil) {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        path = (parent.map { $0 + "/" } ?? NSTemporaryDirectory()) + "lifeboat-it-\(safe)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ relative: String) -> String { path + "/" + relative }

    @discardableResult
    func write(_ relative: String, _ text: String) -> String {
        let full = file(relative)
        try! FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try! text.write(toFile: full, atomically: false, encoding: .utf8)
        return full
    }
}

/// The newest archive of a site's product in a test store.
func newestArchive(_ dir: TempDir, _ site: String, _ product: String) throws -> String {
    let folder = dir.file("store/\(site)/\(product)")
    let name = try #require(try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".tar.gz") }.sorted().last)
    return folder + "/" + name
}

/// Extracts an archive with GNU tar and expects `diff -r` to find the restored tree identical.
func expectSameAsTar(_ archive: String, _ restored: String, in dir: TempDir) throws {
    let reference = dir.file("ref-\(UUID().uuidString.prefix(6))")
    try FileManager.default.createDirectory(atPath: reference, withIntermediateDirectories: true)
    #expect(try run("/bin/tar", ["-xzf", archive, "-C", reference]).status == 0)
    let diff = try run("/usr/bin/diff", ["-r", "--no-dereference", reference, restored])
    #expect(diff.status == 0, "\(diff.stdout)")
}
