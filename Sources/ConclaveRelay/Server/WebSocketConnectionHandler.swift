import Logging
import NIOCore
import NIOWebSocket
import ConclaveCrypto
import ConclaveProtocol

/// One client connection after the WebSocket upgrade: decodes each binary message, applies
/// the per-connection limits, and hands it to the ``RelayCore``.
///
/// Every malformed, oversized or out-of-state message gets a typed `ERROR` and the
/// connection closes; nothing here can trap on client input.
final class WebSocketConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private enum Phase { case awaitingHello, awaitingRoom(challenge: [UInt8]), requested, inRoom }

    private let core: RelayCore
    private let outbox: ConnectionOutbox
    private var phase = Phase.awaitingHello
    private var frames: TokenBucket
    private var bytes: TokenBucket
    private var control: TokenBucket
    private var rateNoticeSent = false

    init(core: RelayCore, outbox: ConnectionOutbox) {
        let c = core.configuration
        self.core = core
        self.outbox = outbox
        let now = core.clock.now.milliseconds
        frames = TokenBucket(ratePerSecond: UInt64(c.maxFramesPerSecond), burst: UInt64(2 * c.maxFramesPerSecond), now: now)
        bytes = TokenBucket(ratePerSecond: UInt64(c.maxBytesPerSecond), burst: UInt64(2 * c.maxBytesPerSecond), now: now)
        control = TokenBucket(ratePerSecond: UInt64(c.maxControlPerSecond), burst: UInt64(2 * c.maxControlPerSecond), now: now)
    }

    // The handshake deadline runs from TCP accept: ``ConnectionGuard`` keeps it.

    func channelInactive(context: ChannelHandlerContext) {
        core.disconnected(outbox.id, reason: .disconnected)
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            core.metrics.limitHit("idle_timeout")
            outbox.close(with: ErrorMessage(code: .idleTimeout, isFatal: true, message: "nothing received for \(core.configuration.idleTimeoutSeconds) s"))
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary:
            handleMessage(context: context, frame.unmaskedData)
        case .text:
            reject(.malformed, "text WebSocket messages are not part of the protocol; send binary messages")
        case .ping:
            var pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            pong.maskKey = nil
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            context.close(promise: nil)
        default:
            break
        }
    }

    private func handleMessage(context: ChannelHandlerContext, _ buffer: ByteBuffer) {
        let now = core.clock.now.milliseconds
        guard buffer.readableBytes <= MessageLimits.maximumMessageLength else {
            return reject(.tooLarge, "message of \(buffer.readableBytes) bytes exceeds the limit of \(MessageLimits.maximumMessageLength)")
        }
        // FRAME: the hot path. Route on the 8-byte header; forward the buffer untouched.
        if buffer.readableBytes >= 2, buffer.getInteger(at: buffer.readerIndex + 1, as: UInt8.self) == MessageType.frame.rawValue {
            // Decoded first, as every message is (5.1): a bad FRAME before JOIN is
            // `malformed`, `unsupported_version` or `too_large`, not out of state.
            let decoded = buffer.withUnsafeReadableBytes { raw in
                Result { () throws(MessageDecodingError) in try FrameHeader.decode(message: raw).header }
            }
            let header: FrameHeader
            switch decoded {
            case .success(let h): header = h
            case .failure(let error): return reject(error.wireCode, error.description)
            }
            guard case .inRoom = phase else { return reject(.unexpectedMessage, "frames are only accepted after joining a room") }
            guard frames.consume(1, now: now), bytes.consume(UInt64(buffer.readableBytes), now: now) else {
                core.metrics.limitHit(frames.availableTokens(now: now) < 1 ? "frames_per_second" : "bytes_per_second")
                core.metrics.dropped("rate_limited")
                if !rateNoticeSent {
                    rateNoticeSent = true
                    outbox.send(.error(ErrorMessage(code: .rateLimited, isFatal: false, message: "frame rate limit exceeded; frames are being dropped")))
                }
                return
            }
            rateNoticeSent = false
            if let error = core.frame(header, message: buffer, from: outbox) {
                outbox.close(with: error)
            }
            return
        }

        let decoded = buffer.withUnsafeReadableBytes { raw in
            Result { () throws(MessageDecodingError) in try ClientMessage.decode(raw) }
        }
        let message: ClientMessage
        switch decoded {
        case .success(let m): message = m
        case .failure(let error): return reject(error.wireCode, error.description)
        }
        if case .ping(let nonce) = message {
            outbox.send(.pong(nonce: nonce))
            return
        }
        guard control.consume(1, now: now) else {
            core.metrics.limitHit("control_per_second")
            return reject(.rateLimited, "more than \(core.configuration.maxControlPerSecond) control messages per second")
        }
        switch (phase, message) {
        case (.awaitingHello, .hello(let hello)):
            guard hello.minimumVersion <= ProtocolVersion.current, hello.maximumVersion >= ProtocolVersion.current else {
                return reject(.unsupportedVersion, "this relay speaks protocol version \(ProtocolVersion.current) only")
            }
            let challenge = core.random.bytes(MessageLimits.challengeLength)
            phase = .awaitingRoom(challenge: challenge)
            outbox.send(
                .welcome(
                    WelcomeMessage(
                        version: ProtocolVersion.current, challenge: challenge,
                        maximumMessageLength: UInt16(MessageLimits.maximumMessageLength),
                        maximumFramesPerSecond: UInt16(clamping: core.configuration.maxFramesPerSecond))))
        case (.awaitingRoom(let challenge), .createRoom(let create)):
            phase = .inRoom
            handshakeDone(context)
            core.createRoom(create, challenge: challenge, from: outbox)
        case (.awaitingRoom(let challenge), .join(let join)):
            phase = .inRoom
            handshakeDone(context)
            core.join(join, challenge: challenge, from: outbox)
        case (.inRoom, .command(let command)):
            core.command(command, from: outbox)
        default:
            reject(.unexpectedMessage, "\(message.type.name) is not valid in this state of the connection")
        }
    }

    /// `JOIN` or `CREATE_ROOM` arrived in time: the deadline kept since accept is off.
    private func handshakeDone(_ context: ChannelHandlerContext) {
        (try? context.pipeline.syncOperations.handler(type: ConnectionGuard.self))?.handshakeDone()
    }

    private func reject(_ code: ErrorCode, _ text: String) {
        outbox.close(with: ErrorMessage(code: code, isFatal: true, message: String(text.prefix(MessageLimits.maximumErrorTextLength))))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A fragmented message that breaks RFC 6455 (or the size limit): its close code.
        if let code = WebSocketRules.failure(for: error) {
            return WebSocketRules.failConnection(context: context, code: code)
        }
        // WebSocket protocol errors (oversized frame…) are answered by NIO's automatic
        // error handling; anything else closes the connection.
        core.logger.debug("connection error", metadata: ["error": "\(type(of: error))"])
        context.close(promise: nil)
    }
}
