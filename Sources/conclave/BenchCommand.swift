import ArgumentParser

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "In-process benchmarks (no benchmark plugin needed).",
        subcommands: [CryptoBenchCommand.self, RelayBenchCommand.self, RekeyBenchCommand.self, RecordingBenchCommand.self]
    )
}
