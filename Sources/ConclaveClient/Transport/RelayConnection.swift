import ConclaveProtocol
import Logging
import NIOCore
import NIOPosix
import NIOHTTP1
import NIOSSL
import NIOWebSocket

/// A client's WebSocket connection to a relay (section 5.1): binary Conclave messages out,
/// decoded relay messages in.
///
/// ```swift
/// let relay = try await RelayConnection.connect(to: RelayEndpoint(parsing: "wss://relay.example:8443"))
/// try await relay.send(.hello(HelloMessage(...)))
/// for await item in relay.inbound { ... }   // or: try await relay.next(timeout: .seconds(5))
/// await relay.close()
/// ```
///
/// Guarantees:
/// - Each ``send(_:)`` is one masked binary WebSocket message; sends from one task keep
///   their order.
/// - Inbound messages are reassembled from fragments up to
///   ``Options/maximumInboundMessageLength``; a longer one closes the connection with
///   WebSocket status 1009. Pings are answered automatically.
/// - Inbound items are delivered in order, then ``RelayInbound/closed(code:reason:)`` once.
/// - Memory for unread items is bounded. Control messages (keys, rosters, chat, events)
///   are never dropped: backpressure bounds them (``Options/inboundHighWatermark``).
///   Media frames are dropped instead of piling up: at most
///   ``Options/maximumQueuedMedia`` wait, and audio older than
///   ``Options/staleAudioAfter`` is skipped; ``inboundStatistics()`` counts both.
/// - Every blocking call is bounded: connecting by `connectTimeout`, ``close()`` by
///   ``Options/closeTimeout``, ``next(timeout:)`` by its argument.
///
/// All state lives on the channel's event loop; the class is `Sendable`. Its async methods
/// take the caller's isolation (`#isolation`): they run on the caller's executor, so a caller on the
/// connection's own event loop (a ``Participant``) reaches the handler without leaving its
/// thread, and a waiting caller is resumed there. Keep the event
/// loop group running while the connection is in use. Dropping the last reference closes
/// the socket without a closing handshake.
public final class RelayConnection: Sendable {
    /// The endpoint this connection was made to.
    public let endpoint: RelayEndpoint
    let channel: any Channel
    let handler: NIOLoopBound<RelayWebSocketHandler>

    private var eventLoop: any EventLoop { channel.eventLoop }

    private init(endpoint: RelayEndpoint, upgraded: Upgraded) {
        self.endpoint = endpoint
        self.channel = upgraded.channel
        self.handler = upgraded.handler
    }

    deinit {
        channel.close(promise: nil)
    }

    /// The local socket address (for logs and tests).
    public var localAddress: SocketAddress? { channel.localAddress }

    /// The relay's socket address.
    public var remoteAddress: SocketAddress? { channel.remoteAddress }

    // MARK: Options

    /// Tuning for one connection. The defaults suit a conferencing client.
    public struct Options: Sendable {
        /// The largest inbound WebSocket message, fragments reassembled. Default
        /// `MessageLimits.maximumMessageLength` + 1 024: a relay message slightly over the
        /// protocol's limit still reaches the decoder and is reported as
        /// ``RelayInbound/undecodable(bytes:error:)`` (`messageTooLarge`) rather than
        /// closing the connection; anything longer closes it with status 1009.
        public var maximumInboundMessageLength = MessageLimits.maximumMessageLength + 1_024

        /// Unread control items (everything but media frames) at which the connection
        /// stops reading the socket. Default 256 (at most about 17 MB of maximum-size
        /// messages, far less in practice).
        public var inboundHighWatermark = 256

        /// Unread control items at which reading resumes. Default 64.
        public var inboundLowWatermark = 64

        /// Media frames (audio from either path; screen frames that came by UDP) that may
        /// wait unread; past this the oldest is dropped and counted. Default 1 024: about
        /// 100 KB of typical audio frames, 1 s of 20 talkers.
        public var maximumQueuedMedia = 1_024

        /// An audio frame that waited longer than this for the consumer is dropped when it
        /// gets there (and counted): a client that fell behind skips to the present
        /// instead of playing old audio. Default 200 ms.
        public var staleAudioAfter = Duration.milliseconds(200)

