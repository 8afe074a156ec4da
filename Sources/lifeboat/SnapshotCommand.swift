import ArgumentParser
import Foundation
import LifeboatKit

struct SnapshotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Offline tools for snapshot stores and archives.",
        subcommands: [SnapshotListCommand.self, SnapshotVerifyCommand.self, SnapshotExtractCommand.self]
    )
}
