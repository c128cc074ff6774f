import COpus

/// An Opus encoder: one libopus `OpusEncoder` state, freed when this object is.
///
/// Not `Sendable`: libopus encoder state must not be used from two threads at
/// once, and the encoder carries inter-frame state, so one stream is encoded
/// by one owner (e.g. one task or actor) in order.
///
/// ```swift
/// let encoder = try OpusEncoder(configuration: .init(channels: 1, frameDuration: .ms20))
/// var packet = [UInt8](repeating: 0, count: OpusEncoder.maximumPacketSize)
/// let n = try pcm.withUnsafeBufferPointer { pcm throws(OpusError) in
///     try packet.withUnsafeMutableBytes { out throws(OpusError) in try encoder.encode(pcm, into: out) }
/// }
/// ```
public final class OpusEncoder {
    // MARK: Limits

    /// The largest compressed *frame*: RFC 6716 §3.2.1 caps one Opus frame at
    /// 1275 bytes (which is 510 kbit/s at 20 ms).
    public static let maximumFrameSize = 1275

    /// The output buffer size that always suffices for one packet, in bytes.
    ///
    /// A 10 or 20 ms packet is one frame plus its TOC byte (≤ 1276 bytes); a
    /// 40 ms packet may carry two 20 ms frames with TOC, frame-count and length
    /// bytes (≤ 1 + 1 + 2 + 2 × 1275 = 2554 bytes). 4000 is the buffer size
    /// `opus.h` recommends and covers every ``OpusFrameDuration``. The
    /// convenience ``encode(_:)-([Int16])`` uses a scratch buffer of this size.
    public static let maximumPacketSize = 4000

    // MARK: State

    private let handle: OpaquePointer

    /// Input sample rate (Hz).
    public let sampleRate: Int
    /// Input channel count (1 or 2).
    public let channels: Int
    /// Audio per packet.
    public let frameDuration: OpusFrameDuration
    /// Coding mode chosen at creation.
    public let application: OpusApplication

    /// Samples per channel that ``encode(_:into:)`` expects (960 for 20 ms at 48 kHz).
    public var samplesPerChannelPerFrame: Int { frameDuration.samplesPerChannel(sampleRate: sampleRate) }

    /// Interleaved samples that ``encode(_:into:)`` expects.
    public var samplesPerFrame: Int { samplesPerChannelPerFrame * channels }

    // MARK: Life cycle

    /// Creates an encoder and applies every setting in `configuration`.
    ///
    /// - Throws: ``OpusError`` for an unsupported rate or channel count, an
    ///   out-of-range bitrate, complexity or loss percentage, or a libopus failure.
    public init(configuration: OpusEncoderConfiguration = OpusEncoderConfiguration()) throws(OpusError) {
        try configuration.validate()
        var status: Int32 = OPUS_OK
        guard
            let handle = opus_encoder_create(
                Int32(configuration.sampleRate), Int32(configuration.channels),
                configuration.application.opusValue, &status
            ), status == OPUS_OK
        else {
            throw OpusError(operation: "opus_encoder_create", code: status == OPUS_OK ? OPUS_ALLOC_FAIL : status)
        }
        self.handle = handle
        self.sampleRate = configuration.sampleRate
        self.channels = configuration.channels
        self.frameDuration = configuration.frameDuration
        self.application = configuration.application
        // If a setter throws here, `self` is fully initialised, so deinit runs
        // and frees the handle.
        try setBitrate(configuration.bitrate)
        try setInbandFEC(configuration.inbandFEC)
        try setPacketLossPercentage(configuration.packetLossPercentage)
        try setDTX(configuration.dtx)
        try setComplexity(configuration.complexity)
    }

    /// Convenience for the fixed parameters; the rest take their defaults.
    public convenience init(
        sampleRate: Int = AudioFormat.productSampleRate,
        channels: Int,
        frameDuration: OpusFrameDuration = .ms20,
        application: OpusApplication = .voip
    ) throws(OpusError) {
        try self.init(
            configuration: OpusEncoderConfiguration(
                sampleRate: sampleRate, channels: channels,
                frameDuration: frameDuration, application: application))
    }

    deinit {
        opus_encoder_destroy(handle)
    }

    // MARK: Settings

    /// Sets the target bitrate (`OPUS_SET_BITRATE`).
    public func setBitrate(_ bitrate: OpusBitrate) throws(OpusError) {
        try check("OPUS_SET_BITRATE", conclave_opus_set_bitrate(handle, try bitrate.opusValue()))
    }

    /// The bitrate libopus is targeting, in bit/s (`OPUS_GET_BITRATE`). For
    /// ``OpusBitrate/auto`` and ``OpusBitrate/maximum`` this is the rate libopus
    /// resolved them to.
    public var bitrate: Int {
        get throws(OpusError) { try read("OPUS_GET_BITRATE") { conclave_opus_get_bitrate(handle, $0) } }
    }

    /// Enables or disables in-band FEC (`OPUS_SET_INBAND_FEC`).
    public func setInbandFEC(_ enabled: Bool) throws(OpusError) {
        try check("OPUS_SET_INBAND_FEC", conclave_opus_set_inband_fec(handle, enabled ? 1 : 0))
    }

    /// Whether in-band FEC is enabled (`OPUS_GET_INBAND_FEC`).
    public var isInbandFECEnabled: Bool {
        get throws(OpusError) { try read("OPUS_GET_INBAND_FEC") { conclave_opus_get_inband_fec(handle, $0) } != 0 }
    }

