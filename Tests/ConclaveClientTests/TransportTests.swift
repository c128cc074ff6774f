@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import Foundation
import NIOCore
import Testing

// End-to-end tests of the client transport against the in-test WebSocket echo server
// (TransportTestSupport.swift). Everything runs on 127.0.0.1 with ephemeral ports, and
// every wait is bounded.

/// Connects to `server` over plain WebSocket.
private func connect(
    to server: WebSocketEchoServer, path: String = "/v1", options: RelayConnection.Options = .init()
) async throws -> RelayConnection {
    try await RelayConnection.connect(
        to: RelayEndpoint(scheme: .ws, host: "127.0.0.1", port: server.port, path: path),
        connectTimeout: .seconds(5), options: options
    )
}

/// The next item, which must arrive within 5 s.
private func nextItem(_ connection: RelayConnection) async throws -> RelayInbound {
    let item = try await connection.next(timeout: .seconds(5))
    return try #require(item, "the inbound sequence ended early")
}

/// Runs `body` with a fresh echo server and connection, then closes both.
private func withEchoConnection(
    options: RelayConnection.Options = .init(),
    _ body: (RelayConnection, WebSocketEchoServer) async throws -> Void
) async throws {
    let server = try await WebSocketEchoServer.start()
    let connection: RelayConnection
    do {
        connection = try await connect(to: server, options: options)
    } catch {
        await server.stop()
        throw error
    }
    do {
        try await body(connection, server)
    } catch {
        await connection.close()
        await server.stop()
        throw error
    }
    await connection.close()
    await server.stop()
}

@Suite("Client transport over WebSocket", .timeLimit(.minutes(1)), .tags(.integration), .live)
struct TransportTests {
    // MARK: Messages

    @Test("An echoed PING comes back as undecodable relay bytes that decode as the same ClientMessage")
    func echoedPingDecodesAsClientMessage() async throws {
        try await withEchoConnection { connection, server in
            let ping = ClientMessage.ping(nonce: 0x0102_0304_0506_0708)
            try await connection.send(ping)
            let item = try await nextItem(connection)
            guard case let .undecodable(bytes, error) = item else {
                Issue.record("expected undecodable bytes, got \(item)")
                return
            }
            #expect(error == .unknownType(MessageType.ping.rawValue))
            #expect(bytes == ping.encoded())
            #expect(try ClientMessage.decode(bytes) == ping)
            #expect(server.log.requestTargets == ["/v1"])
            #expect(server.log.hostHeaders == ["127.0.0.1:\(server.port)"])
        }
    }

    @Test("An echoed FRAME (a type valid in both directions) decodes as a RelayMessage")
    func echoedFrameDecodesAsRelayMessage() async throws {
        try await withEchoConnection { connection, _ in
            let frame = try FrameMessage(kind: .chat, sender: 7, recipient: .everyone, payload: Array(repeating: 0xAB, count: 300))
            try await connection.send(.frame(frame))
            #expect(try await nextItem(connection) == .message(.frame(frame)))
        }
    }

    @Test("A text message is reported undecodable with the websocket_opcode error")
    func textMessageIsUndecodable() async throws {
        try await withEchoConnection { connection, _ in
            try await connection.sendText("hello relay")
            let item = try await nextItem(connection)
            #expect(item == .undecodable(bytes: Array("hello relay".utf8), error: RelayInbound.textMessageError))
            #expect(RelayInbound.textMessageError.wireCode == .malformed)
        }
    }

