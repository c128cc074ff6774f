import ConclaveProtocol
import Testing

@Suite("Malformed messages")
struct MessageMalformedTests {
    typealias F = MessageFixtures

    // MARK: Helpers

    private func clientResult(_ bytes: [UInt8]) -> Result<ClientMessage, MessageDecodingError> {
        Result { () throws(MessageDecodingError) in try ClientMessage.decode(bytes) }
    }

    private func relayResult(_ bytes: [UInt8]) -> Result<RelayMessage, MessageDecodingError> {
        Result { () throws(MessageDecodingError) in try RelayMessage.decode(bytes) }
    }

    private func expectClient(_ bytes: [UInt8], throws expected: MessageDecodingError, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: expected, sourceLocation: sourceLocation) { try ClientMessage.decode(bytes) }
    }

    private func expectRelay(_ bytes: [UInt8], throws expected: MessageDecodingError, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: expected, sourceLocation: sourceLocation) { try RelayMessage.decode(bytes) }
    }

    /// `bytes` with `replacement` written at `offset`.
    private func patch(_ bytes: [UInt8], at offset: Int, _ replacement: [UInt8]) -> [UInt8] {
        var copy = bytes
        copy.replaceSubrange(offset..<offset + replacement.count, with: replacement)
        return copy
    }

    private func u16(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }
    private func u32(_ value: UInt32) -> [UInt8] { [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }

    private func client(_ name: String) -> [UInt8] { F.clientMessages.first { $0.name == name }!.message.encoded() }
    private func relay(_ name: String) -> [UInt8] { F.relayMessages.first { $0.name == name }!.message.encoded() }

    private func isTruncated(_ error: MessageDecodingError) -> Bool {
        if case .truncated = error { true } else { false }
    }

    // MARK: Truncation, trailing bytes, version, type, size

    @Test("every proper prefix of every client message throws truncated (frames: until the payload starts)")
    func clientPrefixes() {
        for (name, message) in F.clientMessages {
            let bytes = message.encoded()
            for length in 0..<bytes.count {
                let prefix = Array(bytes[0..<length])
                switch (message, clientResult(prefix)) {
                case let (.frame(frame), .success(.frame(decoded))) where length > 8:
                    #expect(decoded.header == frame.header && decoded.payload == Array(frame.payload.prefix(length - 8)), "\(name) prefix \(length)")
                case let (_, .failure(error)):
                    #expect(isTruncated(error), "\(name) prefix \(length): \(error)")
                case (_, .success):
                    Issue.record("\(name): prefix of \(length) bytes decoded")
                }
            }
        }
    }

    @Test("every proper prefix of every relay message throws truncated (frames: until the payload starts)")
    func relayPrefixes() {
        for (name, message) in F.relayMessages {
            let bytes = message.encoded()
            // Frames were covered in both directions by the client test; sample the long ones.
            let lengths = message.type == .frame ? Array(0...9) : Array(0..<bytes.count)
            for length in lengths where length < bytes.count {
                switch relayResult(Array(bytes[0..<length])) {
                case let .failure(error): #expect(isTruncated(error) || length > 8, "\(name) prefix \(length): \(error)")
                case .success: #expect(message.type == .frame && length > 8, "\(name): prefix of \(length) bytes decoded")
                }
            }
        }
    }

    @Test("one trailing byte is rejected; a frame's extra byte is payload")
    func trailingByte() {
        for (name, message) in F.clientMessages where message.type != .frame {
            expectClient(message.encoded() + [0], throws: .trailingBytes(count: 1))
            _ = name
        }
        for (_, message) in F.relayMessages where message.type != .frame {
            expectRelay(message.encoded() + [0xFF], throws: .trailingBytes(count: 1))
        }
        for kind in FrameKind.allCases {
            let full = ClientMessage.frame(F.frame(kind, payloadLength: kind.payloadLimit)).encoded()
            expectClient(full + [0], throws: .payloadTooLarge(kind: kind, length: kind.payloadLimit + 1, limit: kind.payloadLimit))
            expectRelay(full + [0], throws: .payloadTooLarge(kind: kind, length: kind.payloadLimit + 1, limit: kind.payloadLimit))
        }
    }

    @Test("a version other than 2 is unsupported_version, checked before the type (HELLO and ERROR carry preamble 1)")
    func wrongVersion() {
        for version: UInt8 in [0, 1, 3, 0xFF] {
            for (_, message) in F.clientMessages where !(version == 1 && message.type == .hello) {
                expectClient(patch(message.encoded(), at: 0, [version]), throws: .unsupportedVersion(version))
            }
            for (_, message) in F.relayMessages where !(version == 1 && message.type == .error) {
                expectRelay(patch(message.encoded(), at: 0, [version]), throws: .unsupportedVersion(version))
            }
            expectClient([version], throws: version == ProtocolVersion.handshake ? .truncated(field: "type") : .unsupportedVersion(version))
            expectClient([version, 0x77], throws: .unsupportedVersion(version))
            #expect(throws: MessageDecodingError.unsupportedVersion(version)) {
                try FrameHeader.decode(message: patch(ClientMessage.frame(F.frames[0]).encoded(), at: 0, [version]))
            }
            #expect(MessageDecodingError.unsupportedVersion(version).wireCode == .unsupportedVersion)
        }
        expectClient([], throws: .truncated(field: "version"))
        expectRelay([2], throws: .truncated(field: "type"))
        // Version 1 is refused for everything but HELLO and ERROR, whose preamble is always 1.
        for (_, message) in F.clientMessages where message.type == .hello {
            #expect(message.encoded()[0] == 1)
            #expect(throws: MessageDecodingError.unsupportedVersion(2)) { try ClientMessage.decode(patch(message.encoded(), at: 0, [2])) == message }
        }
    }

    @Test("MEDIA_SESSION: zero session or port, bad UTF-8 host, short key")
    func mediaSessionFields() {
        let key = [UInt8](repeating: 7, count: 32)
        expectRelay([2, 0x8A, 0, 0, 0, 0] + key + [0x1D, 0x13, 0], throws: .invalidValue(field: "session_id", value: 0))
        expectRelay([2, 0x8A, 0, 0, 0, 9] + key + [0, 0, 0], throws: .invalidValue(field: "port", value: 0))
        expectRelay([2, 0x8A, 0, 0, 0, 9] + key + [0x1D, 0x13, 2, 0xC3, 0x28], throws: .invalidUTF8(field: "host"))
        expectRelay([2, 0x8A, 0, 0, 0, 9] + key.prefix(31), throws: .truncated(field: "hop_key"))
        expectRelay([2, 0x8A, 0, 0, 0, 9] + key + [0x1D, 0x13, 0, 0], throws: .trailingBytes(count: 1))
    }

    @Test("REDIRECT: unknown reason, origins that are not ws[s]://HOST:PORT in canonical form")
    func redirectFields() {
        func origin(_ text: String, reason: UInt8 = 1) -> [UInt8] { [2, 0x8B, reason, UInt8(text.utf8.count)] + Array(text.utf8) }
        expectRelay(origin("ws://h:1", reason: 0), throws: .invalidValue(field: "reason", value: 0))
        expectRelay(origin("ws://h:1", reason: 3), throws: .invalidValue(field: "reason", value: 3))
        for bad in [
            "http://h:1", "ws://h", "ws://h:0", "ws://h:65536", "ws://h:01", "ws://h:+1", "ws://:1", "ws://h:1/v1",
            "ws://h h:1", "ws://::1:7", "ws://[::1]", "ws://[::1]7", "WS://h:1", "ws://h:1 ", "wss://[]:1", "",
        ] {
            expectRelay(origin(bad), throws: .invalidValue(field: "origin", value: UInt64(bad.utf8.count)))
        }
        expectRelay([2, 0x8B, 1, 9] + Array("ws://h:1".utf8), throws: .truncated(field: "origin"))
        expectRelay(origin("ws://h:1") + [0], throws: .trailingBytes(count: 1))
        #expect(RedirectMessage.parseOrigin("wss://[::1]:7001".utf8)! == (true, "::1", 7001))
        #expect(RedirectMessage.parseOrigin("ws://relay.example:80".utf8)! == (false, "relay.example", 80))
    }

    @Test("reserved types and types of the other direction are unknown")
    func unknownTypes() {
        let clientTypes: Set<UInt8> = [0x01, 0x02, 0x03, 0x04, 0x05, 0x30]
        let relayTypes: Set<UInt8> = [0x30, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8B]
        for type in UInt8.min...UInt8.max {
            let preamble: UInt8 = type == 0x01 || type == 0x88 ? 1 : 2  // HELLO and ERROR: the handshake preamble
            let bytes: [UInt8] = [preamble, type] + [UInt8](repeating: 0, count: 40)
            if !clientTypes.contains(type) { expectClient(bytes, throws: .unknownType(type)) }
            if !relayTypes.contains(type) { expectRelay(bytes, throws: .unknownType(type)) }
            let peeked = try? bytes.withUnsafeBytes { try MessageType.peek($0) }
            #expect(peeked == MessageType(rawValue: type))
        }
        // A whole valid message of the wrong direction.
        for (_, message) in F.relayMessages where message.type != .frame {
            expectClient(message.encoded(), throws: .unknownType(message.type.rawValue))
        }
        for (_, message) in F.clientMessages where message.type != .frame {
            expectRelay(message.encoded(), throws: .unknownType(message.type.rawValue))
        }
        #expect(throws: MessageDecodingError.unknownType(0x05)) { try FrameHeader.decode(message: ClientMessage.ping(nonce: 0).encoded()) }
    }

    @Test("a message over 65 535 bytes is too_large before anything else")
    func messageTooLarge() {
        let huge: [UInt8] = [2, 0x30, 2, 0, 0, 1, 0xFF, 0xFF] + [UInt8](repeating: 7, count: 65_528)
        #expect(huge.count == 65_536)
        expectClient(huge, throws: .messageTooLarge(length: 65_536, limit: 65_535))
        expectRelay(huge, throws: .messageTooLarge(length: 65_536, limit: 65_535))
        expectClient(patch(huge, at: 0, [9]), throws: .messageTooLarge(length: 65_536, limit: 65_535))
        #expect(throws: MessageDecodingError.messageTooLarge(length: 65_536, limit: 65_535)) { try FrameHeader.decode(message: huge) }
        #expect(throws: MessageDecodingError.messageTooLarge(length: 65_536, limit: 65_535)) {
            try huge.withUnsafeBytes { raw in
                do { return try MessageType.peek(raw) } catch { throw error }
            }
        }
        #expect(MessageDecodingError.messageTooLarge(length: 65_536, limit: 65_535).wireCode == .tooLarge)
        // Exactly at the limit: too large for the screen kind, not for the message.
        let atLimit = Array(huge.dropLast())
        expectClient(atLimit, throws: .payloadTooLarge(kind: .screen, length: 65_527, limit: 16_384))
    }

    // MARK: Length fields

    @Test("length fields over their limits or over the bytes present")
    func oversizedLengths() {
        // JOIN: knock length at offset 2+16+64+64+1 = 147 (no relay_auth)
        let join = client("join without password, empty knock")
        #expect(join.count == 149)
        expectClient(
            patch(join, at: 147, u16(2049)) + [UInt8](repeating: 1, count: 2049),
            throws: .lengthOverLimit(field: "knock", length: 2049, limit: 2048))
        expectClient(patch(join, at: 147, u16(0xFFFF)), throws: .lengthOverLimit(field: "knock", length: 65535, limit: 2048))
        expectClient(patch(join, at: 147, u16(10)) + [1, 2, 3, 4, 5], throws: .truncated(field: "knock"))
        // KNOCK: knock length at offset 2+2+64 = 68
        let knock = relay("knock empty")
        #expect(knock.count == 70)
        expectRelay(
            patch(knock, at: 68, u16(2049)) + [UInt8](repeating: 1, count: 2049),
            throws: .lengthOverLimit(field: "knock", length: 2049, limit: 2048))
        expectRelay(patch(knock, at: 68, u16(1)), throws: .truncated(field: "knock"))
        // ERROR: text length at offset 11
        let error = relay("error empty text")
        #expect(error.count == 12)
        expectRelay(
            patch(error, at: 11, [201]) + [UInt8](repeating: 0x61, count: 201),
            throws: .lengthOverLimit(field: "message", length: 201, limit: 200))
        expectRelay(patch(error, at: 11, [0xFF]), throws: .lengthOverLimit(field: "message", length: 255, limit: 200))
        expectRelay(patch(error, at: 11, [3]) + [0x61], throws: .truncated(field: "message"))
        // ADMITTED: count at offset 15
        let admitted = relay("admitted roster of 3")
        #expect(admitted.count == 17 + 3 * 69)
        expectRelay(patch(admitted, at: 15, u16(901)), throws: .lengthOverLimit(field: "count", length: 901, limit: 900))
        expectRelay(patch(admitted, at: 15, u16(0xFFFF)), throws: .lengthOverLimit(field: "count", length: 65535, limit: 900))
        expectRelay(patch(admitted, at: 15, u16(4)), throws: .truncated(field: "roster"))
        expectRelay(patch(admitted, at: 15, u16(2)), throws: .trailingBytes(count: 69))
    }

    // MARK: Reserved bits

    @Test("reserved bits and reserved fields")
    func reservedBits() {
        // CREATE_ROOM without password: room_id 2..<18, flags at 146, settings 147..<156 (flags 147, reserved 154..<156)
        let create = client("create room without password")
        #expect(create.count == 156)
        expectClient(patch(create, at: 146, [0x02]), throws: .reservedBitsSet(field: "flags", value: 2))
        expectClient(patch(create, at: 146, [0x81]), throws: .reservedBitsSet(field: "flags", value: 0x81))
        for bit: UInt8 in [0x20, 0x40, 0x80] {
            expectClient(patch(create, at: 147, [0x0F | bit]), throws: .reservedBitsSet(field: "settings.flags", value: UInt64(0x0F | bit)))
        }
        expectClient(patch(create, at: 154, [0x00, 0x01]), throws: .reservedBitsSet(field: "settings.reserved", value: 1))
        expectClient(patch(create, at: 154, [0x80, 0x00]), throws: .reservedBitsSet(field: "settings.reserved", value: 0x8000))
        // A proposed room id of zero is refused.
        expectClient(patch(create, at: 2, [UInt8](repeating: 0, count: 16)), throws: .invalidValue(field: "room_id", value: 0))
        // JOIN flags at 146
        let join = client("join without password, empty knock")
        expectClient(patch(join, at: 146, [0x04]), throws: .reservedBitsSet(field: "flags", value: 4))
        // ADMITTED first roster entry at 17: state at 17+67 = 84, reserved at 85
        let admitted = relay("admitted roster of 3")
        for bit: UInt8 in [0x10, 0x20, 0x40, 0x80] {
            expectRelay(patch(admitted, at: 84, [bit]), throws: .reservedBitsSet(field: "roster_entry.state", value: UInt64(bit)))
        }
        expectRelay(patch(admitted, at: 85, [1]), throws: .reservedBitsSet(field: "roster_entry.reserved", value: 1))
        // WELCOME reserved at 39
        let welcome = relay("welcome")
        #expect(welcome.count == 41)
        expectRelay(patch(welcome, at: 39, [0, 1]), throws: .reservedBitsSet(field: "reserved", value: 1))
        // FRAME flags at 3
        for (_, message) in F.clientMessages where message.type == .frame {
            expectClient(patch(message.encoded(), at: 3, [0x01]), throws: .reservedBitsSet(field: "flags", value: 1))
        }
    }

    // MARK: Values out of range

    @Test("settings out of range")
    func settingsOutOfRange() {
        // ROOM_CREATED: settings at 20: flags 20, max_participants 21, max_waiting 23, timeout 25
        let created = relay("room created")
        #expect(created.count == 29)
        expectRelay(patch(created, at: 21, u16(0)), throws: .invalidValue(field: "max_participants", value: 0))
        expectRelay(patch(created, at: 21, u16(901)), throws: .invalidValue(field: "max_participants", value: 901))
        expectRelay(patch(created, at: 21, u16(1000)), throws: .invalidValue(field: "max_participants", value: 1000))
        expectRelay(patch(created, at: 23, u16(1001)), throws: .invalidValue(field: "max_waiting", value: 1001))
        expectRelay(patch(created, at: 25, u16(0)), throws: .invalidValue(field: "recording_ack_timeout_s", value: 0))
        expectRelay(patch(created, at: 25, u16(3601)), throws: .invalidValue(field: "recording_ack_timeout_s", value: 3601))
        #expect(throws: MessageDecodingError.invalidValue(field: "max_waiting", value: 1001)) {
            var settings = RoomSettings.privacyDefaults
            settings.maxWaiting = 1001
            try settings.validate()
        }
        // Boundaries decode.
        #expect((try? RelayMessage.decode(patch(patch(patch(created, at: 21, u16(1)), at: 23, u16(0)), at: 25, u16(1)))) != nil)
    }

    @Test("commands whose op, target or value do not fit table 5.5")
    func invalidCommands() throws {
        func command(_ op: UInt8, target: UInt16, value: UInt32) -> [UInt8] { [2, 4, op, 0x12, 0x34] + u16(target) + u32(value) }
        // Valid shapes decode.
        #expect(
            try ClientMessage.decode(command(0x13, target: 5, value: 900))
                == .command(CommandMessage(requestID: 0x1234, action: .setSetting(.maxParticipants(900)))))
        #expect(try ClientMessage.decode(command(0x11, target: 0, value: 0)) == .command(CommandMessage(requestID: 0x1234, action: .setRecording(on: false))))
        for op: UInt8 in [0x00, 0x17, 0x30, 0xFF] {
            expectClient(command(op, target: 0, value: 0), throws: .invalidValue(field: "op", value: UInt64(op)))
        }
        let zeroTargetOps: [UInt8] = [0x03, 0x04, 0x06, 0x07, 0x09, 0x11, 0x12, 0x14, 0x15, 0x16]
        let indexOps: [UInt8] = [0x01, 0x02, 0x05, 0x08, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10]
        for op in zeroTargetOps {
            expectClient(command(op, target: 1, value: 0), throws: .invalidValue(field: "target", value: 1))
            expectClient(command(op, target: 0xFFFF, value: 0), throws: .invalidValue(field: "target", value: 0xFFFF))
        }
        for op in indexOps {
            expectClient(command(op, target: 0, value: 0), throws: .invalidValue(field: "target", value: 0))
            expectClient(command(op, target: 0xFFFF, value: 0), throws: .invalidValue(field: "target", value: 0xFFFF))
            expectClient(command(op, target: 5, value: 1), throws: .invalidValue(field: "value", value: 1))
        }
        for op in zeroTargetOps where op != 0x11 {
            expectClient(command(op, target: 0, value: 0x8000_0000), throws: .invalidValue(field: "value", value: 0x8000_0000))
        }
        expectClient(command(0x11, target: 0, value: 2), throws: .invalidValue(field: "value", value: 2))
        // set_setting: unknown ids and out-of-range values
        expectClient(command(0x13, target: 0, value: 1), throws: .invalidValue(field: "target", value: 0))
        expectClient(command(0x13, target: 8, value: 1), throws: .invalidValue(field: "target", value: 8))
        for id: UInt16 in 1...4 {
            expectClient(command(0x13, target: id, value: 2), throws: .invalidValue(field: "value", value: 2))
        }
        expectClient(command(0x13, target: 5, value: 0), throws: .invalidValue(field: "value", value: 0))
        expectClient(command(0x13, target: 5, value: 901), throws: .invalidValue(field: "value", value: 901))
        expectClient(command(0x13, target: 6, value: 1001), throws: .invalidValue(field: "value", value: 1001))
        expectClient(command(0x13, target: 7, value: 0), throws: .invalidValue(field: "value", value: 0))
        expectClient(command(0x13, target: 7, value: 3601), throws: .invalidValue(field: "value", value: 3601))
        expectClient(command(0x13, target: 6, value: 0x1_0000), throws: .invalidValue(field: "value", value: 0x1_0000))
    }

    @Test("events whose fields do not fit table 5.7")
    func invalidEvents() throws {
        func event(_ kind: UInt8, subject: UInt16, actor: UInt16 = 0, value: UInt32, identity: Identity? = nil, hasIdentity: UInt8? = nil) -> [UInt8] {
            [2, 0x86, kind] + u16(subject) + u16(actor) + u32(value) + [hasIdentity ?? (identity == nil ? 0 : 1)] + (identity?.bytes ?? [])
        }
        let id = F.identityA
        #expect(
            try RelayMessage.decode(event(1, subject: 3, value: 2, identity: id))
                == .event(EventMessage(actor: .none, event: .joined(3, identity: id, role: .host))))
        for kind: UInt8 in [0x00, 0x13, 0xFF] {
            expectRelay(event(kind, subject: 1, value: 0), throws: .invalidValue(field: "event", value: UInt64(kind)))
        }
        expectRelay(event(1, subject: 3, value: 0), throws: .invalidValue(field: "has_identity", value: 0))
        expectRelay(event(2, subject: 3, value: 1, identity: id), throws: .invalidValue(field: "has_identity", value: 1))
        expectRelay(event(2, subject: 3, value: 1, hasIdentity: 2), throws: .invalidValue(field: "has_identity", value: 2))
        expectRelay(event(2, subject: 3, actor: 0xFFFF, value: 1), throws: .invalidValue(field: "actor", value: 0xFFFF))
        expectRelay(event(1, subject: 3, value: 3, identity: id), throws: .invalidValue(field: "value", value: 3))
        expectRelay(event(1, subject: 0, value: 0, identity: id), throws: .invalidValue(field: "subject", value: 0))
        expectRelay(event(2, subject: 3, value: 0), throws: .invalidValue(field: "value", value: 0))
        expectRelay(event(2, subject: 3, value: 5), throws: .invalidValue(field: "value", value: 5))
        let memberZeroValueKinds: [UInt8] = [0x03, 0x04, 0x05, 0x0B, 0x0C, 0x0D, 0x10, 0x12]
        for kind in memberZeroValueKinds {
            expectRelay(event(kind, subject: 0, value: 0), throws: .invalidValue(field: "subject", value: 0))
            expectRelay(event(kind, subject: 0xFFFF, value: 0), throws: .invalidValue(field: "subject", value: 0xFFFF))
            expectRelay(event(kind, subject: 4, value: 1), throws: .invalidValue(field: "value", value: 1))
        }
        for kind: UInt8 in [0x08, 0x09, 0x0A] {
            expectRelay(event(kind, subject: 1, value: 0), throws: .invalidValue(field: "subject", value: 1))
        }
        expectRelay(event(0x08, subject: 0, value: 1), throws: .invalidValue(field: "value", value: 1))
        expectRelay(event(0x0A, subject: 0, value: 2), throws: .invalidValue(field: "value", value: 2))
        expectRelay(event(0x06, subject: 4, value: 3), throws: .invalidValue(field: "value", value: 3))
        expectRelay(event(0x06, subject: 4, value: 0x100), throws: .invalidValue(field: "value", value: 0x100))
        expectRelay(event(0x07, subject: 4, value: 2), throws: .invalidValue(field: "value", value: 2))
        expectRelay(event(0x11, subject: 4, value: 2), throws: .invalidValue(field: "value", value: 2))
        expectRelay(event(0x0E, subject: 0, value: 0), throws: .invalidValue(field: "subject", value: 0))
        expectRelay(event(0x0E, subject: 8, value: 0), throws: .invalidValue(field: "subject", value: 8))
        expectRelay(event(0x0E, subject: 5, value: 0), throws: .invalidValue(field: "value", value: 0))
        expectRelay(event(0x0F, subject: 0, value: 9), throws: .invalidValue(field: "subject", value: 0))
    }

    @Test("error messages: codes, flags, retry and UTF-8")
    func invalidErrors() throws {
        func error(code: UInt16, request: UInt16 = 0, fatal: UInt8 = 1, retry: UInt32 = 0, text: [UInt8] = Array("Bye.".utf8)) -> [UInt8] {
            [1, 0x88] + u16(code) + u16(request) + [fatal] + u32(retry) + [UInt8(text.count)] + text
        }
        #expect((try? RelayMessage.decode(error(code: 26))) != nil)
        for code: UInt16 in [0, 27, 999, 1000, 1004, 0xFFFF] {
            expectRelay(error(code: code), throws: .invalidValue(field: "code", value: UInt64(code)))
        }
        expectRelay(error(code: 1, fatal: 2), throws: .invalidValue(field: "fatal", value: 2))
        expectRelay(error(code: 6, retry: 1), throws: .invalidValue(field: "retry_after_ms", value: 1))
        #expect((try? RelayMessage.decode(error(code: 5, retry: 1))) != nil)
        let invalidUTF8: [[UInt8]] = [
            [0xFF], [0xC3, 0x28], [0xC0, 0xAF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
            [0xE2, 0x82], Array("ok".utf8) + [0x80], [0xF8, 0x88, 0x80, 0x80, 0x80],
        ]
        for text in invalidUTF8 {
            expectRelay(error(code: 3, text: text), throws: .invalidUTF8(field: "message"))
        }
        // Valid multi-byte text, NUL included, decodes.
        let valid: [UInt8] = Array("a\u{0}é€🙂".utf8)
        #expect(try RelayMessage.decode(error(code: 3, text: valid)) == .error(ErrorMessage(code: .unexpectedMessage, isFatal: true, message: "a\u{0}é€🙂")))
    }

    @Test("handshake and admission fields out of range")
    func invalidHandshake() throws {
        expectClient([1, 1, 0, 1], throws: .invalidValue(field: "min_version", value: 0))
        expectClient([1, 1, 2, 1], throws: .invalidValue(field: "max_version", value: 1))
        #expect(try ClientMessage.decode([1, 1, 2, 9]) == .hello(HelloMessage(minimumVersion: 2, maximumVersion: 9)))
        let welcome = relay("welcome")
        expectRelay(patch(welcome, at: 2, [1]), throws: .invalidValue(field: "version", value: 1))
        expectRelay(patch(welcome, at: 2, [3]), throws: .invalidValue(field: "version", value: 3))
        expectRelay(patch(welcome, at: 2, [0]), throws: .invalidValue(field: "version", value: 0))
        expectRelay(patch(welcome, at: 35, u16(16391)), throws: .invalidValue(field: "max_message", value: 16391))
        // WAITING: index at 18, position at 20
        let waiting = relay("waiting")
        expectRelay(patch(waiting, at: 20, u16(0)), throws: .invalidValue(field: "position", value: 0))
        expectRelay(patch(waiting, at: 18, u16(0)), throws: .invalidValue(field: "index", value: 0))
        expectRelay(patch(waiting, at: 18, u16(0xFFFF)), throws: .invalidValue(field: "index", value: 0xFFFF))
        // ROOM_CREATED index at 18
        expectRelay(patch(relay("room created"), at: 18, u16(0)), throws: .invalidValue(field: "index", value: 0))
        // ADMITTED: index 2, role 4, recording 14, count 15, first entry index 17, role 17+66
        let admitted = relay("admitted roster of 3")
        expectRelay(patch(admitted, at: 2, u16(0xFFFF)), throws: .invalidValue(field: "index", value: 0xFFFF))
        expectRelay(patch(admitted, at: 4, [3]), throws: .invalidValue(field: "role", value: 3))
        expectRelay(patch(admitted, at: 14, [2]), throws: .invalidValue(field: "recording", value: 2))
        expectRelay(Array(patch(admitted, at: 15, u16(0)).prefix(17)), throws: .invalidValue(field: "count", value: 0))
        expectRelay(patch(admitted, at: 17, u16(0)), throws: .invalidValue(field: "roster_entry.index", value: 0))
        expectRelay(patch(admitted, at: 83, [0xFF]), throws: .invalidValue(field: "roster_entry.role", value: 0xFF))
        // KNOCK index
        expectRelay(patch(relay("knock empty"), at: 2, u16(0xFFFF)), throws: .invalidValue(field: "index", value: 0xFFFF))
    }

    // MARK: Frames

    @Test("frame kinds, payload limits and addressing")
    func invalidFrames() {
        func frame(kind: UInt8, sender: UInt16 = 0x0123, recipient: UInt16, payload: Int) -> [UInt8] {
            [2, 0x30, kind, 0] + u16(sender) + u16(recipient) + [UInt8](repeating: 0x5A, count: payload)
        }
        for kind: UInt8 in [0, 6, 0x30, 0xFF] {
            expectClient(frame(kind: kind, recipient: 0xFFFF, payload: 4), throws: .invalidValue(field: "kind", value: UInt64(kind)))
        }
        for kind in FrameKind.allCases {
            let recipient: UInt16 = kind == .keys ? 9 : 0xFFFF
            expectClient(frame(kind: kind.rawValue, recipient: recipient, payload: 0), throws: .truncated(field: "payload"))
            expectRelay(frame(kind: kind.rawValue, recipient: recipient, payload: 0), throws: .truncated(field: "payload"))
            let over = MessageDecodingError.payloadTooLarge(kind: kind, length: kind.payloadLimit + 1, limit: kind.payloadLimit)
            expectClient(frame(kind: kind.rawValue, recipient: recipient, payload: kind.payloadLimit + 1), throws: over)
            #expect(throws: over) { try FrameHeader.decode(message: frame(kind: kind.rawValue, recipient: recipient, payload: kind.payloadLimit + 1)) }
            #expect(throws: over) {
                try FrameMessage(kind: kind, sender: 1, recipient: .init(recipient), payload: [UInt8](repeating: 0, count: kind.payloadLimit + 1))
            }
            #expect(throws: MessageDecodingError.truncated(field: "payload")) {
                try FrameMessage(kind: kind, sender: 1, recipient: .init(recipient), payload: [])
            }
            #expect(over.wireCode == .tooLarge)
            // sender must be a member
            expectClient(frame(kind: kind.rawValue, sender: 0, recipient: recipient, payload: 1), throws: .invalidValue(field: "sender", value: 0))
            expectClient(frame(kind: kind.rawValue, sender: 0xFFFF, recipient: recipient, payload: 1), throws: .invalidValue(field: "sender", value: 0xFFFF))
            // recipient 0 or the sender itself is never allowed
            expectClient(frame(kind: kind.rawValue, recipient: 0, payload: 1), throws: .invalidValue(field: "recipient", value: 0))
            expectClient(frame(kind: kind.rawValue, recipient: 0x0123, payload: 1), throws: .invalidValue(field: "recipient", value: 0x0123))
        }
        // Audio and screen: broadcast only. Keys: addressed only.
        expectClient(frame(kind: 1, recipient: 7, payload: 1), throws: .invalidValue(field: "recipient", value: 7))
        expectClient(frame(kind: 2, recipient: 7, payload: 1), throws: .invalidValue(field: "recipient", value: 7))
        expectClient(frame(kind: 5, recipient: 0xFFFF, payload: 1), throws: .invalidValue(field: "recipient", value: 0xFFFF))
        expectRelay(frame(kind: 5, recipient: 0xFFFF, payload: 1), throws: .invalidValue(field: "recipient", value: 0xFFFF))
        #expect(throws: MessageDecodingError.invalidValue(field: "recipient", value: 0xFFFF)) {
            try FrameHeader(kind: .keys, sender: 1, recipient: .everyone)
        }
        #expect(throws: MessageDecodingError.invalidValue(field: "recipient", value: 0xFFFF)) {
            try FrameHeader.decode(message: frame(kind: 5, recipient: 0xFFFF, payload: 100))
        }
        // Chat and control: either.
        for kind: UInt8 in [3, 4] {
            #expect((try? ClientMessage.decode(frame(kind: kind, recipient: 0xFFFF, payload: 1))) != nil)
            #expect((try? ClientMessage.decode(frame(kind: kind, recipient: 0xFFFE, payload: 1))) != nil)
        }
    }
}
