import Foundation
import Logging
import Synchronization
import ConclaveClient
import ConclaveMedia
import ConclaveProtocol

/// The README's demo: a real relay (`conclave-relay`, started as a child process) on loopback, a host and two participants, each a full
/// participant session with its own identity, speaking the real protocol over WebSocket.
/// Each sends a tone of its own. The host records (end-to-end encrypted); Alice consents
/// and Bob declines, so the exported recording holds the host's and Alice's tones only.
enum MeetingDemo {
    static let canary = "the eagle lands at dawn"

    static func run(seconds: Double, relayBinary: String?) async throws -> Bool {
        // The relay on its embedded defaults, as an operator would start it.
        let relay = try await LocalRelayProcess.start(binary: relayBinary, logLevel: "error")
        do {
            let ok = try await meeting(on: relay.endpoint, seconds: seconds)
            await relay.stop()
            return ok
        } catch {
            await relay.stop()
            throw error
        }
    }

    private static func meeting(on endpoint: RelayEndpoint, seconds: Double) async throws -> Bool {
        print("relay    listening on ws://127.0.0.1:\(endpoint.port)/v1 (loopback; it holds no content key)")

        let dir = NSTemporaryDirectory() + "conclave-demo-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }

        // Everything the relay delivers is scanned for the chat canary and the names.
        let names = ["Hostess", "Alice", "Bob"]
        let secrets = ([canary] + names).map { Array($0.utf8) }
        let forwarded = Mutex<(frames: Int, bytes: Int, leaks: Int)>((0, 0, 0))
        let tap: @Sendable (RelayMessage) -> Void = { message in
            guard case .frame(let f) = message else { return }
            let leaked = secrets.contains { s in
                f.payload.count >= s.count && (0...(f.payload.count - s.count)).contains { f.payload[$0..<($0 + s.count)].elementsEqual(s) }
            }
            forwarded.withLock {
                $0.frames += 1; $0.bytes += f.payload.count + 8; if leaked { $0.leaks += 1 }
            }
        }
        let tones = ["Hostess": 440.0, "Alice": 550.0, "Bob": 660.0]
        let recordingPath = "\(dir)/meeting.crec"
        func options(_ name: String) -> ParticipantOptions {
            var o = ParticipantOptions(displayName: name)
            o.audioSource = .tone(frequency: tones[name]!)
            switch name {
            case "Hostess": o.recordPath = recordingPath
            case "Alice": o.recordingConsent = .consent
            default: o.recordingConsent = .decline
            }
            o.unmuteOnJoin = true
            o.autoAdmit = true
            o.inboundTap = tap
            return o
        }
        func output(_ name: String) -> EventOutput {
            let label = name.padding(toLength: 8, withPad: " ", startingAt: 0)
            return EventOutput(json: false) { line in
                if line.hasPrefix("audio from") { return }  // per-second stats: summarised at the end
                print("\(label) \(line)")
            }
        }

        let password = HostCommand.randomPassword()
        let host = try await Participant.host(
            relay: endpoint, password: password, settings: .privacyDefaults,
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

        print("")
        print("summary")
        let codesMatch = codes[0] != nil && Set(codes.compactMap { $0 }).count == 1 && codes.allSatisfy { $0 != nil }
        print("  security codes with all three present: \(codes.map { $0 ?? "none" }.joined(separator: " | ")) -> \(codesMatch ? "match" : "DIFFER")")
        for (name, p) in [("Hostess", host), ("Alice", alice), ("Bob", bob)] {
            let c = await p.receiveCounters
            let chats = await p.chatLog.count
            print(
                "  \(name.padding(toLength: 8, withPad: " ", startingAt: 0)) \(c.opened + c.openedFromBuffer) frames decrypted, \(c.decryptFailed) failed; \(chats) chat lines"
            )
        }
        // The host's recording: verified and exported with the host's identity.
        var tonesOK = false
        do {
            let header = try RecordingReader.header(path: recordingPath)
            let key = try RecordingReader.unlock(header, identity: host.identity, passphrase: nil)
            let exportDir = "\(dir)/export"
            try FileManager.default.createDirectory(atPath: exportDir, withIntermediateDirectories: true)
            let result = try RecordingExport.export(path: recordingPath, key: key, to: exportDir)
            let indices = [await host.index, await alice.index, await bob.index]
            let recorded = Set(result.summary.members.map(\.index))
            tonesOK = recorded == [indices[0], indices[1]]
            print(
                "  recording: \(result.summary.records) records verified; members recorded: \(result.summary.members.map { "\($0.displayName) (#\($0.index))" }.joined(separator: ", ")); Bob declined and is absent: \(!recorded.contains(indices[2]) ? "yes" : "NO")"
            )
            for (name, i) in [("Hostess", indices[0]), ("Alice", indices[1])] {
                let audio = try? WAVFile.read(path: "\(exportDir)/participant-\(i).wav")
                let f = audio.flatMap { DominantFrequency.estimate(samples: Array($0.samples.dropFirst(48_000)), sampleRate: 48_000, channels: 1) } ?? 0
                let ok = abs(f - tones[name]!) / tones[name]! < 0.02
                tonesOK = tonesOK && ok
                print(
                    "  \(name.padding(toLength: 8, withPad: " ", startingAt: 0)) in the recording peaks at \(Int(f.rounded())) Hz (sent \(Int(tones[name]!)) Hz) \(ok ? "(ok)" : "(WRONG)")"
                )
            }
        } catch {
            print("  recording: \(error)")
        }
        let f = forwarded.withLock { $0 }
        print("  relay forwarded \(f.frames) frames (\(f.bytes) bytes); the chat canary or a name appeared in \(f.leaks) of them")
        let ok = codesMatch && tonesOK && f.leaks == 0 && f.frames > 0
        print(ok ? "demo ok" : "demo FAILED")
        return ok
    }
}
