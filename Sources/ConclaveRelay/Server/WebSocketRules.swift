import NIOCore
import NIOWebSocket
import ConclaveProtocol

/// RFC 6455 section 5 for frames from a client, checked before anything else reads them
/// (PROTOCOL.md 5.1): each violation fails the connection with a close frame carrying the
/// RFC's code, then closes it.
///
/// - RSV1, RSV2 or RSV3 set (no extension is negotiated): 1002 protocol error;
/// - an unmasked frame (a client MUST mask): 1002;
/// - a reserved opcode (0x3–0x7, 0xB–0xF): 1002;
/// - a fragmented control frame, or one with more than 125 bytes: 1002.
///
/// Fragmented data messages are legal: ``NIOWebSocketFrameAggregator`` after this handler
/// joins them (at most ``maximumFragments`` fragments and the protocol's message limit);
/// a continuation with nothing to continue, or a new message before the last one ended,
/// is 1002, and a message over the limit 1009 (``failure(for:)``).
final class WebSocketRules: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    static let maximumFragments = 64
    /// The aggregated message limit: a little over the protocol's, so that a message just
    /// too long still gets the typed `too_large` (5.1).
    static let maximumMessageBytes = MessageLimits.maximumMessageLength + 1024

    private var failed = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        let frame = unwrapInboundIn(data)
        let opcode = UInt8(webSocketOpcode: frame.opcode)
        // Reserved bits (no extension is negotiated), an unmasked frame, a reserved opcode
        // (0x3–0x7, 0xB–0xF), or a fragmented or oversized control frame.
        let violates =
            frame.rsv1 || frame.rsv2 || frame.rsv3 || frame.maskKey == nil
            || opcode > 0xA || (opcode > 0x2 && opcode < 0x8)
            || (opcode >= 0x8 && (!frame.fin || frame.length > 125))
        guard violates else { return context.fireChannelRead(data) }
        failed = true
        Self.failConnection(context: context, code: .protocolError)
    }

    /// The close code for an aggregation error, if it is one.
    static func failure(for error: Error) -> WebSocketErrorCode? {
        guard let e = error as? NIOWebSocketFrameAggregator.Error else { return nil }
        return e == .accumulatedFrameSizeIsTooLarge ? .messageTooLarge : .protocolError
    }

    /// Sends a close frame with `code`, then closes the connection.
    static func failConnection(context: ChannelHandlerContext, code: WebSocketErrorCode) {
        var body = context.channel.allocator.buffer(capacity: 2)
        body.write(webSocketErrorCode: code)
        let close = WebSocketFrame(fin: true, opcode: .connectionClose, data: body)
        let channel = context.channel
        context.writeAndFlush(NIOAny(close)).whenComplete { _ in channel.close(promise: nil) }
    }

    /// The aggregator that joins legal fragments (after this handler in the pipeline).
    static func aggregator() -> NIOWebSocketFrameAggregator {
        NIOWebSocketFrameAggregator(
            minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: maximumFragments,
            maxAccumulatedFrameSize: maximumMessageBytes)
    }
}
