import ArgumentParser
import Foundation
import ConclaveClient
import ConclaveLoad
#if canImport(Glibc)
import Glibc
#endif

/// `conclave load`: real participants against a relay, with a progress line per second,
/// a final table (or `--json`), an HTML report, and `--find-capacity`.
struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Load-test a relay with real, end-to-end encrypted participants.",
        discussion: """
            Start a relay that admits many joins from one address, e.g.
              conclave-relay --set exempt-addresses=127.0.0.1
            then: conclave load --relay ws://127.0.0.1:7443/v1 --rooms 60 --per-room 5 --duration 20
            """
    )

    @Option(help: "The relay's WebSocket URL; repeat it (or separate URLs with commas) for the nodes of a cluster, over which rooms are spread.")
    var relay: [String] = []
    @Option(help: "Rooms.")
    var rooms: Int = 10
    @Option(name: .customLong("per-room"), help: "Participants per room, host included.")
    var perRoom: Int = 5
    @Option(help: "Seconds of measurement.")
    var duration: Double = 10
    @Option(help: "Seconds over which participants join.")
    var ramp: Double = 5
    @Option(help: "How audio travels: udp (with the WebSocket as fallback) or ws.")
    var transport: MediaTransport = .udp
    @Option(name: .customLong("audio-fps"), help: "Audio frames per second per participant: 50, 25, 10, 5, 2 or 1.")
    var audioFPS: Int = 50
    @Option(name: .customLong("frame-bytes"), help: "Target audio FRAME payload size in bytes (sets the Opus bitrate).")
    var frameBytes: Int = 160
    @Option(help: "Members per room that send audio (the host first); the rest only listen. Default: all.")
    var talkers: Int?
    @Option(help: "all, or sample:N to decrypt one frame in N (N 1…1000).")
    var decrypt: DecryptChoice = .all
    @Option(
        name: .customLong("relay-sample-seconds"), help: "Read the relay's RSS and open descriptors from its /metrics this often, into the timeline (0: never)."
    )
    var relaySampleSeconds: Int = 10
    @Flag(help: "Write every participant's alert, error and leader events to standard error.")
    var events = false
    @Flag(help: "Print one JSON object instead of the table.")
    var json = false
    @Option(help: "Write a self-contained HTML report here.")
    var report: String?
    @Flag(name: .customLong("find-capacity"), help: "Step the number of rooms up until loss > 0.1 % or p99 > 20 ms; report the highest passing step.")
    var findCapacity = false
    @Option(name: .customLong("step-rooms"), help: "With --find-capacity: rooms added per step.")
    var stepRooms: Int = 10
    @Option(name: .customLong("max-steps"), help: "With --find-capacity: at most this many steps.")
    var maxSteps: Int = 12

    func validate() throws {
        guard (1...1_000).contains(rooms) else { throw ValidationError("--rooms must be 1…1000") }
        guard (2...500).contains(perRoom) else { throw ValidationError("--per-room must be 2…500 (the most members a signed roster lists)") }
        if let talkers { guard (1...perRoom).contains(talkers) else { throw ValidationError("--talkers must be 1…--per-room") } }
        guard duration > 0, duration <= 3_600 else { throw ValidationError("--duration must be more than 0 and at most 3600 s") }
        guard ramp >= 0, ramp <= 600 else { throw ValidationError("--ramp must be 0…600 s") }
        guard LoadOptions.supportedFPS.contains(audioFPS) else { throw ValidationError("--audio-fps must be one of 1, 2, 5, 10, 25, 50") }
        guard (40...1_500).contains(frameBytes) else { throw ValidationError("--frame-bytes must be 40…1500") }
        guard (0...3_600).contains(relaySampleSeconds) else { throw ValidationError("--relay-sample-seconds must be 0…3600") }
        guard (1...100).contains(stepRooms), (1...50).contains(maxSteps) else { throw ValidationError("--step-rooms 1…100, --max-steps 1…50") }
    }

    func run() async throws {
        var endpoints: [RelayEndpoint] = []
        for text in (relay.isEmpty ? ["ws://127.0.0.1:7443/v1"] : relay).flatMap({ $0.split(separator: ",").map(String.init) }) {
            do { endpoints.append(try RelayEndpoint(parsing: text)) } catch { throw CLIError("bad relay address \(text): \(error)") }
        }
        let endpoint = endpoints[0]
        signal(SIGINT) { _ in loadInterrupted.store(true, ordering: .relaxed) }
        var options = LoadOptions(relay: endpoint, rooms: rooms, perRoom: perRoom, durationSeconds: duration, rampSeconds: ramp)
        options.relays = endpoints
        options.transport = transport
        options.audioFPS = audioFPS
        options.frameBytes = frameBytes
        options.decryptEvery = decrypt.every
        options.talkers = talkers
        options.relaySampleSeconds = relaySampleSeconds
        if events {
            options.eventSink = { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }
        }
        let json = self.json
        let progress: @Sendable (String) -> Void = { line in
            if json { FileHandle.standardError.write(Data((line + "\n").utf8)) } else { print(line) }
        }
        if findCapacity {
            var steps: [LoadSummary] = []
            var best: LoadSummary?
            var r = rooms
            for step in 1...maxSteps {
                options.rooms = r
                progress("step \(step): \(r) rooms × \(perRoom) = \(r * perRoom) participants")
                let summary = await LoadRunner(options: options, progress: progress).run()
                steps.append(summary)
                progress("step \(step): \(summary.passed ? "PASS" : "FAIL") loss \(summary.lossPercent)% p99 \(summary.latency.p99Ms) ms")
                if summary.passed { best = summary } else { break }
                if loadInterrupted.load(ordering: .relaxed) { break }
                r += stepRooms
                try? await Task.sleep(for: .seconds(2))  // let the relay settle
            }
            let result = CapacityResult(steps: steps, best: best, lossThresholdPercent: options.lossThresholdPercent, p99ThresholdMs: options.p99ThresholdMs)
            print(json ? LoadReport.json(result) : LoadReport.capacityTable(result))
            if let report { try write(LoadReport.html(result), to: report) }
        } else {
            let summary = await LoadRunner(options: options, progress: progress).run()
            print(json ? LoadReport.json(summary) : LoadReport.table(summary))
            if let report { try write(LoadReport.html(summary), to: report) }
        }
    }

    func write(_ html: String, to path: String) throws {
        do { try html.write(toFile: path, atomically: true, encoding: .utf8) } catch {
            throw CLIError("cannot write the report to \(path): \(error.localizedDescription)")
        }
    }
}

extension MediaTransport: ExpressibleByArgument {}

/// `--decrypt`: every frame, or one in N (the rest are counted, not opened).
enum DecryptChoice: ExpressibleByArgument, Equatable {
    case all
    case sample(Int)

    init?(argument: String) {
        if argument == "all" { self = .all; return }
        guard argument.hasPrefix("sample:"), let n = Int(argument.dropFirst(7)), (1...1_000).contains(n) else { return nil }
        self = .sample(n)
    }

    static var allValueStrings: [String] { ["all", "sample:N"] }
    var defaultValueDescription: String { self == .all ? "all" : "sample:\(every)" }

    /// Decrypt one frame in this many.
    var every: Int {
        switch self {
        case .all: 1
        case .sample(let n): n
        }
    }
}
