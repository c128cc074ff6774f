import Synchronization
import NIOCore
import NIOPosix
import ConclaveCrypto
import ConclaveProtocol

/// A client's UDP media path to the relay (protocol section 6).
///
/// Opened after `MEDIA_SESSION`, on the event loop of the WebSocket connection, so frames
/// that arrive by UDP join the connection's inbound queue in order with everything else
/// (``RelayConnection/next(timeout:)`` returns both). It sends a `KEEPALIVE` at once and
/// every ``Options/keepaliveInterval``; the path is **up** while the relay's authenticated
/// `KEEPALIVE_ACK`s keep arriving within ``Options/pathTimeout``. While it is up, the
/// participant sends its audio here; otherwise over the WebSocket. The relay falls back the
/// same way for frames it sends to us, so a dead path loses nothing but the audio in
/// flight when it died; chat, control and keys always travel on the WebSocket.
public final class MediaPath: Sendable {
    public struct Options: Sendable {
        public var keepaliveInterval: Duration = .seconds(2)
        public var pathTimeout: Duration = .seconds(6)
        /// `SO_RCVBUF` of the UDP socket (the kernel doubles it). Default 128 KiB: about
        /// 250 small datagrams, so a client that falls behind keeps at most about a second
        /// of a busy room's audio in the kernel, where no stale check can reach it.
        public var receiveBufferBytes = 128 * 1024
        public init() {}
    }

    /// Counters, for tests and the load runner.
    public struct Statistics: Sendable, Equatable {
        public var framesSent = 0
        public var framesReceived = 0
        public var keepalivesSent = 0
        /// `PATH_CHALLENGE`s answered (6.4).
        public var challengesAnswered = 0
        public var acksReceived = 0
        /// Datagrams dropped on arrival: not from the relay's address, not a FRAME, a bad tag.
        public var rejected = 0
        public init() {}
    }

    let channel: any Channel
    let handler: NIOLoopBound<MediaPathHandler>
    private let liveness: Liveness
    private let timeoutNanos: UInt64

    /// Read by the participant's task, written on the event loop.
    final class Liveness: Sendable {
        /// When the last authenticated `KEEPALIVE_ACK` arrived (monotonic ns; 0: never).
        let lastAck = Atomic<UInt64>(0)
        let outage = Atomic<Bool>(false)
    }

    private init(channel: any Channel, handler: NIOLoopBound<MediaPathHandler>, liveness: Liveness, timeoutNanos: UInt64) {
        self.channel = channel
        self.handler = handler
        self.liveness = liveness
        self.timeoutNanos = timeoutNanos
    }

    deinit { channel.close(promise: nil) }

    /// Binds a UDP socket on the connection's event loop and starts the keepalives.
    public static func open(_ session: MediaSessionMessage, connection: RelayConnection, options: Options = Options()) async throws -> MediaPath {
        let host = session.host.isEmpty ? (connection.remoteAddress?.ipAddress ?? connection.endpoint.host) : session.host
        let relay = try SocketAddress.makeAddressResolvingHost(host, port: Int(session.port))
        let loop = connection.channel.eventLoop
        let authenticator = try HopAuthenticator(key: session.hopKey)
        let inbound = connection.handler
        let bindHost = relay.protocol == .inet6 ? "::" : "0.0.0.0"
        let timeoutNanos =
            UInt64(options.pathTimeout.components.seconds) * 1_000_000_000
            + UInt64(options.pathTimeout.components.attoseconds / 1_000_000_000)
        let channel = try await DatagramBootstrap(group: loop)
            .channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(options.receiveBufferBytes))
            // One datagram per readable event: a client gets a few frames per 20 ms, mostly
            // one at a time, and reading on until EAGAIN would cost a failed recvmsg for
            // each. Several waiting datagrams take several loop turns (epoll is level-triggered).
            .channelOption(.maxMessagesPerRead, value: 1)
            .bind(host: bindHost, port: 0).get()
        let path = try await loop.submit { () -> MediaPath in
            let liveness = Liveness()
            let handler = MediaPathHandler(
                sessionID: session.sessionID, authenticator: authenticator, relay: relay,
                liveness: liveness, deliver: { inbound.value.deliverFromMediaPath($0) })
            try channel.pipeline.syncOperations.addHandler(handler)
            let bound = NIOLoopBound(handler, eventLoop: loop)
            let path = MediaPath(channel: channel, handler: bound, liveness: liveness, timeoutNanos: timeoutNanos)
            let interval = TimeAmount(options.keepaliveInterval)
            let task = loop.scheduleRepeatedTask(initialDelay: .zero, delay: interval) { _ in bound.value.sendKeepalive() }
            channel.closeFuture.whenComplete { _ in task.cancel() }
            return path
        }.value()
        return path
    }

    /// Whether an authenticated `KEEPALIVE_ACK` arrived within the path timeout.
    public var isUp: Bool {
        guard !liveness.outage.load(ordering: .relaxed) else { return false }
        let last = liveness.lastAck.load(ordering: .relaxed)
        return last != 0 && NIODeadline.now().uptimeNanoseconds &- last <= timeoutNanos
    }

    /// Sends one encoded `FRAME` message as a `MEDIA` datagram. Returns false (and sends
    /// nothing) when the path is down or the frame is too large for a datagram; the caller
    /// then uses the WebSocket.
    @discardableResult
    public func send(frame: [UInt8]) -> Bool {
        guard isUp, frame.count <= MediaDatagram.maximumBodyLength else { return false }
        let handler = self.handler
        // A participant calls this on the loop already: no task queued per frame then.
        if channel.eventLoop.inEventLoop {
            handler.value.send(frame: frame)
        } else {
            channel.eventLoop.execute { handler.value.send(frame: frame) }
        }
        return true
    }

    /// Counters so far.
    public func statistics(isolation: isolated (any Actor)? = #isolation) async -> Statistics {
        let handler = self.handler
        return (try? await channel.eventLoop.submit { handler.value.statistics }.value()) ?? Statistics()
    }

    /// Tests: the path goes dark in both directions (nothing sent, everything received
    /// dropped), as when a firewall or NAT starts dropping UDP.
    public func simulateOutage(_ on: Bool = true) {
        liveness.outage.store(on, ordering: .relaxed)
    }

    public func close(isolation: isolated (any Actor)? = #isolation) async {
        try? await channel.close()
    }

    /// The local UDP address.
    public var localAddress: SocketAddress? { channel.localAddress }
}

