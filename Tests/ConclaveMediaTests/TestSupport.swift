import ConclaveMedia

/// Builds WAV byte images, correct by default, with every field overridable so
/// a test can break exactly one thing.
enum WAVBytes {
    static func le16(_ value: UInt16) -> [UInt8] { [UInt8(value & 0xFF), UInt8(value >> 8)] }
    static func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8((value >> (8 * $0)) & 0xFF) } }

    /// A chunk: ID, size (the body's length unless overridden), body, and a
    /// pad byte when the body length is odd.
    static func chunk(_ id: String, _ body: [UInt8], declaredSize: UInt32? = nil, pad: Bool = true) -> [UInt8] {
        var out = Array(id.utf8)
        out += le32(declaredSize ?? UInt32(body.count))
        out += body
        if pad && body.count % 2 == 1 { out.append(0) }
        return out
    }

    /// A 16-byte WAVE_FORMAT_PCM-style `fmt ` body.
    static func formatBody(
        tag: UInt16 = 1, channels: UInt16 = 1, sampleRate: UInt32 = 16_000,
        byteRate: UInt32? = nil, blockAlign: UInt16? = nil, bits: UInt16 = 16
    ) -> [UInt8] {
        let align = blockAlign ?? channels * bits / 8
        return le16(tag) + le16(channels) + le32(sampleRate)
            + le32(byteRate ?? sampleRate * UInt32(align)) + le16(align) + le16(bits)
    }

    /// A 40-byte WAVE_FORMAT_EXTENSIBLE `fmt ` body with the given sub-format tag.
    static func extensibleFormatBody(
        channels: UInt16 = 2, sampleRate: UInt32 = 48_000, subformatTag: UInt16 = 1,
        guidTail: [UInt8] = [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71]
    ) -> [UInt8] {
        formatBody(tag: 0xFFFE, channels: channels, sampleRate: sampleRate)
            + le16(22) + le16(16) + le32(channels == 2 ? 3 : 4) + le16(subformatTag) + guidTail
    }

    static func sampleBytes(_ samples: [Int16]) -> [UInt8] {
        samples.flatMap { le16(UInt16(bitPattern: $0)) }
    }

    /// A RIFF container around `chunks`.
    static func riff(_ chunks: [UInt8], id: String = "RIFF", form: String = "WAVE", declaredSize: UInt32? = nil) -> [UInt8] {
        Array(id.utf8) + le32(declaredSize ?? UInt32(4 + chunks.count)) + Array(form.utf8) + chunks
    }

    /// A complete, valid file.
    static func file(format: [UInt8] = formatBody(), samples: [Int16] = [1, -2, 3, -4]) -> [UInt8] {
        riff(chunk("fmt ", format) + chunk("data", sampleBytes(samples)))
    }
}

/// Runs `frameCount` frames of `generator` through an encoder/decoder pair
/// using only the non-allocating APIs in the loop, and returns input and
/// decoded output (both interleaved).
func opusRoundTrip(
    encoder: OpusEncoder, decoder: OpusDecoder, generator: inout some AudioGenerator, frameCount: Int
) throws -> (input: [Int16], output: [Int16]) {
    let frameSamples = encoder.samplesPerFrame
    var pcm = [Int16](repeating: 0, count: frameSamples)
    var packet = [UInt8](repeating: 0, count: OpusEncoder.maximumPacketSize)
    var decoded = [Int16](repeating: 0, count: decoder.maximumSamplesPerChannel * decoder.channels)
    var input: [Int16] = []
    var output: [Int16] = []
    for _ in 0..<frameCount {
        pcm.withUnsafeMutableBufferPointer { generator.fill($0) }
        input += pcm
        let length = try pcm.withUnsafeBufferPointer { source in
            try packet.withUnsafeMutableBytes { try encoder.encode(source, into: $0) }
        }
        let perChannel = try packet.withUnsafeBytes { bytes in
            try decoded.withUnsafeMutableBufferPointer { out in
                try decoder.decode(UnsafeRawBufferPointer(rebasing: bytes[..<length]), into: out)
            }
        }
        output += decoded[..<(perChannel * decoder.channels)]
    }
    return (input, output)
}

/// Every `channels`-th sample starting at `channel`.
func channel(_ channel: Int, of samples: [Int16], channels: Int) -> [Int16] {
    stride(from: channel, to: samples.count, by: channels).map { samples[$0] }
}
