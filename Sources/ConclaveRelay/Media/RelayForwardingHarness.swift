import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import ConclaveCrypto
import ConclaveProtocol

/// The relay's UDP forwarding path in process, without sockets: a real ``RelayCore`` with
/// one room of admitted members whose media paths are live, and a pool of sealed `MEDIA`
/// datagrams from its first member. ``route()`` runs one datagram through everything the
/// relay does before writing (parse, session look-up, hop tag, replay window, address,
/// rate limits, room policy, fan-out into the reused target list) and returns the number
/// of UDP recipients. For `Benchmarks/RelayForwarding` and tests; not for production use.
@_spi(Benchmarking) public final class RelayForwardingHarness {
    private let core: RelayCore
    private let session: MediaSession
    private let source: MediaAddress
    private let datagrams: [[UInt8]]
    private var cursor = 0
    private var targets = MediaTargets(capacity: 64)
    private let keepAlive: [Any]

    /// - Parameters:
    ///   - roomSize: members, the sender included (2…100).
    ///   - datagramCount: the pool; the sender's replay window is reset each time it wraps.
    ///   - payloadBytes: the audio FRAME payload size.
    public init(roomSize: Int, datagramCount: Int = 1_000, payloadBytes: Int = 160) throws {
        precondition((2...100).contains(roomSize) && datagramCount >= 1 && (1...FrameKind.audio.payloadLimit).contains(payloadBytes))
        var configuration = RelayConfiguration()
        configuration.maxFramesPerSecond = 1_000_000
        configuration.maxBytesPerSecond = 1_000_000_000
        var logger = Logger(label: "conclave.relay.harness")
        logger.logLevel = .critical
        let pool = NIOThreadPool(numberOfThreads: 1)
        let core = RelayCore(configuration: configuration, metrics: RelayMetrics(), logger: logger, threadPool: pool)
        core.mediaPathBound(.init(advertisedHost: "", port: 9, sockets: []))
        var settings = RoomSettings.privacyDefaults
        settings.waitingRoom = false
        settings.muteOnEntry = false
        var channels: [EmbeddedChannel] = []
        var outboxes: [ConnectionOutbox] = []
        var roomID = RoomID.zero
        for i in 0..<roomSize {
            let channel = EmbeddedChannel()
            channels.append(channel)
            guard let outbox = core.register(channel: channel, address: "127.0.0.1") else { throw HarnessError("register") }
            outboxes.append(outbox)
            let identity = Ed25519.PrivateKey()
            let x = X25519.PrivateKey()
            guard let wire = Identity(ed25519Public: identity.publicKey.rawRepresentation, x25519Public: x.publicKey.rawRepresentation) else {
                throw HarnessError("identity")
            }
            let challenge = SecureRandom.bytes(count: 32)
            if i == 0 { roomID = RoomID(bytes: SecureRandom.bytes(count: 16))! }
            let signature = try identity.signature(for: challenge + roomID.bytes + wire.ed25519Public + wire.x25519Public, context: Labels.relayAuthSignature)
            if i == 0 {
                core.createRoom(
                    CreateRoomMessage(roomID: roomID, identity: wire, signature: signature, relayAuth: nil, settings: settings), challenge: challenge,
                    from: outbox)
                guard let id = core.roomID(of: outbox.id) else { throw HarnessError("create room") }
                roomID = id
            } else {
                core.join(
                    JoinMessage(roomID: roomID, identity: wire, signature: signature, relayAuth: nil, knock: [UInt8](repeating: 0x4B, count: 32)),
                    challenge: challenge, from: outbox)
            }
        }
        // Every member's path goes live: a keepalive from its own address, the relay's
        // PATH_CHALLENGE, the member's PATH_RESPONSE, and the acknowledgement (6.4).
        var sessions: [MediaSession] = []
        for (i, outbox) in outboxes.enumerated() {
            guard let session = core.mediaSession(of: outbox.id) else { throw HarnessError("no media session for member \(i)") }
            sessions.append(session)
            var keepalive: [UInt8] = []
            MediaDatagram.seal(
                .init(kind: .keepalive, sessionID: session.id, sequence: 1), body: UnsafeRawBufferPointer(start: nil, count: 0),
                authenticator: session.authenticator, into: &keepalive)
            let address = MediaAddress(try SocketAddress(ipAddress: "127.0.0.1", port: 20_000 + i))!
            var scratch = MediaTargets()
            let outcome = keepalive.withUnsafeBytes { core.mediaDatagram($0, from: address, targets: &scratch) }
            guard case .acknowledge(let reply) = outcome,
                let challenge = reply.withUnsafeBytes({ MediaDatagram.openPathChallenge($0, sessionID: session.id, authenticator: session.authenticator) })
            else { throw HarnessError("keepalive of member \(i): \(outcome)") }
            var response: [UInt8] = []
            MediaDatagram.pathResponseBody(token: challenge.token).withUnsafeBytes {
                MediaDatagram.seal(
                    .init(kind: .pathResponse, sessionID: session.id, sequence: 2), body: $0, authenticator: session.authenticator, into: &response)
            }
            let validated = response.withUnsafeBytes { core.mediaDatagram($0, from: address, targets: &scratch) }
            guard case .acknowledge = validated else { throw HarnessError("path response of member \(i): \(validated)") }
        }
        let sender = sessions[0]
        let header = try FrameMessage(
            kind: .audio, sender: core.index(of: outboxes[0].id) ?? ParticipantIndex(1), recipient: .everyone,
            payload: [UInt8](repeating: 0x5A, count: payloadBytes))
        let frame = ClientMessage.frame(header).encoded()
        datagrams = (0..<datagramCount).map { n in
            var out: [UInt8] = []
            frame.withUnsafeBytes {
                MediaDatagram.seal(
                    .init(kind: .media, sessionID: sender.id, sequence: UInt64(n + 3)), body: $0, authenticator: sender.authenticator, into: &out)
            }
            return out
        }
        self.core = core
        self.session = sender
        self.source = MediaAddress(try SocketAddress(ipAddress: "127.0.0.1", port: 20_000))!
        self.keepAlive = [pool, channels]
        // Check once that a datagram fans out to everyone else.
        guard route() == roomSize - 1 else { throw HarnessError("a datagram did not reach the other \(roomSize - 1) members") }
    }

    /// Routes the next datagram of the pool; returns how many members it goes to by UDP.
    @inline(never)
    public func route() -> Int {
        if cursor == datagrams.count {
            cursor = 0
            core.resetReplayWindow(session)
        }
        let datagram = datagrams[cursor]
        cursor += 1
        let outcome = datagram.withUnsafeBytes { core.mediaDatagram($0, from: source, targets: &targets) }
        let n: Int
        if case .forward = outcome { n = targets.udp.count } else { n = -1 }
        targets.reset()
        return n
    }

    struct HarnessError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = "relay forwarding harness: \(d)" }
    }
}