        /// What happens to media frames the consumer has not taken. Default
        /// ``InboundMediaPolicy/dropStale``: a conferencing client's choice.
        public var inboundMedia = InboundMediaPolicy.dropStale

        /// How long ``RelayConnection/close()`` waits for the relay's Close frame before
        /// closing the socket anyway. Default 2 s.
        public var closeTimeout = Duration.seconds(2)

        /// `SO_RCVBUF` for the socket, in bytes; `nil` keeps the system's (auto-tuned)
        /// default. A small value makes backpressure reach the relay sooner, which a
        /// slow-consumer test wants.
        public var receiveBufferSize: Int?

        /// Where the connection logs (debug level only).
        public var logger = Logger(label: "conclave.client.transport")

        public init() {}
    }

    // MARK: Connecting

    /// Connects to a relay: TCP, TLS for `wss://`, then the HTTP/1.1 upgrade to WebSocket on
    /// the endpoint's path.
    ///
    /// - Parameters:
    ///   - endpoint: The relay. `wss://` uses TLS, `ws://` plain TCP.
    ///   - tls: Trust settings for `wss://`; `nil` means the system's roots. Passing
    ///     settings for a `ws://` endpoint is an error (``RelayConnectionError/tlsFailure(_:)``),
    ///     so TLS is never silently skipped.
    ///   - eventLoopGroup: Where the connection runs.
    ///   - connectTimeout: The limit for the whole sequence (TCP, TLS handshake, upgrade).
    ///   - options: Buffering and closing behaviour.
    /// - Throws: ``RelayConnectionError``.
    public static func connect(
        to endpoint: RelayEndpoint,
        tls: ClientTLS? = nil,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        connectTimeout: Duration = .seconds(5),
        options: Options = Options()
    ) async throws -> RelayConnection {
        let sslContext: NIOSSLContext?
        if endpoint.usesTLS {
            sslContext = try (tls ?? .system).makeContext()
        } else {
            guard tls == nil else {
                throw RelayConnectionError.tlsFailure("TLS settings given for the ws:// endpoint \(endpoint); use wss://")
            }
            sslContext = nil
        }

        let timeout = TimeAmount(connectTimeout)
        let deadline = NIODeadline.now() + timeout
        var bootstrap = ClientBootstrap(group: eventLoopGroup).connectTimeout(timeout)
        if let size = options.receiveBufferSize {
            bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(size))
        }