/// The media path's channel handler; everything runs on the channel's event loop.
extension MediaPath {
    /// What a client accepts from the relay's media address (6.6): a `FRAME` of kind audio
    /// or screen. Chat, control and key packages belong to the WebSocket; by UDP they are
    /// dropped, so a network attacker who spoofs the relay's address gains nothing there.
    public static func acceptsByUDP(_ message: RelayMessage) -> Bool {
        guard case .frame(let frame) = message else { return false }
        return frame.header.kind == .audio || frame.header.kind == .screen
    }
}

final class MediaPathHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    let sessionID: UInt32
    let authenticator: HopAuthenticator
    let relay: SocketAddress
    let deliver: (RelayInbound) -> Void
    let liveness: MediaPath.Liveness
    private var sequence: UInt64 = 0
    private var highestAck: UInt64 = 0
    private var context: ChannelHandlerContext?
    private(set) var statistics = MediaPath.Statistics()
    private var scratch: [UInt8] = []

    init(
        sessionID: UInt32, authenticator: HopAuthenticator, relay: SocketAddress, liveness: MediaPath.Liveness,
        deliver: @escaping (RelayInbound) -> Void
    ) {
        self.liveness = liveness
        self.sessionID = sessionID
        self.authenticator = authenticator
        self.relay = relay
        self.deliver = deliver
        scratch.reserveCapacity(MediaDatagram.maximumLength)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = Self.unwrapInboundIn(data)
        guard !liveness.outage.load(ordering: .relaxed) else { return }
        // Only the relay's address; anything else is noise or an attack.
        guard envelope.remoteAddress == relay, let first = envelope.data.getInteger(at: envelope.data.readerIndex, as: UInt8.self) else {
            statistics.rejected += 1
            return
        }
        if first == MediaDatagram.forwardedFrameFirstByte {
            let decoded = envelope.data.withUnsafeReadableBytes { raw in
                Result { () throws(MessageDecodingError) -> RelayMessage in try RelayMessage.decode(raw) }
            }
            guard case .success(let message) = decoded, MediaPath.acceptsByUDP(message) else {
                statistics.rejected += 1
                return
            }
            statistics.framesReceived += 1
            deliver(.message(message))
        } else if let challenge = envelope.data.withUnsafeReadableBytes({
            MediaDatagram.openPathChallenge($0, sessionID: sessionID, authenticator: authenticator)
        }),
            challenge.sequence > highestAck
        {
            // The relay validates our address before it sends us anything (6.4): echo the token.
            highestAck = challenge.sequence
            statistics.challengesAnswered += 1
            seal(.pathResponse, body: MediaDatagram.pathResponseBody(token: challenge.token))
        } else if let ack = envelope.data.withUnsafeReadableBytes({ MediaDatagram.openKeepaliveAck($0, sessionID: sessionID, authenticator: authenticator) }),
            ack.sequence > highestAck, ack.echo <= sequence
        {
            // A fresh ack answering something we sent: a replayed ack cannot keep a dead path up.
            highestAck = ack.sequence
            statistics.acksReceived += 1
            liveness.lastAck.store(NIODeadline.now().uptimeNanoseconds, ordering: .relaxed)
        } else {
            statistics.rejected += 1
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP errors (relay gone) surface here; the keepalives simply stop being answered.
    }

    func sendKeepalive() {
        guard !liveness.outage.load(ordering: .relaxed) else { return }
        seal(.keepalive, body: [])
        statistics.keepalivesSent += 1
    }

    func send(frame: [UInt8]) {
        guard !liveness.outage.load(ordering: .relaxed) else { return }
        seal(.media, body: frame)
        statistics.framesSent += 1
    }

    private func seal(_ kind: MediaDatagram.Kind, body: [UInt8]) {
        guard let context else { return }
        sequence += 1
        scratch.removeAll(keepingCapacity: true)
        body.withUnsafeBytes {
            MediaDatagram.seal(
                .init(kind: kind, sessionID: sessionID, sequence: sequence), body: $0,
                authenticator: authenticator, into: &scratch)
        }
        let buffer = context.channel.allocator.buffer(bytes: scratch)
        context.writeAndFlush(Self.wrapOutboundOut(AddressedEnvelope(remoteAddress: relay, data: buffer)), promise: nil)
    }
}
