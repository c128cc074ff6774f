import COpus
import ConclaveMedia
import Testing

@Suite("Opus codec")
struct OpusCodecTests {
    /// Audio at the start of the decoded stream that reflects codec start-up
    /// (lookahead, ≈6.5 ms in VoIP mode, plus encoder warm-up) rather than the tone.
    static let settleFrames = 2_400  // 50 ms at 48 kHz

    static let layouts: [(channels: Int, duration: OpusFrameDuration)] =
        [1, 2].flatMap { channels in OpusFrameDuration.allCases.map { (channels, $0) } }

    // MARK: Round trips

    @Test("440 Hz tone survives encode+decode", arguments: layouts)
    func toneRoundTrip(layout: (channels: Int, duration: OpusFrameDuration)) throws {
        let (channels, duration) = layout
        let encoder = try OpusEncoder(
            configuration: OpusEncoderConfiguration(
                channels: channels, frameDuration: duration, bitrate: .bitsPerSecond(32_000 * channels)))
        let decoder = try OpusDecoder(channels: channels)
        var tone = ToneGenerator(frequency: 440, amplitude: 0.5, channels: channels)
        // 1.2 s of audio, whole frames.
        let frames = 57_600 / encoder.samplesPerChannelPerFrame
        let (input, output) = try opusRoundTrip(encoder: encoder, decoder: decoder, generator: &tone, frameCount: frames)

        #expect(output.count == input.count)
        #expect(try encoder.lookahead < Self.settleFrames)
        let settled = Array(output[(Self.settleFrames * channels)...])
        let reference = Array(input[(Self.settleFrames * channels)...])

        let frequency = try #require(DominantFrequency.estimate(samples: settled, sampleRate: 48_000, channels: channels))
        #expect(abs(frequency - 440) / 440 < 0.02, "decoded \(frequency) Hz")
        let inputRMS = AudioLevel.rms(reference)
        let outputRMS = AudioLevel.rms(settled)
        #expect(abs(outputRMS - inputRMS) / inputRMS < 0.3, "RMS in \(inputRMS) out \(outputRMS)")

        // Each channel on its own carries the tone.
        for index in 0..<channels {
            let single = channel(index, of: settled, channels: channels)
            let f = try #require(DominantFrequency.estimate(samples: single, sampleRate: 48_000))
            #expect(abs(f - 440) / 440 < 0.02, "channel \(index): \(f) Hz")
        }
    }

    @Test("other tones come back at their own frequency", arguments: [300.0, 1_000.0])
    func otherFrequencies(frequency: Double) throws {
        let encoder = try OpusEncoder(channels: 1)
        let decoder = try OpusDecoder(channels: 1)
        var tone = ToneGenerator(frequency: frequency, amplitude: 0.4)
        let (input, output) = try opusRoundTrip(encoder: encoder, decoder: decoder, generator: &tone, frameCount: 60)
        let settled = Array(output[Self.settleFrames...])
        let estimate = try #require(DominantFrequency.estimate(samples: settled, sampleRate: 48_000))
        #expect(abs(estimate - frequency) / frequency < 0.02, "decoded \(estimate) Hz for \(frequency) Hz")
        let inputRMS = AudioLevel.rms(Array(input[Self.settleFrames...]))
        #expect(abs(AudioLevel.rms(settled) - inputRMS) / inputRMS < 0.3)
    }

    @Test(
        "the encoder accepts every Opus rate and encodes a frame of the right size",
        arguments: AudioFormat.supportedSampleRates)
    func otherSampleRates(sampleRate: Int) throws {
        let encoder = try OpusEncoder(sampleRate: sampleRate, channels: 1)
        #expect(encoder.samplesPerChannelPerFrame == sampleRate / 50)
        let decoder = try OpusDecoder(sampleRate: sampleRate, channels: 1)
        var tone = ToneGenerator(frequency: 440, sampleRate: sampleRate)
        let packet = try encoder.encode(tone.generate(frameCount: encoder.samplesPerChannelPerFrame))
        #expect(!packet.isEmpty)
        #expect(try decoder.decode(packet).count == sampleRate / 50)
    }