    @Test("A message sent in fragments is reassembled by the server and echoed whole")
    func fragmentedSendIsReassembled() async throws {
        try await withEchoConnection { connection, _ in
            let bytes = (0..<3_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            try await connection.sendRaw(bytes, fragmentSize: 1_000)
            #expect(try await nextItem(connection).undecodableBytes == bytes)
        }
    }

    @Test("Items arrive in order and raw sends keep their bytes")
    func rawSendsArriveInOrder() async throws {
        try await withEchoConnection { connection, _ in
            for index in 0..<20 { try await connection.sendRaw([0xEE, UInt8(index)]) }
            for index in 0..<20 {
                #expect(try await nextItem(connection).undecodableBytes == [0xEE, UInt8(index)])
            }
        }
    }

    // MARK: Ping, limits

    @Test("A relay Ping is answered with a Pong carrying the same data")
    func pingIsAnsweredAutomatically() async throws {
        try await withEchoConnection { connection, _ in
            try await connection.sendText("ping:are-you-there")
            // The server turns the Pong it receives into a binary message.
            #expect(try await nextItem(connection).undecodableBytes == Array("are-you-there".utf8))
        }
    }

    @Test("A relay message just over 65 535 bytes reaches the decoder and is reported messageTooLarge")
    func messageJustOverProtocolLimitIsUndecodable() async throws {
        try await withEchoConnection { connection, _ in
            let length = MessageLimits.maximumMessageLength + 65
            try await connection.sendText("send:1:\(length)")
            let item = try await nextItem(connection)
            guard case let .undecodable(bytes, error) = item else {
                Issue.record("expected undecodable, got a different item")
                return
            }
            #expect(bytes.count == length)
            #expect(error == .messageTooLarge(length: length, limit: MessageLimits.maximumMessageLength))
        }
    }

    @Test("A relay message over the transport limit closes the connection")
    func messageOverTransportLimitClosesConnection() async throws {
        try await withEchoConnection { connection, _ in
            let length = RelayConnection.Options().maximumInboundMessageLength + 1
            try await connection.sendText("send:1:\(length)")
            let item = try await nextItem(connection)
            #expect(item.isClosed)
            await #expect(throws: RelayConnectionError.closed) { try await connection.sendRaw([1]) }
        }
    }

    // MARK: Closing

    @Test("close() runs the closing handshake with 1000 and ends the inbound sequence")
    func closeRunsClosingHandshake() async throws {
        let server = try await WebSocketEchoServer.start()
        let connection = try await connect(to: server)
        try await connection.sendRaw([1, 2, 3])
        let started = ContinuousClock.now
        await connection.close()
        #expect(ContinuousClock.now - started < .seconds(1), "the server answered, so no close timeout")
        // The echo sent before the handshake is still readable, then .closed, then the end.
        #expect(try await nextItem(connection).undecodableBytes == [1, 2, 3])
        #expect(try await nextItem(connection) == .closed(code: 1000, reason: nil))
        #expect(try await connection.next(timeout: .seconds(1)) == nil)
        await #expect(throws: RelayConnectionError.closed) { try await connection.send(.ping(nonce: 1)) }
        #expect(server.log.closeCodes == [1000])
        await connection.close()  // idempotent
        await server.stop()
    }

    @Test("A Close started by the relay is echoed and reported with its code and reason")
    func relayInitiatedCloseIsReported() async throws {
        try await withEchoConnection { connection, server in
            try await connection.sendText("close:4001")
            #expect(try await nextItem(connection) == .closed(code: 4001, reason: "bye"))
            try await waitUntil("the server seeing the echoed Close") { !server.log.closeCodes.isEmpty }
            #expect(server.log.closeCodes == [4001])
        }
    }

    @Test("The inbound AsyncSequence yields every item then .closed, and ends")
    func inboundSequenceEndsAfterClosed() async throws {
        try await withEchoConnection { connection, _ in
            for index in 0..<3 { try await connection.sendRaw([UInt8(index)]) }
            // Wait for the echoes before starting the handshake, so they are queued first.
            try await withTimeout(.seconds(5)) {
                for await item in connection.inbound {
                    if item.undecodableBytes == [2] { break }
                }
            }
            try await connection.sendRaw([9])
            await connection.close()
            let rest = try await withTimeout(.seconds(5), "draining the inbound sequence") {
                var items: [RelayInbound] = []
                for await item in connection.inbound { items.append(item) }
                return items
            }
            #expect(rest == [.undecodable(bytes: [9], error: .unsupportedVersion(9)), .closed(code: 1000, reason: nil)])
        }
    }

    // MARK: Waiting and reading

    @Test("next(timeout:) throws timeout and leaves the queue intact")
    func nextTimesOutWithoutLosingItems() async throws {
        try await withEchoConnection { connection, _ in
            let started = ContinuousClock.now
            await #expect(throws: RelayConnectionError.timeout) { try await connection.next(timeout: .milliseconds(100)) }
            #expect(ContinuousClock.now - started < .seconds(2))
            try await connection.sendRaw([42])
            #expect(try await nextItem(connection).undecodableBytes == [42])
        }
    }

    @Test("Cancelling a waiting next() throws CancellationError and leaves the queue intact")
    func cancelledNextLeavesQueueIntact() async throws {
        try await withEchoConnection { connection, _ in
            let waiting = Task { try await connection.next(timeout: .seconds(30)) }
            try await Task.sleep(for: .milliseconds(50))
            waiting.cancel()
            await #expect(throws: CancellationError.self) { try await waiting.value }
            try await connection.sendRaw([7])
            #expect(try await nextItem(connection).undecodableBytes == [7])
        }
    }

    @Test("pauseReading() holds inbound messages back until resumeReading()")
    func pauseReadingHoldsInboundUntilResumed() async throws {
        try await withEchoConnection { connection, _ in
            await connection.pauseReading()
            try await connection.sendRaw([5, 5])
            await #expect(throws: RelayConnectionError.timeout) { try await connection.next(timeout: .milliseconds(300)) }
            await connection.resumeReading()
            #expect(try await nextItem(connection).undecodableBytes == [5, 5])
        }
    }

    @Test("With a tiny inbound buffer, reading stops near the watermark and a burst still arrives complete and in order")
    func backpressureDeliversEverythingInOrder() async throws {
        var options = RelayConnection.Options()
        options.inboundHighWatermark = 4
        options.inboundLowWatermark = 1
        options.receiveBufferSize = 4_096
        try await withEchoConnection(options: options) { connection, _ in
            let count = 300
            try await connection.sendText("send:\(count):2000")
            // Let the buffer fill and reading stop: the client holds a handful of items (the
            // watermark plus one read burst from a 4 KiB socket buffer), not all 300.
            // The marker that reading stopped: the queue is holding back the socket's read().
            try await waitUntil("the inbound queue withholding reads") { await connection.isReadWithheld() }
            let buffered = await connection.bufferedInboundCount()
            #expect(buffered >= 4 && buffered < 50, "reading stopped near the watermark (\(buffered) buffered)")
            for index in 0..<count {
                let bytes = try #require(try await nextItem(connection).undecodableBytes)
                #expect(bytes.count == 2_000 && bytes.first == UInt8(truncatingIfNeeded: index))
            }
        }
    }

    // MARK: Connecting

    @Test("Connecting to a closed port fails quickly with unreachable")
    func closedPortIsUnreachable() async throws {
        let port = try await LoopbackPort.free()
        let started = ContinuousClock.now
        do {
            _ = try await RelayConnection.connect(to: RelayEndpoint(scheme: .ws, host: "127.0.0.1", port: port))
            Issue.record("connected to a closed port")
        } catch let error as RelayConnectionError {
            guard case let .unreachable(host, reportedPort, underlying) = error else {
                Issue.record("expected unreachable, got \(error)")
                return
            }
            #expect(host == "127.0.0.1" && reportedPort == port)
            #expect(!underlying.isEmpty && !error.description.contains("\n"))
        }
        #expect(ContinuousClock.now - started < .seconds(2))
    }

    @Test("A server that never answers the upgrade hits the connect timeout")
    func silentServerTimesOut() async throws {
        let server = try await SilentServer.start()
        let started = ContinuousClock.now
        await #expect(throws: RelayConnectionError.timeout) {
            _ = try await RelayConnection.connect(
                to: RelayEndpoint(scheme: .ws, host: "127.0.0.1", port: server.port),
                connectTimeout: .milliseconds(300)
            )
        }
        #expect(ContinuousClock.now - started < .seconds(3))
        await server.stop()
    }

