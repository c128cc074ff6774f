#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization
import NIOCore
import NIOPosix
import NIOHTTP1
import NIOWebSocket
import NIOSSL
import ServiceLifecycle
import ConclaveProtocol
import ConclaveCrypto
import ConclaveRedis

/// The relay daemon: one port serving WebSocket upgrades on `/v1`, `GET /healthz` and
/// `GET /metrics`, in plaintext on loopback or with TLS.
public final class RelayServer: Sendable {
    public let configuration: RelayConfiguration
    public let metrics: RelayMetrics
    let core: RelayCore
    private let group: EventLoopGroup
    private let threadPool: NIOThreadPool
    private let logger: Logger
    private let serverChannel: NIOLockedBox<Channel?>
    let mediaSockets = NIOLockedBox<[MediaSocket]>([])

    /// `clock`: the relay's time, for tests where a timer is the subject (``ManualRelayClock``).
    public init(
        configuration: RelayConfiguration, logger: Logger = Logger(label: "conclave.relay"),
        group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton, clock: any RelayClock = MonotonicRelayClock()
    ) throws {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        self.group = group
        self.metrics = RelayMetrics()
        self.threadPool = NIOThreadPool(numberOfThreads: 2)
        self.threadPool.start()
        self.core = RelayCore(configuration: configuration, metrics: metrics, logger: logger, threadPool: threadPool, clock: clock)
        self.serverChannel = NIOLockedBox(nil)
        if let url = configuration.clusterRedisURL {
            let endpoint: RedisEndpoint
            do { endpoint = try RedisEndpoint(url: url) } catch { throw RelayServerError.cluster("\(error)") }
            let key = try Self.readClusterKey(configuration.clusterKeyFile ?? "")
            let nodeID =
                configuration.nodeID
                ?? SecureRandom.bytes(count: 8).map { b in
                    String(Array("0123456789abcdef")[Int(b >> 4)]) + String(Array("0123456789abcdef")[Int(b & 15)])
                }.joined()
            clusterPlan = ClusterPlan(endpoint: endpoint, key: key, nodeID: nodeID)
        } else {
            clusterPlan = nil
        }
    }

    /// What `--cluster` asked for, checked at init; the node starts once the port is bound.
    private struct ClusterPlan: Sendable {
        let endpoint: RedisEndpoint
        let key: [UInt8]
        let nodeID: String
    }
    private let clusterPlan: ClusterPlan?

    private func startCluster(boundPort: Int) {
        guard let plan = clusterPlan else { return }
        var origin = configuration.advertisedOrigin
        if configuration.advertise == nil {
            origin = Invite.relayOrigin(secure: configuration.isTLS, host: configuration.host, port: boundPort)
        }
        let timeout = Duration.seconds(configuration.clusterNodeTimeoutSeconds)
        let core = self.core
        let node = ClusterNode(
            settings: .init(nodeID: plan.nodeID, origin: origin, key: plan.key, nodeTimeout: timeout, heartbeat: timeout / 3),
            redis: RedisClientConfiguration(endpoint: plan.endpoint, commandTimeout: .seconds(1)),
            group: group, metrics: metrics, logger: logger, load: { (core.participantCount, core.roomCount) })
        core.attach(cluster: node)
        node.start()
        logger.notice("cluster node started", metadata: ["node": "\(plan.nodeID)", "origin": "\(origin)", "redis": "\(plan.endpoint)"])
    }

    /// The cluster key: the file's bytes (at least 32, at most 4096), the same on every node.
    static func readClusterKey(_ path: String) throws -> [UInt8] {
        guard let f = fopen(path, "rb") else { throw RelayServerError.cluster("cannot read the cluster key file \(path)") }
        defer { fclose(f) }
        var buffer = [UInt8](repeating: 0, count: 4097)
        let n = buffer.withUnsafeMutableBytes { fread($0.baseAddress, 1, 4097, f) }
        guard (32...4096).contains(n) else {
            throw RelayServerError.cluster("the cluster key file \(path) must hold 32 to 4096 bytes (it holds \(n))")
        }
        return Array(buffer.prefix(n))
    }

    /// This node's id in its cluster (nil: a single relay).
    public var clusterNodeID: String? { core.cluster?.settings.nodeID }

    /// The ids of the nodes this node saw at its last heartbeat (itself included); empty on
    /// a single relay.
    public var clusterNodeIDs: [String] { core.cluster?.peers.map(\.id) ?? [] }

    /// Admitted participants in every room here.
    public var participantCount: Int { core.participantCount }

    /// The bound address (useful with port 0).
    public var localAddress: SocketAddress? { serverChannel.value?.localAddress }

    /// The bound port.
    public var port: Int? { localAddress?.port }