    // MARK: Settings

    @Test("settings are applied at creation and read back")
    func settingsReadBack() throws {
        let encoder = try OpusEncoder(
            configuration: OpusEncoderConfiguration(
                channels: 2, frameDuration: .ms40, application: .audio, bitrate: .bitsPerSecond(24_000),
                inbandFEC: true, packetLossPercentage: 15, dtx: true, complexity: 5))
        #expect(try encoder.bitrate == 24_000)
        #expect(try encoder.isInbandFECEnabled)
        #expect(try encoder.packetLossPercentage == 15)
        #expect(try encoder.isDTXEnabled)
        #expect(try encoder.complexity == 5)
        #expect(encoder.application == .audio)
        #expect(encoder.samplesPerFrame == 1_920 * 2)
        #expect(try encoder.lookahead > 0)
    }

    @Test("setters change the live encoder")
    func settersChangeEncoder() throws {
        let encoder = try OpusEncoder(channels: 1)
        #expect(try !encoder.isInbandFECEnabled)
        #expect(try !encoder.isDTXEnabled)
        try encoder.setBitrate(.bitsPerSecond(64_000))
        #expect(try encoder.bitrate == 64_000)
        try encoder.setBitrate(.auto)
        #expect(try encoder.bitrate != 64_000)
        try encoder.setInbandFEC(true)
        #expect(try encoder.isInbandFECEnabled)
        try encoder.setInbandFEC(false)
        #expect(try !encoder.isInbandFECEnabled)
        try encoder.setDTX(true)
        #expect(try encoder.isDTXEnabled)
        try encoder.setPacketLossPercentage(30)
        #expect(try encoder.packetLossPercentage == 30)
        try encoder.setComplexity(0)
        #expect(try encoder.complexity == 0)
        try encoder.reset()
        #expect(try encoder.bitrate == encoder.bitrate)  // still usable after reset
        #expect(try encoder.complexity == 0)  // reset keeps settings
    }

    @Test("DTX turns steady silence into tiny packets")
    func dtxShrinksSilence() throws {
        func packetSizes(dtx: Bool) throws -> [Int] {
            let encoder = try OpusEncoder(configuration: OpusEncoderConfiguration(dtx: dtx))
            var silence = SilenceGenerator()
            return try (0..<60).map { _ in try encoder.encode(silence.generate(frameCount: 960)).count }
        }
        let withDTX = try packetSizes(dtx: true)
        let without = try packetSizes(dtx: false)
        // After a short hangover, DTX sends ≤ 2-byte packets except for a
        // periodic comfort-noise update (every 400 ms).
        let steady = withDTX.suffix(40)
        #expect(steady.filter { $0 <= 2 }.count >= 36, "packet sizes \(withDTX)")
        #expect(without.allSatisfy { $0 > 2 }, "packet sizes \(without)")
    }

    @Test("the encoder reports when it is in DTX")
    func inDTXFlag() throws {
        let encoder = try OpusEncoder(configuration: OpusEncoderConfiguration(dtx: true))
        var tone = ToneGenerator(frequency: 440, amplitude: 0.5)
        for _ in 0..<10 {
            _ = try encoder.encode(tone.generate(frameCount: 960))
            #expect(try !encoder.isInDTX)
        }
        var silence = SilenceGenerator()
        var tiny = 0
        for _ in 0..<40 {
            // The flag stays set across the periodic comfort-noise update, so
            // only "tiny packet implies in DTX" holds.
            if try encoder.encode(silence.generate(frameCount: 960)).count <= 2 {
                tiny += 1
                #expect(try encoder.isInDTX)
            }
        }
        #expect(tiny > 20)
    }

