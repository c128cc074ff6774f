import Synchronization
import NIOCore
import NIOPosix
import Testing
import ConclaveClient
import ConclaveCrypto
import ConclaveProtocol
@_spi(Benchmarking) @testable import ConclaveRelay

/// A raw UDP client for the media path: seals datagrams with a session's hop key and
/// collects what the relay sends back.
final class UDPTestClient: Sendable {
    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let datagrams = Mutex<[[UInt8]]>([])
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = Array(Self.unwrapInboundIn(data).data.readableBytesView)
            datagrams.withLock { $0.append(bytes) }
        }
    }

    let channel: any Channel
    let collector: Collector
    let relay: SocketAddress
    let session: MediaSessionMessage
    let authenticator: HopAuthenticator
    let sequence = Atomic<UInt64>(0)

    init(channel: any Channel, collector: Collector, relay: SocketAddress, session: MediaSessionMessage) throws {
        self.channel = channel
        self.collector = collector
        self.relay = relay
        self.session = session
        self.authenticator = try HopAuthenticator(key: session.hopKey)
    }

    /// `receiveBufferBytes`: the socket's SO_RCVBUF (default: the system's, about 256 small
    /// datagrams; a burst beyond what the loop reads in time is dropped by the kernel).
    static func open(_ session: MediaSessionMessage, receiveBufferBytes: Int? = nil) async throws -> UDPTestClient {
        let collector = Collector()
        var bootstrap = DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        if let receiveBufferBytes { bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBufferBytes)) }
        let channel =
            try await bootstrap
            .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(collector) } }
            .bind(host: "127.0.0.1", port: 0).get()
        return try UDPTestClient(
            channel: channel, collector: collector,
            relay: try SocketAddress(ipAddress: "127.0.0.1", port: Int(session.port)), session: session)
    }

    /// A datagram sealed with the next sequence number (or `sequence`), under `key` (default: the session's).
    func seal(
        _ kind: MediaDatagram.Kind, body: [UInt8] = [], sequence explicit: UInt64? = nil,
        sessionID: UInt32? = nil, key: HopAuthenticator? = nil
    ) -> [UInt8] {
        let n = explicit ?? sequence.wrappingAdd(1, ordering: .relaxed).newValue
        var out: [UInt8] = []
        body.withUnsafeBytes {
            MediaDatagram.seal(
                .init(kind: kind, sessionID: sessionID ?? session.sessionID, sequence: n), body: $0,
                authenticator: key ?? authenticator, into: &out)
        }
        return out
    }

    func send(_ datagram: [UInt8]) async throws {
        try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: relay, data: channel.allocator.buffer(bytes: datagram)))
    }

    /// The tokens of the `PATH_CHALLENGE`s received so far (6.4).
    var challengeTokens: [UInt64] {
        collector.datagrams.withLock { list in
            list.compactMap { d in d.withUnsafeBytes { MediaDatagram.openPathChallenge($0, sessionID: session.sessionID, authenticator: authenticator)?.token }
            }
        }
    }

    /// Answers the latest `PATH_CHALLENGE` with its token.
    func answerChallenge() async throws {
        guard let token = challengeTokens.last else { throw TestTimeout(what: "PATH_CHALLENGE") }
        try await send(seal(.pathResponse, body: MediaDatagram.pathResponseBody(token: token)))
    }

    /// Sends a keepalive, answers the relay's path challenge, and waits for an
    /// authenticated acknowledgement (the path is validated, 6.4).
    func establish() async throws {
        for _ in 0..<40 {
            try await send(seal(.keepalive))
            try await Task.sleep(for: .milliseconds(25))
            if !challengeTokens.isEmpty { try await answerChallenge() }
            let acked = collector.datagrams.withLock { list in
                list.contains { d in d.withUnsafeBytes { MediaDatagram.openKeepaliveAck($0, sessionID: session.sessionID, authenticator: authenticator) != nil }
                }
            }
            if acked { return }
        }
        throw TestTimeout(what: "KEEPALIVE_ACK")
    }

    /// Forwarded FRAME messages received so far (keepalive acks left out).
    var frames: [[UInt8]] {
        collector.datagrams.withLock { $0.filter { $0.first == MediaDatagram.forwardedFrameFirstByte } }
    }

    /// Waits until at least `count` frames arrived (or the timeout), returns them.
    func waitForFrames(_ count: Int, timeout: Duration = .seconds(3)) async throws -> [[UInt8]] {
        let deadline = ContinuousClock.now + timeout
        while frames.count < count, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        return frames
    }

    func close() async { try? await channel.close() }
}

