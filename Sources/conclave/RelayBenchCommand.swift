import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import ConclaveClient
import ConclaveLoad

/// `conclave bench relay [--json]`: loopback UDP forwarding through a `conclave-relay`
/// process started for the run (or `--relay` to measure a running one).
struct RelayBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay",
        abstract: "Loopback UDP forwarding through the relay: packets/s, relay CPU per packet, relay-added latency for rooms of 2, 5 and 10."
    )

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false
    @Option(help: "Measure this running relay instead of starting one (its /metrics must be reachable).")
    var relay: String?
    @Option(name: .customLong("relay-binary"), help: "The conclave-relay to start (default: next to this executable).")
    var relayBinary: String?
    @Option(help: "Forwarded packets per second to offer per room size (default: half of the 150 000/s per-core target).")
    var rate: Int = 75_000
    @Option(help: "Seconds of measurement per room size (after 1 s of warm-up).")
    var seconds: Double = 5
    @Option(name: .customLong("room-sizes"), help: "Comma-separated room sizes.")
    var roomSizes: String = "2,5,10"
    @Option(name: .customLong("media-threads"), help: "UDP media sockets (threads) of the relay started for the run.")
    var mediaThreads: Int = 1
    @Flag(
        help: """
            Also build (with the system C compiler) and run the C reference forwarder \
            (Benchmarks/ReferenceForwarder/forwarder.c: recvmmsg plus sendmmsg fan-out, no authentication, no policy) \
            with the same generator, and print the relay's CPU per packet as a ratio of its.
            """)
    var baseline = false
    @Option(name: .customLong("baseline-source"), help: "The reference forwarder's C source (default: found from the repository).")
    var baselineSource: String?
    @Option(
        help: """
            With --baseline: measure the relay and the C loop alternately this many times each per room size \
            (relay first, then C first, …) and pool them, so that the machine's drift weighs on both alike.
            """)
    var rounds: Int = 1

    func validate() throws {
        guard (1_000...2_000_000).contains(rate) else { throw ValidationError("--rate must be 1000…2000000") }
        guard seconds >= 1, seconds <= 120 else { throw ValidationError("--seconds must be 1…120") }
        guard (1...20).contains(rounds) else { throw ValidationError("--rounds must be 1…20") }
        guard rounds == 1 || baseline else { throw ValidationError("--rounds needs --baseline") }
        guard (1...64).contains(mediaThreads) else { throw ValidationError("--media-threads must be 1…64") }
        guard let sizes = parsedSizes, !sizes.isEmpty else { throw ValidationError("--room-sizes must be sizes from 2 to 50, e.g. 2,5,10") }
        _ = sizes
    }

    var parsedSizes: [Int]? {
        let sizes = roomSizes.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard sizes.allSatisfy({ $0.map { (2...50).contains($0) } ?? false }) else { return nil }
        return sizes.compactMap { $0 }
    }

    func run() async throws {
        var child: LocalRelayProcess?
        let endpoint: RelayEndpoint
        if let relay {
            do { endpoint = try RelayEndpoint(parsing: relay) } catch { throw CLIError("bad relay address \(relay): \(error)") }
        } else {
            let started = try await LocalRelayProcess.start(
                binary: relayBinary,
                arguments: [
                    "--set", "media-threads=\(mediaThreads)", "--set", "max-frames-per-second=1000000",
                    "--set", "max-bytes-per-second=1000000000", "--set", "exempt-addresses=127.0.0.1",
                ])
            child = started
            endpoint = started.endpoint
        }
        var options = RelayBench.Options(relay: endpoint)
        if baseline {
            do {
                let source = try ReferenceForwarder.locateSource(explicit: baselineSource)
                let binary = try await ReferenceForwarder.build(source: source)
                options.referenceForwarder = try await ReferenceForwarder.start(binary: binary)
            } catch {
                await child?.stop()
                throw CLIError("--baseline: \(error)")
            }
        }
        options.roomSizes = parsedSizes!
        options.offeredRate = rate
        options.seconds = seconds
        options.rounds = rounds
        let json = self.json
        let results: [RelayBench.Result]
        do {
            results = try await RelayBench(options: options).run { line in
                if json { FileHandle.standardError.write(Data((line + "\n").utf8)) } else { print(line) }
            }
            await child?.stop()
            await options.referenceForwarder?.stop()
        } catch {
            await child?.stop()
            await options.referenceForwarder?.stop()
            throw error
        }
        if json {
            print(
                "{\"benchmark\":\"relay\",\"relay_media_threads\":\(relay == nil ? "1" : "null"),\"offered_per_second\":\(rate),\"results\":["
                    + results.map(\.json).joined(separator: ",") + "]}")
        } else {
            print("")
            func f(_ v: Double?, _ digits: Int = 1) -> String { v.map { String(format: "%.\(digits)f", $0) } ?? "n/a" }
            func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
            print(
                pad("room", 6) + pad("forwarded/s", 13) + pad("loss", 9) + pad("relay CPU", 11) + pad("µs/packet", 11)
                    + pad("packets/s/core", 16) + pad("p50 (direct)", 18) + pad("p99 (direct)", 18) + "relay-added p50/p99")
            for r in results {
                print(
                    pad("\(r.roomSize)", 6) + pad(f(r.forwardedPerSecond, 0), 13) + pad(f(r.lossPercent, 3) + "%", 9)
                        + pad(f(r.relayCPUPercent) + "%", 11) + pad(f(r.relayCPUMicrosPerPacket, 2), 11) + pad(f(r.packetsPerSecondPerCore, 0), 16)
                        + pad("\(f(r.latencyP50Ms, 3)) (\(f(r.baselineP50Ms, 3)))", 18) + pad("\(f(r.latencyP99Ms, 3)) (\(f(r.baselineP99Ms, 3)))", 18)
                        + "\(f(r.relayAddedP50Ms, 3)) / \(f(r.relayAddedP99Ms, 3)) ms")
            }
            for r in results {
                guard let sent = r.relaySentPerSecond, let perSent = r.relayCPUMicrosPerSentPacket else { continue }
                print("room of \(r.roomSize): the relay reports \(f(sent, 0)) datagrams/s sent, \(f(perSent, 2)) µs CPU per datagram sent")
            }
            if results.contains(where: { $0.reference != nil }) {
                print("")
                print(
                    pad("room", 6) + pad("C forwarded/s", 15) + pad("C loss", 9) + pad("C CPU", 9) + pad("C µs/packet", 13)
                        + pad("C packets/s/core", 18) + pad("relay ÷ C (CPU/packet)", 24) + "offered ÷ C per-core rate")
                for r in results {
                    guard let c = r.reference else { continue }
                    print(
                        pad("\(r.roomSize)", 6) + pad(f(c.forwardedPerSecond, 0), 15) + pad(f(c.lossPercent, 3) + "%", 9)
                            + pad(f(c.cpuPercent) + "%", 9) + pad(f(c.cpuMicrosPerPacket, 2), 13) + pad(f(c.packetsPerSecondPerCore, 0), 18)
                            + pad(f(r.cpuRatioToReference, 3) + "×", 24) + f(r.offeredShareOfReferenceCore, 3))
                }
                for r in results where r.roundRatios.count > 1 {
                    print("room of \(r.roomSize), relay ÷ C by round: " + r.roundRatios.map { f($0, 3) + "×" }.joined(separator: ", "))
                }
            }
        }
    }
}
