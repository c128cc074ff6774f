import NIOCore
import NIOPosix
import Synchronization

/// One command on its way to Redis, and where its reply goes (nil: no reply is awaited,
/// as for `SUBSCRIBE`, whose confirmations arrive as pushes).
struct RedisRequest: Sendable {
    let command: RedisCommand
    let promise: EventLoopPromise<RESPValue>?
}

/// Matches replies to commands in order (Redis answers a connection's commands in the
/// order it sent them, which is what makes pipelining work). Pushes, and on a subscriber
/// connection every value that answers no waiting command, go to `onPush`.
final class RedisCommandHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = RedisRequest
    typealias OutboundOut = ByteBuffer

    private var pending = CircularBuffer<EventLoopPromise<RESPValue>>(initialCapacity: 16)

    /// Fired by ``RedisConnection`` when a command outlived its timeout.
    struct CommandTimedOut { let command: String }
    private let onPush: (@Sendable (RESPValue) -> Void)?

    init(onPush: (@Sendable (RESPValue) -> Void)?) { self.onPush = onPush }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        var buffer = context.channel.allocator.buffer(capacity: 64)
        RESPEncoder.encode(request.command, into: &buffer)
        if let reply = request.promise { pending.append(reply) }
        context.write(wrapOutboundOut(buffer), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let value = unwrapInboundIn(data)
        if case .push = value {
            onPush?(value)
        } else if let next = pending.popFirst() {
            next.succeed(value)
        } else if let onPush {
            onPush(value)
        } else {
            // A reply nobody asked for: the stream is out of step; nothing after it can be trusted.
            failAll(.protocolViolation("a reply with no command waiting for it"))
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        let failure: RedisError
        switch error {
        case let e as RedisError: failure = e
        case let e as RESPParseError: failure = .protocolViolation(e.description)
        default: failure = .connectionClosed
        }
        failAll(failure)
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let timedOut = event as? CommandTimedOut {
            // Everything still waiting fails as timed out, then the connection closes: a late
            // reply must not be taken for the next command's.
            failAll(.timeout(command: timedOut.command))
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(.connectionClosed)
        context.fireChannelInactive()
    }

    private func failAll(_ error: RedisError) {
        while let p = pending.popFirst() { p.fail(error) }
    }
}

/// One TCP connection to Redis: pipelined commands with a timeout, or a subscriber's pushes.
///
/// A command that times out closes the connection (its reply could otherwise be taken for
/// the next command's); every command still waiting then fails with
/// ``RedisError/connectionClosed``. ``RedisClient`` reconnects.
public final class RedisConnection: Sendable {
    let channel: Channel
    let commandTimeout: TimeAmount
    /// Set before a timed-out connection's commands fail, so that nothing new is sent on it.
    private let closing = Atomic<Bool>(false)

    private init(channel: Channel, commandTimeout: TimeAmount) {
        self.channel = channel
        self.commandTimeout = commandTimeout
    }

    /// Completes when the connection has closed, for whatever reason.
    public var closeFuture: EventLoopFuture<Void> { channel.closeFuture }

    public var isActive: Bool { channel.isActive && !closing.load(ordering: .acquiring) }

    /// Connects, then authenticates and selects the database when the endpoint asks for it.
    public static func connect(
        to endpoint: RedisEndpoint, on group: EventLoopGroup,
        connectTimeout: Duration, commandTimeout: Duration,
        limits: RESPParser.Limits = .default,
        onPush: (@Sendable (RESPValue) -> Void)? = nil
    ) async throws -> RedisConnection {
        let parser = RESPParser(limits: limits)
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.nanoseconds(connectTimeout.nanoseconds))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RESPDecoder(parser: parser)))
                    try channel.pipeline.syncOperations.addHandler(RedisCommandHandler(onPush: onPush))
                }
            }
        let channel: Channel
        do {
            channel = try await bootstrap.connect(host: endpoint.host, port: endpoint.port).get()
        } catch {
            throw RedisError.notConnected(reason: "\(endpoint): \(Self.describe(error))")
        }
        let connection = RedisConnection(channel: channel, commandTimeout: .nanoseconds(commandTimeout.nanoseconds))
        do {
            if let password = endpoint.password {
                _ = try await connection.send(RedisCommand("AUTH", (endpoint.username.map { [$0] } ?? []) + [password]))
            }
            if endpoint.database != 0 {
                _ = try await connection.send(RedisCommand("SELECT", [String(endpoint.database)]))
            }
        } catch {
            connection.close()
            throw error
        }
        return connection
    }

    /// Sends one command; an error reply is thrown as ``RedisError/server(_:)``.
    @discardableResult
    public func send(_ command: RedisCommand) async throws -> RESPValue {
        let reply = try await pipeline([command])[0]
        if case .error(let text) = reply { throw RedisError.server(text) }
        return reply
    }

    /// Sends commands in one write and returns their replies in order. Error replies are
    /// returned as `.error` values, not thrown: in a pipeline one failing command does not
    /// undo the others. Throws when the connection fails or a reply times out.
    public func pipeline(_ commands: [RedisCommand]) async throws -> [RESPValue] {
        guard !commands.isEmpty else { return [] }
        let loop = channel.eventLoop
        let promises = commands.map { _ in loop.makePromise(of: RESPValue.self) }
        let channel = self.channel
        let name = commands[0].description
        let timeout = loop.scheduleTask(in: commandTimeout) { [self] in
            closing.store(true, ordering: .releasing)
            channel.pipeline.fireUserInboundEventTriggered(RedisCommandHandler.CommandTimedOut(command: name))
            // Promises not yet written (the channel was closing) fail here; others already did.
            for p in promises { p.fail(RedisError.timeout(command: name)) }
        }
        loop.execute {
            guard channel.isActive else {
                for p in promises { p.fail(RedisError.connectionClosed) }
                return
            }
            for (command, promise) in zip(commands, promises) {
                channel.write(RedisRequest(command: command, promise: promise), promise: nil)
            }
            channel.flush()
        }
        defer { timeout.cancel() }
        var replies: [RESPValue] = []
        replies.reserveCapacity(commands.count)
        for p in promises { replies.append(try await p.futureResult.get()) }
        return replies
    }

    /// Writes commands whose answers arrive as pushes (`SUBSCRIBE`, `PSUBSCRIBE`).
    func sendWithoutReply(_ commands: [RedisCommand]) {
        let channel = self.channel
        channel.eventLoop.execute {
            for c in commands { channel.write(RedisRequest(command: c, promise: nil), promise: nil) }
            channel.flush()
        }
    }

    public func close() {
        closing.store(true, ordering: .releasing)
        channel.close(promise: nil)
    }

    static func describe(_ error: Error) -> String {
        if let e = error as? RedisError { return e.description }
        if error is ChannelError { return "\(error)" }
        return String(describing: type(of: error)) + ": \(error)"
    }
}
