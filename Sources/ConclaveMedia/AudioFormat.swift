/// Facts about the PCM audio this module handles, shared by the Opus codec
/// wrappers and the WAV reader/writer.
///
/// Everything in ConclaveMedia is 16-bit signed PCM (`Int16`). Multi-channel
/// audio is *interleaved*: a stereo buffer holds `L0 R0 L1 R1 …`. A *frame*
/// (in the WAV/PCM sense) is one sample per channel.
public enum AudioFormat {
    /// The sample rate Conclave sends and receives (Hz).
    public static let productSampleRate = 48_000

    /// The sample rates Opus can encode and decode (Hz), in ascending order.
    /// The WAV reader accepts exactly these so that anything it returns can be
    /// fed to an ``OpusEncoder`` without resampling.
    public static let supportedSampleRates: [Int] = [8_000, 12_000, 16_000, 24_000, 48_000]

    /// The channel counts Opus (and therefore this module) supports.
    public static let supportedChannelCounts: ClosedRange<Int> = 1...2

    /// Whether `rate` is one of ``supportedSampleRates``.
    public static func isSupportedSampleRate(_ rate: Int) -> Bool {
        supportedSampleRates.contains(rate)
    }

    /// Whether `count` is one of ``supportedChannelCounts``.
    public static func isSupportedChannelCount(_ count: Int) -> Bool {
        supportedChannelCounts.contains(count)
    }

    /// "8000, 12000, 16000, 24000 or 48000": for error messages.
    static let supportedSampleRatesText: String = {
        let names = supportedSampleRates.map(String.init)
        return names.dropLast().joined(separator: ", ") + " or " + names.last!
    }()
}

/// A block of interleaved 16-bit PCM audio with its format.
///
/// This is a plain value: the initializer does not validate. Consumers that
/// need a supported format (``WAVFile/encode(_:)``, ``OpusEncoder``) check it
/// and throw a typed error.
public struct PCMAudio: Sendable, Equatable {
    /// Samples per second per channel (Hz).
    public var sampleRate: Int
    /// Number of interleaved channels (1 = mono, 2 = stereo).
    public var channels: Int
    /// Interleaved samples; `samples.count` is `frameCount * channels`.
    public var samples: [Int16]

    /// Creates audio from interleaved samples.
    public init(sampleRate: Int, channels: Int, samples: [Int16]) {
        self.sampleRate = sampleRate
        self.channels = channels
        self.samples = samples
    }

    /// Number of frames (samples per channel). Zero if `channels` is not positive.
    public var frameCount: Int { channels > 0 ? samples.count / channels : 0 }

    /// Duration in seconds. Zero if `sampleRate` is not positive.
    public var duration: Double {
        sampleRate > 0 ? Double(frameCount) / Double(sampleRate) : 0
    }
}
