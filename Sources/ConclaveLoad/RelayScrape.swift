import NIOCore
import ConclaveClient
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// The relay's process figures, read from its `/metrics` over loopback HTTP.
struct RelayProcessSample: Sendable {
    var cpuSeconds: Double
    var residentBytes: UInt64
    /// `process_open_fds`, when the relay reports it.
    var openDescriptors: Int?
    var at: ContinuousClock.Instant

    /// The sum over several relays (the nodes of a cluster); nil when one does not answer.
    static func readAll(_ relays: [RelayEndpoint]) async -> RelayProcessSample? {
        var total: RelayProcessSample?
        for r in relays {
            guard let s = await read(host: r.host, port: r.port) else { return nil }
            if var t = total {
                t.cpuSeconds += s.cpuSeconds
                t.residentBytes += s.residentBytes
                t.openDescriptors = t.openDescriptors.flatMap { a in s.openDescriptors.map { a + $0 } }
                total = t
            } else {
                total = s
            }
        }
        return total
    }

    /// GET http://host:port/metrics; nil when the relay does not answer within 2 s.
    static func read(host: String, port: Int) async -> RelayProcessSample? {
        guard let text = try? await httpGet(host: host, port: port, path: "/metrics") else { return nil }
        var cpu: Double?, rss: UInt64?, fds: Int?
        for line in text.split(separator: "\n") {
            if line.hasPrefix("process_open_fds ") { fds = Int(line.split(separator: " ").last!) }
            if line.hasPrefix("process_cpu_seconds_total ") { cpu = Double(line.split(separator: " ").last!) }
            if line.hasPrefix("process_resident_memory_bytes ") { rss = UInt64(line.split(separator: " ").last!) }
        }
        guard let cpu, let rss else { return nil }
        return RelayProcessSample(cpuSeconds: cpu, residentBytes: rss, openDescriptors: fds, at: .now)
    }

    /// A plain HTTP/1.1 GET (`Connection: close`); the body as text, at most 4 MiB.
    static func httpGet(host: String, port: Int, path: String) async throws -> String {
        final class Collector: ChannelInboundHandler, @unchecked Sendable {
            typealias InboundIn = ByteBuffer
            var data: [UInt8] = []
            let done: EventLoopPromise<[UInt8]>
            init(done: EventLoopPromise<[UInt8]>) { self.done = done }
            func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                let b = Self.unwrapInboundIn(data)
                guard self.data.count + b.readableBytes <= 4 << 20 else { context.close(promise: nil); return }
                self.data += b.readableBytesView
            }
            func channelInactive(context: ChannelHandlerContext) { done.succeed(data) }
            func errorCaught(context: ChannelHandlerContext, error: any Error) { done.fail(error); context.close(promise: nil) }
        }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let promise = loop.makePromise(of: [UInt8].self)
        let channel: Channel
        do {
            channel = try await ClientBootstrap(group: loop)
                .connectTimeout(.seconds(2))
                .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(Collector(done: promise)) } }
                .connect(host: host, port: port).get()
        } catch {
            promise.fail(error)
            throw error
        }
        channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
        try await channel.writeAndFlush(channel.allocator.buffer(string: "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n"))
        let bytes = try await promise.futureResult.get()
        let text = String(decoding: bytes, as: UTF8.self)
        guard text.hasPrefix("HTTP/1.1 200"), let split = text.range(of: "\r\n\r\n") else { throw RelayScrapeError() }
        return String(text[split.upperBound...])
    }
}

struct RelayScrapeError: Error {}

/// This process's CPU time (user + system), in seconds.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}