func frameBytes(_ kind: FrameKind, from sender: ParticipantIndex, payload: [UInt8]) throws -> [UInt8] {
    ClientMessage.frame(try FrameMessage(kind: kind, sender: sender, recipient: .everyone, payload: payload)).encoded()
}

/// Reads one sample of the relay's Prometheus text.
func metric(_ server: RelayServer, _ name: String, _ labels: String = "") -> Double? {
    let text = String(decoding: server.metrics.render(), as: UTF8.self)
    let key = labels.isEmpty ? name : "\(name){\(labels)}"
    for line in text.split(separator: "\n") where line.hasPrefix(key + " ") {
        return Double(line.split(separator: " ").last!)
    }
    return nil
}

/// The UDP media path (issue 5) over real sockets on loopback.
@Suite(.serialized, .timeLimit(.minutes(2)), .tags(.integration), .live) struct MediaPathTests {
    let rules = RelayRulesTests()

    /// Every admitted participant gets a session; a sealed keepalive is acknowledged.
    @Test func admissionGivesASessionAndKeepalivesAreAcknowledged() async throws {
        try await withRelay { server, endpoint in
            let (host, guest, _) = try await rules.hostAndGuest(endpoint)
            let hs = try await host.awaitMediaSession()
            let gs = try await guest.awaitMediaSession()
            #expect(hs.sessionID != gs.sessionID && hs.hopKey != gs.hopKey)
            #expect(Int(hs.port) == server.mediaPort && hs.host.isEmpty)
            // The description never shows the key.
            #expect(!"\(hs)".contains(hs.hopKey.unsafeHexExport()) && !"\(RelayMessage.mediaSession(hs))".contains(hs.hopKey.unsafeHexExport()))
            let udp = try await UDPTestClient.open(hs)
            try await udp.establish()
            #expect(metric(server, "conclave_relay_media_sessions") == 2)
            await udp.close()
        }
    }

    /// A member's own datagrams with sequence numbers at the top of the 64-bit range (which
    /// 6.3 allows) must not stall the relay: a wrapping replay window once looped forever
    /// here, under the relay's lock.
    @Test func sequenceNumbersAtTheTopOfTheRangeDoNotStallTheRelay() async throws {
        try await withRelay { server, endpoint in
            let (host, guest, _) = try await rules.hostAndGuest(endpoint)
            let hs = try await host.awaitMediaSession()
            let udp = try await UDPTestClient.open(hs)
            try await udp.establish()
            try await udp.send(udp.seal(.keepalive, sequence: UInt64.max - 1))
            try await udp.send(udp.seal(.keepalive, sequence: UInt64.max))
            // The relay still answers on its control path and on UDP.
            let gs = try await guest.awaitMediaSession()
            let other = try await UDPTestClient.open(gs)
            try await other.establish()
            #expect(metric(server, "conclave_relay_media_sessions") == 2)
            await udp.close(); await other.close()
        }
    }

    /// Must show: UDP and WebSocket participants in one room all receive everything.
    @Test func udpAndWebSocketRecipientsAllReceiveEverything() async throws {
        try await withRelay { server, endpoint in
            var settings = RoomSettings.privacyDefaults
            settings.muteOnEntry = false
            let (host, guest, room) = try await rules.hostAndGuest(endpoint, settings: settings)
            // A third participant that never opens its UDP path.
            let wsOnly = try await TestParticipant.connect(endpoint)
            _ = try await wsOnly.join(room)
            _ = try await host.expectMessage("KNOCK") {
                if case .knock = $0 { return true }; return false
            }
            try await host.commandOK(.admit(wsOnly.index))
            _ = try await wsOnly.expectMessage("ADMITTED") {
                if case .admitted = $0 { return true }; return false
            }
            let hostUDP = try await UDPTestClient.open(try await host.awaitMediaSession())
            let guestUDP = try await UDPTestClient.open(try await guest.awaitMediaSession())
            try await hostUDP.establish()
            try await guestUDP.establish()

            // Host → UDP: the guest gets it by UDP, the WebSocket-only participant over its WebSocket, byte for byte.
            var sent: [[UInt8]] = []
            for i in 0..<20 {
                let frame = try frameBytes(.audio, from: host.index, payload: [UInt8](repeating: UInt8(i), count: 160))
                sent.append(frame)
                try await hostUDP.send(hostUDP.seal(.media, body: frame))
            }
            #expect(try await guestUDP.waitForFrames(20) == sent)
            let overWS = try await wsOnly.expectFrames(sent.count)
            #expect(overWS == sent)
            #expect(hostUDP.frames.isEmpty, "a sender does not get its own frames back")

            // WebSocket → the UDP participants by UDP.
            let fromWS = try await wsOnly.sendFrame(.audio, payload: [UInt8](repeating: 0xAB, count: 160))
            #expect(try await hostUDP.waitForFrames(1) == [fromWS])
            #expect(try await guestUDP.waitForFrames(21).last == fromWS)

            // Chat sent over the WebSocket stays on WebSockets for everyone.
            let chat = try await host.sendFrame(.chat, payload: Array("reliable".utf8))
            _ = try await guest.expect("the chat over the guest's WebSocket", timeout: .seconds(10)) { receivedFrames([$0]) == [chat] }
            #expect(!guestUDP.frames.contains(chat))
            #expect((metric(server, "conclave_relay_udp_deliveries_total") ?? 0) >= 22)
        }
    }

    /// Must show: a forged or replayed datagram is dropped and counted.
    @Test func forgedOrReplayedDatagramsAreDroppedAndCounted() async throws {
        try await withRelay { server, endpoint in
            let (host, guest, hostUDP, guestUDP) = try await establishedPair(endpoint)
            let frame = try frameBytes(.audio, from: host.index, payload: [UInt8](repeating: 7, count: 160))
            let genuine = hostUDP.seal(.media, body: frame)
            try await hostUDP.send(genuine)
            #expect(try await guestUDP.waitForFrames(1).count == 1)

            // A sniffer replays the datagram it saw, from its own socket and from the sender's.
            let sniffer = try await UDPTestClient.open(try await host.awaitMediaSession())
            try await sniffer.send(genuine)
            try await hostUDP.send(genuine)
            // An attacker who knows the room and the session id, but not the hop key.
            let wrongKey = try HopAuthenticator(key: .random())
            try await sniffer.send(sniffer.seal(.media, body: frame, sequence: 1_000, key: wrongKey))
            // A flipped bit in the tag, the header and the body of a fresh datagram.
            let fresh = hostUDP.seal(.media, body: frame)
            for position in [fresh.count - 1, 7, 20] {  // tag, sequence, body
                var tampered = fresh
                tampered[position] ^= 0x01
                try await sniffer.send(tampered)
            }
            // An unknown session, and junk.
            try await sniffer.send(sniffer.seal(.media, body: frame, sessionID: host.mediaSession!.sessionID &+ 1))
            try await sniffer.send([0x10, 0, 0])
            // The guest's own session used to claim the host's index: the relay refuses the
            // sender mismatch like on the WebSocket.
            try await guestUDP.send(guestUDP.seal(.media, body: frame))
            // The marker: the relay has counted every one of them.
            try await waitUntil("the relay counting every forged datagram") {
                (metric(server, "conclave_relay_udp_dropped_total", "reason=\"replayed\"") ?? 0) >= 2
                    && (metric(server, "conclave_relay_udp_dropped_total", "reason=\"bad_tag\"") ?? 0) >= 4
                    && (metric(server, "conclave_relay_udp_dropped_total", "reason=\"unknown_session\"") ?? 0) >= 1
                    && (metric(server, "conclave_relay_udp_dropped_total", "reason=\"malformed\"") ?? 0) >= 1
                    && (metric(server, "conclave_relay_udp_dropped_total", "reason=\"not_admitted\"") ?? 0) >= 1
            }
            #expect(guestUDP.frames.count == 1, "nothing forged or replayed was forwarded")
            #expect(metric(server, "conclave_relay_udp_dropped_total", "reason=\"replayed\"") == 2)
            #expect(metric(server, "conclave_relay_udp_dropped_total", "reason=\"bad_tag\"") == 4)
            #expect(metric(server, "conclave_relay_udp_dropped_total", "reason=\"unknown_session\"") == 1)
            #expect(metric(server, "conclave_relay_udp_dropped_total", "reason=\"malformed\"") == 1)
            #expect(metric(server, "conclave_relay_udp_dropped_total", "reason=\"not_admitted\"") == 1)
            // A forged datagram from elsewhere did not move the host's learned address: the
            // fresh (untampered) datagram still works and nothing goes to the sniffer.
            try await hostUDP.send(fresh)
            #expect(try await guestUDP.waitForFrames(2).count == 2)
            #expect(sniffer.frames.isEmpty)
            // After leaving, the session is gone: its datagrams are unknown.
            try await guest.commandOK(.leave)
            try await guestUDP.send(guestUDP.seal(.keepalive))
            try await waitUntil("the relay counting the left session's keepalive") {
                (metric(server, "conclave_relay_udp_dropped_total", "reason=\"unknown_session\"") ?? 0) >= 2
            }
            #expect(metric(server, "conclave_relay_udp_dropped_total", "reason=\"unknown_session\"") == 2)
        }
    }

    /// Must show: mute and sharing are enforced on UDP.
    @Test func muteAndSharingAreEnforcedOnUDP() async throws {
        try await withRelay { server, endpoint in
            let (host, guest, _) = try await rules.hostAndGuest(endpoint)  // mute on entry, hosts-only sharing
            let hostUDP = try await UDPTestClient.open(try await host.awaitMediaSession())
            let guestUDP = try await UDPTestClient.open(try await guest.awaitMediaSession())
            try await hostUDP.establish()
            try await guestUDP.establish()
            // Muted on entry: audio by UDP is dropped.
            try await guestUDP.send(guestUDP.seal(.media, body: try frameBytes(.audio, from: guest.index, payload: [1, 2, 3])))
            // Not a presenter: screen by UDP is dropped, with one not_allowed notice on the WebSocket.
            try await guestUDP.send(guestUDP.seal(.media, body: try frameBytes(.screen, from: guest.index, payload: [4, 5, 6])))
            let notice = try await guest.expectMessage("not_allowed") {
                if case .error(let e) = $0 { return e.code == .notAllowed }; return false
            }
            #expect(notice != nil)
            try await waitUntil("the relay dropping both") {
                (metric(server, "conclave_relay_frames_dropped_total", "reason=\"muted\"") ?? 0) >= 1
                    && (metric(server, "conclave_relay_frames_dropped_total", "reason=\"not_presenter\"") ?? 0) >= 1
            }
            #expect(hostUDP.frames.isEmpty)
            #expect(receivedFrames(try await host.drain(for: .milliseconds(200))).isEmpty)
            #expect(metric(server, "conclave_relay_frames_dropped_total", "reason=\"muted\"") == 1)
            #expect(metric(server, "conclave_relay_frames_dropped_total", "reason=\"not_presenter\"") == 1)
            // Unmuted and made presenter: the same frames pass.
            try await guest.commandOK(.unmuteSelf)
            try await host.commandOK(.grantShare(guest.index))
            let audio = try frameBytes(.audio, from: guest.index, payload: [1, 2, 3])
            let screen = try frameBytes(.screen, from: guest.index, payload: [4, 5, 6])
            try await guestUDP.send(guestUDP.seal(.media, body: audio))
            try await guestUDP.send(guestUDP.seal(.media, body: screen))
            #expect(try await hostUDP.waitForFrames(2) == [audio, screen])
            // Muted again by the host: dropped again.
            try await host.commandOK(.mute(guest.index))
            try await guestUDP.send(guestUDP.seal(.media, body: audio))
            try await waitUntil("the relay dropping muted audio again") {
                (metric(server, "conclave_relay_frames_dropped_total", "reason=\"muted\"") ?? 0) >= 2
            }
            #expect(hostUDP.frames.count == 2)
            // Chat never rides UDP.
            try await guestUDP.send(guestUDP.seal(.media, body: try frameBytes(.chat, from: guest.index, payload: [9])))
            try await waitUntil("the relay refusing chat by UDP") { (metric(server, "conclave_relay_udp_dropped_total", "reason=\"kind\"") ?? 0) >= 1 }
            #expect(hostUDP.frames.count == 2)
            #expect(metric(server, "conclave_relay_udp_dropped_total", "reason=\"kind\"") == 1)
        }
    }

    /// A path that goes silent falls back to the WebSocket; an authenticated datagram from a
    /// new address (NAT rebinding) moves it.
    /// The relay's clock is moved by hand: the timeout is crossed without waiting for it.
    @Test func silentPathFallsBackAndRebindingMovesIt() async throws {
        let clock = ManualRelayClock()
        try await withRelay(testRelayConfiguration { $0.mediaPathTimeoutSeconds = 2 }, clock: clock) { _, endpoint in
            let (host, guest, hostUDP, guestUDP) = try await establishedPair(endpoint)
            let first = try frameBytes(.audio, from: host.index, payload: [1])
            try await hostUDP.send(hostUDP.seal(.media, body: first))
            #expect(try await guestUDP.waitForFrames(1) == [first])
            // The guest goes silent for longer than the timeout: frames come over its WebSocket.
            _ = try await guest.drain(for: .milliseconds(100))
            clock.advance(by: .milliseconds(2_100))
            let second = try frameBytes(.audio, from: host.index, payload: [2])
            try await hostUDP.send(hostUDP.seal(.media, body: second))
            #expect(try await guest.expectFrames(1) == [second])
            #expect(guestUDP.frames.count == 1)
            // The guest comes back from a new port with the same session: UDP again, to the new address.
            let rebound = try await UDPTestClient.open(guestUDP.session)
            rebound.sequence.store(10_000, ordering: .relaxed)
            try await rebound.establish()  // the new address answers the relay's challenge (6.4)
            let third = try frameBytes(.audio, from: host.index, payload: [3])
            try await hostUDP.send(hostUDP.seal(.media, body: third))
            #expect(try await rebound.waitForFrames(1) == [third])
            #expect(guestUDP.frames.count == 1)
        }
    }
}