    @Test("the documented maximum packet size holds maximum-bitrate 40 ms stereo packets")
    func maximumPacketSize() throws {
        let encoder = try OpusEncoder(
            configuration: OpusEncoderConfiguration(
                channels: 2, frameDuration: .ms40, application: .audio, bitrate: .maximum))
        var noise = NoiseGenerator(seed: 7, amplitude: 0.9, channels: 2)
        var largest = 0
        for _ in 0..<10 {
            largest = max(largest, try encoder.encode(noise.generate(frameCount: 1_920)).count)
        }
        #expect(largest <= OpusEncoder.maximumPacketSize)
        #expect(largest > OpusEncoder.maximumFrameSize, "a 40 ms packet at max bitrate carries two frames")
    }

    // MARK: Loss handling

    @Test("a lost packet (nil) is concealed with a full frame", arguments: [1, 2])
    func packetLossConcealment(channels: Int) throws {
        let encoder = try OpusEncoder(channels: channels)
        let decoder = try OpusDecoder(channels: channels)
        var tone = ToneGenerator(frequency: 440, amplitude: 0.5, channels: channels)
        for _ in 0..<10 {
            _ = try decoder.decode(try encoder.encode(tone.generate(frameCount: 960)))
        }
        // Non-allocating form: the buffer length is the duration concealed.
        var frame = [Int16](repeating: 0, count: 960 * channels)
        let concealed = try frame.withUnsafeMutableBufferPointer { try decoder.decode(nil, into: $0) }
        #expect(concealed == 960)
        #expect(AudioLevel.rms(frame) > 0.01, "concealment continues the signal rather than muting")
        // Convenience form defaults to the last packet's duration.
        #expect(try decoder.decode(nil).count == 960 * channels)
        #expect(try decoder.decode(nil, concealedSamplesPerChannel: 480).count == 480 * channels)
        #expect(try decoder.lastPacketDuration == 480)
    }

    @Test("a lost packet is rebuilt from the next packet's in-band FEC")
    func forwardErrorCorrection() throws {
        let encoder = try OpusEncoder(
            configuration: OpusEncoderConfiguration(
                bitrate: .bitsPerSecond(24_000), inbandFEC: true, packetLossPercentage: 20))
        let decoder = try OpusDecoder(channels: 1)
        var tone = ToneGenerator(frequency: 440, amplitude: 0.5)
        let packets = try (0..<30).map { _ in try encoder.encode(tone.generate(frameCount: 960)) }
        for packet in packets[..<20] { _ = try decoder.decode(packet) }
        // Packet 20 is lost; packet 21 carries its FEC copy.
        let recovered = try decoder.decode(packets[21], fec: true)
        #expect(recovered.count == 960)
        #expect(AudioLevel.rms(recovered) > 0.1, "FEC rebuilt the tone, RMS \(AudioLevel.rms(recovered))")
        let frequency = try #require(DominantFrequency.estimate(samples: recovered, sampleRate: 48_000))
        #expect(abs(frequency - 440) / 440 < 0.05, "recovered \(frequency) Hz")
        #expect(try decoder.decode(packets[21]).count == 960)
    }

    // MARK: Errors

