import Foundation
import Logging
import Synchronization
import ConclaveClient
import ConclaveMedia
import ConclaveProtocol
import ConclaveRelay

/// The README's demo: a real relay on loopback, a host and two participants, each a full
/// participant session with its own identity, speaking the real protocol over WebSocket.
enum MeetingDemo {
    static let canary = "the eagle lands at dawn"

    static func run(seconds: Double) async throws -> Bool {
        var configuration = RelayConfiguration()
        configuration.port = 0
        var logger = Logger(label: "demo.relay")
        logger.logLevel = .error
        let relay = try RelayServer(configuration: configuration, logger: logger)
        try await relay.start()
        let endpoint = RelayEndpoint(scheme: .ws, host: "127.0.0.1", port: relay.port!)
        print("relay    listening on ws://127.0.0.1:\(relay.port!)/v1 (loopback; it holds no content key)")

        let dir = NSTemporaryDirectory() + "conclave-demo-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }

        // Everything the relay delivers is scanned for the chat canary and the names.
        let names = ["Hostess", "Alice", "Bob"]
        let secrets = ([canary] + names).map { Array($0.utf8) }
        let forwarded = Mutex<(frames: Int, bytes: Int, leaks: Int)>((0, 0, 0))
        let tap: @Sendable (RelayMessage) -> Void = { message in
            guard case .frame(let f) = message else { return }
            let leaked = secrets.contains { s in f.payload.count >= s.count && (0...(f.payload.count - s.count)).contains { f.payload[$0..<($0 + s.count)].elementsEqual(s) } }
            forwarded.withLock { $0.frames += 1; $0.bytes += f.payload.count + 8; if leaked { $0.leaks += 1 } }
        }
        func options(_ name: String) -> ParticipantOptions {
            var o = ParticipantOptions(displayName: name)
            o.audioSource = .tone(frequency: 440)
            o.recordPath = "\(dir)/\(name).wav"
            o.unmuteOnJoin = true
            o.autoAdmit = true
            o.inboundTap = tap
            return o
        }
        func output(_ name: String) -> EventOutput {
            let label = name.padding(toLength: 8, withPad: " ", startingAt: 0)
            return EventOutput(json: false) { line in
                if line.hasPrefix("audio from") { return } // per-second stats: summarised at the end
                print("\(label) \(line)")
            }
        }

        let password = HostCommand.randomPassword()
        let host = try await Participant.host(relay: endpoint, password: password, settings: .privacyDefaults,
                                              options: options("Hostess"), output: output("Hostess"))
        let invite = await host.invite!
        let total = Duration.milliseconds(Int64(seconds * 1000))
        let hostRun = Task { await host.run(for: total + .seconds(1)) }
        let alice = try await Participant.join(invite: invite, options: options("Alice"), output: output("Alice"))
        let aliceRun = Task { await alice.run(for: total) }
        try await Task.sleep(for: .milliseconds(500))
        let bob = try await Participant.join(invite: invite, options: options("Bob"), output: output("Bob"))
        let bobRun = Task { await bob.run(for: total - .milliseconds(500)) }
        let deadline = ContinuousClock.now + .seconds(3)
        while await bob.securityCode == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        try await Task.sleep(for: .milliseconds(300))
        let codes = [await host.securityCode, await alice.securityCode, await bob.securityCode]
        try await alice.say("Hostess, \(canary)")
        try await bob.say("hello from Bob")
        try await host.say("welcome, both of you")
        await bobRun.value
        await aliceRun.value
        await hostRun.value
        await relay.shutdown()

        print("")
        print("summary")
        let codesMatch = codes[0] != nil && Set(codes.compactMap { $0 }).count == 1 && codes.allSatisfy { $0 != nil }
        print("  security codes with all three present: \(codes.map { $0 ?? "none" }.joined(separator: " | ")) -> \(codesMatch ? "match" : "DIFFER")")
        var tonesOK = true
        for (name, p) in [("Hostess", host), ("Alice", alice), ("Bob", bob)] {
            let audio = try? WAVFile.read(path: "\(dir)/\(name).wav")
            let f = audio.flatMap { DominantFrequency.estimate(samples: Array($0.samples.dropFirst(24_000)), sampleRate: 48_000, channels: 1) } ?? 0
            let ok = abs(f - 440) / 440 < 0.02
            tonesOK = tonesOK && ok
            let c = await p.receiveCounters
            let chats = await p.chatLog.count
            print("  \(name.padding(toLength: 8, withPad: " ", startingAt: 0)) recording peaks at \(Int(f.rounded())) Hz \(ok ? "(ok)" : "(WRONG)"); \(c.opened + c.openedFromBuffer) frames decrypted, \(c.decryptFailed) failed; \(chats) chat lines")
        }
        let f = forwarded.withLock { $0 }
        print("  relay forwarded \(f.frames) frames (\(f.bytes) bytes); the chat canary or a name appeared in \(f.leaks) of them")
        let ok = codesMatch && tonesOK && f.leaks == 0 && f.frames > 0
        print(ok ? "demo ok" : "demo FAILED")
        return ok
    }
}
