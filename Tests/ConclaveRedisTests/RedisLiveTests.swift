import Testing
import NIOCore
import NIOPosix
import Synchronization
@testable import ConclaveRedis
import ConclaveTestSupport

/// Against a real `redis-server` (installed by scripts/install-deps.sh).
@Suite(.serialized, .tags(.integration), .live) struct RedisLiveTests {
    let group = MultiThreadedEventLoopGroup.singleton

    /// Commands wait this long for a connection too: long enough for a loaded machine.
    private func client(
        _ server: RedisServerProcess, commandTimeout: Duration = .seconds(10),
        onEvent: @escaping @Sendable (RedisConnectionEvent) -> Void = { _ in }
    ) -> RedisClient {
        let c = RedisClient(
            configuration: RedisClientConfiguration(
                endpoint: server.endpoint, commandTimeout: commandTimeout,
                backoff: ReconnectBackoff(initial: .milliseconds(20), maximum: .milliseconds(200))),
            group: group, onEvent: onEvent)
        c.start()
        return c
    }

    @Test func setGetExpireAndErrors() async throws {
        let server = try await RedisServerProcess.launch()
        let c = client(server)
        defer { Task { await c.shutdown() } }
        #expect(try await c.send(RedisCommand("SET", ["k", "v", "PX", "60000"])) == .simpleString("OK"))
        #expect(try await c.send(RedisCommand("GET", ["k"])).string == "v")
        #expect(try await c.send(RedisCommand("GET", ["missing"])).isNull)
        #expect(try await c.send(RedisCommand("SET", ["k", "again", "NX"])).isNull)
        let ttl = try await c.send(RedisCommand("PTTL", ["k"])).integer ?? -1
        #expect(ttl > 50_000 && ttl <= 60_000)
        await #expect(throws: RedisError.self) { try await c.send(RedisCommand("INCR", ["k"])) }
        // A binary value survives unchanged.
        let blob: [UInt8] = (0...255).map { UInt8($0) }
        try await c.send(RedisCommand("SET", bytes: [Array("b".utf8), blob]))
        #expect(try await c.send(RedisCommand("GET", ["b"])).bytes == blob)
        await c.shutdown()
    }

    /// Another listener holds the port (as when the kernel gave the port to someone else
    /// between ``LoopbackPort/free()`` and the server's bind): the start fails, naming the
    /// port, instead of returning a "server" that is somebody else.
    @Test func aServerWhosePortAnotherListenerHoldsFailsToStart() async throws {
        let impostor = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: try await LoopbackPort.free()).get()
        let port = try #require(impostor.localAddress?.port)
        do {
            let server = try await RedisServerProcess.launch(port: port)
            Issue.record("started on port \(server.port), which another listener holds")
            await server.kill()
        } catch let failure as RedisServerProcess.StartFailure {
            #expect(failure.description.contains("127.0.0.1:\(port)"), "\(failure)")
        }
        try await impostor.close()
    }

    @Test func pipelineKeepsOrderAndErrorsInPlace() async throws {
        let server = try await RedisServerProcess.launch()
        let c = client(server)
        var commands = (0..<2_000).map { _ in RedisCommand("INCR", ["counter"]) }
        commands.insert(RedisCommand("HGET", ["counter", "x"]), at: 1_000)
        let replies = try await c.pipeline(commands)
        #expect(replies.count == 2_001)
        #expect(replies[999] == .integer(1_000))
        guard case .error(let text) = replies[1_000] else { Issue.record("expected WRONGTYPE"); return }
        #expect(text.hasPrefix("WRONGTYPE"))
        #expect(replies[2_000] == .integer(2_000))
        await c.shutdown()
    }

    @Test func aCommandThatOutlivesItsTimeoutFailsAndTheClientRecovers() async throws {
        let server = try await RedisServerProcess.launch()
        let c = client(server, commandTimeout: .milliseconds(300))
        // Connected first: the 300 ms are then the command's alone, not also the connect's.
        try await waitUntil("the client's first connection", within: .seconds(10)) { c.isConnected }
        // BLPOP blocks for 5 s on an empty list: the reply never comes within 300 ms.
        await #expect(throws: RedisError.timeout(command: "BLPOP")) { try await c.send(RedisCommand("BLPOP", ["empty", "5"])) }
        // The timed-out connection was closed; the client reconnects by itself (with backoff)
        // and a later command gets the fresh connection.
        try await waitUntil("the client reconnected after the timeout", within: .seconds(10)) {
            (try? await c.send(RedisCommand("PING"))) == .simpleString("PONG")
        }
        await c.shutdown()
    }

    @Test func unreachableRedisIsATypedErrorWithinTheTimeout() async throws {
        let port = try await LoopbackPort.free()
        let refused = Atomic<Bool>(false)
        let c = RedisClient(
            configuration: RedisClientConfiguration(
                endpoint: RedisEndpoint(host: "127.0.0.1", port: port),
                commandTimeout: .milliseconds(300)), group: group, onEvent: { e in if case .disconnected = e { refused.store(true, ordering: .relaxed) } })
        c.start()
        // The first attempt has failed (it is refused at once): a command then fails with its
        // reason. Sent before that, it would only know it was "not connected yet".
        try await waitUntil("the first connection attempt refused", within: .seconds(10)) { refused.load(ordering: .relaxed) }
        let start = ContinuousClock.now
        do {
            try await c.send(RedisCommand("PING"))
            Issue.record("PING to nothing succeeded")
        } catch let error as RedisError {
            guard case .notConnected(let reason) = error else { Issue.record("\(error)"); return }
            #expect(reason.contains("\(port)"))
        }
        #expect(ContinuousClock.now - start < .seconds(2))
        await c.shutdown()
        await #expect(throws: RedisError.shutdown) { try await c.send(RedisCommand("PING")) }
    }

    @Test func passwordIsSentWithAUTH() async throws {
        let server = try await RedisServerProcess.launch(extraArguments: ["--requirepass", "correct horse"])
        var endpoint = server.endpoint
        endpoint.password = "correct horse"
        let good = RedisClient(configuration: RedisClientConfiguration(endpoint: endpoint, commandTimeout: .seconds(10)), group: group)
        good.start()
        #expect(try await good.send(RedisCommand("PING")) == .simpleString("PONG"))
        await good.shutdown()
        endpoint.password = "wrong"
        let bad = RedisClient(configuration: RedisClientConfiguration(endpoint: endpoint, commandTimeout: .milliseconds(300)), group: group)
        bad.start()
        await #expect(throws: RedisError.self) { try await bad.send(RedisCommand("PING")) }
        await bad.shutdown()
    }

    /// Redis is killed and restarted on the same port in the middle of a stream of
    /// commands: failures in between are typed, and the stream resumes by itself.
    @Test func survivesARedisRestartMidRun() async throws {
        let server = try await RedisServerProcess.launch()
        let events = Mutex<[RedisConnectionEvent]>([])
        let c = client(server, commandTimeout: .milliseconds(500)) { e in events.withLock { $0.append(e) } }
        for i in 1...50 { #expect(try await c.send(RedisCommand("INCR", ["n"])) == .integer(Int64(i))) }
        await server.kill()
        // While it is down: typed errors, no hang past the timeout, no crash.
        for _ in 0..<3 {
            do { try await c.send(RedisCommand("INCR", ["n"])); Issue.record("INCR succeeded with Redis down") } catch let e as RedisError {
                switch e {
                case .notConnected, .connectionClosed, .timeout: break
                default: Issue.record("unexpected \(e)")
                }
            }
        }
        try await server.start()
        // Back: the data is gone (no persistence), the client is connected again.
        let back = await eventually(within: .seconds(10)) { (try? await c.send(RedisCommand("INCR", ["n"]))) == .integer(1) }
        #expect(back)
        #expect(events.withLock { $0.first } == .connected)
        #expect(events.withLock { $0.filter { $0 == .connected }.count } == 2)
        #expect(events.withLock { $0.contains { if case .disconnected = $0 { return true } else { return false } } })
        await c.shutdown()
    }

    @Test func pubSubDeliversAndResubscribesAfterARestart() async throws {
        let server = try await RedisServerProcess.launch()
        let publisher = client(server)
        let sub = RedisSubscriber(
            configuration: RedisClientConfiguration(
                endpoint: server.endpoint,
                backoff: ReconnectBackoff(initial: .milliseconds(20), maximum: .milliseconds(200))),
            channels: ["a", "b"], group: group)
        sub.start()
        var it = sub.events.makeAsyncIterator()
        #expect(await it.next() == .subscribed)
        try await publisher.send(RedisCommand("PUBLISH", ["a", "one"]))
        try await publisher.send(RedisCommand("PUBLISH", ["other", "ignored"]))
        try await publisher.send(RedisCommand("PUBLISH", ["b", "two"]))
        #expect(await it.next() == .message(channel: "a", payload: Array("one".utf8)))
        #expect(await it.next() == .message(channel: "b", payload: Array("two".utf8)))

        await server.kill()
        guard case .disconnected? = await it.next() else { Issue.record("no disconnected event"); return }
        try await server.start()
        #expect(await it.next() == .subscribed)
        try await publisher.send(RedisCommand("PUBLISH", ["b", "three"]))
        #expect(await it.next() == .message(channel: "b", payload: Array("three".utf8)))
        await sub.shutdown()
        await publisher.shutdown()
        #expect(sub.droppedEvents == 0)
    }

    @Test func aSlowConsumerLosesTheOldestEventsOnly() async throws {
        let server = try await RedisServerProcess.launch()
        let publisher = client(server)
        let sub = RedisSubscriber(
            configuration: RedisClientConfiguration(endpoint: server.endpoint, commandTimeout: .seconds(10)), channels: ["c"], group: group, bufferLimit: 8)
        sub.start()
        var it = sub.events.makeAsyncIterator()
        #expect(await it.next() == .subscribed)
        _ = try await publisher.pipeline((0..<100).map { RedisCommand("PUBLISH", ["c", String($0)]) })
        // The last message is in the buffer once 92 have been dropped.
        #expect(await eventually(within: .seconds(5)) { sub.droppedEvents == 92 })
        var got: [String] = []
        for _ in 0..<8 { if case .message(_, let p)? = await it.next() { got.append(String(decoding: p, as: UTF8.self)) } }
        #expect(got == (92..<100).map(String.init))
        await sub.shutdown()
        await publisher.shutdown()
    }
}

