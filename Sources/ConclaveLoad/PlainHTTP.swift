import NIOCore
import NIOPosix

/// A plain HTTP/1.1 GET over TCP (`Connection: close`), for a relay's `/metrics` and
/// `/healthz` on loopback: the load runner's scrape and the tests share it.
///
/// The response is read until the server closes, at most ``maximumResponseBytes``
/// (longer ones are cut off and refused), then parsed: the status line, the headers, and a
/// body framed by `Transfer-Encoding: chunked`, `Content-Length` or the close.
public enum PlainHTTP {
    public struct Response: Sendable, Equatable {
        public let status: Int
        public let body: String
    }

    public struct Failure: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    /// Responses larger than this are refused (4 MiB).
    public static let maximumResponseBytes = 4 << 20

    public static func get(
        host: String = "127.0.0.1", port: Int, path: String,
        timeout: TimeAmount = .seconds(2)
    ) async throws -> Response {
        final class Collector: ChannelInboundHandler, @unchecked Sendable {
            typealias InboundIn = ByteBuffer
            var data: [UInt8] = []
            var tooLarge = false
            let done: EventLoopPromise<[UInt8]>
            init(done: EventLoopPromise<[UInt8]>) { self.done = done }
            func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                let b = Self.unwrapInboundIn(data)
                guard self.data.count + b.readableBytes <= PlainHTTP.maximumResponseBytes else {
                    tooLarge = true
                    context.close(promise: nil)
                    return
                }
                self.data += b.readableBytesView
            }
            func channelInactive(context: ChannelHandlerContext) {
                if tooLarge { done.fail(Failure(description: "response larger than \(PlainHTTP.maximumResponseBytes) bytes")) } else { done.succeed(data) }
            }
            func errorCaught(context: ChannelHandlerContext, error: any Error) { done.fail(error); context.close(promise: nil) }
        }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let promise = loop.makePromise(of: [UInt8].self)
        let channel: Channel
        do {
            channel = try await ClientBootstrap(group: loop)
                .connectTimeout(timeout)
                .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(Collector(done: promise)) } }
                .connect(host: host, port: port).get()
        } catch {
            promise.fail(error)
            throw error
        }
        channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
        try await channel.writeAndFlush(channel.allocator.buffer(string: "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n"))
        return try parse(try await promise.futureResult.get())
    }

    /// Parses a whole HTTP/1.1 response (what a server sent before closing).
    public static func parse(_ bytes: [UInt8]) throws(Failure) -> Response {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        guard let headEnd = bytes.firstRange(of: separator) else { throw Failure(description: "no end of headers") }
        let head = String(decoding: bytes[..<headEnd.lowerBound], as: UTF8.self)
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard !lines.isEmpty else { throw Failure(description: "empty response") }
        let statusLine = lines.removeFirst().split(separator: " ", maxSplits: 2)
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), let status = Int(statusLine[1]), (100...599).contains(status) else {
            throw Failure(description: "bad status line")
        }
        var chunked = false
        var contentLength: Int?
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { throw Failure(description: "bad header line") }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: " \t")
            if name == "transfer-encoding", value.lowercased().split(separator: ",").last.map({ $0.trimmingCharacters(in: " ") == "chunked" }) == true {
                chunked = true
            }
            if name == "content-length" {
                guard let n = Int(value), n >= 0 else { throw Failure(description: "bad Content-Length") }
                contentLength = n
            }
        }
        var rest = bytes[headEnd.upperBound...]
        if chunked {
            var body: [UInt8] = []
            while true {
                guard let lineEnd = rest.firstRange(of: Array("\r\n".utf8)) else { throw Failure(description: "truncated chunk size") }
                let sizeText = String(decoding: rest[..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
                guard let size = Int(sizeText.trimmingCharacters(in: " "), radix: 16), size >= 0 else { throw Failure(description: "bad chunk size") }
                rest = rest[lineEnd.upperBound...]
                if size == 0 { break }
                guard rest.count >= size + 2 else { throw Failure(description: "truncated chunk") }
                body += rest.prefix(size)
                rest = rest.dropFirst(size + 2)
            }
            return Response(status: status, body: String(decoding: body, as: UTF8.self))
        }
        if let contentLength {
            guard rest.count >= contentLength else { throw Failure(description: "body shorter than its Content-Length") }
            return Response(status: status, body: String(decoding: rest.prefix(contentLength), as: UTF8.self))
        }
        return Response(status: status, body: String(decoding: rest, as: UTF8.self))
    }
}

private extension Substring {
    func trimmingCharacters(in set: String) -> String {
        var s = self[...]
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