    /// Sets the expected packet loss, 0...100 % (`OPUS_SET_PACKET_LOSS_PERC`).
    public func setPacketLossPercentage(_ percentage: Int) throws(OpusError) {
        guard (0...100).contains(percentage) else { throw .packetLossPercentageOutOfRange(percentage) }
        try check("OPUS_SET_PACKET_LOSS_PERC", conclave_opus_set_packet_loss_perc(handle, Int32(percentage)))
    }

    /// The expected packet loss in percent (`OPUS_GET_PACKET_LOSS_PERC`).
    public var packetLossPercentage: Int {
        get throws(OpusError) {
            try read("OPUS_GET_PACKET_LOSS_PERC") { conclave_opus_get_packet_loss_perc(handle, $0) }
        }
    }

    /// Enables or disables discontinuous transmission (`OPUS_SET_DTX`).
    public func setDTX(_ enabled: Bool) throws(OpusError) {
        try check("OPUS_SET_DTX", conclave_opus_set_dtx(handle, enabled ? 1 : 0))
    }

    /// Whether DTX is enabled (`OPUS_GET_DTX`).
    public var isDTXEnabled: Bool {
        get throws(OpusError) { try read("OPUS_GET_DTX") { conclave_opus_get_dtx(handle, $0) } != 0 }
    }

    /// Whether the encoder is in DTX, i.e. has been encoding silence for long
    /// enough to emit only tiny packets (`OPUS_GET_IN_DTX`). It stays `true`
    /// across the periodic comfort-noise update packet sent during DTX.
    public var isInDTX: Bool {
        get throws(OpusError) { try read("OPUS_GET_IN_DTX") { conclave_opus_get_in_dtx(handle, $0) } != 0 }
    }

    /// Sets the complexity, 0...10 (`OPUS_SET_COMPLEXITY`).
    public func setComplexity(_ complexity: Int) throws(OpusError) {
        guard (0...10).contains(complexity) else { throw .complexityOutOfRange(complexity) }
        try check("OPUS_SET_COMPLEXITY", conclave_opus_set_complexity(handle, Int32(complexity)))
    }

    /// The complexity setting (`OPUS_GET_COMPLEXITY`).
    public var complexity: Int {
        get throws(OpusError) { try read("OPUS_GET_COMPLEXITY") { conclave_opus_get_complexity(handle, $0) } }
    }

    /// The encoder's algorithmic delay in samples per channel at
    /// ``sampleRate`` (`OPUS_GET_LOOKAHEAD`): decoded audio lags the input by this much.
    public var lookahead: Int {
        get throws(OpusError) { try read("OPUS_GET_LOOKAHEAD") { conclave_opus_get_lookahead(handle, $0) } }
    }

    /// Returns the encoder to its freshly created state, keeping its settings
    /// (`OPUS_RESET_STATE`). Use when a new, unrelated stream starts.
    public func reset() throws(OpusError) {
        try check("OPUS_RESET_STATE", conclave_opus_encoder_reset(handle))
    }

    // MARK: Encoding

    /// Encodes exactly one frame into `packet` without allocating.
    ///
    /// - Parameters:
    ///   - pcm: interleaved PCM of exactly ``samplesPerFrame`` samples.
    ///   - packet: output space; ``maximumPacketSize`` bytes always suffice.
    ///     A smaller buffer caps the instantaneous bitrate and may make libopus
    ///     fail with `OPUS_BUFFER_TOO_SMALL`.
    /// - Returns: the packet length written at the start of `packet`. With DTX
    ///   enabled, a length of 2 or less marks a silence frame that need not be sent.
    /// - Throws: ``OpusError/frameLengthMismatch(expected:actual:)``,
    ///   ``OpusError/outputBufferTooSmall(required:available:)`` for an empty
    ///   buffer, or a libopus error.
    public func encode(_ pcm: UnsafeBufferPointer<Int16>, into packet: UnsafeMutableRawBufferPointer) throws(OpusError) -> Int {
        let expected = samplesPerFrame
        guard pcm.count == expected, let input = pcm.baseAddress else {
            throw .frameLengthMismatch(expected: expected, actual: pcm.count)
        }
        guard packet.count > 0 else { throw .outputBufferTooSmall(required: 1, available: 0) }
        let frameSize = Int32(samplesPerChannelPerFrame)
        let capacity = Int32(clamping: packet.count)
        let written = packet.withMemoryRebound(to: UInt8.self) { bytes in
            opus_encode(handle, input, frameSize, bytes.baseAddress!, capacity)
        }
        guard written >= 0 else { throw OpusError(operation: "opus_encode", code: written) }
        return Int(written)
    }

    /// Encodes exactly one frame and returns the packet. Allocates; prefer
    /// ``encode(_:into:)`` on a hot path.
    public func encode(_ pcm: [Int16]) throws(OpusError) -> [UInt8] {
        var packet = [UInt8](repeating: 0, count: Self.maximumPacketSize)
        let length = try pcm.withUnsafeBufferPointer { input throws(OpusError) in
            try packet.withUnsafeMutableBufferPointer { output throws(OpusError) in
                try encode(input, into: UnsafeMutableRawBufferPointer(output))
            }
        }
        packet.removeSubrange(length...)
        return packet
    }

    // MARK: Helpers

    private func check(_ operation: String, _ status: Int32) throws(OpusError) {
        guard status == OPUS_OK else { throw OpusError(operation: operation, code: status) }
    }

    private func read(_ operation: String, _ body: (UnsafeMutablePointer<Int32>) -> Int32) throws(OpusError) -> Int {
        var value: Int32 = 0
        try check(operation, body(&value))
        return Int(value)
    }
}