extension MediaPathTests {
    /// A host and a guest (mute on entry off), each with a validated UDP path.
    func establishedPair(
        _ endpoint: RelayEndpoint
    ) async throws -> (host: TestParticipant, guest: TestParticipant, hostUDP: UDPTestClient, guestUDP: UDPTestClient) {
        var settings = RoomSettings.privacyDefaults
        settings.muteOnEntry = false
        let (host, guest, _) = try await rules.hostAndGuest(endpoint, settings: settings)
        let hostUDP = try await UDPTestClient.open(try await host.awaitMediaSession())
        let guestUDP = try await UDPTestClient.open(try await guest.awaitMediaSession())
        try await hostUDP.establish()
        try await guestUDP.establish()
        return (host, guest, hostUDP, guestUDP)
    }

    /// Issue 9 H: a member holding its own hop key sends authenticated datagrams from
    /// another host's address (here, a socket that never answers). The relay challenges
    /// that address and moves nothing: the room's media keeps going to the validated
    /// address, and the spoofed address gets one 37-byte challenge per 250 ms at most.
    @Test func pathMovesOnlyToAnAddressThatAnswersItsChallenge() async throws {
        try await withRelay { server, endpoint in
            let (host, guest, hostUDP, guestUDP) = try await establishedPair(endpoint)
            // The "victim": the guest's session, sent from an address that never answers.
            let victim = try await UDPTestClient.open(guestUDP.session)
            victim.sequence.store(50_000, ordering: .relaxed)
            let burstStart = ContinuousClock.now
            for _ in 0..<20 { try await victim.send(victim.seal(.keepalive)) }
            // All 20 reached the relay (each counted), and the challenge reached the address.
            try await waitUntil("20 unvalidated datagrams counted") {
                metric(server, "conclave_relay_udp_dropped_total", "reason=\"unvalidated_address\"") ?? 0 >= 20
            }
            try await waitUntil("a challenge to the spoofed address") { !victim.collector.datagrams.withLock { $0 }.isEmpty }
            let window = ContinuousClock.now - burstStart
            let frame = try frameBytes(.audio, from: host.index, payload: [7])
            try await hostUDP.send(hostUDP.seal(.media, body: frame))
            #expect(try await guestUDP.waitForFrames(1) == [frame], "the media left the validated address")
            #expect(victim.frames.isEmpty, "the relay sent the room's media to an unvalidated address")
            // At most one challenge per 250 ms while the burst lasted (however long the
            // machine took to send it), each a 37-byte keepalive-ack.
            let challenges = victim.collector.datagrams.withLock { $0 }
            let allowed = 1 + Int(window / .milliseconds(250)) + 1
            #expect(
                challenges.count >= 1 && challenges.count <= allowed && challenges.allSatisfy { $0.count == MediaDatagram.keepaliveAckLength },
                "\(challenges.count) datagrams to the spoofed address in \(window)")
            // A wrong token from the new address moves nothing either.
            let staleBefore = metric(server, "conclave_relay_udp_dropped_total", "reason=\"path_response\"") ?? 0
            try await victim.send(victim.seal(.pathResponse, body: [UInt8](repeating: 0, count: 8)))
            try await waitUntil("the wrong token refused") {
                metric(server, "conclave_relay_udp_dropped_total", "reason=\"path_response\"") == staleBefore + 1
            }
            try await hostUDP.send(hostUDP.seal(.media, body: frame))
            #expect(try await guestUDP.waitForFrames(2).count == 2)
            #expect(victim.frames.isEmpty)
            await hostUDP.close(); await guestUDP.close(); await victim.close()
            withExtendedLifetime(guest) {}  // the guest's WebSocket (and so its session) stays open until here
        }
    }
}

/// The in-process forwarding path that Benchmarks/RelayForwarding measures.
@Suite struct RelayForwardingHarnessTests {
    @Test func routesEveryPooledDatagramToEveryOtherMember() throws {
        let harness = try RelayForwardingHarness(roomSize: 5, datagramCount: 10)
        // 25 routes wrap the pool twice: the replay window is reset, not tripped.
        for _ in 0..<25 { #expect(harness.route() == 4) }
    }

    @Test func mediaListenOption() throws {
        var c = RelayConfiguration()
        #expect(c.summary.first { $0.name == "media-listen" }?.value == "same")
        try c.set("media-listen", to: "127.0.0.1:9000")
        #expect(c.mediaHost == "127.0.0.1" && c.mediaPort == 9000 && c.mediaEnabled)
        try c.set("media-listen", to: "off")
        #expect(!c.mediaEnabled && c.summary.first { $0.name == "media-listen" }?.value == "off")
        #expect(throws: RelayConfigurationError.self) { try c.set("media-listen", to: "nonsense") }
    }
}
