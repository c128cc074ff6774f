import COpus

/// Why an Opus operation failed.
///
/// Configuration and buffer problems are detected in Swift before libopus is
/// called and get their own cases; anything libopus itself rejects arrives as
/// ``library(operation:code:message:)`` with the negative libopus error code
/// and the text of `opus_strerror`.
public enum OpusError: Error, Sendable, Equatable, CustomStringConvertible {
    /// libopus returned a negative error code from `operation` (e.g. `opus_decode`).
    /// `message` is `opus_strerror(code)`, e.g. "corrupted stream".
    case library(operation: String, code: Int32, message: String)
    /// The sample rate is not one of ``AudioFormat/supportedSampleRates``.
    case unsupportedSampleRate(Int)
    /// The channel count is not 1 or 2.
    case unsupportedChannelCount(Int)
    /// An explicit bitrate outside ``OpusBitrate/supportedRange``.
    case bitrateOutOfRange(Int)
    /// A complexity outside 0...10.
    case complexityOutOfRange(Int)
    /// An expected packet-loss percentage outside 0...100.
    case packetLossPercentageOutOfRange(Int)
    /// The PCM handed to ``OpusEncoder/encode(_:into:)`` is not exactly one
    /// frame. Both counts are interleaved samples (frame length × channels).
    case frameLengthMismatch(expected: Int, actual: Int)
    /// The caller's output buffer cannot hold the result. Counts are bytes for
    /// packets and interleaved samples for PCM.
    case outputBufferTooSmall(required: Int, available: Int)
    /// A PCM output buffer whose length is not a whole number of frames.
    case outputNotWholeFrames(samples: Int, channels: Int)
    /// A concealment (lost packet) or FEC decode was asked for a duration that
    /// is not a positive multiple of 2.5 ms up to 120 ms.
    case invalidConcealmentLength(samplesPerChannel: Int)
    /// A zero-length packet was passed to the decoder; pass `nil` for a lost packet.
    case emptyPacket
    /// A packet longer than libopus can be handed in one call.
    case packetTooLarge(bytes: Int)

    /// Wraps a libopus error code, looking up its text with `opus_strerror`.
    init(operation: String, code: Int32) {
        self = .library(operation: operation, code: code, message: String(cString: opus_strerror(code)))
    }

    /// The libopus error code, if libopus reported the failure.
    public var libraryCode: Int32? {
        if case .library(_, let code, _) = self { return code }
        return nil
    }

    public var description: String {
        switch self {
        case .library(let operation, let code, let message):
            return "libopus \(operation) failed with error \(code) (\(message))"
        case .unsupportedSampleRate(let rate):
            return "Opus sample rate \(rate) Hz is not supported; use \(AudioFormat.supportedSampleRatesText) Hz"
        case .unsupportedChannelCount(let count):
            return "Opus channel count \(count) is not supported; use 1 (mono) or 2 (stereo)"
        case .bitrateOutOfRange(let bps):
            return
                "Opus bitrate \(bps) bit/s is out of range; use \(OpusBitrate.supportedRange.lowerBound)...\(OpusBitrate.supportedRange.upperBound) bit/s, .auto or .maximum"
        case .complexityOutOfRange(let value):
            return "Opus complexity \(value) is out of range; use 0...10"
        case .packetLossPercentageOutOfRange(let value):
            return "Opus expected packet loss \(value)% is out of range; use 0...100"
        case .frameLengthMismatch(let expected, let actual):
            return "Opus encoder needs exactly one frame of \(expected) interleaved samples but got \(actual)"
        case .outputBufferTooSmall(let required, let available):
            return "Opus output buffer too small: \(required) needed, \(available) available"
        case .outputNotWholeFrames(let samples, let channels):
            return "Opus output buffer of \(samples) samples is not a whole number of \(channels)-channel frames"
        case .invalidConcealmentLength(let samples):
            return "Opus loss concealment / FEC length of \(samples) samples per channel is not a multiple of 2.5 ms up to 120 ms"
        case .emptyPacket:
            return "Opus packet is empty; pass nil to conceal a lost packet"
        case .packetTooLarge(let bytes):
            return "Opus packet of \(bytes) bytes is too large to decode"
        }
    }
}