    /// Binds and starts serving. Returns once the socket is listening.
    public func start() async throws {
        let sslContext: NIOSSLContext?
        if let cert = configuration.tlsCertificatePath, let key = configuration.tlsKeyPath {
            do {
                let chain = try NIOSSLCertificate.fromPEMFile(cert).map { NIOSSLCertificateSource.certificate($0) }
                let tls = TLSConfiguration.makeServerConfiguration(
                    certificateChain: chain, privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
                sslContext = try NIOSSLContext(configuration: tls)
            } catch {
                throw RelayServerError.tlsSetup(String(describing: error))
            }
        } else {
            sslContext = nil
        }
        let core = self.core, metrics = self.metrics, configuration = self.configuration
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 32 * 1024, high: 64 * 1024))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ConnectionGuard(core: core))
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
                    }
                    try Self.configureHTTP(channel: channel, core: core, metrics: metrics, configuration: configuration)
                }
            }
        let channel: Channel
        do {
            channel = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
        } catch {
            throw RelayServerError.bind(host: configuration.host, port: configuration.port, reason: String(describing: error))
        }
        serverChannel.value = channel
        if configuration.mediaEnabled {
            try await bindMedia(controlPort: channel.localAddress?.port ?? configuration.port)
        }
        // Recording-acknowledgement deadlines.
        startCluster(boundPort: channel.localAddress?.port ?? configuration.port)
        let tick = channel.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in core.tick() }
        channel.closeFuture.whenComplete { _ in tick.cancel() }
        logger.notice(
            "relay listening",
            metadata: [
                "address": "\(configuration.isTLS ? "wss" : "ws")://\(configuration.host):\(channel.localAddress?.port ?? configuration.port)/v1"
            ])
    }

    /// Binds the UDP media path: `media-threads` sockets (default one per core), each with a
    /// thread of its own (``MediaSocket``), on one port with SO_REUSEPORT, so the kernel
    /// spreads clients over them.
    private func bindMedia(controlPort: Int) async throws {
        let host = configuration.mediaHost ?? configuration.host
        let port = configuration.mediaPort ?? controlPort
        let count = configuration.mediaThreads > 0 ? configuration.mediaThreads : System.coreCount
        let sockets: [MediaSocket]
        do {
            sockets = try MediaSocket.bind(host: host, port: port, count: count, core: core)
        } catch {
            throw RelayServerError.bind(host: host, port: port, reason: "UDP media: \(error)")
        }
        mediaSockets.value = sockets
        let bound = sockets.first?.port ?? port
        let advertised =
            (configuration.mediaHost == nil || configuration.mediaHost == configuration.host
                || host == "0.0.0.0" || host == "::") ? "" : host
        core.mediaPathBound(.init(advertisedHost: advertised, port: UInt16(bound), sockets: sockets))
        logger.notice("media listening", metadata: ["address": "udp://\(host):\(bound)", "sockets": "\(sockets.count)"])
    }

    /// The bound UDP media port (nil when the media path is off or not yet bound).
    public var mediaPort: Int? { mediaSockets.value.first?.port }

    private static func configureHTTP(channel: Channel, core: RelayCore, metrics: RelayMetrics, configuration: RelayConfiguration) throws {
        let http = NIOLoopBound(HTTPHandler(metrics: metrics), eventLoop: channel.eventLoop)
        let upgrader = NIOWebSocketServerUpgrader(
            // Payload bytes of one WebSocket frame. A little over the protocol's limit, so a
            // message that is just too long gets a typed `too_large` rather than a bare close.
            maxFrameSize: MessageLimits.maximumMessageLength + 1024,
            automaticErrorHandling: true,
            shouldUpgrade: { channel, head in
                // RFC 6455 4.2.1: a GET for /v1 whose key is 16 bytes in base64. Anything else
                // is not upgraded, and the HTTP handler answers 400 (5.1).
                let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
                let keys = head.headers["Sec-WebSocket-Key"]
                let valid = head.method == .GET && path == "/v1" && keys.count == 1 && Self.isWebSocketKey(keys[0])
                return channel.eventLoop.makeSucceededFuture(valid ? HTTPHeaders() : nil)
            },
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    let address = channel.remoteAddress?.ipAddress ?? "unknown"
                    let connectionGuard = try? channel.pipeline.syncOperations.handler(type: ConnectionGuard.self)
                    let overLimit = connectionGuard?.isRefusing ?? false
                    let outbox = overLimit ? nil : core.register(channel: channel, address: address)
                    if !overLimit { connectionGuard?.upgraded(outbox) }
                    guard let outbox else {
                        var close = channel.allocator.buffer(capacity: 2)
                        close.write(webSocketErrorCode: overLimit ? .policyViolation : .goingAway)
                        let refusal = RelayMessage.error(
                            overLimit
                                ? ErrorMessage(code: .atCapacity, isFatal: true, message: "the relay is at its connection limit; try again later")
                                : ErrorMessage(code: .shuttingDown, isFatal: true, message: "the relay is stopping"))
                        metrics.errorSent(overLimit ? .atCapacity : .shuttingDown)
                        channel.write(WebSocketFrame(fin: true, opcode: .binary, data: channel.allocator.buffer(bytes: refusal.encoded())), promise: nil)
                        // The TCP close waits a moment (the client answers the close frame and
                        // closes first): closing at once can reach a client still finishing
                        // its upgrade before it has read the ERROR.
                        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, data: close), promise: nil)
                        channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
                        return
                    }
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(WebSocketRules())
                    try sync.addHandler(WebSocketRules.aggregator())
                    try sync.addHandler(IdleStateHandler(readTimeout: .seconds(Int64(configuration.idleTimeoutSeconds))))
                    try sync.addHandler(WebSocketConnectionHandler(core: core, outbox: outbox))
                }
            }
        )
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
            withServerUpgrade: (
                upgraders: [upgrader],
                completionHandler: { context in
                    context.pipeline.syncOperations.removeHandler(http.value, promise: nil)
                }
            ),
            withErrorHandling: true
        )
        try channel.pipeline.syncOperations.addHandler(http.value)
    }

    /// A `Sec-WebSocket-Key`: the base64 encoding of 16 bytes (24 characters, `==` at the end).
    static func isWebSocketKey(_ key: String) -> Bool {
        let bytes = Array(key.utf8)
        guard bytes.count == 24, bytes[22] == UInt8(ascii: "="), bytes[23] == UInt8(ascii: "=") else { return false }
        let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        // The 22nd character carries 2 bits: its low 4 bits must be zero (canonical encoding).
        let last = Set("AQgw".utf8)
        return bytes[0..<21].allSatisfy { alphabet.contains($0) } && last.contains(bytes[21])
    }

    /// Notifies every client with `shutting_down`, waits up to the grace period for them to
    /// go, then closes the listening socket and the remaining connections.
    ///
    /// A cluster node drains instead (5.10): it leaves placement, tells its clients to move
    /// to another node (`REDIRECT draining`; their rooms are re-created there by their
    /// owners), and waits up to `drain-grace-seconds` for them to go.
    public func shutdown() async {
        var grace = configuration.shutdownGraceSeconds
        let notified: Int
        if let cluster = core.cluster {
            await cluster.beginDraining()
            let target = cluster.otherNodeOrigin()
            notified = core.drainAll(redirectTo: target)
            logger.notice("cluster node draining", metadata: ["notified": "\(notified)", "to": "\(target ?? "none")"])
            if target != nil { grace = configuration.drainGraceSeconds }
        } else {
            notified = core.shutdownAll()
        }
        logger.notice("relay shutting down", metadata: ["notified": "\(notified)"])
        let deadline = ContinuousClock.now + .seconds(grace)
        while core.connectionCount > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if let channel = serverChannel.value {
            try? await channel.close()
        }
        let sockets = mediaSockets.value
        if !sockets.isEmpty {
            // stop() joins a thread (up to one receive timeout): not on the cooperative pool.
            try? await threadPool.runIfActive { for socket in sockets { socket.stop() } }
        }
        await core.cluster?.stop()
        try? await threadPool.shutdownGracefully()
    }

    /// Completes when the cluster asked this node to drain (`conclave-relay drain`), or the
    /// task is cancelled; at once on a single relay.
    public func drainRequested() async {
        guard let cluster = core.cluster else { return }
        await withTaskCancellationHandler {
            await cluster.drainRequested()
        } onCancel: {
            cluster.releaseDrainWaiters()
        }
    }

    public var connectionCount: Int { core.connectionCount }
    public var roomCount: Int { core.roomCount }
}

