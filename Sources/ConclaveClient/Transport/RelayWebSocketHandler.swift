import ConclaveProtocol
import Logging
import NIOCore
import NIOWebSocket

/// One pending `next` call on a ``RelayConnection``.
///
/// Created by the calling task and handed once to the channel's event loop; from then on
/// its fields are read and written only on that loop, hence `@unchecked Sendable`.
final class InboundWaiter: @unchecked Sendable {
    var continuation: CheckedContinuation<RelayInbound?, any Error>?
    var timeoutTask: Scheduled<Void>?
    var isCancelled = false
}

/// The WebSocket end of a relay connection: the thin I/O shell around ``InboundQueue``.
///
/// Sits last in the pipeline, after swift-nio's frame decoder, protocol-error handler and
/// `NIOWebSocketFrameAggregator`, so it sees whole messages. It decodes binary messages
/// with ``RelayMessage/decode(_:)-(UnsafeRawBufferPointer)``, answers pings, runs the
/// closing handshake, and gates the channel's `read()` calls through the queue
/// (backpressure and ``RelayConnection/pauseReading()``). Every method runs on the
/// channel's event loop.
final class RelayWebSocketHandler: ChannelDuplexHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    /// The closing handshake (RFC 6455 §7).
    private enum CloseState {
        /// Data may flow both ways.
        case open
        /// We sent a Close frame and wait for the relay's, at most `closeTimeout`.
        case closeSent
        /// The handshake is over or the connection failed: nothing more is sent.
        case closing
    }

    let eventLoop: any EventLoop
    private var queue: InboundQueue<InboundWaiter>
    private var closeState = CloseState.open
    private var context: ChannelHandlerContext?
    private var closeTimer: Scheduled<Void>?
    private let closeTimeout: TimeAmount
    private let logger: Logger

    init(options: RelayConnection.Options, eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        self.queue = InboundQueue(
            highWatermark: options.inboundHighWatermark, lowWatermark: options.inboundLowWatermark,
            mediaLimit: options.maximumQueuedMedia, staleAudioNanos: Self.nanoseconds(options.staleAudioAfter),
            mediaIsDroppable: options.inboundMedia == .dropStale)
        self.closeTimeout = TimeAmount(options.closeTimeout)
        self.logger = options.logger
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        closeTimer?.cancel()
        closeTimer = nil
        closeState = .closing
        finishInbound(code: nil, reason: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closeTimer?.cancel()
        closeTimer = nil
        closeState = .closing
        finishInbound(code: nil, reason: nil)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        switch frame.opcode {
        case .binary:
            guard closeState != .closing else { return }
            let payload = frame.unmaskedData
            let decoded = payload.withUnsafeReadableBytes { raw in
                Result { () throws(MessageDecodingError) -> RelayMessage in try RelayMessage.decode(raw) }
            }
            switch decoded {
            case let .success(message):
                deliver(.message(message))
            case let .failure(error):
                deliver(.undecodable(bytes: Array(payload.readableBytesView), error: error))
            }
        case .text:
            guard closeState != .closing else { return }
            deliver(.undecodable(bytes: Array(frame.unmaskedData.readableBytesView), error: RelayInbound.textMessageError))
        case .ping:
            guard closeState == .open else { return }
            let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
            context.writeAndFlush(Self.wrapOutboundOut(pong), promise: nil)
        case .pong:
            break
        case .connectionClose:
            receivedClose(frame, context: context)
        default:
            // Reserved opcodes (the aggregator never forwards continuations).
            logger.debug("relay sent a frame with reserved opcode", metadata: ["opcode": "\(frame.opcode)"])
            failConnection(code: Self.protocolErrorCode, context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("relay connection error", metadata: ["error": "\(RelayConnectionError.oneLine(error))"])
        switch error {
        case NIOWebSocketFrameAggregator.Error.accumulatedFrameSizeIsTooLarge:
            failConnection(code: Self.messageTooBigCode, context: context)
        case is NIOWebSocketFrameAggregator.Error:
            failConnection(code: Self.protocolErrorCode, context: context)
        case is NIOWebSocketError:
            // WebSocketProtocolErrorHandler has already sent the Close frame and closes the channel.
            closeState = .closing
        default:
            closeState = .closing
            context.close(promise: nil)
        }
    }

    /// The read gate: a `read()` reaches the socket only while the queue allows it.
    func read(context: ChannelHandlerContext) {
        switch queue.readRequested() {
        case .forward: context.read()
        case .withhold: break
        }
    }

    // MARK: Closing handshake

    /// RFC 6455 §7.4.1 status codes used here.
    static let normalClosureCode: UInt16 = 1000
    static let protocolErrorCode: UInt16 = 1002
    static let messageTooBigCode: UInt16 = 1009

    private func receivedClose(_ frame: WebSocketFrame, context: ChannelHandlerContext) {
        var body = frame.unmaskedData
        let code: UInt16? = body.readableBytes >= 2 ? body.readInteger(as: UInt16.self) : nil
        let text = body.readableBytes > 0 ? String(decoding: body.readableBytesView, as: UTF8.self) : ""
        let reason = text.isEmpty ? nil : text
        // Report the Close first: closing the channel below may run channelInactive
        // synchronously, which would otherwise finish the queue without the code.
        finishInbound(code: code, reason: reason)
        switch closeState {
        case .open:
            // The relay started the handshake: echo its code (RFC 6455 §5.5.1), then close.
            closeState = .closing
            let echoed = code.flatMap { Self.isSendableCloseCode($0) ? $0 : nil }
            context.writeAndFlush(Self.wrapOutboundOut(closeFrame(code: echoed, context: context)))
                .assumeIsolated()
                .whenComplete { _ in context.close(promise: nil) }
        case .closeSent:
            // The relay answered our Close: the handshake is complete.
            closeState = .closing
            closeTimer?.cancel()
            closeTimer = nil
            context.close(promise: nil)
        case .closing:
            break
        }
    }

    /// Sends a Close frame with `code` (if nothing was sent yet) and closes the channel.
    private func failConnection(code: UInt16, context: ChannelHandlerContext) {
        guard closeState != .closing else {
            context.close(promise: nil)
            return
        }
        closeState = .closing
        context.writeAndFlush(Self.wrapOutboundOut(closeFrame(code: code, context: context)))
            .assumeIsolated()
            .whenComplete { _ in context.close(promise: nil) }
    }

    private func closeFrame(code: UInt16?, context: ChannelHandlerContext) -> WebSocketFrame {
        var body = context.channel.allocator.buffer(capacity: 2)
        if let code { body.writeInteger(code) }
        return WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: body)
    }

    /// Codes an endpoint may put in a Close frame (RFC 6455 §7.4): not 1004–1006, 1015,
    /// or anything outside 1000–4999 and not yet registered below 3000.
    private static func isSendableCloseCode(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: true
        default: false
        }
    }

    // MARK: Inbound queue

    /// Queues an item that arrived another way (a `FRAME` over the UDP media path, which
    /// shares this event loop), exactly as if it had come over the WebSocket.
    func deliverFromMediaPath(_ item: RelayInbound) {
        guard closeState != .closing else { return }
        deliver(item, viaMediaPath: true)
    }

    /// Set by a consumer that runs on this event loop (a ``Participant``): offered each
    /// audio frame that would wake the consumer parked in ``next(_:continuation:timeout:)``
    /// with nothing else queued, so strictly in order. It returns true when it handled the
    /// frame itself, synchronously: no continuation to resume and no task to schedule per
    /// frame. Anything else, and every item while the consumer is busy, takes the queue.
    var inlineAudioConsumer: (@Sendable (RelayInbound) -> Bool)?
    /// Audio frames the inline consumer handled.
    private(set) var inlineDelivered = 0

    private func deliver(_ item: RelayInbound, viaMediaPath: Bool = false) {
        if let inlineAudioConsumer, queue.isIdleWithWaiter, case .message(.frame(let f)) = item, f.header.kind == .audio,
            inlineAudioConsumer(item)
        {
            inlineDelivered += 1
            return
        }
        switch queue.receive(item, at: NIODeadline.now().uptimeNanoseconds, viaMediaPath: viaMediaPath) {
        case let .resume(waiter, item): resume(waiter, with: item)
        case .buffered, .ignored: break
        }
    }

    private func finishInbound(code: UInt16?, reason: String?) {
        for (waiter, item) in queue.finish(.closed(code: code, reason: reason)) {
            resume(waiter, with: item)
        }
    }

    private func resume(_ waiter: InboundWaiter, with item: RelayInbound?) {
        waiter.timeoutTask?.cancel()
        waiter.timeoutTask = nil
        let continuation = waiter.continuation
        waiter.continuation = nil
        continuation?.resume(returning: item)
    }

    // MARK: Operations from RelayConnection (on the event loop)

    /// Hands the next item to `continuation`, now or when one arrives; after `timeout`
    /// fails it with ``RelayConnectionError/timeout`` (the queue is untouched).
    func next(_ waiter: InboundWaiter, continuation: CheckedContinuation<RelayInbound?, any Error>, timeout: TimeAmount?) {
        guard !waiter.isCancelled else {
            continuation.resume(throwing: CancellationError())
            return
        }
        switch queue.next(for: waiter, at: NIODeadline.now().uptimeNanoseconds) {
        case let .item(item, resumeReading):
            continuation.resume(returning: item)
            if resumeReading { context?.read() }
        case .end:
            continuation.resume(returning: nil)
        case .wait:
            waiter.continuation = continuation
            if let timeout {
                waiter.timeoutTask = eventLoop.assumeIsolated().scheduleTask(in: timeout) {
                    self.abandon(waiter, with: RelayConnectionError.timeout)
                }
            }
        }
    }

    /// The task waiting in `waiter` was cancelled.
    func cancel(_ waiter: InboundWaiter) {
        waiter.isCancelled = true
        abandon(waiter, with: CancellationError())
    }

    private func abandon(_ waiter: InboundWaiter, with error: any Error) {
        guard queue.removeWaiter(waiter) else { return }
        waiter.timeoutTask?.cancel()
        waiter.timeoutTask = nil
        let continuation = waiter.continuation
        waiter.continuation = nil
        continuation?.resume(throwing: error)
    }

    /// Writes `frames` in order and flushes; fails with ``RelayConnectionError/closed`` once
    /// the closing handshake has begun or the channel is gone.
    func write(_ frames: [WebSocketFrame]) -> EventLoopFuture<Void> {
        precondition(!frames.isEmpty, "nothing to write")
        guard let context, closeState == .open else {
            return eventLoop.makeFailedFuture(RelayConnectionError.closed)
        }
        for frame in frames.dropLast() {
            context.write(Self.wrapOutboundOut(frame), promise: nil)
        }
        let promise = eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(Self.wrapOutboundOut(frames[frames.count - 1]), promise: promise)
        return promise.futureResult.flatMapErrorThrowing { _ in throw RelayConnectionError.closed }
    }

    /// Starts the closing handshake with `code`; closes the channel when the relay answers
    /// or after `closeTimeout`.
    func startClose(code: UInt16) {
        guard let context else { return }
        guard closeState == .open else {
            if closeState == .closing { context.close(promise: nil) }
            return
        }
        closeState = .closeSent
        // The relay's Close frame must be read even if the user paused reading.
        if queue.isPausedByUser { setReadingPaused(false) }
        context.writeAndFlush(Self.wrapOutboundOut(closeFrame(code: code, context: context)), promise: nil)
        closeTimer = eventLoop.assumeIsolated().scheduleTask(in: closeTimeout) {
            context.close(promise: nil)
        }
    }

    /// Items received and not yet taken.
    var bufferedCount: Int { queue.bufferedCount }
    /// A `read()` is being held back (backpressure engaged): nothing more comes off the
    /// socket until the consumer drains the queue.
    var isReadWithheld: Bool { queue.hasWithheldRead }

    /// Drops and peak depths of the inbound queue.
    var statistics: InboundStatistics { queue.statistics }

    static func nanoseconds(_ d: Duration) -> UInt64 {
        let c = d.components
        guard c.seconds >= 0 else { return 0 }
        return UInt64(c.seconds) * 1_000_000_000 + UInt64(c.attoseconds / 1_000_000_000)
    }

    /// ``RelayConnection/pauseReading()`` and ``RelayConnection/resumeReading()``.
    ///
    /// Besides the queue's read gate this toggles the channel's `autoRead`: turning it off
    /// drops the socket's read interest at once, where the gate alone would still let the
    /// read already requested complete.
    func setReadingPaused(_ paused: Bool) {
        guard let context else { return }
        let issueRead = queue.setPausedByUser(paused)
        try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: !paused)
        if issueRead { context.read() }
    }
}

@available(*, unavailable)
extension RelayWebSocketHandler: Sendable {}