    @Test("invalid encoder configurations throw typed errors")
    func invalidEncoderConfigurations() throws {
        #expect(throws: OpusError.unsupportedChannelCount(3)) { try OpusEncoder(channels: 3) }
        #expect(throws: OpusError.unsupportedChannelCount(0)) { try OpusEncoder(channels: 0) }
        #expect(throws: OpusError.unsupportedSampleRate(44_100)) { try OpusEncoder(sampleRate: 44_100, channels: 1) }
        #expect(throws: OpusError.unsupportedSampleRate(0)) { try OpusEncoder(sampleRate: 0, channels: 1) }
        #expect(throws: OpusError.bitrateOutOfRange(100)) {
            try OpusEncoder(configuration: OpusEncoderConfiguration(bitrate: .bitsPerSecond(100)))
        }
        #expect(throws: OpusError.complexityOutOfRange(11)) {
            try OpusEncoder(configuration: OpusEncoderConfiguration(complexity: 11))
        }
        #expect(throws: OpusError.packetLossPercentageOutOfRange(101)) {
            try OpusEncoder(configuration: OpusEncoderConfiguration(packetLossPercentage: 101))
        }
        let encoder = try OpusEncoder(channels: 1)
        #expect(throws: OpusError.bitrateOutOfRange(600_000)) { try encoder.setBitrate(.bitsPerSecond(600_000)) }
        #expect(throws: OpusError.complexityOutOfRange(-1)) { try encoder.setComplexity(-1) }
        #expect(throws: OpusError.packetLossPercentageOutOfRange(-5)) { try encoder.setPacketLossPercentage(-5) }

        #expect(throws: OpusError.unsupportedChannelCount(3)) { try OpusDecoder(channels: 3) }
        #expect(throws: OpusError.unsupportedSampleRate(44_100)) { try OpusDecoder(sampleRate: 44_100, channels: 1) }
        #expect(
            OpusError.unsupportedSampleRate(44_100).description
                == "Opus sample rate 44100 Hz is not supported; use 8000, 12000, 16000, 24000 or 48000 Hz")
    }

    @Test("encoding anything but exactly one frame throws")
    func wrongFrameLength() throws {
        let mono = try OpusEncoder(channels: 1)
        #expect(throws: OpusError.frameLengthMismatch(expected: 960, actual: 959)) {
            try mono.encode([Int16](repeating: 0, count: 959))
        }
        #expect(throws: OpusError.frameLengthMismatch(expected: 960, actual: 0)) { try mono.encode([]) }
        let stereo = try OpusEncoder(channels: 2, frameDuration: .ms10)
        #expect(throws: OpusError.frameLengthMismatch(expected: 960, actual: 480)) {
            try stereo.encode([Int16](repeating: 0, count: 480))
        }
        var empty: [UInt8] = []
        let pcm = [Int16](repeating: 0, count: 960)
        #expect(throws: OpusError.outputBufferTooSmall(required: 1, available: 0)) {
            try pcm.withUnsafeBufferPointer { source in
                try empty.withUnsafeMutableBytes { try mono.encode(source, into: $0) }
            }
        }
    }

    @Test("the decoder rejects bad packets and buffers with typed errors")
    func decoderErrors() throws {
        let encoder = try OpusEncoder(channels: 1)
        let decoder = try OpusDecoder(channels: 1)
        let packet = try encoder.encode([Int16](repeating: 0, count: 960))

        #expect(throws: OpusError.emptyPacket) { try decoder.decode([]) }

        // TOC code 3 with a frame count of 0 is malformed (RFC 6716 §3.2.5).
        let garbage: [UInt8] = [0x03, 0x00]
        let error = try #require(throws: OpusError.self) { try decoder.decode(garbage) }
        #expect(error.libraryCode == OPUS_INVALID_PACKET)
        #expect(error.description.contains("\(OPUS_INVALID_PACKET)"))
        #expect(error.description.contains("corrupted stream"), "\(error)")

        var small = [Int16](repeating: 0, count: 480)
        #expect(throws: OpusError.outputBufferTooSmall(required: 960, available: 480)) {
            try packet.withUnsafeBytes { bytes in
                try small.withUnsafeMutableBufferPointer { try decoder.decode(bytes, into: $0) }
            }
        }
        #expect(throws: OpusError.invalidConcealmentLength(samplesPerChannel: 100)) {
            try decoder.decode(nil, concealedSamplesPerChannel: 100)
        }
        let stereo = try OpusDecoder(channels: 2)
        var odd = [Int16](repeating: 0, count: 961)
        #expect(throws: OpusError.outputNotWholeFrames(samples: 961, channels: 2)) {
            try odd.withUnsafeMutableBufferPointer { try stereo.decode(nil, into: $0) }
        }
    }

    @Test("libopus errors carry the code and opus_strerror text")
    func libraryErrorDescription() {
        let error = OpusError.library(operation: "opus_decode", code: -4, message: "corrupted stream")
        #expect(error.libraryCode == -4)
        #expect(error.description == "libopus opus_decode failed with error -4 (corrupted stream)")
        #expect(OpusError.emptyPacket.libraryCode == nil)
    }
}
