import ConclaveProtocol
import Testing

/// Deterministic fuzzing: every input either decodes and re-encodes to exactly the same
/// bytes, or throws a `MessageDecodingError`. A trap would abort the test process.
@Suite("Message fuzzing")
struct MessageFuzzTests {
    private static let types: [UInt8] = MessageType.allCases.map(\.rawValue)

    private struct Tally {
        var clientDecoded = 0, relayDecoded = 0, rejected = 0
    }

    /// Checks one input against both decoders and the frame-header view.
    private static func check(_ bytes: [UInt8], _ tally: inout Tally) {
        var frameHeaderSeen: FrameHeader?
        switch Result(catching: { () throws(MessageDecodingError) in try ClientMessage.decode(bytes) }) {
        case let .success(message):
            tally.clientDecoded += 1
            if message.encoded() != bytes { Issue.record("client re-encoding differs for \(MessageFixtures.hex(bytes.prefix(64)))") }
            if case let .frame(frame) = message { frameHeaderSeen = frame.header }
        case .failure: tally.rejected += 1
        }
        switch Result(catching: { () throws(MessageDecodingError) in try RelayMessage.decode(bytes) }) {
        case let .success(message):
            tally.relayDecoded += 1
            if message.encoded() != bytes { Issue.record("relay re-encoding differs for \(MessageFixtures.hex(bytes.prefix(64)))") }
            if case let .frame(frame) = message, frame.header != frameHeaderSeen { Issue.record("frame decoded differently by the two decoders") }
        case .failure: tally.rejected += 1
        }
        // The relay's zero-copy view accepts exactly the frames the full decoders accept.
        let view = try? FrameHeader.decode(message: bytes)
        if view?.header != frameHeaderSeen { Issue.record("FrameHeader.decode disagrees with ClientMessage.decode") }
        if let view, view.payloadRange != 8..<bytes.count { Issue.record("bad payload range") }
        // peek agrees with the decoders on size, version and type.
        if let type = try? bytes.withUnsafeBytes({ try MessageType.peek($0) }), type.rawValue != bytes[1] {
            Issue.record("peek returned the wrong type")
        }
    }

    @Test("20 000 random inputs, mostly with a valid preamble")
    func randomInputs() {
        var random = MessageFuzzRandom(seed: 0x5EED_C0DE_0000_0005)
        var tally = Tally()
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...120, using: &random)
            var bytes = (0..<length).map { _ in UInt8.random(in: .min ... .max, using: &random) }
            if length >= 1, random.next() % 8 != 0 { bytes[0] = 1 }
            if length >= 2, random.next() % 8 != 0 { bytes[1] = Self.types.randomElement(using: &random)! }
            // Make some bodies plausible: zero the fields most often required to be small.
            if length >= 4, random.next() % 2 == 0 {
                for index in 2..<length where random.next() % 3 == 0 { bytes[index] = UInt8(random.next() % 3) }
            }
            Self.check(bytes, &tally)
        }
        #expect(tally.clientDecoded + tally.relayDecoded > 0, "random inputs never decoded: the fuzzer is not reaching the bodies")
    }

    @Test("20 000 mutations of valid encodings")
    func mutations() {
        var random = MessageFuzzRandom(seed: 0x5EED_C0DE_0000_0006)
        let samples: [[UInt8]] =
            MessageFixtures.clientMessages.map { $0.message.encoded() }
            + MessageFixtures.relayMessages.map { $0.message.encoded() }
        var tally = Tally()
        for iteration in 0..<20_000 {
            var bytes = samples.randomElement(using: &random)!
            switch iteration % 5 {
            case 0, 1:  // replace one byte
                if !bytes.isEmpty { bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: .min ... .max, using: &random) }
            case 2:  // flip one bit
                if !bytes.isEmpty { bytes[Int.random(in: 0..<bytes.count, using: &random)] ^= 1 << UInt8.random(in: 0...7, using: &random) }
            case 3:  // truncate or extend
                if random.next() % 2 == 0 {
                    bytes.removeLast(Int.random(in: 0...bytes.count, using: &random))
                } else {
                    bytes += (0..<Int.random(in: 1...4, using: &random)).map { _ in UInt8.random(in: .min ... .max, using: &random) }
                }
            default:  // insert or delete one byte
                let index = Int.random(in: 0..<bytes.count, using: &random)
                if random.next() % 2 == 0 { bytes.remove(at: index) } else { bytes.insert(UInt8.random(in: .min ... .max, using: &random), at: index) }
            }
            Self.check(bytes, &tally)
        }
        #expect(tally.clientDecoded > 100 && tally.relayDecoded > 100)
        #expect(tally.rejected > 1_000)
    }

    @Test("every single-byte value at every offset of a few short messages")
    func exhaustiveSingleBytes() {
        let samples: [[UInt8]] = [
            ClientMessage.hello(HelloMessage()).encoded(),
            ClientMessage.command(CommandMessage(requestID: 1, action: .setSetting(.maxWaiting(5)))).encoded(),
            RelayMessage.event(EventMessage(actor: 2, event: .left(3, reason: .left))).encoded(),
            RelayMessage.error(ErrorMessage(code: .removed, isFatal: true, message: "é")).encoded(),
            ClientMessage.frame(MessageFixtures.frame(.keys, payloadLength: 2)).encoded(),
            RelayMessage.commandOK(requestID: 9).encoded(),
        ]
        var tally = Tally()
        for sample in samples {
            for offset in sample.indices {
                for value in UInt8.min...UInt8.max {
                    var bytes = sample
                    bytes[offset] = value
                    Self.check(bytes, &tally)
                }
            }
        }
        #expect(tally.rejected > 0)
    }
}
