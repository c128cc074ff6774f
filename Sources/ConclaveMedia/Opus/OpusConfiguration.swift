import COpus

/// How much audio one Opus packet carries.
///
/// Conclave uses 10, 20 or 40 ms; 20 ms is the usual choice for voice
/// (50 packets per second).
public enum OpusFrameDuration: Int, Sendable, CaseIterable, CustomStringConvertible {
    case ms10 = 10
    case ms20 = 20
    case ms40 = 40

    /// The duration in milliseconds.
    public var milliseconds: Int { rawValue }

    /// Samples per channel in one frame at `sampleRate` (e.g. 960 for 20 ms at 48 kHz).
    public func samplesPerChannel(sampleRate: Int) -> Int {
        sampleRate / 1000 * rawValue
    }

    public var description: String { "\(rawValue) ms" }
}

/// The libopus coding mode, fixed when the encoder is created.
public enum OpusApplication: Sendable, CaseIterable, CustomStringConvertible {
    /// `OPUS_APPLICATION_VOIP`: speech-optimised, best for conferencing.
    case voip
    /// `OPUS_APPLICATION_AUDIO`: best fidelity for music and mixed content.
    case audio
    /// `OPUS_APPLICATION_RESTRICTED_LOWDELAY`: CELT only, lowest algorithmic delay.
    case lowDelay

    var opusValue: Int32 {
        switch self {
        case .voip: return OPUS_APPLICATION_VOIP
        case .audio: return OPUS_APPLICATION_AUDIO
        case .lowDelay: return OPUS_APPLICATION_RESTRICTED_LOWDELAY
        }
    }

    init?(opusValue: Int32) {
        switch opusValue {
        case OPUS_APPLICATION_VOIP: self = .voip
        case OPUS_APPLICATION_AUDIO: self = .audio
        case OPUS_APPLICATION_RESTRICTED_LOWDELAY: self = .lowDelay
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .voip: return "voip"
        case .audio: return "audio"
        case .lowDelay: return "lowdelay"
        }
    }
}

/// The target bitrate of an ``OpusEncoder``.
public enum OpusBitrate: Sendable, Equatable, CustomStringConvertible {
    /// `OPUS_AUTO`: libopus picks a rate from the sample rate and channel count.
    case auto
    /// `OPUS_BITRATE_MAX`: as many bits as the packet size allows.
    case maximum
    /// An explicit rate in bits per second, within ``supportedRange``.
    case bitsPerSecond(Int)

    /// The explicit rates libopus accepts (bit/s). libopus would silently clamp
    /// values outside; ConclaveMedia rejects them instead.
    public static let supportedRange: ClosedRange<Int> = 500...512_000

    func opusValue() throws(OpusError) -> Int32 {
        switch self {
        case .auto: return OPUS_AUTO
        case .maximum: return OPUS_BITRATE_MAX
        case .bitsPerSecond(let bps):
            guard Self.supportedRange.contains(bps) else { throw .bitrateOutOfRange(bps) }
            return Int32(bps)
        }
    }

    public var description: String {
        switch self {
        case .auto: return "auto"
        case .maximum: return "max"
        case .bitsPerSecond(let bps): return "\(bps) bit/s"
        }
    }
}

/// Everything an ``OpusEncoder`` is created with.
///
/// Defaults: 48 kHz mono, 20 ms frames, VoIP mode, automatic bitrate, no FEC,
/// 0 % expected loss, no DTX, complexity 10. Sample rate, channels, frame
/// duration and application are fixed for the encoder's life; the rest can
/// be changed later through the encoder's setters.
public struct OpusEncoderConfiguration: Sendable, Equatable {
    /// Input sample rate (Hz): one of ``AudioFormat/supportedSampleRates``.
    public var sampleRate: Int
    /// 1 (mono) or 2 (interleaved stereo).
    public var channels: Int
    /// Audio per packet.
    public var frameDuration: OpusFrameDuration
    /// The libopus coding mode.
    public var application: OpusApplication
    /// Target bitrate.
    public var bitrate: OpusBitrate
    /// Whether to add in-band forward error correction (SILK/hybrid modes
    /// only; it lets the receiver rebuild a lost packet from the next one).
    public var inbandFEC: Bool
    /// The packet loss the encoder should expect, 0...100 %. FEC is only
    /// emitted when this is above zero.
    public var packetLossPercentage: Int
    /// Discontinuous transmission: during silence the encoder emits tiny
    /// packets (≤ 2 bytes) that need not be sent.
    public var dtx: Bool
    /// Encoder CPU/quality trade-off, 0...10.
    public var complexity: Int

    public init(
        sampleRate: Int = AudioFormat.productSampleRate,
        channels: Int = 1,
        frameDuration: OpusFrameDuration = .ms20,
        application: OpusApplication = .voip,
        bitrate: OpusBitrate = .auto,
        inbandFEC: Bool = false,
        packetLossPercentage: Int = 0,
        dtx: Bool = false,
        complexity: Int = 10
    ) {
        self.sampleRate = sampleRate
        self.channels = channels
        self.frameDuration = frameDuration
        self.application = application
        self.bitrate = bitrate
        self.inbandFEC = inbandFEC
        self.packetLossPercentage = packetLossPercentage
        self.dtx = dtx
        self.complexity = complexity
    }

    /// Samples per channel in one frame (960 for 20 ms at 48 kHz).
    public var samplesPerChannelPerFrame: Int { frameDuration.samplesPerChannel(sampleRate: sampleRate) }

    /// Interleaved samples in one frame (`samplesPerChannelPerFrame * channels`).
    public var samplesPerFrame: Int { samplesPerChannelPerFrame * channels }

    /// Throws the first problem found, in the order rate, channels, bitrate,
    /// complexity, packet loss.
    public func validate() throws(OpusError) {
        guard AudioFormat.isSupportedSampleRate(sampleRate) else { throw .unsupportedSampleRate(sampleRate) }
        guard AudioFormat.isSupportedChannelCount(channels) else { throw .unsupportedChannelCount(channels) }
        _ = try bitrate.opusValue()
        guard (0...10).contains(complexity) else { throw .complexityOutOfRange(complexity) }
        guard (0...100).contains(packetLossPercentage) else {
            throw .packetLossPercentageOutOfRange(packetLossPercentage)
        }
    }
}
