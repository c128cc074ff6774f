import Foundation
import Testing
@testable import ConclaveClient
import ConclaveCrypto
import ConclaveProtocol
import ConclaveRelay

/// Participants on the UDP media path and on the WebSocket, in one room (issue 5).
@Suite(.serialized, .timeLimit(.minutes(2)), .tags(.integration), .live) struct MediaTransportTests {
    func options(_ name: String, _ transport: MediaTransport = .udp) -> ParticipantOptions {
        var o = ParticipantOptions(displayName: name)
        o.audioSource = .tone(frequency: 440)
        o.unmuteOnJoin = true
        o.autoAdmit = true
        o.mediaTransport = transport
        o.mediaPathOptions.pathTimeout = .seconds(2)
        return o
    }

    /// Must show: UDP and WebSocket participants in one room all receive everything.
    @Test func udpAndWebSocketParticipantsAllReceiveEverything() async throws {
        try await withRelay { server, endpoint in
            let logs = (0..<3).map { _ in EventLog() }
            let host = try await Participant.host(relay: endpoint, password: nil, settings: .privacyDefaults, options: options("host"), output: logs[0].output)
            let invite = try #require(await host.invite)
            let hostRun = Task { await host.run(for: .seconds(60)) }
            let alice = try await Participant.join(invite: invite, options: options("alice"), output: logs[1].output)
            let aliceRun = Task { await alice.run(for: .seconds(60)) }
            let bob = try await Participant.join(invite: invite, options: options("bob", .websocket), output: logs[2].output)
            let bobRun = Task { await bob.run(for: .seconds(60)) }
            try await waitForAgreement([host, alice, bob])
            try await waitUntil("the host's and alice's UDP paths") {
                let hostUp = await host.mediaPathIsUp, aliceUp = await alice.mediaPathIsUp
                return hostUp && aliceUp
            }
            #expect(await bob.mediaPath == nil)
            let everyone: [(String, Participant)] = [("host", host), ("alice", alice), ("bob", bob)]
            for (name, p) in everyone { try await p.say("hello from \(name)") }
            let indices = await [host.index, alice.index, bob.index]
            // Two seconds of everyone's tone at everyone (more than the 60 frames checked below).
            try await waitForEveryoneHearingEveryone(everyone, frames: 100)
            await bob.stop()
            await bobRun.value
            await alice.stop()
            await aliceRun.value
            await host.stop()
            await hostRun.value
            for (i, (name, p)) in everyone.enumerated() {
                let chats = logs[i].events("chat").compactMap { $0["text"] as? String }
                for (j, (other, _)) in everyone.enumerated() where j != i {
                    #expect(chats.contains("hello from \(other)"), "\(name) missed \(other)'s chat")
                    let frames = await p.audioFrames(from: indices[j])
                    #expect(frames > 60, "\(name) decrypted only \(frames) audio frames from \(other)")
                }
                let c = await p.receiveCounters
                #expect(c.decryptFailed == 0 && c.replayed == 0, "\(name): \(c)")
            }
            // The UDP participants really used UDP both ways; the relay bridged to bob's WebSocket.
            for p in [host, alice] {
                let stats = try #require(await p.mediaPathStatistics())
                #expect(stats.framesSent > 60 && stats.framesReceived > 60 && stats.rejected == 0, "\(stats)")
            }
            // Most audio was opened inline on each participant's event loop, from either
            // path (issue 14), and every frame was still opened by the session: the counts
            // and the zero failures above hold for both routes.
            for (name, p) in everyone {
                let inline = await p.inlineAudioFrames
                #expect(inline > 60, "\(name): only \(inline) audio frames handled inline")
                #expect(p.eventLoop === (await p.connection.channel.eventLoop), "\(name) runs on its connection's loop")
            }
            let metrics = String(decoding: server.metrics.render(), as: UTF8.self)
            let udp = metrics.split(separator: "\n").first { $0.hasPrefix("conclave_relay_udp_deliveries_total ") }
            #expect((udp.flatMap { Double($0.split(separator: " ").last!) } ?? 0) > 200)
        }
    }

    /// Must show: a participant whose UDP path dies continues over the WebSocket without
    /// losing chat or keys.
    @Test func deadUDPPathFallsBackWithoutLosingChatOrKeys() async throws {
        try await withRelay(testRelayConfiguration { $0.mediaPathTimeoutSeconds = 2 }) { _, endpoint in
            let logs = (0..<3).map { _ in EventLog() }
            let host = try await Participant.host(relay: endpoint, password: nil, settings: .privacyDefaults, options: options("host"), output: logs[0].output)
            let invite = try #require(await host.invite)
            let hostRun = Task { await host.run(for: .seconds(60)) }
            let alice = try await Participant.join(invite: invite, options: options("alice"), output: logs[1].output)
            let aliceRun = Task { await alice.run(for: .seconds(60)) }
            try await waitUntil("the host's and alice's UDP paths") {
                let hostUp = await host.mediaPathIsUp, aliceUp = await alice.mediaPathIsUp
                return hostUp && aliceUp
            }
            let aliceIndex = await alice.index, hostIndex = await host.index
            try await waitUntil("alice hearing the host by UDP") { await alice.audioFrames(from: hostIndex) > 20 }
            // The path dies both ways. The baseline is read after the outage began (the count
            // runs on the path's event loop, which sees the outage from then on), so a frame
            // in flight at that moment cannot race the comparison below.
            await alice.mediaPath?.simulateOutage()
            let aliceUDPBefore = try #require(await alice.mediaPathStatistics()).framesReceived
            // While it is dead: a new member joins (a new epoch, whose key package alice needs)
            // and the host chats.
            let carol = try await Participant.join(invite: invite, options: options("carol"), output: logs[2].output)
            let carolRun = Task { await carol.run(for: .seconds(60)) }
            try await waitForAgreement([host, alice, carol])
            try await host.say("said while alice's UDP was down")
            // After the timeouts (2 s both sides), audio flows over alice's WebSocket both ways.
            try await waitUntil("alice's UDP path timing out") { await !alice.mediaPathIsUp }
            let hostFromAliceMid = await host.audioFrames(from: aliceIndex)
            let aliceFromHostMid = await alice.audioFrames(from: hostIndex)
            try await waitUntil("60 frames each way over alice's WebSocket") {
                let toAlice = await alice.audioFrames(from: hostIndex), toHost = await host.audioFrames(from: aliceIndex)
                return toAlice - aliceFromHostMid > 60 && toHost - hostFromAliceMid > 60
            }
            #expect(try #require(await alice.mediaPathStatistics()).framesReceived == aliceUDPBefore, "nothing arrived by UDP while it was down")
            try await waitForChat(alice, "said while alice's UDP was down")
            try await waitUntil("carol hearing 100 frames from alice") { await carol.audioFrames(from: aliceIndex) > 100 }
            await carol.stop()
            await alice.stop()
            await host.stop()
            await carolRun.value
            await aliceRun.value
            await hostRun.value

            // Nothing reliable was lost: the chat arrived and alice holds the epoch carol's join started.
            let chats = logs[1].events("chat").compactMap { $0["text"] as? String }
            #expect(chats.contains("said while alice's UDP was down"))
            let carolEpoch = logs[2].events("epoch").first?["epoch"] as? Int
            let aliceEpochs = logs[1].events("epoch").compactMap { $0["epoch"] as? Int }
            #expect(carolEpoch != nil && aliceEpochs.contains(carolEpoch!), "alice never installed epoch \(String(describing: carolEpoch)): \(aliceEpochs)")
            #expect(await carol.audioFrames(from: aliceIndex) > 60, "carol hears alice")
            let c = await alice.receiveCounters
            #expect(c.decryptFailed == 0, "\(c)")
        }
    }

    /// Issue 10, defect 9: a client whose consumer stalls does not later play seconds-old
    /// audio. Audio keeps arriving by UDP while nothing is taken from the connection; when
    /// the consumer resumes, the stale frames are gone (dropped and counted), the fresh ones
    /// and every control message are there.
    @Test func stalledConsumerDoesNotReceiveStaleAudio() async throws {
        try await withRelay { _, endpoint in
            let host = try await Participant.host(
                relay: endpoint, password: nil, settings: .privacyDefaults, options: options("host"), output: EventLog().output)
            let invite = try #require(await host.invite)
            let hostRun = Task { await host.run(for: .seconds(12)) }
            defer { hostRun.cancel() }
            // The listener is driven by hand: it reads nothing unless the test does.
            let listener = try await Participant.join(invite: invite, options: options("listener"), output: EventLog().output)
            let connection = await listener.connection
            var session: MediaSessionMessage?
            var control = 0
            let joinDeadline = ContinuousClock.now + .seconds(5)
            while session == nil, ContinuousClock.now < joinDeadline {
                guard case let .message(m)? = try? await connection.next(timeout: .milliseconds(200)) else { continue }
                if case let .mediaSession(s) = m { session = s }
            }
            let path = try await MediaPath.open(try #require(session, "no MEDIA_SESSION"), connection: connection)
            defer { Task { await path.close() } }
            // Stall: take nothing until 100 audio frames have arrived by UDP (2 s of the host's audio).
            let before = await path.statistics().framesReceived
            let stallDeadline = ContinuousClock.now + .seconds(8)
            while await path.statistics().framesReceived - before < 100, ContinuousClock.now < stallDeadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            let arrived = await path.statistics().framesReceived - before
            #expect(arrived >= 100, "only \(arrived) audio frames arrived by UDP")
            // Resume: read for 100 ms (what was buffered comes out at once, and about five
            // fresh frames arrive meanwhile).
            var audio = 0
            let drainEnd = ContinuousClock.now + .milliseconds(100)
            while ContinuousClock.now < drainEnd, let item = try? await connection.next(timeout: .milliseconds(30)) {
                guard case let .message(m) = item else { break }
                if case let .frame(f) = m, f.header.kind == .audio { audio += 1 } else { control += 1 }
            }
            #expect(audio < 30, "\(audio) audio frames delivered after a stall in which \(arrived) arrived: stale audio was kept")
            #expect(control > 0, "the key package and roster that arrived meanwhile are delivered")
            let stats = await connection.inboundStatistics()
            #expect(Int(stats.staleAudioDropped) >= arrived - 30, "the drops are counted: \(stats)")
            #expect(stats.mediaOverflowDropped == 0 && stats.peakQueuedMedia <= RelayConnection.Options().maximumQueuedMedia)
        }
    }
}

extension MediaTransportTests {
    /// Defect found in a loaded run of the suite: after a redirect or failover replaced its
    /// connection, a participant that had dropped stale audio on the old one subtracted
    /// the old connection's counters from the new one's (which start at zero) and trapped
    /// on UInt64 underflow. The overload report must count the new connection from zero.
    @Test func overloadReportSurvivesAReplacedConnection() async throws {
        try await withRelay { _, endpoint in
            let log = EventLog()
            let host = try await Participant.host(relay: endpoint, password: nil, settings: .privacyDefaults, options: options("host"), output: log.output)
            // What the previous connection had counted (the new one counts from zero).
            var previous = InboundStatistics()
            previous.staleAudioDropped = 40
            previous.mediaOverflowDropped = 7
            await host.setLastInboundForTesting(previous)
            await host.reportInbound(now: 5_000)
            // Nothing was dropped on the current connection: no overload, and no trap.
            #expect(log.events("overload").isEmpty)
            let now = await host.lastInboundForTesting
            #expect(now.staleAudioDropped == 0 && now.mediaOverflowDropped == 0, "the current connection's counters are the baseline now")
            await host.stop()
        }
    }
}

extension Participant {
    /// Stands in for the counters a previous connection left behind.
    func setLastInboundForTesting(_ statistics: InboundStatistics) { lastInbound = statistics }
    var lastInboundForTesting: InboundStatistics { lastInbound }
}
