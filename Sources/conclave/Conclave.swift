import ArgumentParser
import ConclaveCrypto

@main
struct Conclave: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conclave",
        abstract: "Headless Conclave participant: end-to-end encrypted meetings from the command line.",
        subcommands: [
            HostCommand.self, JoinCommand.self, DemoCommand.self, KeygenCommand.self, FingerprintCommand.self, RecordingCommand.self, BenchCommand.self,
            LoadCommand.self,
        ]
    )
}
