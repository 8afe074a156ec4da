import Foundation
import LifeboatKit

/// Input: plan YAML text. Decoding and validation must end in a plan or a `DiagnosticsError`
/// whose every diagnostic names the file, a line and a column; never a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPlanDecoder(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        let plan = try PlanLoader.load(text: text, file: "fuzz.yaml", baseDirectory: "/nonexistent")
        precondition(!plan.name.isEmpty, "a plan without a name was accepted")
    } catch let error as DiagnosticsError {
        for diagnostic in error.diagnostics {
            precondition(diagnostic.file == "fuzz.yaml" && diagnostic.line >= 1 && diagnostic.column >= 1,
                         "a diagnostic without a position: \(diagnostic)")
        }
    } catch {
        fatalError("PlanLoader threw a non-DiagnosticsError: \(type(of: error)) \(error)")
    }
    return 0
}
