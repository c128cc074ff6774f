import NIOCore
import ConclaveProtocol

/// The relay's end of the UDP media path: one per media socket (event loop).
///
/// Each datagram goes through ``RelayCore/mediaDatagram(_:from:targets:)`` (parse, hop
/// tag, replay window, policy), then is written to every UDP target as a slice of the
/// received buffer (no copy). The flush comes once per read burst, after every datagram of
/// the burst has been fanned out, so NIO hands all of them to the kernel in one `sendmmsg`
/// (at most one flush per fan-out, usually far fewer). Recipients without a live UDP path get it over their
/// WebSocket. `targets` is reused: after warm-up the forwarding path allocates nothing.
final class MediaDatagramHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let core: RelayCore
    private var targets = MediaTargets(capacity: 64)
    /// Datagrams written since the last flush.
    private var pendingFlush = false

    init(core: RelayCore) {
        self.core = core
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = Self.unwrapInboundIn(data)
        let buffer = envelope.data
        let outcome = buffer.withUnsafeReadableBytes { raw in
            core.mediaDatagram(raw, from: envelope.remoteAddress, targets: &targets)
        }
        switch outcome {
        case .forward(let body):
            let frame = buffer.getSlice(at: buffer.readerIndex + body.lowerBound, length: body.count)!
            for address in targets.udp {
                context.write(Self.wrapOutboundOut(AddressedEnvelope(remoteAddress: address, data: frame)), promise: nil)
            }
            pendingFlush = pendingFlush || !targets.udp.isEmpty
            if !targets.websocket.isEmpty {
                // A copy, not the slice: a slice would keep the whole 64 KiB receive buffer
                // alive while it waits in a WebSocket queue that counts only its 168 bytes.
                let copy = context.channel.allocator.buffer(buffer: frame)
                for outbox in targets.websocket {
                    outbox.send(copy, class: .media)
                }
            }
        case .acknowledge(let ack):
            core.metrics.udpKeepalives.increment()
            context.writeAndFlush(
                Self.wrapOutboundOut(
                    AddressedEnvelope(
                        remoteAddress: envelope.remoteAddress,
                        data: context.channel.allocator.buffer(bytes: ack))), promise: nil)
        case .notify(let outbox, let notice):
            outbox.send(.error(notice))
        case .dropped:
            break
        }
        targets.reset()
    }

    /// One flush per read burst (up to `vectorReadCount` datagrams per read, a few reads
    /// per burst): every fan-out of the burst leaves in one `sendmmsg`.
    func channelReadComplete(context: ChannelHandlerContext) {
        if pendingFlush {
            pendingFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP port unreachable and the like surface here for unconnected UDP sockets; a
        // datagram socket has no connection to close, so count and carry on.
        core.metrics.udpDropped("other")
    }
}
