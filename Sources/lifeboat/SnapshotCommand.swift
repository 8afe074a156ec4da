import ArgumentParser

struct SnapshotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Offline tools for snapshot stores and archives.",
        subcommands: [SnapshotVerifyCommand.self, SnapshotExtractCommand.self]
    )
}
