#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import ConclaveProtocol
@testable import ConclaveRelay

extension RawTCP {
    /// Reads until the peer closes or `timeout` passes; returns what arrived and whether it closed.
    func readToClose(timeout: Duration = .seconds(3)) async throws -> (bytes: [UInt8], closed: Bool) {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { out += buffer[0..<n]; continue }
            if n == 0 { return (out, true) }
            if errno != EAGAIN && errno != EWOULDBLOCK { return (out, true) }
            try await Task.sleep(for: .milliseconds(10))
        }
        return (out, false)
    }

    /// Reads until `count` bytes arrived (or the peer closed, or `timeout`).
    func read(atLeast count: Int, timeout: Duration = .seconds(3)) async throws -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = ContinuousClock.now + timeout
        while out.count < count, ContinuousClock.now < deadline {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { out += buffer[0..<n]; continue }
            if n == 0 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        return out
    }

    func sendBytes(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
}

/// Issue 10, defect 2: RFC 6455 to the letter. Each violation fails the connection with the
/// close code the RFC gives; a legally fragmented message is one message.
@Suite(.serialized, .timeLimit(.minutes(2)), .tags(.integration), .live) struct WebSocketRulesTests {
    static let key = "dGhlIHNhbXBsZSBub25jZQ=="  // RFC 6455's sample key

    /// One client frame: FIN, RSV bits, opcode, masked (unless `mask` is false).
    static func frame(fin: Bool = true, rsv: UInt8 = 0, opcode: UInt8, payload: [UInt8], mask: Bool = true) -> [UInt8] {
        var out: [UInt8] = [(fin ? 0x80 : 0) | (rsv << 4) | opcode]
        let m: UInt8 = mask ? 0x80 : 0
        if payload.count < 126 {
            out.append(m | UInt8(payload.count))
        } else {
            out.append(m | 126)
            out += [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        }
        guard mask else { return out + payload }
        let maskKey: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
        out += maskKey
        out += payload.enumerated().map { $0.element ^ maskKey[$0.offset % 4] }
        return out
    }

    func upgraded(_ port: Int) async throws -> RawTCP {
        let c = try RawTCP(from: "127.0.0.1", toPort: port)
        c.send(
            "GET /v1 HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: \(Self.key)\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        let head = try await c.read(atLeast: 12, timeout: .seconds(10))
        try #require(String(decoding: head, as: UTF8.self).hasPrefix("HTTP/1.1 101"), "no upgrade: \(String(decoding: head, as: UTF8.self))")
        // Drain the rest of the 101 response (bounded: a peer that closes returns nothing).
        var rest = head
        let deadline = ContinuousClock.now + .seconds(10)
        while !String(decoding: rest, as: UTF8.self).contains("\r\n\r\n"), ContinuousClock.now < deadline {
            let more = try await c.read(atLeast: 1, timeout: .seconds(1))
            if more.isEmpty, c.isClosed { break }
            rest += more
        }
        try #require(String(decoding: rest, as: UTF8.self).contains("\r\n\r\n"), "the 101 response never ended")
        return c
    }

    /// The close code in a close frame from the server (unmasked), if the bytes hold one.
    static func closeCode(in bytes: [UInt8]) -> UInt16? {
        var i = 0
        while i + 2 <= bytes.count {
            let opcode = bytes[i] & 0x0F, length = Int(bytes[i + 1] & 0x7F)
            guard length < 126 else { return nil }
            if opcode == 0x8, length >= 2, i + 4 <= bytes.count { return UInt16(bytes[i + 2]) << 8 | UInt16(bytes[i + 3]) }
            i += 2 + length
        }
        return nil
    }

    @Test func eachViolationFailsTheConnectionWithItsCloseCode() async throws {
        let hello = ClientMessage.hello(HelloMessage()).encoded()
        let cases: [(String, [UInt8], UInt16)] = [
            ("RSV1 set", Self.frame(rsv: 0b100, opcode: 0x2, payload: hello), 1002),
            ("RSV3 set", Self.frame(rsv: 0b001, opcode: 0x2, payload: hello), 1002),
            ("unmasked frame", Self.frame(opcode: 0x2, payload: hello, mask: false), 1002),
            ("reserved opcode 0x3", Self.frame(opcode: 0x3, payload: [1]), 1002),
            ("reserved opcode 0xB", Self.frame(opcode: 0xB, payload: [1]), 1002),
            ("continuation with nothing to continue", Self.frame(opcode: 0x0, payload: hello), 1002),
            ("fragmented ping", Self.frame(fin: false, opcode: 0x9, payload: [1]), 1002),
            ("new message inside a fragmented one", Self.frame(fin: false, opcode: 0x2, payload: [0x01]) + Self.frame(opcode: 0x2, payload: hello), 1002),
        ]
        try await withRelay { server, _ in
            for (name, bytes, expected) in cases {
                let c = try await upgraded(server.port!)
                c.sendBytes(bytes)
                let (reply, closed) = try await c.readToClose()
                #expect(closed, "\(name): the connection stayed open")
                #expect(
                    Self.closeCode(in: reply) == expected, "\(name): close code \(String(describing: Self.closeCode(in: reply))), bytes \(reply.prefix(16))")
            }
        }
    }

    @Test func aFragmentedMessageIsOneMessage() async throws {
        try await withRelay { server, _ in
            let c = try await upgraded(server.port!)
            let hello = ClientMessage.hello(HelloMessage()).encoded()
            // HELLO in three fragments, a ping between two of them (control frames may interleave).
            c.sendBytes(
                Self.frame(fin: false, opcode: 0x2, payload: Array(hello[0..<1]))
                    + Self.frame(fin: false, opcode: 0x0, payload: Array(hello[1..<2]))
                    + Self.frame(opcode: 0x9, payload: [7])
                    + Self.frame(opcode: 0x0, payload: Array(hello[2...])))
            let reply = try await c.read(atLeast: 8)
            // A pong, then WELCOME (a binary message of type 0x81).
            var i = 0, sawWelcome = false, sawPong = false
            while i + 2 <= reply.count {
                let opcode = reply[i] & 0x0F, length = Int(reply[i + 1] & 0x7F)
                if opcode == 0xA { sawPong = true }
                if opcode == 0x2, i + 4 <= reply.count, reply[i + 3] == MessageType.welcome.rawValue { sawWelcome = true }
                i += 2 + length
            }
            #expect(sawWelcome, "no WELCOME for a fragmented HELLO: \(reply.prefix(32))")
            #expect(sawPong)
        }
    }

    @Test func anInvalidOpeningHandshakeIsNotUpgraded() async throws {
        try await withRelay { server, _ in
            let port = server.port!
            let requests = [
                (
                    "a key that is not 16 bytes in base64",
                    "GET /v1 HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: !!\r\nSec-WebSocket-Version: 13\r\n\r\n"
                ),
                (
                    "POST with upgrade headers",
                    "POST /v1 HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: \(Self.key)\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n"
                ),
                (
                    "two keys",
                    "GET /v1 HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: \(Self.key)\r\nSec-WebSocket-Key: \(Self.key)\r\nSec-WebSocket-Version: 13\r\n\r\n"
                ),
            ]
            for (name, request) in requests {
                let c = try RawTCP(from: "127.0.0.1", toPort: port)
                c.send(request)
                let (reply, closed) = try await c.readToClose()
                let text = String(decoding: reply, as: UTF8.self)
                #expect(!text.hasPrefix("HTTP/1.1 101"), "\(name) was upgraded")
                #expect(text.hasPrefix("HTTP/1.1 400"), "\(name): \(text.prefix(40))")
                #expect(closed, "\(name): left open")
            }
            #expect(RelayServer.isWebSocketKey(Self.key))
            #expect(!RelayServer.isWebSocketKey("dGhlIHNhbXBsZSBub25jZR=="))
        }
    }
}