public enum RelayServerError: Error, CustomStringConvertible {
    case bind(host: String, port: Int, reason: String)
    case tlsSetup(String)
    case cluster(String)

    public var description: String {
        switch self {
        case let .bind(h, p, r): return "cannot listen on \(h):\(p): \(r)"
        case let .tlsSetup(r): return "cannot load the TLS certificate or key: \(r)"
        case let .cluster(r): return "cannot join the cluster: \(r)"
        }
    }
}

/// The relay as a `Service` for a `ServiceGroup`: runs until graceful shutdown (SIGTERM,
/// SIGINT), then notifies clients and stops.
public struct RelayService: Service {
    public let server: RelayServer

    public init(server: RelayServer) { self.server = server }

    public func run() async throws {
        try await server.start()
        // SIGTERM/SIGINT, or in a cluster a drain request from `conclave-relay drain`.
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await gracefulShutdown() }
            if server.clusterNodeID != nil { group.addTask { await server.drainRequested() } }
            _ = await group.next()
            group.cancelAll()
        }
        await server.shutdown()
    }
}

/// A lock-protected value.
final class NIOLockedBox<Value: Sendable>: Sendable {
    private let storage: Mutex<Value>
    init(_ value: Value) { storage = Mutex(value) }
    var value: Value {
        get { storage.withLock { $0 } }
        set { storage.withLock { $0 = newValue } }
    }
}
