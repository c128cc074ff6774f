import NIOCore
import NIOHTTP1
import NIOWebSocket

/// Answers plain HTTP on the relay's port: `GET /healthz`, `GET /metrics`; 404 otherwise.
/// WebSocket upgrades on `/v1` are taken by the upgrader before this handler sees them.
final class HTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let metrics: RelayMetrics
    private var head: HTTPRequestHead?

    init(metrics: RelayMetrics) { self.metrics = metrics }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break  // request bodies are ignored (and bounded by the HTTP decoder)
        case .end:
            guard let head else { return }
            self.head = nil
            respond(context: context, head: head)
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let (status, contentType, body): (HTTPResponseStatus, String, [UInt8])
        // A WebSocket upgrade request that reached this handler was not upgraded: it was
        // not a valid RFC 6455 opening handshake for /v1 (5.1).
        let upgradeAsked = head.headers["Upgrade"].contains { $0.lowercased().contains("websocket") }
        switch (head.method, path) {
        case _ where upgradeAsked:
            (status, contentType, body) = (.badRequest, "text/plain", Array("not a valid WebSocket upgrade for /v1\n".utf8))
        case (.GET, "/healthz"): (status, contentType, body) = (.ok, "text/plain", Array("ok\n".utf8))
        case (.GET, "/metrics"): (status, contentType, body) = (.ok, "text/plain; version=0.0.4", metrics.render())
        case (.GET, "/v1"): (status, contentType, body) = (.upgradeRequired, "text/plain", Array("WebSocket upgrade required\n".utf8))
        default: (status, contentType, body) = (.notFound, "text/plain", Array("not found\n".utf8))
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: "\(body.count)")
        headers.add(name: "Cache-Control", value: "no-store")
        let keepAlive = head.isKeepAlive && !upgradeAsked
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A refused WebSocket upgrade is reported here first; the request itself follows
        // and is answered 400 (``respond(context:head:)``).
        if error is NIOWebSocketUpgradeError { return }
        context.close(promise: nil)
    }
}
