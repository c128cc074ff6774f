import Foundation
import Testing
import ConclaveClient
import ConclaveMedia
import ConclaveProtocol
import ConclaveRelay

@Suite(.serialized, .timeLimit(.minutes(2)), .tags(.integration), .live) struct LeadershipTests {
    func waitForKeys(_ p: Participant) async throws {
        try await waitUntil("keys at participant #\(await p.index)", within: .seconds(10)) { await p.securityCode != nil }
    }

    /// The host leaves cleanly: it signs a HANDOVER, the relay makes the co-host host, the
    /// co-host takes the keys over with a fresh epoch, and the others keep talking. Also:
    /// `/msg` reaches one participant only, and a co-host the host made a recorder records
    /// into `--record-dir`: its export has one WAV per consenting sender.
    @Test func cleanHandoverPrivateChatAndPerParticipantRecording() async throws {
        try await withRelay { _, endpoint in
            let dir = NSTemporaryDirectory() + "conclave-lead-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let logs = (0..<3).map { _ in EventLog() }
            func options(_ name: String) -> ParticipantOptions {
                var o = ParticipantOptions(displayName: name)
                o.autoAdmit = true
                o.audioSource = .tone(frequency: 440)
                o.unmuteOnJoin = true
                o.recordingConsent = .consent
                return o
            }
            let host = try await Participant.host(relay: endpoint, password: nil, settings: .privacyDefaults, options: options("host"), output: logs[0].output)
            let invite = try #require(await host.invite)
            let hostRun = Task { await host.run(for: .seconds(60)) }
            var aliceOptions = options("alice")
            aliceOptions.recordDirectory = dir
            let alice = try await Participant.join(invite: invite, options: aliceOptions, output: logs[1].output)
            let aliceRun = Task { await alice.run(for: .seconds(30)) }
            try await waitForKeys(alice)
            try await host.command(.promoteCohost(ParticipantIndex(await alice.index)))
            await host.perform(.setRecorder(await alice.index, true))
            _ = try await logs[1].waitFor("recording_started")
            let bob = try await Participant.join(invite: invite, options: options("bob"), output: logs[2].output)
            let bobRun = Task { await bob.run(for: .seconds(30)) }
            try await waitForKeys(bob)
            try await waitUntil("everyone on the same roster") {
                let h = await host.securityCode, a = await alice.securityCode, b = await bob.securityCode
                return h != nil && h == a && a == b
            }

            // Private chat: sealed for alice alone. Bob's copy of the room's chat afterwards
            // shows that anything sent before it reached him already (one ordered path).
            try await host.say("for alice only", to: await alice.index)
            try await waitUntil("alice's private message") { await alice.chatLog.contains { $0.text == "for alice only" && $0.isPrivate } }
            try await host.say("for everyone")
            try await waitUntil("bob's copy of the room's chat") { await bob.chatLog.contains { $0.text == "for everyone" } }
            #expect(await !bob.chatLog.contains { $0.text == "for alice only" }, "a private message reached a third party")

            // A second of the host's and bob's tone in alice's recording (it began before bob
            // joined), then the host leaves cleanly and hands the keys over.
            let (hostIndex, bobIndex) = (await host.index, await bob.index)
            try await waitUntil("50 frames from the host and from bob at alice, the recorder", within: .seconds(10)) {
                let (fromHost, fromBob) = (await alice.audioFrames(from: hostIndex), await alice.audioFrames(from: bobIndex))
                return fromHost > 50 && fromBob > 50
            }
            await host.stop()
            await hostRun.value
            let aliceIndex = Int(await alice.index)
            _ = try await logs[1].waitFor("leader", timeout: .seconds(10)) { $0["participant"] as? Int == aliceIndex }
            _ = try await logs[2].waitFor("leader", timeout: .seconds(10)) { $0["handover"] as? Bool == true }
            try await waitUntil("alice's and bob's codes to agree", within: .seconds(10)) {
                let a = await alice.securityCode, b = await bob.securityCode
                return a != nil && a == b
            }
            try await alice.say("still talking")
            _ = try await logs[2].waitFor("chat", timeout: .seconds(10)) { $0["text"] as? String == "still talking" }
            let bobRejections = await bob.rejections, aliceRejections = await alice.rejections
            #expect(bobRejections.isEmpty && aliceRejections.isEmpty, "rejections: \(bobRejections) \(aliceRejections)")
            await alice.stop(); await bob.stop()
            await aliceRun.value
            await bobRun.value

            // Alice's recording: one WAV per sender (the host, bob and alice), each carrying its tone.
            let recordings = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".crec") }
            #expect(recordings.count == 1, "expected alice's recording, got \(recordings)")
            let path = "\(dir)/\(try #require(recordings.first))"
            let key = try RecordingReader.unlock(try RecordingReader.header(path: path), identity: alice.identity, passphrase: nil)
            _ = try RecordingExport.export(path: path, key: key, to: dir)
            let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("participant-") }.sorted()
            #expect(files.count == 3, "expected the host's, bob's and alice's audio, got \(files)")
            for file in files {
                let audio = try WAVFile.read(path: "\(dir)/\(file)")
                let f = DominantFrequency.estimate(samples: Array(audio.samples.dropFirst(9_600)), sampleRate: 48_000, channels: 1) ?? 0
                #expect(abs(f - 440) / 440 < 0.02, "\(file) peaks at \(f) Hz")
            }
        }
    }

    /// The host vanishes without a handover. The relay's word moves nothing; the leader's
    /// signed heartbeat falls silent, and after the timeout the successor named in the last
    /// signed roster (alice, admitted first) takes the keys over. Bob is alerted, both show
    /// a new and equal security code, and talk goes on.
    @Test func abruptHostLossMovesLeadershipToTheSignedSuccessor() async throws {
        try await withRelay { _, endpoint in
            let logs = (0..<3).map { _ in EventLog() }
            func options(_ name: String) -> ParticipantOptions {
                var o = ParticipantOptions(displayName: name)
                o.autoAdmit = true
                o.heartbeatIntervalMillis = 300
                o.leaderSilenceTimeoutMillis = 1_500
                return o
            }
            let host = try await Participant.host(relay: endpoint, password: nil, settings: .privacyDefaults, options: options("host"), output: logs[0].output)
            let invite = try #require(await host.invite)
            let hostRun = Task { await host.run(for: .seconds(30)) }
            let alice = try await Participant.join(invite: invite, options: options("alice"), output: logs[1].output)
            let aliceRun = Task { await alice.run(for: .seconds(30)) }
            try await waitForKeys(alice)
            let bob = try await Participant.join(invite: invite, options: options("bob"), output: logs[2].output)
            let bobRun = Task { await bob.run(for: .seconds(30)) }
            try await waitForKeys(bob)
            let codeBefore = try await settledCode(bob, equalTo: host)
            await host.connection.close()  // gone, no handover
            await hostRun.value
            // Within the silence timeout (twice it for a member that is behind), with room
            // for a loaded machine.
            _ = try await logs[2].waitFor("alert", timeout: .seconds(15)) { $0["code"] as? String == "leader_lost" }
            _ = try await logs[1].waitFor("leader", timeout: .seconds(15)) { $0["handover"] as? Bool == false }
            let aliceCode = try await settledCode(bob, equalTo: alice)
            #expect(aliceCode != codeBefore, "the code did not change with the leader")
            try await alice.say("carry on")
            _ = try await logs[2].waitFor("chat", timeout: .seconds(15)) { $0["text"] as? String == "carry on" }
            await alice.stop(); await bob.stop()
            await aliceRun.value
            await bobRun.value
        }
    }

    /// Waits until `a` and `b` show the same security code, and returns it.
    func settledCode(_ a: Participant, equalTo b: Participant) async throws -> String {
        try await waitForAgreement([a, b])
    }
}

