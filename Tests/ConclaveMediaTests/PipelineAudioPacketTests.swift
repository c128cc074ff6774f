import ConclaveMedia
import Testing

@Suite("Pipeline: audio packet codec")
struct PipelineAudioPacketTests {
    static let header = AudioPacketHeader(sequence: 0x0102, timestamp: 0x0304_0506, sendTimeMicros: 0x0708_090A_0B0C_0D0E)

    @Test("encodes the 14-byte big-endian header followed by the Opus packet")
    func layout() throws {
        let bytes = try AudioPacket.encode(Self.header, opus: [0xFC, 0xAA])
        #expect(pipelineHex(bytes) == "0102" + "03040506" + "0708090a0b0c0d0e" + "fcaa")
        #expect(AudioPacket.headerSize == 14)
        #expect(AudioPacket.maximumPlaintextSize == 1_467)
        #expect(AudioPacket.maximumOpusPacketSize == 1_453)
    }

    @Test("round trip at the length extremes and field maxima", arguments: [1, 2, 160, 1_453])
    func roundTrip(opusLength: Int) throws {
        let opus = (0..<opusLength).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        for header in [
            Self.header,
            AudioPacketHeader(sequence: .max, timestamp: .max, sendTimeMicros: .max),
            AudioPacketHeader(sequence: 0, timestamp: 0, sendTimeMicros: 0),
        ] {
            let bytes = try AudioPacket.encode(header, opus: opus)
            #expect(bytes.count == 14 + opusLength)
            let decoded = try AudioPacket.decode(bytes)
            #expect(decoded.header == header)
            #expect(Array(decoded.opus) == opus)

            // The raw-pointer decoder gives the same view.
            try bytes.withUnsafeBytes { raw in
                let (rawHeader, rawOpus) = try AudioPacket.decode(raw)
                #expect(rawHeader == header)
                #expect(Array(rawOpus) == opus)
            }
        }
    }

    @Test("every prefix shorter than a header plus one byte is rejected with its length")
    func malformedPrefixes() throws {
        let bytes = try AudioPacket.encode(Self.header, opus: [1, 2, 3])
        for length in 0..<14 {
            #expect(throws: AudioPacketError.truncatedHeader(length: length)) {
                try AudioPacket.decode(Array(bytes[..<length]))
            }
        }
        #expect(throws: AudioPacketError.emptyOpusPacket) { try AudioPacket.decode(Array(bytes[..<14])) }
        #expect(try AudioPacket.decode(Array(bytes[..<15])).opus.count == 1)
        let tooLong = [UInt8](repeating: 0x55, count: 1_468)
        #expect(throws: AudioPacketError.tooLong(length: 1_468, limit: 1_467)) { try AudioPacket.decode(tooLong) }
        #expect(try AudioPacket.decode(Array(tooLong[..<1_467])).opus.count == 1_453)
    }

    @Test("encoding rejects bad input and writes nothing")
    func encodeErrors() throws {
        #expect(throws: AudioPacketError.emptyOpusPacket) { try AudioPacket.encode(Self.header, opus: []) }
        #expect(throws: AudioPacketError.tooLong(length: 1_468, limit: 1_467)) {
            try AudioPacket.encode(Self.header, opus: [UInt8](repeating: 1, count: 1_454))
        }
        var output = [UInt8](repeating: 0xEE, count: 16)
        let opus: [UInt8] = [1, 2, 3]
        #expect(throws: AudioPacketError.outputBufferTooSmall(required: 17, available: 16)) {
            try opus.withUnsafeBytes { source in
                try output.withUnsafeMutableBytes { try AudioPacket.encode(Self.header, opus: source, into: $0) }
            }
        }
        #expect(output == [UInt8](repeating: 0xEE, count: 16))
        #expect(throws: AudioPacketError.outputBufferTooSmall(required: 14, available: 13)) {
            try output.withUnsafeMutableBytes { try AudioPacket.writeHeader(Self.header, into: UnsafeMutableRawBufferPointer(rebasing: $0[..<13])) }
        }
    }

    @Test("errors describe themselves in one line")
    func descriptions() {
        let errors: [AudioPacketError] = [
            .truncatedHeader(length: 3), .emptyOpusPacket, .tooLong(length: 2_000, limit: 1_467),
            .outputBufferTooSmall(required: 20, available: 10),
        ]
        for error in errors {
            #expect(!error.description.isEmpty && !error.description.contains("\n"))
        }
        #expect(AudioPacketError.truncatedHeader(length: 3).description.contains("3 bytes"))
    }

    @Test("sequence distance wraps around")
    func sequenceDistance() {
        #expect(SequenceNumber.distance(from: 65_535, to: 1) == 2)
        #expect(SequenceNumber.distance(from: 1, to: 65_535) == -2)
        #expect(SequenceNumber.distance(from: 100, to: 100) == 0)
        #expect(SequenceNumber.distance(from: 0, to: 32_767) == 32_767)
        #expect(SequenceNumber.distance(from: 0, to: 32_768) == -32_768)
    }
}