        let upgrade: EventLoopFuture<Upgraded>
        do {
            upgrade = try await bootstrap.connect(host: endpoint.host, port: endpoint.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try configurePipeline(
                        channel, endpoint: endpoint, sslContext: sslContext, options: options, deadline: deadline
                    )
                }
            }
        } catch {
            // Anything that stops the TCP connection itself means the relay was not reached.
            throw RelayConnectionError.classify(
                error, endpoint: endpoint,
                otherwise: .unreachable(
                    host: endpoint.host, port: endpoint.port, underlying: RelayConnectionError.oneLine(error)
                ))
        }
        do {
            return RelayConnection(endpoint: endpoint, upgraded: try await upgrade.get())
        } catch {
            throw RelayConnectionError.classify(error, endpoint: endpoint)
        }
    }

    // MARK: Sending

    /// Sends one message as one binary WebSocket message.
    ///
    /// Returns once the bytes are handed to the socket (so a sender that awaits each send
    /// feels TCP backpressure). Throws ``RelayConnectionError/closed`` after ``close()``, after
    /// the relay's Close frame, or when the connection has failed.
    public func send(_ message: ClientMessage, isolation: isolated (any Actor)? = #isolation) async throws {
        try await sendBinary(message.encoded(), fragmentSize: nil)
    }

    /// Sends several messages, in order, with one hop to the event loop and one flush (a
    /// leader's rekey: hundreds of key packages and roster parts).
    public func send(_ messages: [ClientMessage], isolation: isolated (any Actor)? = #isolation) async throws {
        guard !messages.isEmpty else { return }
        try await write(messages.map { WebSocketFrame(fin: true, opcode: .binary, maskKey: .random(), data: ByteBuffer(bytes: $0.encoded())) })
    }

    /// Sends arbitrary bytes as one binary WebSocket message, for tests of malformed input.
    ///
    /// - Parameter fragmentSize: If given, the message goes out as fragments of at most this
    ///   many bytes (a binary frame and continuation frames), to exercise reassembly.
    @_spi(Testing) public func sendRaw(_ bytes: [UInt8], fragmentSize: Int? = nil, isolation: isolated (any Actor)? = #isolation) async throws {
        try await sendBinary(bytes, fragmentSize: fragmentSize)
    }

    /// Sends a text WebSocket message, which section 5.1 forbids (for tests).
    @_spi(Testing) public func sendText(_ text: String, isolation: isolated (any Actor)? = #isolation) async throws {
        let frame = WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: ByteBuffer(string: text))
        try await write([frame])
    }

    private func sendBinary(_ bytes: [UInt8], fragmentSize: Int?, isolation: isolated (any Actor)? = #isolation) async throws {
        // One copy into a ByteBuffer; the frame encoder masks it in place. Each send also
        // allocates a promise and a hop to the event loop, which is negligible next to a
        // syscall per message.
        let data = ByteBuffer(bytes: bytes)
        guard let fragmentSize, fragmentSize < bytes.count else {
            try await write([WebSocketFrame(fin: true, opcode: .binary, maskKey: .random(), data: data)])
            return
        }
        precondition(fragmentSize > 0, "fragmentSize must be positive")
        var frames: [WebSocketFrame] = []
        var offset = 0
        while offset < bytes.count {
            let length = min(fragmentSize, bytes.count - offset)
            frames.append(
                WebSocketFrame(
                    fin: offset + length == bytes.count,
                    opcode: offset == 0 ? .binary : .continuation,
                    maskKey: .random(),
                    data: data.getSlice(at: offset, length: length)!
                ))
            offset += length
        }
        try await write(frames)
    }

    private func write(_ frames: [WebSocketFrame], isolation: isolated (any Actor)? = #isolation) async throws {
        let handler = self.handler
        try await eventLoop.flatSubmit { handler.value.write(frames) }.value()
    }

    // MARK: Receiving

    /// Every inbound item, in order, ending after ``RelayInbound/closed(code:reason:)``.
    public var inbound: RelayInboundSequence { RelayInboundSequence(connection: self) }

    /// Waits at most `timeout` for the next inbound item.
    ///
    /// - Returns: The item, or `nil` if ``RelayInbound/closed(code:reason:)`` was already
    ///   returned.
    /// - Throws: ``RelayConnectionError/timeout`` if nothing arrived in time (the item, if it
    ///   comes later, stays queued for the next call), or `CancellationError`.
    public func next(timeout: Duration, isolation: isolated (any Actor)? = #isolation) async throws -> RelayInbound? {
        try await nextInbound(timeout: TimeAmount(timeout))
    }

    func nextInbound(timeout: TimeAmount?, isolation: isolated (any Actor)? = #isolation) async throws -> RelayInbound? {
        let waiter = InboundWaiter()
        let handler = self.handler
        let eventLoop = self.eventLoop
        return try await withTaskCancellationHandler {
            // `isolation:` named here, not left to `#isolation` (nil inside this closure): the
            // continuation then resumes on the caller's executor, not on the global one.
            try await withCheckedThrowingContinuation(isolation: isolation) { continuation in
                if eventLoop.inEventLoop {
                    handler.value.next(waiter, continuation: continuation, timeout: timeout)
                } else {
                    eventLoop.execute { handler.value.next(waiter, continuation: continuation, timeout: timeout) }
                }
            }
        } onCancel: {
            eventLoop.execute { handler.value.cancel(waiter) }
        }
    }

    /// On the connection's event loop only: installs (nil: removes) the consumer that may
    /// take audio frames inline (``RelayWebSocketHandler/inlineAudioConsumer``).
    func setInlineAudioConsumer(_ consumer: (@Sendable (RelayInbound) -> Bool)?) {
        handler.value.inlineAudioConsumer = consumer
    }

    /// On the connection's event loop only: ``inboundStatistics()`` without a hop.
    func inboundStatisticsOnLoop() -> InboundStatistics { handler.value.statistics }

    /// Stops reading from the socket until ``resumeReading()``, whatever the consumer does.
    ///
    /// Unread data then backs up in the kernel buffers and TCP's window closes, so the relay
    /// sees a slow consumer. Pings are not answered while paused. Items already received
    /// stay available.
    public func pauseReading(isolation: isolated (any Actor)? = #isolation) async {
        await setReadingPaused(true)
    }

    /// Undoes ``pauseReading()``. Reading restarts unless the inbound buffer is full.
    public func resumeReading(isolation: isolated (any Actor)? = #isolation) async {
        await setReadingPaused(false)
    }

    /// How many received items wait to be taken (for diagnostics and tests: with a consumer
    /// that stops taking items, this stays near ``Options/inboundHighWatermark``).
    public func bufferedInboundCount(isolation: isolated (any Actor)? = #isolation) async -> Int {
        let handler = self.handler
        return (try? await eventLoop.submit { handler.value.bufferedCount }.value()) ?? 0
    }

    /// Whether the inbound queue is holding back the socket's reads (backpressure
    /// engaged), for the tests of backpressure: the positive sign that reading stopped.
    @_spi(Testing) public func isReadWithheld(isolation: isolated (any Actor)? = #isolation) async -> Bool {
        let handler = self.handler
        return (try? await eventLoop.submit { handler.value.isReadWithheld }.value()) ?? false
    }

    /// What the inbound queue dropped (stale audio, media over the limit) and how deep it
    /// got since the connection opened.
    public func inboundStatistics(isolation: isolated (any Actor)? = #isolation) async -> InboundStatistics {
        let handler = self.handler
        return (try? await eventLoop.submit { handler.value.statistics }.value()) ?? InboundStatistics()
    }

    private func setReadingPaused(_ paused: Bool, isolation: isolated (any Actor)? = #isolation) async {
        let handler = self.handler
        try? await eventLoop.submit { handler.value.setReadingPaused(paused) }.value()
    }

    // MARK: Closing

    /// Runs the closing handshake (status 1000) and returns when the socket is closed: when
    /// the relay answers, or after ``Options/closeTimeout``. Idempotent. Inbound items
    /// already received stay readable, followed by ``RelayInbound/closed(code:reason:)``.
    public func close(isolation: isolated (any Actor)? = #isolation) async {
        let handler = self.handler
        eventLoop.execute { handler.value.startClose(code: RelayWebSocketHandler.normalClosureCode) }
        try? await channel.closeFuture.value()
    }
}

