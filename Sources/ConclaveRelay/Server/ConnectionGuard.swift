import NIOCore

/// The first handler of every accepted TCP connection, before TLS and HTTP: it counts the
/// connection against `max-connections` and its address's
/// `max-pending-connections-per-address` from accept on, and closes it if it has not
/// joined or created a room within `handshake-timeout-seconds` of the accept, whatever it
/// sends meanwhile (nothing, half a request, one byte at a time). PROTOCOL.md 5.1.
final class ConnectionGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private enum State {
        case new
        /// Holding a pending slot for `address`.
        case pending(address: String)
        /// Upgraded: the slot became a registered connection.
        case upgraded(ConnectionOutbox?)
        case refused
        /// Over the connection limit, within the reserve: upgraded only to be told so.
        case refusing
    }

    private let core: RelayCore
    private var state = State.new
    private var deadline: Scheduled<Void>?

    init(core: RelayCore) { self.core = core }

    func channelActive(context: ChannelHandlerContext) {
        let address = context.channel.remoteAddress?.ipAddress ?? "unknown"
        let verdict = core.accepted(address: address)
        if verdict == .refuseAfterUpgrade {
            core.metrics.limitHit("connections")
            state = .refusing
            scheduleDeadline(context: context)
            return context.fireChannelActive()
        }
        if let refusal = verdict {
            state = .refused
            switch refusal {
            case .atCapacity: core.metrics.limitHit("connections")
            case .addressCap: core.metrics.limitHit("pending_per_address")
            case .shuttingDown, .refuseAfterUpgrade: break
            }
            // Nothing is read from it: no TLS, no HTTP, no WebSocket work for a refused peer.
            context.close(promise: nil)
            return
        }
        state = .pending(address: address)
        scheduleDeadline(context: context)
        context.fireChannelActive()
    }

    private func scheduleDeadline(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: .seconds(Int64(core.configuration.handshakeTimeoutSeconds))) {
            let (handler, context) = loopBound.value
            handler.expire(context: context)
        }
    }

    /// True for a connection accepted over the limit: its upgrade only carries `at_capacity`.
    var isRefusing: Bool {
        if case .refusing = state { return true }
        return false
    }

    /// The WebSocket upgrade registered this connection (its pending slot is released by
    /// the registration); nil outbox: the registration was refused.
    func upgraded(_ outbox: ConnectionOutbox?) {
        state = .upgraded(outbox)
    }

    /// `JOIN` or `CREATE_ROOM` arrived: the deadline no longer applies.
    func handshakeDone() {
        deadline?.cancel()
        deadline = nil
    }

    private func expire(context: ChannelHandlerContext) {
        switch state {
        case .pending, .refusing:
            core.metrics.limitHit("handshake_timeout")
            context.close(promise: nil)
        case .upgraded(let outbox?):
            core.handshakeExpired(outbox)
        case .upgraded(nil), .new, .refused:
            break
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .refused = state { return }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        if case .pending(let address) = state { core.pendingEnded(address: address) }
        if case .refusing = state { core.refusalEnded() }
        state = .refused
        context.fireChannelInactive()
    }
}
