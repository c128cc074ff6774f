import Foundation
import Logging
import Synchronization
import Testing
import ConclaveClient
import ConclaveMedia
import ConclaveProtocol
import ConclaveRelay

/// Collects the `--json` event lines a participant emits.
final class EventLog: Sendable {
    let lines = Mutex<[String]>([])
    var output: EventOutput { EventOutput(json: true) { line in self.lines.withLock { $0.append(line) } } }
    func events(_ name: String) -> [[String: Any]] {
        lines.withLock { $0 }.compactMap { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], o["event"] as? String == name else { return nil }
            return o
        }
    }
}

func withTestRelay<T>(_ body: (RelayEndpoint, RelayServer) async throws -> T) async throws -> T {
    var c = RelayConfiguration()
    c.port = 0
    c.passwordHashing = "minimum"
    c.shutdownGraceSeconds = 1
    var logger = Logger(label: "test.relay")
    logger.logLevel = .warning
    let server = try RelayServer(configuration: c, logger: logger)
    try await server.start()
    defer { Task { await server.shutdown() } }
    return try await body(RelayEndpoint(scheme: .ws, host: "127.0.0.1", port: server.port!), server)
}

@Suite(.serialized, .timeLimit(.minutes(3))) struct EndToEndTests {
    /// Issue 4, must-show 1: three participants exchange chat and a 440 Hz tone over the
    /// real relay; each recording's dominant frequency is within 2 % of 440 Hz.
    @Test func threeParticipantsExchangeChatAndTone() async throws {
        try await withTestRelay { endpoint, _ in
            let dir = NSTemporaryDirectory() + "conclave-e2e-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let logs = (0..<3).map { _ in EventLog() }
            func options(_ name: String, _ i: Int) -> ParticipantOptions {
                var o = ParticipantOptions(displayName: name)
                o.audioSource = .tone(frequency: 440)
                o.recordPath = "\(dir)/\(name).wav"
                o.unmuteOnJoin = true
                o.autoAdmit = true
                return o
            }
            let host = try await Participant.host(relay: endpoint, password: "correct horse", settings: .privacyDefaults,
                                                  options: options("hostess", 0), output: logs[0].output)
            let invite = try #require(await host.invite)
            let hostRun = Task { await host.run(for: .seconds(6)) }
            let alice = try await Participant.join(invite: invite, options: options("alice", 1), output: logs[1].output)
            let aliceRun = Task { await alice.run(for: .seconds(5)) }
            try await Task.sleep(for: .milliseconds(300))
            let bob = try await Participant.join(invite: invite, options: options("bob", 2), output: logs[2].output)
            let bobRun = Task { await bob.run(for: .seconds(4)) }
            // Once bob holds keys, everyone says hello.
            let deadline = ContinuousClock.now + .seconds(3)
            while await bob.securityCode == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            try await Task.sleep(for: .milliseconds(300))
            for (name, p) in [("hostess", host), ("alice", alice), ("bob", bob)] { try await p.say("hello from \(name)") }
            await bobRun.value
            await aliceRun.value
            await hostRun.value

            let participants = [("hostess", host), ("alice", alice), ("bob", bob)]
            for (i, (name, p)) in participants.enumerated() {
                // Chat from the others arrived, decrypted, with their names.
                let chats = logs[i].events("chat").compactMap { $0["text"] as? String }
                for (other, _) in participants where other != name {
                    #expect(chats.contains("hello from \(other)"), "\(name) did not get \(other)'s chat: \(chats)")
                }
                // The recording carries the tone.
                let audio = try WAVFile.read(path: "\(dir)/\(name).wav")
                let f = DominantFrequency.estimate(samples: Array(audio.samples.dropFirst(24_000)), sampleRate: 48_000, channels: 1) ?? 0
                #expect(abs(f - 440) / 440 < 0.02, "\(name)'s recording peaks at \(f) Hz")
                let counters = await p.receiveCounters
                #expect(counters.decryptFailed == 0, "\(name) had \(counters.decryptFailed) decrypt failures")
                let rejections = await p.rejections
                #expect(rejections.isEmpty, "\(name) rejected key material: \(rejections)")
            }
            // At the epoch all three shared (after bob's admission), every member shows the same code.
            let shared = logs[2].events("epoch").first?["epoch"] as? Int
            let codes = logs.map { log in log.events("epoch").first { $0["epoch"] as? Int == shared }?["security_code"] as? String }
            #expect(shared != nil && codes[0] != nil && codes[0] == codes[1] && codes[1] == codes[2], "security codes differ: \(codes)")
            // The host saw the knocks with names; the relay never had them.
            let knocks = logs[0].events("knock").compactMap { $0["name"] as? String }
            #expect(Set(knocks) == ["alice", "bob"])
        }
    }
}
