import Logging
import NIOCore
import Synchronization

/// Timeouts, backoff and limits shared by ``RedisClient`` and ``RedisSubscriber``.
public struct RedisClientConfiguration: Sendable {
    public var endpoint: RedisEndpoint
    /// How long a TCP connect may take.
    public var connectTimeout: Duration
    /// How long a command (or pipeline) may wait for its reply, including the wait for a
    /// connection while Redis is unreachable.
    public var commandTimeout: Duration
    public var backoff: ReconnectBackoff
    public var limits: RESPParser.Limits
    /// A random number in [0, 1) for the backoff's jitter (injected by tests).
    public var jitter: @Sendable () -> Double

    public init(
        endpoint: RedisEndpoint, connectTimeout: Duration = .seconds(1), commandTimeout: Duration = .seconds(1),
        backoff: ReconnectBackoff = ReconnectBackoff(), limits: RESPParser.Limits = .default,
        jitter: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
    ) {
        self.endpoint = endpoint
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.backoff = backoff
        self.limits = limits
        self.jitter = jitter
    }
}

/// What a client's connection did, for logs and metrics.
public enum RedisConnectionEvent: Sendable, Equatable {
    case connected
    /// The connection was lost or could not be made; the text says why. Reported once
    /// per outage, not per failed attempt.
    case disconnected(String)
}

/// A Redis client that keeps one connection up: it reconnects with exponential backoff
/// (``ReconnectBackoff``) whenever the connection is lost, and commands sent meanwhile
/// wait for it, up to the command timeout.
///
/// Commands are never retried: after ``RedisError/connectionClosed`` a command may or may
/// not have run, and only the caller knows whether running it twice is safe.
public final class RedisClient: Sendable {
    public let configuration: RedisClientConfiguration
    private let group: EventLoopGroup
    private let logger: Logger
    private let onEvent: @Sendable (RedisConnectionEvent) -> Void

    private struct State {
        var connection: RedisConnection?
        var waiters: [Int: CheckedContinuation<RedisConnection, Error>] = [:]
        var nextWaiter = 0
        var supervisor: Task<Void, Never>?
        var isShutdown = false
        var lastFailure = "not connected yet"
    }
    private let state = Mutex(State())

    public init(
        configuration: RedisClientConfiguration, group: EventLoopGroup, logger: Logger = Logger(label: "conclave.redis"),
        onEvent: @escaping @Sendable (RedisConnectionEvent) -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
        self.onEvent = onEvent
    }

    /// Starts connecting (idempotent). Commands sent before this wait for it.
    public func start() {
        state.withLock { s in
            guard s.supervisor == nil, !s.isShutdown else { return }
            s.supervisor = Task { await self.supervise() }
        }
    }

    /// Closes the connection and fails every waiting command with ``RedisError/shutdown``.
    public func shutdown() async {
        let (task, connection, waiters) = state.withLock { s in
            s.isShutdown = true
            let w = s.waiters
            s.waiters = [:]
            return (s.supervisor, s.connection, w)
        }
        task?.cancel()
        connection?.close()
        for (_, w) in waiters { w.resume(throwing: RedisError.shutdown) }
        await task?.value
    }

    /// True while a connection is up.
    public var isConnected: Bool { state.withLock { $0.connection?.isActive ?? false } }

    /// Sends one command; an error reply is thrown as ``RedisError/server(_:)``.
    @discardableResult
    public func send(_ command: RedisCommand) async throws -> RESPValue {
        try await connection().send(command)
    }

    /// Sends commands in one write; replies in order, error replies as values.
    public func pipeline(_ commands: [RedisCommand]) async throws -> [RESPValue] {
        try await connection().pipeline(commands)
    }

    /// The live connection, or the next one within the command timeout.
    func connection() async throws -> RedisConnection {
        let (ready, id) = try state.withLock { s -> (RedisConnection?, Int) in
            if s.isShutdown { throw RedisError.shutdown }
            if let c = s.connection, c.isActive { return (c, 0) }
            s.nextWaiter += 1
            return (nil, s.nextWaiter)
        }
        if let ready { return ready }
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<RedisConnection, Error>) in
            let immediate = state.withLock { s -> Result<RedisConnection, Error>? in
                if s.isShutdown { return .failure(RedisError.shutdown) }
                if let c = s.connection, c.isActive { return .success(c) }
                s.waiters[id] = continuation
                return nil
            }
            if let immediate { return continuation.resume(with: immediate) }
            group.next().scheduleTask(in: .nanoseconds(configuration.commandTimeout.nanoseconds)) {
                let expired = self.state.withLock { s in (s.waiters.removeValue(forKey: id), s.lastFailure) }
                expired.0?.resume(throwing: RedisError.notConnected(reason: expired.1))
            }
        }
    }

    private func supervise() async {
        var attempt = 0
        var reportedOutage = false
        while !Task.isCancelled {
            do {
                let connection = try await RedisConnection.connect(
                    to: configuration.endpoint, on: group, connectTimeout: configuration.connectTimeout,
                    commandTimeout: configuration.commandTimeout, limits: configuration.limits)
                let (waiters, stop) = state.withLock { s in
                    if s.isShutdown { return ([CheckedContinuation<RedisConnection, Error>](), true) }
                    s.connection = connection
                    let w = Array(s.waiters.values)
                    s.waiters = [:]
                    return (w, false)
                }
                if stop { connection.close(); return }
                attempt = 0
                reportedOutage = false
                logger.info("redis connected", metadata: ["endpoint": "\(configuration.endpoint)"])
                onEvent(.connected)
                for w in waiters { w.resume(returning: connection) }
                try? await connection.closeFuture.get()
                state.withLock { s in
                    if s.connection === connection { s.connection = nil }
                    s.lastFailure = "the connection to \(configuration.endpoint) closed"
                }
                if Task.isCancelled { return }
                logger.warning("redis connection lost", metadata: ["endpoint": "\(configuration.endpoint)"])
                onEvent(.disconnected("connection lost"))
                reportedOutage = true
            } catch {
                let reason = RedisConnection.describe(error)
                state.withLock { $0.lastFailure = reason }
                if !reportedOutage {
                    logger.warning("redis unreachable", metadata: ["reason": "\(reason)"])
                    onEvent(.disconnected(reason))
                    reportedOutage = true
                }
            }
            let delay = configuration.backoff.delay(attempt: attempt, unit: configuration.jitter())
            attempt += 1
            try? await Task.sleep(for: delay)
        }
    }
}
