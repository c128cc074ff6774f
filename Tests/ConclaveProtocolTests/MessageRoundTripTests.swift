import ConclaveProtocol
import Testing

@Suite("Message round trips")
struct MessageRoundTripTests {
    @Test("every client → relay sample decodes to itself and re-encodes to the same bytes")
    func clientMessagesRoundTrip() throws {
        var seen = Set<MessageType>()
        for (name, message) in MessageFixtures.clientMessages {
            let bytes = message.encoded()
            #expect(bytes.count == message.encodedLength, "\(name)")
            #expect(bytes.count <= MessageLimits.maximumMessageLength, "\(name)")
            #expect(bytes[0] == (message.type == .hello || message.type == .error ? 1 : 2) && bytes[1] == message.type.rawValue, "\(name)")
            let decoded = try ClientMessage.decode(bytes)
            #expect(decoded == message, "\(name)")
            #expect(decoded.encoded() == bytes, "\(name)")
            #expect(try bytes.withUnsafeBytes { try MessageType.peek($0) } == message.type)
            seen.insert(message.type)
        }
        #expect(seen == Set(MessageType.allCases.filter { $0.direction != .relayToClient }))
    }

    @Test("every relay → client sample decodes to itself and re-encodes to the same bytes")
    func relayMessagesRoundTrip() throws {
        var seen = Set<MessageType>()
        for (name, message) in MessageFixtures.relayMessages {
            let bytes = message.encoded()
            #expect(bytes.count == message.encodedLength, "\(name)")
            #expect(bytes.count <= MessageLimits.maximumMessageLength, "\(name)")
            let decoded = try RelayMessage.decode(bytes)
            #expect(decoded == message, "\(name)")
            #expect(decoded.encoded() == bytes, "\(name)")
            seen.insert(message.type)
        }
        #expect(seen == Set(MessageType.allCases.filter { $0.direction != .clientToRelay }))
    }

    @Test("every op, event kind and wire error code has a sample")
    func samplesCoverEveryCode() {
        #expect(Set(MessageFixtures.commandActions.map(\.op)) == Set(CommandOp.allCases))
        #expect(Set(MessageFixtures.events.map(\.kind)) == Set(EventKind.allCases))
        #expect(Set(MessageFixtures.commandActions.compactMap { if case let .setSetting(c) = $0 { c.id } else { nil } }) == Set(SettingID.allCases))
    }

    @Test("maximum-length fields reach the documented sizes")
    func maximumSizes() {
        let admitted = MessageFixtures.relayMessages.first { $0.name == "admitted maximum roster" }!.message
        #expect(admitted.encodedLength == 17 + 69 * 900)
        let join = MessageFixtures.clientMessages.first { $0.name == "join with password and maximum knock" }!.message
        #expect(join.encodedLength == 2 + 16 + 64 + 64 + 1 + 32 + 2 + 2048)
        let error = MessageFixtures.relayMessages.first { $0.name == "error maximum text" }!.message
        #expect(error.encodedLength == 12 + 200)
        let screen = ClientMessage.frame(MessageFixtures.frame(.screen, payloadLength: 16384))
        #expect(screen.encodedLength == MessageLimits.minimumAnnouncedMessageLength)
    }

    @Test("encode(into:) appends after existing bytes")
    func encodeAppends() throws {
        var buffer: [UInt8] = [0xAA, 0xBB]
        let ping = ClientMessage.ping(nonce: 5)
        ping.encode(into: &buffer)
        #expect(buffer == [0xAA, 0xBB] + ping.encoded())
        RelayMessage.pong(nonce: 5).encode(into: &buffer)
        #expect(buffer.count == 2 + 10 + 10)
        #expect(try RelayMessage.decode(buffer[12...]) == .pong(nonce: 5))
    }

    @Test("decoding accepts slices and non-contiguous collections")
    func decodeCollections() throws {
        let message = ClientMessage.command(CommandMessage(requestID: 3, action: .mute(4)))
        let bytes = message.encoded()
        let padded: [UInt8] = [0xFF] + bytes + [0xFF]
        #expect(try ClientMessage.decode(padded[1..<padded.count - 1]) == message)  // ArraySlice, startIndex 1
        #expect(try ClientMessage.decode(bytes.reversed().reversed()) == message)  // ReversedCollection (copied)
        #expect(try ClientMessage.decode(bytes.withUnsafeBytes { raw in try ClientMessage.decode(raw).encoded() }) == message)
    }

    @Test("FrameHeader.decode finds the payload without copying it")
    func frameHeaderView() throws {
        for frame in MessageFixtures.frames {
            let bytes = ClientMessage.frame(frame).encoded()
            let (header, range) = try FrameHeader.decode(message: bytes)
            #expect(header == frame.header)
            #expect(range == 8..<bytes.count)
            #expect(Array(bytes[range]) == frame.payload)
            var headerBytes: [UInt8] = []
            header.encode(into: &headerBytes)
            #expect(headerBytes == Array(bytes[0..<8]))
            // The relay forwards the same bytes; clients decode them as a relay message.
            #expect(try RelayMessage.decode(bytes) == .frame(frame))
        }
    }

    @Test("setting changes apply to settings")
    func settingChangesApply() {
        var settings = RoomSettings.privacyDefaults
        for case let .setSetting(change) in MessageFixtures.commandActions { change.apply(to: &settings) }
        #expect(
            settings
                == RoomSettings(
                    waitingRoom: false, muteOnEntry: true, selfUnmuteAllowed: false, hostsOnlySharing: true,
                    locked: false, maxParticipants: 900, maxWaiting: 1000, recordingAcknowledgementTimeoutSeconds: 3600))
    }
}
