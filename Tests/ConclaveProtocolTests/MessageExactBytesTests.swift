import ConclaveProtocol
import Testing

/// Literal encodings computed by hand from section 5, so the encoder cannot drift from it.
@Suite("Message exact bytes")
struct MessageExactBytesTests {
    private func expectClient(_ message: ClientMessage, _ hex: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let expected = MessageFixtures.bytes(hex: hex)
        #expect(message.encoded() == expected, sourceLocation: sourceLocation)
        #expect(try ClientMessage.decode(expected) == message, sourceLocation: sourceLocation)
    }

    private func expectRelay(_ message: RelayMessage, _ hex: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let expected = MessageFixtures.bytes(hex: hex)
        #expect(message.encoded() == expected, sourceLocation: sourceLocation)
        #expect(try RelayMessage.decode(expected) == message, sourceLocation: sourceLocation)
    }

    private let identityHex = String(repeating: "11", count: 32) + String(repeating: "22", count: 32)
    private var identity: Identity { Identity(bytes: MessageFixtures.bytes(hex: identityHex))! }
    private let roomHex = "000102030405060708090a0b0c0d0e0f"
    private var room: RoomID { RoomID(bytes: MessageFixtures.bytes(hex: roomHex))! }

    @Test func hello() throws {
        try expectClient(.hello(HelloMessage(minimumVersion: 1, maximumVersion: 1)), "01 01 01 01")
    }

    @Test func ping() throws {
        try expectClient(.ping(nonce: 0x0102_0304_0506_0708), "02 05 0102030405060708")
    }

    @Test func commands() throws {
        // op 0x13 set_setting, request 0x1234, target 5 (max participants), value 250
        try expectClient(
            .command(CommandMessage(requestID: 0x1234, action: .setSetting(.maxParticipants(250)))),
            "02 04 13 1234 0005 000000fa")
        try expectClient(.command(CommandMessage(requestID: 1, action: .admit(7))), "02 04 01 0001 0007 00000000")
        try expectClient(.command(CommandMessage(requestID: 0xFFFF, action: .setRecording(on: true))), "02 04 11 ffff 0000 00000001")
        try expectClient(.command(CommandMessage(requestID: 2, action: .muteSelf)), "02 04 16 0002 0000 00000000")
    }

    @Test func frame() throws {
        let audio = try FrameMessage(kind: .audio, sender: 3, recipient: .everyone, payload: [0xAA, 0xBB, 0xCC])
        try expectClient(.frame(audio), "02 30 01 00 0003 ffff aabbcc")
        let keys = try FrameMessage(kind: .keys, sender: 0x0102, recipient: 0x0304, payload: [0x00])
        try expectRelay(.frame(keys), "02 30 05 00 0102 0304 00")
    }

    @Test func createRoom() throws {
        let signature = [UInt8](repeating: 0x33, count: 64)
        let auth = [UInt8](repeating: 0x44, count: 32)
        // privacy defaults: flags 0x0f, 100, 50, 30 s, reserved 0
        try expectClient(
            .createRoom(CreateRoomMessage(roomID: room, identity: identity, signature: signature, relayAuth: auth, settings: .privacyDefaults)),
            "02 02" + roomHex + identityHex + String(repeating: "33", count: 64) + "01" + String(repeating: "44", count: 32)
                + "0f 0064 0032 001e 0000")
        try expectClient(
            .createRoom(CreateRoomMessage(roomID: room, identity: identity, signature: signature, relayAuth: nil, settings: MessageFixtures.edgeSettings)),
            "02 02" + roomHex + identityHex + String(repeating: "33", count: 64) + "00" + "1a 0384 03e8 0e10 0000")
    }

    @Test func join() throws {
        try expectClient(
            .join(
                JoinMessage(
                    roomID: room, identity: identity, signature: [UInt8](repeating: 0x55, count: 64),
                    relayAuth: nil, knock: [0xDE, 0xAD])),
            "02 03" + roomHex + identityHex + String(repeating: "55", count: 64) + "00" + "0002 dead")
    }

