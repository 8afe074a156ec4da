import ArgumentParser
import Foundation
import LifeboatKit

struct FleetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet",
        abstract: "Synthetic snapshot fleets for exercises, tests and benchmarks.",
        subcommands: [FleetGenerate.self]
    )
}

struct FleetGenerate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write a synthetic snapshot store: <dir>/<site>/<product>/<taken-at>.tar.gz with .sha256 sidecars.",
        discussion: "Deterministic for a seed and --now. DIR must not exist or be empty."
    )

    @Argument(help: "Directory to create the store in, or s3://BUCKET/PREFIX (an empty prefix; AWS_ENDPOINT_URL, AWS_REGION and the standard credentials).")
    var directory: String

    @Option(help: "Number of sites.")
    var sites: Int

    @Option(help: "Comma-separated product ids, e.g. contacts,jira,confluence.")
    var products: String

    @Option(help: "Uncompressed size of each archive, e.g. 4MiB.")
    var size: String = "4MiB"

    @Option(help: "Snapshots per site and product (about one a day, newest within the last day).")
    var snapshots: Int = 1

    @Option(help: "Seed of the content.")
    var seed: UInt64 = 1

    @Option(help: "The time the fleet is generated at (ISO-8601); default now, to the minute.")
    var now: String?

    @Option(help: "Archives generated at once (default: one per core).")
    var jobs: Int?

    @Flag(help: "Print the summary as JSON.")
    var json = false

    func validate() throws {
        guard sites >= 1, sites <= 100_000 else { throw ValidationError("--sites must be between 1 and 100000") }
        guard snapshots >= 1, snapshots <= 1_000 else { throw ValidationError("--snapshots must be between 1 and 1000") }
        guard let bytes = ByteSize(parsing: size), bytes.bytes >= 1, bytes.bytes <= 1 << 40 else {
            throw ValidationError("--size \"\(size)\" must be a size like 512KiB or 4MiB")
        }
        for product in productList where !Identifier.isValid(product) {
            throw ValidationError("--products: \"\(product)\" is not a valid product id; \(Identifier.rule)")
        }
        guard !productList.isEmpty, Set(productList).count == productList.count else {
            throw ValidationError("--products must list distinct product ids, e.g. contacts,jira")
        }
        if let now, Timestamp.parse(now) == nil { throw ValidationError("--now \"\(now)\" is not an ISO-8601 time") }
    }

    var productList: [String] { products.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }

    func run() async throws {
        let nowDate = now.flatMap(Timestamp.parse) ?? Date(timeIntervalSince1970: (Date().timeIntervalSince1970 / 60).rounded(.down) * 60)
        var generator = FleetGenerator(sites: sites, products: productList, archiveSize: ByteSize(parsing: size)!.bytes,
                                       snapshots: snapshots, seed: seed, now: nowDate)
        generator.compressionLevel = 1
        let started = Date()
        let interactive = isatty(STDERR_FILENO) == 1 && !json
        let parallelism = jobs ?? ProcessInfo.processInfo.activeProcessorCount
        let report: @Sendable (Int, Int) -> Void = { done, total in
            if interactive { StandardOutput.write(Data("\rgenerating archives: \(done)/\(total)".utf8), to: STDERR_FILENO) }
        }
        let summary: FleetGenerator.Summary
        if S3Location.isS3(directory) {
            do {
                let location = try S3Location(parsing: directory)
                // Uploads run several at a time even on a small machine: they mostly wait.
                summary = try await generator.generate(into: location, client: try S3Client.make(S3Settings()),
                                                       parallelism: max(parallelism, 8), progress: report)
            } catch let error as S3Error {
                throw CLIFailure(code: error.exitCode, message: "error: \(directory): \(error.description)")
            }
        } else {
            summary = try await generator.generate(into: directory, parallelism: parallelism, progress: report)
        }
        if interactive { StandardOutput.write(Data("\n".utf8), to: STDERR_FILENO) }
        if json {
            try printJSON(summary)
        } else {
            let seconds = Date().timeIntervalSince(started)
            print("wrote \(summary.archives) archive(s) for \(summary.sites.count) site(s) × \(productList.count) product(s) into \(directory)")
            print("\(summary.files) files, \(ByteSize.format(summary.uncompressedBytes)) uncompressed, \(ByteSize.format(summary.compressedBytes)) compressed, in \(String(format: "%.1f", seconds)) s")
        }
    }
}
