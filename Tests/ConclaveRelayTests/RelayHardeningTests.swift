import Synchronization
import ConclaveChildProcess
import Foundation
import Testing
@_spi(Testing) import ConclaveClient
import ConclaveCrypto
import ConclaveProtocol
import ConclaveTestSupport
@testable import ConclaveRelay

/// Bad input, slow consumers, TLS, observability and shutdown.
@Suite(.serialized, .timeLimit(.minutes(3)), .tags(.integration), .live) struct RelayHardeningTests {
    struct BadInput: CustomStringConvertible {
        let name: String
        let stage: Stage
        let bytes: [UInt8]
        let expected: ErrorCode?  // nil: the WebSocket layer closes without a typed error
        enum Stage { case fresh, afterHello, inRoom }
        var description: String { name }
    }

    static func badInputs(room: RoomID) -> [BadInput] {
        let identity = PrivateIdentity.generate().publicIdentity.wireIdentity.bytes
        let settings = ClientMessage.createRoom(
            CreateRoomMessage(
                roomID: room, identity: Identity(bytes: identity)!, signature: [UInt8](repeating: 1, count: 64), relayAuth: nil, settings: .privacyDefaults)
        ).encoded()
        let join = ClientMessage.join(
            JoinMessage(roomID: room, identity: Identity(bytes: identity)!, signature: [UInt8](repeating: 2, count: 64), relayAuth: nil, knock: [1, 2, 3])
        ).encoded()
        let command = ClientMessage.command(CommandMessage(requestID: 1, action: .lock)).encoded()
        var oversizedKnock = join
        oversizedKnock.replaceSubrange((join.count - 5)..<(join.count - 3), with: [0x08, 0x01])  // knock length 2049 > 2048
        return [
            BadInput(name: "HELLO truncated", stage: .fresh, bytes: [0x01, 0x01, 0x01], expected: .malformed),
            BadInput(name: "HELLO trailing byte", stage: .fresh, bytes: [0x01, 0x01, 0x01, 0x01, 0x00], expected: .malformed),
            BadInput(name: "HELLO wrong preamble version", stage: .fresh, bytes: [0x07, 0x01, 0x01, 0x01], expected: .unsupportedVersion),
            BadInput(name: "HELLO no common version", stage: .fresh, bytes: [0x01, 0x01, 0x03, 0x04], expected: .unsupportedVersion),
            BadInput(name: "HELLO of version 1 only", stage: .fresh, bytes: [0x01, 0x01, 0x01, 0x01], expected: .unsupportedVersion),
            BadInput(name: "unknown type", stage: .fresh, bytes: [0x02, 0x77, 0x00], expected: .malformed),
            BadInput(
                name: "relay-to-client type from a client", stage: .afterHello, bytes: [0x02, 0x89] + [UInt8](repeating: 0, count: 8), expected: .malformed),
            BadInput(name: "empty message", stage: .fresh, bytes: [], expected: .malformed),
            BadInput(name: "message over 65535 bytes", stage: .afterHello, bytes: [0x02, 0x30] + [UInt8](repeating: 0, count: 65_600), expected: .tooLarge),
            BadInput(name: "WebSocket frame far over the limit", stage: .afterHello, bytes: [UInt8](repeating: 0, count: 300_000), expected: nil),
            BadInput(name: "CREATE_ROOM before HELLO", stage: .fresh, bytes: settings, expected: .unexpectedMessage),
            BadInput(name: "CREATE_ROOM truncated", stage: .afterHello, bytes: Array(settings.dropLast(3)), expected: .malformed),
            BadInput(name: "CREATE_ROOM trailing byte", stage: .afterHello, bytes: settings + [0], expected: .malformed),
            BadInput(name: "CREATE_ROOM bad signature", stage: .afterHello, bytes: settings, expected: .badSignature),
            BadInput(name: "JOIN truncated", stage: .afterHello, bytes: Array(join.prefix(40)), expected: .malformed),
            BadInput(name: "JOIN knock length over limit", stage: .afterHello, bytes: oversizedKnock, expected: .malformed),
            BadInput(name: "JOIN bad signature", stage: .afterHello, bytes: join, expected: .badSignature),
            BadInput(name: "COMMAND before joining", stage: .afterHello, bytes: command, expected: .unexpectedMessage),
            BadInput(name: "COMMAND truncated", stage: .inRoom, bytes: Array(command.dropLast()), expected: .malformed),
            BadInput(name: "COMMAND unknown op", stage: .inRoom, bytes: [0x02, 0x04, 0xEE, 0, 1, 0, 0, 0, 0, 0, 0], expected: .malformed),
            BadInput(name: "COMMAND value on an op without one", stage: .inRoom, bytes: [0x02, 0x04, 0x03, 0, 1, 0, 0, 0, 0, 0, 9], expected: .malformed),
            BadInput(name: "PING truncated", stage: .afterHello, bytes: [0x02, 0x05, 0, 0, 0], expected: .malformed),
            BadInput(
                name: "FRAME before joining", stage: .afterHello, bytes: [0x02, 0x30, 0x03, 0x00, 0x00, 0x01, 0xFF, 0xFF, 0xAA], expected: .unexpectedMessage),
            // Decoded before the state check, like every other message (issue 10, defect 7).
            BadInput(
                name: "FRAME before joining, version 7", stage: .afterHello, bytes: [0x07, 0x30, 0x03, 0x00, 0x00, 0x01, 0xFF, 0xFF, 0xAA],
                expected: .unsupportedVersion),
            BadInput(name: "FRAME before joining, truncated header", stage: .afterHello, bytes: [0x02, 0x30, 0x03, 0x00], expected: .malformed),
            BadInput(
                name: "FRAME before joining, unknown kind", stage: .fresh, bytes: [0x02, 0x30, 0x09, 0x00, 0x00, 0x01, 0xFF, 0xFF, 0xAA], expected: .malformed),
            BadInput(
                name: "FRAME before joining, audio over its limit", stage: .afterHello,
                bytes: [0x02, 0x30, 0x01, 0x00, 0x00, 0x01, 0xFF, 0xFF] + [UInt8](repeating: 0, count: 1_501), expected: .tooLarge),
            BadInput(name: "FRAME truncated header", stage: .inRoom, bytes: [0x02, 0x30, 0x03, 0x00, 0x00], expected: .malformed),
            BadInput(name: "FRAME empty payload", stage: .inRoom, bytes: [0x02, 0x30, 0x03, 0x00, 0x00, 0x01, 0xFF, 0xFF], expected: .malformed),
            BadInput(name: "FRAME unknown kind", stage: .inRoom, bytes: [0x02, 0x30, 0x09, 0x00, 0x00, 0x01, 0xFF, 0xFF, 0xAA], expected: .malformed),
            BadInput(name: "FRAME nonzero flags", stage: .inRoom, bytes: [0x02, 0x30, 0x03, 0x80, 0x00, 0x01, 0xFF, 0xFF, 0xAA], expected: .malformed),
            BadInput(
                name: "FRAME audio over its payload limit", stage: .inRoom,
                bytes: [0x02, 0x30, 0x01, 0x00, 0x00, 0x01, 0xFF, 0xFF] + [UInt8](repeating: 0, count: 1_501), expected: .tooLarge),
            BadInput(name: "FRAME keys broadcast", stage: .inRoom, bytes: [0x02, 0x30, 0x05, 0x00, 0x00, 0x01, 0xFF, 0xFF, 0xAA], expected: .malformed),
            BadInput(name: "FRAME wrong sender", stage: .inRoom, bytes: [0x02, 0x30, 0x03, 0x00, 0x00, 0x09, 0xFF, 0xFF, 0xAA], expected: .malformed),
        ]
    }

    /// Every message type, malformed in several ways: a typed ERROR and a closed connection,
    /// and a neighbouring room carries on untouched.
    @Test func malformedInputGetsTypedErrorAndClose() async throws {
        try await withRelay { server, endpoint in
            // A room that must stay unaffected.
            let a = try await TestParticipant.connect(endpoint)
            var open = RoomSettings.privacyDefaults
            open.waitingRoom = false
            open.muteOnEntry = false
            let otherRoom = try await a.createRoom(settings: open)
            let b = try await TestParticipant.connect(endpoint)
            try await b.join(otherRoom)

            for input in Self.badInputs(room: otherRoom) {
                let p: TestParticipant
                switch input.stage {
                case .fresh:
                    var keepAll = RelayConnection.Options()
                    keepAll.inboundMedia = .keepAll
                    p = TestParticipant(connection: try await RelayConnection.connect(to: endpoint, options: keepAll))
                case .afterHello:
                    p = try await TestParticipant.connect(endpoint)
                case .inRoom:
                    p = try await TestParticipant.connect(endpoint)
                    try await p.createRoom(settings: open)
                }
                try await p.connection.sendRaw(input.bytes)
                if let code = input.expected {
                    let m = try await p.expectMessage("ERROR for \(input.name)") {
                        if case .error = $0 { return true }; return false
                    }
                    guard case .error(let e)? = m else { continue }
                    #expect(e.code == code, "\(input.name): got \(e.code.name) (\(e.message))")
                    #expect(e.isFatal, "\(input.name) must be fatal")
                    #expect(!e.message.isEmpty)
                }
                _ = try await p.expect("close after \(input.name)") { $0.isClosed }
            }
            // Text messages are not part of the protocol.
            let t = try await TestParticipant.connect(endpoint)
            try await t.connection.sendText("hello")
            try await t.expectFatal(.malformed)

            // The other room still works.
            let payload = Array("still here".utf8)
            try await a.sendFrame(.chat, payload: payload)
            _ = try await b.expectMessage("chat in the unaffected room") {
                if case .frame(let f) = $0 { return f.payload == payload }; return false
            }
            #expect(server.roomCount >= 1)
            let (status, _) = try await httpGet(port: server.port!, path: "/healthz")
            #expect(status == 200)
        }
    }

    /// A client that stops reading: its audio is dropped, its reliable traffic overflows a
    /// bounded queue and it is disconnected with too_slow; the others get everything.
    @Test func slowConsumerIsBoundedAndOthersUnaffected() async throws {
        let config = testRelayConfiguration {
            $0.outboundMediaQueueBytes = 64 * 1024
            $0.outboundQueueBytes = 256 * 1024
            $0.maxFramesPerSecond = 1_000_000
            $0.maxBytesPerSecond = 1_000_000_000
        }
        try await withRelay(config) { server, endpoint in
            var open = RoomSettings.privacyDefaults
            open.waitingRoom = false
            open.muteOnEntry = false
            let sender = try await TestParticipant.connect(endpoint)
            let room = try await sender.createRoom(settings: open)
            var slowOptions = RelayConnection.Options()
            slowOptions.receiveBufferSize = 4096
            slowOptions.inboundMedia = .keepAll  // a slow consumer that reads every frame: the relay's policy is the subject
            let slowConnection = try await RelayConnection.connect(to: endpoint, options: slowOptions)
            let slow = TestParticipant(connection: slowConnection)
            try await slowConnection.send(.hello(HelloMessage()))
            _ = try await slow.expectMessage("WELCOME") {
                if case .welcome(let w) = $0 { slow.challenge = w.challenge; return true }; return false
            }
            try await slow.join(room)
            let fast = try await TestParticipant.connect(endpoint)
            try await fast.join(room)
            try await Task.sleep(for: .milliseconds(100))
            _ = try await sender.drain(for: .milliseconds(100))
            _ = try await fast.drain(for: .milliseconds(100))
            await slowConnection.pauseReading()

            // The fast reader counts frames concurrently. The sender keeps at most `window`
            // frames ahead of it (48 KB of audio, 160 KB of chat: inside the 64 KB and 256 KB
            // limits), so that the fast reader stays within its bounds however the machine
            // schedules the test's tasks; the paused reader falls behind by everything.
            let audioFrames = 4000, chatFrames = 400, window = 40
            let seen = FrameCounts()
            let counter = Task { () -> (audio: Int, chat: Int) in
                var audio = 0, chat = 0
                let deadline = ContinuousClock.now + .seconds(60)
                while audio < audioFrames || chat < chatFrames, ContinuousClock.now < deadline {
                    guard let item = try? await fast.connection.next(timeout: .seconds(5)) else { break }
                    if case .message(.frame(let f)) = item {
                        if f.header.kind == .audio {
                            audio += 1
                            seen.audio.store(audio, ordering: .relaxed)
                        } else if f.header.kind == .chat {
                            chat += 1
                            seen.chat.store(chat, ordering: .relaxed)
                        }
                    }
                }
                return (audio, chat)
            }
            let audioPayload = [UInt8](repeating: 0xA0, count: 1_200)
            for i in 0..<audioFrames {
                try await waitUntil("the fast reader within \(window) audio frames", within: .seconds(10)) { seen.audio.load(ordering: .relaxed) >= i - window }
                try await sender.sendFrame(.audio, payload: audioPayload)
            }
            let chatPayload = [UInt8](repeating: 0xC0, count: 4_000)
            for i in 0..<chatFrames {
                try await waitUntil("the fast reader within \(window) chat frames", within: .seconds(10)) { seen.chat.load(ordering: .relaxed) >= i - window }
                try await sender.sendFrame(.chat, payload: chatPayload)
            }
            let received = await counter.value
            #expect(received.audio == audioFrames, "the fast reader lost audio: \(received.audio)/\(audioFrames)")
            #expect(received.chat == chatFrames, "the fast reader lost chat: \(received.chat)/\(chatFrames)")
            let metrics = String(decoding: server.metrics.render(), as: UTF8.self)
            #expect(metricValue(metrics, "conclave_relay_outbound_media_dropped_total") > 0, "no audio was dropped for the slow reader")
            #expect(metricValue(metrics, "conclave_relay_slow_consumer_disconnects_total") == 1)
            // Memory: no connection's queue ever exceeded the hard limit plus one message.
            #expect(server.metrics.peakOutboundQueue <= config.outboundQueueBytes + MessageLimits.maximumMessageLength)
            #expect(server.metrics.peakOutboundQueue > config.outboundMediaQueueBytes, "the queue never filled: the test did not create backpressure")
            // The slow reader, once it reads again, finds too_slow and the close.
            await slowConnection.resumeReading()
            let tail = try await slow.drain(for: .seconds(10))  // ends at the close
            #expect(
                tail.contains {
                    if case .message(.error(let e)) = $0 { return e.code == .tooSlow }; return false
                })
            #expect(tail.contains { $0.isClosed })
        }
    }

    @Test func tlsEndToEndAndUntrustedRefused() async throws {
        let certificate = try await TestCertificate.make()
        defer { certificate.remove() }
        let (cert, key) = (certificate.certPath, certificate.keyPath)
        let config = testRelayConfiguration {
            $0.tlsCertificatePath = cert; $0.tlsKeyPath = key
        }
        try await withRelay(config) { _, endpoint in
            #expect(endpoint.usesTLS)
            let trusted = try await TestParticipant.connect(endpoint, tls: .trusting(pemFile: cert))
            let room = try await trusted.createRoom()
            #expect(room != .zero)
            await #expect(throws: RelayConnectionError.self) {
                _ = try await RelayConnection.connect(to: endpoint, tls: .system)
            }
        }
    }

    @Test func healthzAndMetricsAnswerWithoutIdentifiers() async throws {
        try await withRelay { server, endpoint in
            let host = try await TestParticipant.connect(endpoint)
            let room = try await host.createRoom()
            let (h, body) = try await httpGet(port: server.port!, path: "/healthz")
            #expect(h == 200 && body == "ok\n")
            let (m, text) = try await httpGet(port: server.port!, path: "/metrics")
            #expect(m == 200)
            for name in [
                "conclave_relay_connections", "conclave_relay_rooms", "conclave_relay_frames_received_total",
                "conclave_relay_frames_dropped_total", "conclave_relay_limit_hits_total", "process_resident_memory_bytes",
                "process_cpu_seconds_total", "process_open_fds",
            ] {
                #expect(text.contains(name), "missing metric \(name)")
            }
            // At least the listening socket, the host's connection and this scrape's.
            #expect(metricValue(text, "process_open_fds") >= 3)
            #expect(metricValue(text, "conclave_relay_rooms") == 1)
            #expect(!text.contains(room.base64URL), "a room id leaked into /metrics")
            let (nf, _) = try await httpGet(port: server.port!, path: "/admin")
            #expect(nf == 404)
        }
    }

    /// SIGTERM to the real `conclave-relay` process: clients get shutting_down and the
    /// process exits within 5 s.
    @Test func sigtermShutsDownCleanlyAndNotifiesClients() async throws {
        let relay = try await RelayProcess.launch(arguments: ["--set", "password-hashing=minimum", "--set", "shutdown-grace-seconds=1"])
        let endpoint = relay.endpoint
        let host = try await TestParticipant.connect(endpoint)
        try await host.createRoom()
        let idle = try await TestParticipant.connect(endpoint)
        let start = ContinuousClock.now
        await relay.kill(SIGTERM)
        try await host.expectFatal(.shuttingDown)
        try await idle.expectFatal(.shuttingDown)
        let exited = await relay.waitForExit(within: .seconds(5) - (ContinuousClock.now - start))
        #expect(exited, "the relay did not exit within 5 s of SIGTERM")
        #expect(relay.child.exit == .exited(0))
    }
}

/// The value of the first sample of `name` (any labels), or the sum of all its samples.
func metricValue(_ text: String, _ name: String) -> Double {
    var total = 0.0
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        let metric = line.prefix(while: { $0 != " " && $0 != "{" })
        guard metric == name, let value = line.split(separator: " ").last.flatMap({ Double($0) }) else { continue }
        total += value
    }
    return total
}

/// Frames a concurrent reader has counted so far.
final class FrameCounts: Sendable {
    let audio = Atomic<Int>(0)
    let chat = Atomic<Int>(0)
}
