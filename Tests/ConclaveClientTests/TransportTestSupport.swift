import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket

// Test support for the client transport: a tiny WebSocket echo server on 127.0.0.1 with
// an ephemeral port. Certificates, waits and ports come from ConclaveTestSupport.

// MARK: - Certificates

/// A server TLS context for a certificate and key made by ``TestCertificate/make(subjectAltName:)``.
func makeServerTLSContext(certPath: String, keyPath: String) throws -> NIOSSLContext {
    let chain = try NIOSSLCertificate.fromPEMFile(certPath).map { NIOSSLCertificateSource.certificate($0) }
    let key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
    return try NIOSSLContext(configuration: .makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key)))
}

// MARK: - WebSocket echo server

/// What the echo server saw, readable from the test.
final class EchoServerLog: @unchecked Sendable {
    private let lock = NSLock()
    private var _closeCodes: [UInt16?] = []
    private var _requestTargets: [String] = []
    private var _hostHeaders: [String] = []

    /// Status codes of the Close frames clients sent (`nil` for an empty Close frame).
    var closeCodes: [UInt16?] { lock.withLock { _closeCodes } }
    /// Request targets of the HTTP requests received.
    var requestTargets: [String] { lock.withLock { _requestTargets } }
    /// `Host` headers of the HTTP requests received.
    var hostHeaders: [String] { lock.withLock { _hostHeaders } }

    func recordClose(_ code: UInt16?) { lock.withLock { _closeCodes.append(code) } }
    func recordRequest(target: String, host: String?) {
        lock.withLock {
            _requestTargets.append(target)
            if let host { _hostHeaders.append(host) }
        }
    }
}

/// A WebSocket server on 127.0.0.1 (ephemeral port) that upgrades requests for `path`,
/// answers any other request with 404, and then, per message:
///
/// - binary: echoes it;
/// - text `"ping:<data>"`: sends a Ping carrying `<data>`; the Pong that comes back is
///   turned into a binary message with the Pong's data;
/// - text `"close:<code>"`: starts the closing handshake with `<code>` and reason `"bye"`;
/// - text `"send:<count>:<size>"`: sends `count` binary messages of `size` bytes, every
///   byte of message `k` being `k & 0xFF`;
/// - any other text: echoes it as text.
///
/// A client's Close frame is answered with the same code and the connection closed.
final class WebSocketEchoServer: Sendable {
    let channel: any Channel
    let log: EchoServerLog

    /// The listening port.
    var port: Int { channel.localAddress!.port! }

    private init(channel: any Channel, log: EchoServerLog) {
        self.channel = channel
        self.log = log
    }

    /// Starts a server; with `tls`, it speaks TLS using that certificate and key.
    static func start(tls: (certPath: String, keyPath: String)? = nil, path: String = "/v1") async throws -> WebSocketEchoServer {
        let sslContext = try tls.map { try makeServerTLSContext(certPath: $0.certPath, keyPath: $0.keyPath) }
        let log = EchoServerLog()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let sslContext {
                        try pipeline.addHandler(NIOSSLServerHandler(context: sslContext))
                    }
                    try pipeline.addHandler(RequestLogger(log: log))
                    let upgrader = NIOTypedWebSocketServerUpgrader<Bool>(
                        maxFrameSize: 1 << 20,
                        shouldUpgrade: { channel, head in
                            channel.eventLoop.makeSucceededFuture(head.uri == path ? HTTPHeaders() : nil)
                        },
                        upgradePipelineHandler: { channel, _ in
                            channel.eventLoop.makeCompletedFuture {
                                try channel.pipeline.syncOperations.addHandler(
                                    NIOWebSocketFrameAggregator(
                                        minNonFinalFragmentSize: 1, maxAccumulatedFrameCount: 1_000, maxAccumulatedFrameSize: 1 << 20
                                    ))
                                try channel.pipeline.syncOperations.addHandler(EchoWebSocketHandler(log: log))
                                return true
                            }
                        }
                    )
                    _ = try pipeline.configureUpgradableHTTPServerPipeline(
                        configuration: .init(
                            upgradeConfiguration: .init(
                                upgraders: [upgrader],
                                notUpgradingCompletionHandler: { channel in
                                    channel.eventLoop.makeCompletedFuture {
                                        try channel.pipeline.syncOperations.addHandler(NotFoundHandler())
                                        return false
                                    }
                                })
                        ))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return WebSocketEchoServer(channel: channel, log: log)
    }