    @Test func welcome() throws {
        try expectRelay(
            .welcome(
                WelcomeMessage(
                    version: 2, challenge: [UInt8](repeating: 0x11, count: 32),
                    maximumMessageLength: 0xFFFF, maximumFramesPerSecond: 50)),
            "02 81 02" + String(repeating: "11", count: 32) + "ffff 0032 0000")
    }

    @Test func roomCreatedAndWaiting() throws {
        try expectRelay(
            .roomCreated(RoomCreatedMessage(roomID: room, index: 1, settings: .privacyDefaults)),
            "02 82" + roomHex + "0001" + "0f 0064 0032 001e 0000")
        try expectRelay(.waiting(WaitingMessage(roomID: room, index: 0x0102, position: 3)), "02 83" + roomHex + "0102 0003")
    }

    @Test func admitted() throws {
        let entry = RosterEntry(index: 2, identity: identity, role: .cohost, state: [.muted, .handRaised])
        try expectRelay(
            .admitted(AdmittedMessage(index: 2, role: .cohost, settings: .privacyDefaults, recording: true, roster: [entry])),
            "02 84 0002 01 0f00640032001e0000 01 0001" + "0002" + identityHex + "01 05 00")
    }

    @Test func knockAndEvents() throws {
        try expectRelay(.knock(KnockMessage(index: 9, identity: identity, knock: [1, 2, 3])), "02 85 0009" + identityHex + "0003 010203")
        try expectRelay(.event(EventMessage(actor: .none, event: .left(5, reason: .timedOut))), "02 86 02 0005 0000 00000003 00")
        try expectRelay(
            .event(EventMessage(actor: 1, event: .joined(6, identity: identity, role: .participant))),
            "02 86 01 0006 0001 00000000 01" + identityHex)
        try expectRelay(
            .event(EventMessage(actor: 1, event: .settingChanged(.recordingAcknowledgementTimeout(seconds: 60)))),
            "02 86 0e 0007 0001 0000003c 00")
    }

    @Test func commandOKErrorPong() throws {
        try expectRelay(.commandOK(requestID: 0xBEEF), "02 87 beef")
        try expectRelay(.error(ErrorMessage(code: .badPassword, isFatal: true, message: "no")), "01 88 0006 0000 01 00000000 02 6e6f")
        try expectRelay(
            .error(ErrorMessage(code: .rateLimited, requestID: 4, isFatal: false, retryAfterMilliseconds: 1500, message: "é")),
            "01 88 0005 0004 00 000005dc 02 c3a9")
        try expectRelay(.pong(nonce: 1), "02 89 0000000000000001")
    }
}

@Suite("Message value types")
struct MessageValueTypeTests {
    @Test func roomIDText() throws {
        let zero = RoomID.zero
        #expect(zero.base64URL == "AAAAAAAAAAAAAAAAAAAAAA")
        let all = RoomID(bytes: [UInt8](repeating: 0xFF, count: 16))!
        #expect(all.base64URL == "_____________________w")
        let counting = RoomID(bytes: Array(0..<16))!
        #expect(counting.base64URL == "AAECAwQFBgcICQoLDA0ODw")  // RFC 4648 base64url of 00..0f, unpadded
        for id in [zero, all, counting, MessageFixtures.roomID] {
            #expect(try RoomID(base64URL: id.base64URL) == id)
            #expect(RoomID(id.description) == id)
            #expect(id.base64URL.utf8.count == 22)
        }
        #expect(throws: RoomIDParsingError.wrongLength(21)) { try RoomID(base64URL: "AAECAwQFBgcICQoLDA0OD") }
        #expect(throws: RoomIDParsingError.wrongLength(23)) { try RoomID(base64URL: "AAECAwQFBgcICQoLDA0OdwA") }
        #expect(throws: RoomIDParsingError.invalidCharacter(offset: 3)) { try RoomID(base64URL: "AAE+AwQFBgcICQoLDA0ODw") }
        #expect(throws: RoomIDParsingError.invalidCharacter(offset: 21)) { try RoomID(base64URL: "AAECAwQFBgcICQoLDA0OD=") }
        #expect(throws: RoomIDParsingError.nonCanonical) { try RoomID(base64URL: "AAECAwQFBgcICQoLDA0ODx") }
        #expect(RoomID(bytes: [UInt8](repeating: 0, count: 15)) == nil)
    }