    @Test("An upgrade request for an unknown path is rejected with the server's status")
    func unknownPathIsRejectedWithStatus() async throws {
        let server = try await WebSocketEchoServer.start()
        await #expect(throws: RelayConnectionError.upgradeRejected(status: 404)) {
            _ = try await connect(to: server, path: "/not-the-relay")
        }
        await server.stop()
    }

    @Test("TLS settings for a ws:// endpoint are refused rather than ignored")
    func tlsSettingsForPlainEndpointAreRefused() async throws {
        await #expect {
            _ = try await RelayConnection.connect(
                to: RelayEndpoint(scheme: .ws, host: "127.0.0.1", port: 9), tls: .system
            )
        } throws: { error in
            guard case .tlsFailure = error as? RelayConnectionError else { return false }
            return true
        }
    }

    @Test("Error descriptions are one line")
    func errorDescriptionsAreOneLine() {
        let errors: [RelayConnectionError] = [
            .unreachable(host: "::1", port: 443, underlying: "connection refused"),
            .tlsFailure("handshake failed"), .upgradeRejected(status: 404), .timeout, .closed,
        ]
        for error in errors {
            #expect(!error.description.isEmpty && !error.description.contains("\n"))
        }
        #expect(RelayConnectionError.unreachable(host: "::1", port: 443, underlying: "x").description.contains("[::1]:443"))
    }
}