    /// Stops listening (connections already accepted end when their clients close).
    func stop() async {
        try? await channel.close()
    }
}

/// Records the request target and `Host` header from the first bytes a client sends (the
/// upgrade request's head). It sits below the HTTP decoder and stays in the pipeline after
/// the upgrade, where it only forwards bytes.
private final class RequestLogger: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let log: EchoServerLog
    private var seenRequest = false

    init(log: EchoServerLog) { self.log = log }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !seenRequest {
            seenRequest = true
            let text = String(buffer: Self.unwrapInboundIn(data))
            let lines = text.split(separator: "\r\n")
            let target = lines.first.map { $0.split(separator: " ").dropFirst().first.map(String.init) ?? "" } ?? ""
            let host = lines.first { $0.lowercased().hasPrefix("host:") }
                .map { $0.dropFirst(5).trimmingCharacters(in: .whitespaces) }
            log.recordRequest(target: target, host: host)
        }
        context.fireChannelRead(data)
    }
}

/// Answers a non-upgrade request with 404 and closes.
private final class NotFoundHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = Self.unwrapInboundIn(data) else { return }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: "0")
        headers.add(name: "Connection", value: "close")
        context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .notFound, headers: headers))), promise: nil)
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}

/// The echo behaviour of ``WebSocketEchoServer``. Server frames are never masked.
private final class EchoWebSocketHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame
    private let log: EchoServerLog
    private var sentClose = false

    init(log: EchoServerLog) { self.log = log }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        switch frame.opcode {
        case .binary:
            send(.binary, frame.unmaskedData, context: context)
        case .text:
            handleText(String(buffer: frame.unmaskedData), context: context)
        case .ping:
            send(.pong, frame.unmaskedData, context: context)
        case .pong:
            send(.binary, frame.unmaskedData, context: context)
        case .connectionClose:
            var body = frame.unmaskedData
            let code = body.readInteger(as: UInt16.self)
            log.recordClose(code)
            if sentClose {
                context.close(promise: nil)
            } else {
                sentClose = true
                var reply = context.channel.allocator.buffer(capacity: 2)
                if let code { reply.writeInteger(code) }
                context.writeAndFlush(Self.wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: reply)))
                    .assumeIsolated()
                    .whenComplete { _ in context.close(promise: nil) }
            }
        default:
            break
        }
    }

    private func handleText(_ text: String, context: ChannelHandlerContext) {
        if text.hasPrefix("ping:") {
            send(.ping, ByteBuffer(string: String(text.dropFirst(5))), context: context)
        } else if text.hasPrefix("close:"), let code = UInt16(text.dropFirst(6)) {
            sentClose = true
            var body = context.channel.allocator.buffer(capacity: 5)
            body.writeInteger(code)
            body.writeString("bye")
            send(.connectionClose, body, context: context)
        } else if text.hasPrefix("send:") {
            let parts = text.split(separator: ":")
            guard parts.count == 3, let count = Int(parts[1]), let size = Int(parts[2]) else { return }
            for index in 0..<count {
                let byte = UInt8(truncatingIfNeeded: index)
                send(.binary, ByteBuffer(repeating: byte, count: size), context: context)
            }
        } else {
            send(.text, ByteBuffer(string: text), context: context)
        }
    }

    private func send(_ opcode: WebSocketOpcode, _ data: ByteBuffer, context: ChannelHandlerContext) {
        context.writeAndFlush(Self.wrapOutboundOut(WebSocketFrame(fin: true, opcode: opcode, data: data)), promise: nil)
    }
}

// MARK: - Other servers

/// A TCP server on 127.0.0.1 that accepts connections and never answers (to test the
/// connect deadline).
final class SilentServer: Sendable {
    let channel: any Channel
    var port: Int { channel.localAddress!.port! }

    private init(channel: any Channel) { self.channel = channel }

    static func start() async throws -> SilentServer {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in channel.eventLoop.makeSucceededVoidFuture() }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return SilentServer(channel: channel)
    }

    func stop() async {
        try? await channel.close()
    }
}