extension LeadershipTests {
    /// Co-hosts see the knocker's name "through the host": the host sends each co-host a
    /// signed, end-to-end encrypted KNOCK_NOTICE; the relay still sees only the sealed knock.
    @Test func coHostSeesKnockNamesThroughTheHost() async throws {
        try await withRelay { _, endpoint in
            let hostLog = EventLog(), cohostLog = EventLog()
            var hostOptions = ParticipantOptions(displayName: "host")
            hostOptions.autoAdmit = false
            let host = try await Participant.host(relay: endpoint, password: nil, settings: .privacyDefaults, options: hostOptions, output: hostLog.output)
            let invite = try #require(await host.invite)
            let hostRun = Task { await host.run(for: .seconds(60)) }
            let cohost = try await Participant.join(invite: invite, options: ParticipantOptions(displayName: "cohost"), output: cohostLog.output)
            let cohostRun = Task { await cohost.run(for: .seconds(60)) }
            _ = try await hostLog.waitFor("knock")
            try await host.command(.admit(ParticipantIndex(await cohost.index)))
            try await waitForKeys(cohost)
            // A knock that is already waiting when the co-host is promoted…
            let early = try await Participant.join(
                invite: invite, options: ParticipantOptions(displayName: "Early Bird"), output: EventOutput(json: true) { _ in })
            _ = try await hostLog.waitFor("knock") { $0["name"] as? String == "Early Bird" }
            try await host.command(.promoteCohost(ParticipantIndex(await cohost.index)))
            // …and one that arrives afterwards.
            let late = try await Participant.join(
                invite: invite, options: ParticipantOptions(displayName: "Late Comer"), output: EventOutput(json: true) { _ in })
            let a = try await cohostLog.waitFor("knock") { $0["name"] as? String == "Early Bird" }
            let b = try await cohostLog.waitFor("knock") { $0["name"] as? String == "Late Comer" }
            let earlyIndex = Int(await early.index), lateIndex = Int(await late.index)
            #expect(a["participant"] as? Int == earlyIndex && b["participant"] as? Int == lateIndex)
            let earlyFingerprint = await early.identity.publicIdentity.fingerprint.displayString
            #expect(a["fingerprint"] as? String == earlyFingerprint)
            // The co-host can act on it.
            try await cohost.command(.admit(ParticipantIndex(await late.index)))
            await cohost.stop()
            await host.stop()
            await cohostRun.value
            await hostRun.value
        }
    }
}