/// A server that answers with bytes that are not RESP, or too large.
@Suite struct RedisHostileServerTests {
    let group = MultiThreadedEventLoopGroup.singleton

    private final class Responder: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let reply: String
        init(reply: String) { self.reply = reply }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: reply)), promise: nil)
        }
    }

    private func hostile(_ reply: String) async throws -> (Channel, RedisEndpoint) {
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(Responder(reply: reply)) } }
            .bind(host: "127.0.0.1", port: 0).get()
        return (server, RedisEndpoint(host: "127.0.0.1", port: server.localAddress!.port!))
    }

    @Test(arguments: ["?garbage\r\n", "$99999999999\r\n", "*3\r\n:1\r\n:x\r\n", "+OK\r\n+EXTRA\r\n"])
    func badRepliesAreProtocolViolations(reply: String) async throws {
        let (server, endpoint) = try await hostile(reply)
        let connection = try await RedisConnection.connect(to: endpoint, on: group, connectTimeout: .seconds(1), commandTimeout: .seconds(1))
        if reply.hasPrefix("+OK") {
            // The first reply matches; the unasked-for second one closes the connection.
            #expect(try await connection.send(RedisCommand("PING")) == .simpleString("OK"))
        } else {
            await #expect(throws: RedisError.self) { try await connection.send(RedisCommand("PING")) }
        }
        try await connection.closeFuture.get()
        #expect(!connection.isActive)
        try await server.close()
    }
}