// MARK: - TLS

@Suite("Client transport over TLS", .timeLimit(.minutes(1)), .tags(.integration), .live)
struct TransportTLSTests {
    /// Runs `body` with a TLS echo server using a fresh self-signed certificate.
    private func withTLSServer(
        subjectAltName: String = "DNS:localhost,IP:127.0.0.1",
        _ body: (WebSocketEchoServer, String) async throws -> Void
    ) async throws {
        let certificate = try await TestCertificate.make(subjectAltName: subjectAltName)
        defer { certificate.remove() }
        let server = try await WebSocketEchoServer.start(tls: (certificate.certPath, certificate.keyPath))
        do {
            try await body(server, certificate.certPath)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    private func expectTLSFailure(_ connect: () async throws -> RelayConnection) async {
        do {
            let connection = try await connect()
            Issue.record("TLS connection unexpectedly succeeded")
            await connection.close()
        } catch let error as RelayConnectionError {
            guard case .tlsFailure = error else {
                Issue.record("expected tlsFailure, got \(error)")
                return
            }
            #expect(!error.description.contains("\n"))
        } catch {
            Issue.record("unexpected error type: \(error)")
        }
    }

    @Test("wss:// to 127.0.0.1 with the certificate as CA connects (IP SAN verified) and echoes")
    func trustedCertificateConnectsByIP() async throws {
        try await withTLSServer { server, certPath in
            let connection = try await RelayConnection.connect(
                to: RelayEndpoint(parsing: "wss://127.0.0.1:\(server.port)"), tls: .trusting(pemFile: certPath)
            )
            try await connection.send(.ping(nonce: 99))
            let item = try #require(try await connection.next(timeout: .seconds(5)))
            #expect(try ClientMessage.decode(try #require(item.undecodableBytes)) == .ping(nonce: 99))
            await connection.close()
            #expect(try await connection.next(timeout: .seconds(5)) == .closed(code: 1000, reason: nil))
        }
    }

    @Test("wss://localhost with the certificate as CA connects (DNS SAN and SNI)")
    func trustedCertificateConnectsByName() async throws {
        try await withTLSServer { server, certPath in
            let connection = try await RelayConnection.connect(
                to: RelayEndpoint(parsing: "wss://localhost:\(server.port)/v1"), tls: .trusting(pemFile: certPath)
            )
            try await connection.sendRaw([1, 2])
            #expect(try await connection.next(timeout: .seconds(5))?.undecodableBytes == [1, 2])
            #expect(server.log.hostHeaders == ["localhost:\(server.port)"])
            await connection.close()
        }
    }

    @Test("wss:// with the system trust roots rejects the self-signed certificate")
    func systemTrustRejectsSelfSigned() async throws {
        try await withTLSServer { server, _ in
            await expectTLSFailure {
                try await RelayConnection.connect(to: RelayEndpoint(parsing: "wss://127.0.0.1:\(server.port)"))
            }
        }
    }

    @Test("A trusted certificate without an IP SAN for 127.0.0.1 is rejected for wss://127.0.0.1")
    func certificateWithoutMatchingIPSANIsRejected() async throws {
        try await withTLSServer(subjectAltName: "DNS:localhost") { server, certPath in
            await expectTLSFailure {
                try await RelayConnection.connect(
                    to: RelayEndpoint(parsing: "wss://127.0.0.1:\(server.port)"), tls: .trusting(pemFile: certPath)
                )
            }
        }
    }

    @Test("A trusted certificate for another name is rejected for wss://localhost")
    func certificateForAnotherNameIsRejected() async throws {
        try await withTLSServer(subjectAltName: "DNS:relay.invalid") { server, certPath in
            await expectTLSFailure {
                try await RelayConnection.connect(
                    to: RelayEndpoint(parsing: "wss://localhost:\(server.port)"), tls: .trusting(pemFile: certPath)
                )
            }
        }
    }

    @Test("A missing CA file is a tlsFailure before any connection is made")
    func missingCAFileIsTLSFailure() async {
        await expectTLSFailure {
            try await RelayConnection.connect(
                to: RelayEndpoint(scheme: .wss, host: "127.0.0.1", port: 9),
                tls: .trusting(pemFile: "/nonexistent/conclave-ca.pem")
            )
        }
    }
}
