import ArgumentParser
import Foundation
import LifeboatKit

struct PlanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Work with plan files offline.",
        subcommands: [PlanCheck.self]
    )
}

struct PlanCheck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate plan files; every problem is reported as file:line:col.",
        discussion: "Exit 0 when every plan is valid, 2 when any is not."
    )

    @Argument(help: "Plan files to check.")
    var files: [String]

    @Flag(help: "Print results as JSON.")
    var json = false

    struct Result: Encodable {
        var file: String
        var ok: Bool
        var plan: String?
        var errors: [Diagnostic]
    }

    func run() async throws {
        var results: [Result] = []
        for file in files {
            do {
                let plan = try PlanLoader.load(path: file)
                results.append(Result(file: file, ok: true, plan: plan.name, errors: []))
                if !json {
                    let products = plan.products.map(\.name).joined(separator: ", ")
                    print("\(file): ok — plan \"\(plan.name)\", products \(products), \(plan.waves.count) wave(s)")
                }
            } catch let error as DiagnosticsError {
                results.append(Result(file: file, ok: false, plan: nil, errors: error.diagnostics))
                if !json { printError(error.description) }
            }
        }
        if json { try printJSON(results) }
        let failed = results.filter { !$0.ok }.count
        if failed > 0 {
            throw CLIFailure(code: .rejected, message: json ? "" : "\(failed) of \(files.count) plan(s) invalid")
        }
    }
}
