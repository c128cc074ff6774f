import ArgumentParser
import ConclaveBench

/// `conclave bench crypto [--json]`: the frame cipher against libsodium in one process, no
/// benchmark plugin needed (Benchmarks/'s `crypto-compare` adds swift-crypto and an
/// allocating wrapper). Figures are frames per second of seal+open and
/// ratios to libsodium's own XChaCha20-Poly1305 measured in the same run.
struct CryptoBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crypto",
        abstract: "Seal+open throughput of 64, 160 and 1200-byte frames: the frame cipher and libsodium, with ratios to libsodium."
    )

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: "Rounds per path and size (the median is reported).")
    var rounds: Int = 5

    @Option(help: "Milliseconds per measurement.")
    var milliseconds: Int = 200

    func validate() throws {
        guard (1...50).contains(rounds) else { throw ValidationError("--rounds must be 1…50") }
        guard (10...5000).contains(milliseconds) else { throw ValidationError("--milliseconds must be 10…5000") }
    }

    func run() throws {
        var configuration = CryptoBench.Configuration()
        configuration.rounds = rounds
        configuration.measurementDuration = .milliseconds(milliseconds)
        do {
            let report = try CryptoBench.run(configuration)
            print(json ? report.renderJSON() : report.renderText())
        } catch {
            print("conclave: bench failed: \(error)")
            throw ExitCode(1)
        }
    }
}
