#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import ConclaveClient
import ConclaveCrypto
import ConclaveProtocol
@testable import ConclaveRelay

/// Issue 10, defect 3: a slow consumer is cut off with its `ERROR too_slow` and a close
/// frame, after every whole frame queued before them; never at end of file in the middle
/// of a frame.
@Suite(.serialized, .timeLimit(.minutes(2)), .tags(.integration), .live) struct SlowConsumerTests {
    /// Server frames (unmasked) parsed from a byte stream: (opcode, payload), and whether
    /// bytes were left over (a frame cut short).
    static func frames(_ bytes: [UInt8]) -> (frames: [(UInt8, [UInt8])], truncated: Bool) {
        var out: [(UInt8, [UInt8])] = []
        var i = 0
        while i < bytes.count {
            guard i + 2 <= bytes.count else { return (out, true) }
            let opcode = bytes[i] & 0x0F
            var length = Int(bytes[i + 1] & 0x7F), at = i + 2
            if length == 126 {
                guard at + 2 <= bytes.count else { return (out, true) }
                length = Int(bytes[at]) << 8 | Int(bytes[at + 1]); at += 2
            } else if length == 127 {
                guard at + 8 <= bytes.count else { return (out, true) }
                length = bytes[at..<at + 8].reduce(0) { $0 << 8 | Int($1) }; at += 8
            }
            guard at + length <= bytes.count else { return (out, true) }
            out.append((opcode, Array(bytes[at..<at + length])))
            i = at + length
        }
        return (out, false)
    }

    /// The next whole binary message from a raw client, as a relay message.
    static func nextMessage(_ c: RawTCP, _ pending: inout [UInt8]) async throws -> RelayMessage {
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            let parsed = frames(pending)
            if let (opcode, payload) = parsed.frames.first {
                // Drop that frame from `pending`.
                var header = 2
                if pending[1] & 0x7F == 126 { header = 4 } else if pending[1] & 0x7F == 127 { header = 10 }
                pending.removeFirst(header + payload.count)
                if opcode == 0x2 { return try RelayMessage.decode(payload) }
                continue
            }
            pending += try await c.read(atLeast: 1, timeout: .milliseconds(200))
        }
        throw TestTimeout(what: "a message from the relay")
    }

    @Test func aSlowConsumerGetsEveryWholeFrameThenItsTooSlow() async throws {
        let config = testRelayConfiguration {
            $0.outboundQueueBytes = 64 * 1024
            $0.outboundMediaQueueBytes = 16 * 1024
            $0.maxBytesPerSecond = 100_000_000
            $0.maxFramesPerSecond = 100_000
        }
        try await withRelay(config) { server, endpoint in
            let host = try await TestParticipant.connect(endpoint)
            var open = RoomSettings.privacyDefaults
            open.waitingRoom = false
            open.muteOnEntry = false
            let room = try await host.createRoom(settings: open)

            // The slow client, on a raw socket: HELLO, JOIN, then it reads slowly.
            let slow = try await WebSocketRulesTests().upgraded(server.port!)
            var pending: [UInt8] = []
            slow.sendBytes(WebSocketRulesTests.frame(opcode: 0x2, payload: ClientMessage.hello(HelloMessage()).encoded()))
            guard case .welcome(let welcome) = try await Self.nextMessage(slow, &pending) else { Issue.record("no WELCOME"); return }
            let identity = PrivateIdentity.generate()
            let join = ClientMessage.join(
                JoinMessage(
                    roomID: room, identity: identity.publicIdentity.wireIdentity,
                    signature: try RelayHandshake.proof(identity: identity, challenge: welcome.challenge, room: room),
                    relayAuth: nil, knock: [1, 2, 3])
            ).encoded()
            slow.sendBytes(WebSocketRulesTests.frame(opcode: 0x2, payload: join))
            var slowIndex: ParticipantIndex?
            while slowIndex == nil {
                if case .admitted(let a) = try await Self.nextMessage(slow, &pending) { slowIndex = a.index }
            }

            // The host floods it with chat addressed to it (reliable: never dropped).
            let flood = Task {
                for _ in 0..<4_000 {
                    guard (try? await host.sendFrame(.chat, to: slowIndex!, payload: [UInt8](repeating: 0x5A, count: 4_000))) != nil else { return }
                    if Task.isCancelled { return }
                }
            }
            defer { flood.cancel() }
            // 20 KB every 50 ms (400 KB/s): far slower than the flood, but never stalled; the
            // kernel's buffers (several MiB on loopback) drain in seconds, past the old fixed
            // 2 s close.
            var received = pending
            var buffer = [UInt8](repeating: 0, count: 20_000)
            var closed = false
            let deadline = ContinuousClock.now + .seconds(60)
            while !closed, ContinuousClock.now < deadline {
                let n = buffer.withUnsafeMutableBytes { recv(slow.fd, $0.baseAddress, $0.count, 0) }
                if n > 0 { received += buffer[0..<n] } else if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) { closed = true }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(closed, "the relay never closed the slow consumer")
            let (frames, truncated) = Self.frames(received)
            #expect(!truncated, "the stream ended in the middle of a frame (\(received.count) bytes, \(frames.count) whole frames)")
            let errors = frames.filter { $0.0 == 0x2 }.compactMap { try? RelayMessage.decode($0.1) }.compactMap { m -> ErrorCode? in
                if case .error(let e) = m { return e.code }; return nil
            }
            #expect(errors == [.tooSlow], "errors received: \(errors)")
            #expect(frames.last?.0 == 0x8, "the last frame is not a close frame")
            #expect(frames.filter { $0.0 == 0x2 }.count > 10, "hardly anything was delivered before the cut")
            // Counted as sent once written.
            let (_, metrics) = try await httpGet(port: server.port!, path: "/metrics")
            #expect(metrics.contains("conclave_relay_errors_sent_total{code=\"too_slow\"} 1"))
        }
    }
}