extension LeadershipTests {
    /// A meeting over wss:// to a relay with a self-signed certificate, trusted with --ca;
    /// and periodic rotation: the leader draws fresh keys on its interval.
    @Test func tlsMeetingWithTrustedCAAndPeriodicRotation() async throws {
        let certificate = try await TestCertificate.make()
        defer { certificate.remove() }
        let configuration = testRelayConfiguration {
            $0.tlsCertificatePath = certificate.certPath
            $0.tlsKeyPath = certificate.keyPath
        }
        try await withRelay(configuration) { _, endpoint in
            #expect(endpoint.scheme == .wss && endpoint.host == "localhost")
            let hostLog = EventLog()
            var hostOptions = ParticipantOptions(displayName: "host")
            hostOptions.tls = .trusting(pemFile: certificate.certPath)
            hostOptions.autoAdmit = true
            hostOptions.rotationIntervalMillis = 1000
            let host = try await Participant.host(relay: endpoint, password: "pw", settings: .privacyDefaults, options: hostOptions, output: hostLog.output)
            let invite = try #require(await host.invite)
            #expect(invite.text.hasPrefix("wss://localhost:"))
            let hostRun = Task { await host.run(for: .seconds(60)) }
            var guestOptions = ParticipantOptions(displayName: "guest")
            guestOptions.tls = .trusting(pemFile: certificate.certPath)
            let guestLog = EventLog()
            let guest = try await Participant.join(invite: invite, options: guestOptions, output: guestLog.output)
            let guestRun = Task { await guest.run(for: .seconds(60)) }
            try await waitForKeys(guest)
            try await guest.say("over tls")
            try await waitForChat(host, "over tls")
            // Rotation: the guest installs several epochs while nobody joins or leaves (one a
            // second; none without it).
            try await waitUntil("the guest's third epoch from periodic rotation", within: .seconds(15)) { guestLog.events("epoch").count >= 3 }
            await guest.stop()
            await host.stop()
            await guestRun.value
            await hostRun.value
            // Without trusting the CA, the join fails with one clear error.
            do {
                _ = try await Participant.join(invite: invite, options: ParticipantOptions(displayName: "untrusting"), output: EventOutput(json: true) { _ in })
                Issue.record("joined a relay with an untrusted certificate")
            } catch let error as SessionError {
                #expect(error.code == .relayUnreachable)
            }
        }
    }
}