/// How a connection treats media frames its consumer has not taken yet.
public enum InboundMediaPolicy: Sendable, Equatable {
    /// Bounded by ``RelayConnection/Options/maximumQueuedMedia``, oldest dropped; audio
    /// older than ``RelayConnection/Options/staleAudioAfter`` skipped; reading never waits
    /// for media. For a client that plays audio in real time.
    case dropStale
    /// Media is treated like control: never dropped, bounded by backpressure (the relay
    /// then sees a slow consumer). For tools that must account for every frame the relay
    /// sends, such as tests of the relay's own drop policy.
    case keepAll
}

// MARK: - Pipeline

/// The result of a successful upgrade.
private struct Upgraded: Sendable {
    let channel: any Channel
    let handler: NIOLoopBound<RelayWebSocketHandler>
}

/// The server answered the upgrade request with something other than a valid `101`.
private struct UpgradeNotAccepted: Error {}

extension RelayConnection {
    /// Builds `[TLS] → HTTP request encoder → HTTP response decoder → status recorder →
    /// upgrade handler`; after the upgrade swift-nio's upgrader installs the WebSocket
    /// frame encoder, decoder and protocol-error handler, and we add the aggregator and
    /// ``RelayWebSocketHandler``.
    ///
    /// The returned future fails with a ``RelayConnectionError`` (and the channel is
    /// closed) on a TLS failure, a refused upgrade, or at `deadline`.
    fileprivate static func configurePipeline(
        _ channel: any Channel,
        endpoint: RelayEndpoint,
        sslContext: NIOSSLContext?,
        options: Options,
        deadline: NIODeadline
    ) throws -> EventLoopFuture<Upgraded> {
        let pipeline = channel.pipeline.syncOperations
        if let sslContext {
            // No SNI for an IP literal: NIOSSL then checks the certificate's IP SANs against
            // the peer address (RFC 6125 with an IP reference identity).
            let serverHostname = endpoint.hostIsIPAddress ? nil : endpoint.host
            try pipeline.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: serverHostname))
        }

        let requestEncoder = HTTPRequestEncoder()
        let responseDecoder = ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes))
        let recorder = UpgradeResponseRecorder()
        try pipeline.addHandler(requestEncoder)
        try pipeline.addHandler(responseDecoder)
        try pipeline.addHandler(recorder)

        let maximumLength = options.maximumInboundMessageLength
        let upgrader = NIOTypedWebSocketClientUpgrader<Upgraded>(
            maxFrameSize: maximumLength,
            enableAutomaticErrorHandling: true
        ) { channel, _ in
            channel.eventLoop.makeCompletedFuture {
                let handler = RelayWebSocketHandler(options: options, eventLoop: channel.eventLoop)
                let aggregator = NIOWebSocketFrameAggregator(
                    minNonFinalFragmentSize: 1,
                    maxAccumulatedFrameCount: 256,
                    maxAccumulatedFrameSize: maximumLength
                )
                try channel.pipeline.syncOperations.addHandler(aggregator)
                try channel.pipeline.syncOperations.addHandler(handler)
                return Upgraded(channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
            }
        }

        var headers = HTTPHeaders()
        headers.add(name: "Host", value: endpoint.hostHeader)
        let requestHead = HTTPRequestHead(version: .http1_1, method: .GET, uri: endpoint.path, headers: headers)
        let upgradeHandler = NIOTypedHTTPClientUpgradeHandler<Upgraded>(
            httpHandlers: [requestEncoder, responseDecoder, recorder],
            upgradeConfiguration: NIOTypedHTTPClientUpgradeConfiguration(
                upgradeRequestHead: requestHead,
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in channel.eventLoop.makeFailedFuture(UpgradeNotAccepted()) }
            )
        )
        try pipeline.addHandler(upgradeHandler)

        let eventLoop = channel.eventLoop
        let recordedStatus = NIOLoopBound(recorder, eventLoop: eventLoop)
        let result = eventLoop.makePromise(of: Upgraded.self)
        let timer = eventLoop.scheduleTask(deadline: deadline) {
            result.fail(RelayConnectionError.timeout)
        }
        channel.closeFuture.whenComplete { _ in timer.cancel() }
        upgradeHandler.upgradeResultFuture
            .flatMapErrorThrowing { error in
                switch error {
                case is UpgradeNotAccepted, is NIOHTTPClientUpgradeError:
                    let status = recordedStatus.value.status ?? HTTPResponseStatus.switchingProtocols.code
                    throw RelayConnectionError.upgradeRejected(status: status)
                default:
                    throw RelayConnectionError.classify(error, endpoint: endpoint)
                }
            }
            .cascade(to: result)
        result.futureResult.whenComplete { outcome in
            timer.cancel()
            if case .failure = outcome { channel.close(promise: nil) }
        }
        return result.futureResult
    }
}

/// Records the status of the HTTP response to the upgrade request, so a refusal can be
/// reported with it. Removed with the HTTP handlers after the upgrade.
final class UpgradeResponseRecorder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias InboundOut = HTTPClientResponsePart

    private(set) var status: UInt?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if status == nil, case let .head(head) = Self.unwrapInboundIn(data) {
            status = head.status.code
        }
        context.fireChannelRead(data)
    }
}

@available(*, unavailable)
extension UpgradeResponseRecorder: Sendable {}