    @Test func errorCodes() {
        #expect(ErrorCode.badPassword.name == "bad_password")
        #expect(ErrorCode.badPassword.rawValue == 6)
        #expect(ErrorCode.invalidCommand.rawValue == 24)
        #expect(ErrorCode.badAudioSource.rawValue == 1004)
        #expect(ErrorCode.roomExists.rawValue == 25 && ErrorCode.roomExists.name == "room_exists")
        #expect(ErrorCode.atCapacity.rawValue == 26 && ErrorCode.atCapacity.name == "at_capacity")
        #expect(ErrorCode.wireCodes.map(\.rawValue) == Array(1...26))
        #expect(Set(ErrorCode.allCases.map(\.name)).count == ErrorCode.allCases.count)
        #expect(ErrorCode.allCases.allSatisfy { !$0.meaning.isEmpty && !$0.meaning.contains("\n") })
        #expect(!ErrorCode.keyRejected.isWireCode)
    }

    @Test func participantIndex() {
        #expect(ParticipantIndex.none.rawValue == 0)
        #expect(ParticipantIndex.everyone.rawValue == 0xFFFF)
        #expect(!ParticipantIndex.none.isMember && !ParticipantIndex.everyone.isMember)
        #expect(ParticipantIndex(1).isMember && ParticipantIndex(0xFFFE).isMember)
    }

    @Test func privacyDefaults() throws {
        let settings = RoomSettings.privacyDefaults
        #expect(settings.flags == 0b0000_1111)
        #expect(!settings.locked)
        #expect(settings.maxParticipants == 100 && settings.maxWaiting == 50 && settings.recordingAcknowledgementTimeoutSeconds == 30)
        try settings.validate()
    }

    @Test func decodingErrorDescriptionsAndCodes() {
        let errors: [MessageDecodingError] = [
            .messageTooLarge(length: 70000, limit: 65535), .payloadTooLarge(kind: .audio, length: 1501, limit: 1500),
            .unsupportedVersion(2), .unknownType(0x42), .truncated(field: "knock"), .trailingBytes(count: 1),
            .lengthOverLimit(field: "knock", length: 3000, limit: 2048), .invalidValue(field: "op", value: 0),
            .reservedBitsSet(field: "flags", value: 2), .invalidUTF8(field: "message"),
        ]
        for error in errors {
            #expect(!error.description.isEmpty && !error.description.contains("\n"))
        }
        #expect(errors.map(\.wireCode) == [.tooLarge, .tooLarge, .unsupportedVersion] + Array(repeating: .malformed, count: 7))
        #expect(MessageDecodingError.unknownType(0x42).description == "malformed: message type 0x42 is reserved or not valid in this direction")
    }

    @Test func byteReaderLeavesIndexOnFailure() throws {
        let bytes: [UInt8] = [1, 2, 3]
        try bytes.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            #expect(try reader.readUInt16("a") == 0x0102)
            #expect(throws: MessageDecodingError.truncated(field: "b")) { try reader.readUInt16("b") }
            #expect(reader.readerIndex == 2)
            #expect(throws: MessageDecodingError.truncated(field: "c")) { try reader.readBytes(count: -1, field: "c") }
            #expect(throws: MessageDecodingError.truncated(field: "d")) { try reader.readBytes(count: Int.max, field: "d") }
            #expect(try reader.readUInt8("e") == 3)
            try reader.expectEnd()
        }
        var writer = ByteWriter()
        writer.writeUInt16(0x0102)
        writer.writeUInt32(0x0304_0506)
        writer.writeUInt64(0x0708_090A_0B0C_0D0E)
        #expect(writer.bytes == Array(1...14))
    }
}
