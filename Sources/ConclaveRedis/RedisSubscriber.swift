import Logging
import NIOCore
import Synchronization

/// A pub/sub connection to a fixed set of channels that resubscribes after every
/// reconnection.
///
/// Messages published while the connection was down are lost (Redis pub/sub keeps
/// nothing), so ``Event/subscribed`` is delivered each time the subscriptions are active
/// again: a consumer re-reads whatever state it mirrors at that point. Events wait in a
/// bounded buffer; past ``bufferLimit`` the oldest are dropped, and the consumer learns
/// of it from ``droppedEvents``.
public final class RedisSubscriber: Sendable {
    public enum Event: Sendable, Equatable {
        case message(channel: String, payload: [UInt8])
        /// Every channel's subscription is confirmed (after each connect).
        case subscribed
        /// The connection was lost; messages may be missed until the next ``subscribed``.
        case disconnected(String)
    }

    public let configuration: RedisClientConfiguration
    public let channels: [String]
    public let bufferLimit: Int
    public let events: AsyncStream<Event>
    private let continuation: AsyncStream<Event>.Continuation
    private let group: EventLoopGroup
    private let logger: Logger
    private let dropped = Atomic<Int>(0)
    private let supervisor = Mutex<Task<Void, Never>?>(nil)
    private let current = Mutex<RedisConnection?>(nil)

    public init(
        configuration: RedisClientConfiguration, channels: [String], group: EventLoopGroup,
        bufferLimit: Int = 1024, logger: Logger = Logger(label: "conclave.redis.pubsub")
    ) {
        precondition(!channels.isEmpty && bufferLimit > 0)
        self.configuration = configuration
        self.channels = channels
        self.bufferLimit = bufferLimit
        self.group = group
        self.logger = logger
        (events, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingNewest(bufferLimit))
    }

    /// Events dropped because the consumer fell ``bufferLimit`` behind.
    public var droppedEvents: Int { dropped.load(ordering: .relaxed) }

    public func start() {
        supervisor.withLock { task in
            guard task == nil else { return }
            task = Task { await self.supervise() }
        }
    }

    public func shutdown() async {
        let task = supervisor.withLock { $0 }
        task?.cancel()
        current.withLock { $0 }?.close()
        await task?.value
        continuation.finish()
    }

    private func yield(_ event: Event) {
        if case .dropped = continuation.yield(event) { dropped.add(1, ordering: .relaxed) }
    }

    private func supervise() async {
        var attempt = 0
        var reportedOutage = false
        while !Task.isCancelled {
            let confirmed = Atomic<Int>(0)
            let expected = channels.count
            do {
                let connection = try await RedisConnection.connect(
                    to: configuration.endpoint, on: group, connectTimeout: configuration.connectTimeout,
                    commandTimeout: configuration.commandTimeout, limits: configuration.limits,
                    onPush: { [self] value in
                        guard let parts = value.elements, parts.count >= 3, let kind = parts[0].string?.lowercased() else { return }
                        switch kind {
                        case "message":
                            if let channel = parts[1].string, let payload = parts[2].bytes {
                                self.yield(.message(channel: channel, payload: payload))
                            }
                        case "subscribe":
                            if confirmed.add(1, ordering: .relaxed).newValue == expected { self.yield(.subscribed) }
                        default:
                            break
                        }
                    })
                current.withLock { $0 = connection }
                if Task.isCancelled { connection.close(); return }
                connection.sendWithoutReply([RedisCommand("SUBSCRIBE", channels)])
                attempt = 0
                reportedOutage = false
                logger.info("redis subscriber connected", metadata: ["channels": "\(channels.count)"])
                try? await connection.closeFuture.get()
                current.withLock { $0 = nil }
                if Task.isCancelled { return }
                yield(.disconnected("connection lost"))
                reportedOutage = true
            } catch {
                if !reportedOutage {
                    yield(.disconnected(RedisConnection.describe(error)))
                    reportedOutage = true
                }
            }
            let delay = configuration.backoff.delay(attempt: attempt, unit: configuration.jitter())
            attempt += 1
            try? await Task.sleep(for: delay)
        }
    }
}
