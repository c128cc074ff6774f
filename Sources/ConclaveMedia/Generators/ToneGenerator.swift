#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A sine tone, identical on every channel, phase-continuous across calls.
///
/// Producing N frames in one call or in several smaller calls gives exactly
/// the same samples: the phase is carried in the value between calls and
/// wrapped to [0, 2π) after every sample.
public struct ToneGenerator: AudioGenerator, Sendable {
    /// Tone frequency (Hz).
    public let frequency: Double
    /// Peak amplitude as a fraction of full scale, 0...1 (1 peaks at ±32767).
    public let amplitude: Double
    /// Output sample rate (Hz).
    public let sampleRate: Int
    public let channels: Int
    /// Phase of the next sample, radians in [0, 2π).
    public private(set) var phase: Double

    private let phaseIncrement: Double
    private static let twoPi = 2 * Double.pi

    /// Creates a tone.
    ///
    /// - Precondition: `sampleRate > 0`, `channels > 0`, `amplitude` in 0...1,
    ///   and `frequency` in 0...sampleRate/2 (the Nyquist limit). These are
    ///   programmer errors in test and load code, so they trap.
    public init(frequency: Double, amplitude: Double = 0.5, sampleRate: Int = AudioFormat.productSampleRate, channels: Int = 1, phase: Double = 0) {
        precondition(sampleRate > 0, "sampleRate must be positive")
        precondition(channels > 0, "channels must be positive")
        precondition((0...1).contains(amplitude), "amplitude must be in 0...1")
        precondition(frequency >= 0 && frequency <= Double(sampleRate) / 2, "frequency must be in 0...sampleRate/2")
        precondition(phase.isFinite, "phase must be finite")
        self.frequency = frequency
        self.amplitude = amplitude
        self.sampleRate = sampleRate
        self.channels = channels
        self.phaseIncrement = Self.twoPi * frequency / Double(sampleRate)
        let wrapped = phase.truncatingRemainder(dividingBy: Self.twoPi)
        self.phase = wrapped < 0 ? wrapped + Self.twoPi : wrapped
    }

    public mutating func fill(_ buffer: UnsafeMutableBufferPointer<Int16>) {
        precondition(buffer.count % channels == 0, "buffer must hold whole frames")
        let scale = amplitude * Double(Int16.max)
        var index = 0
        while index < buffer.count {
            let value = Int16((scale * sin(phase)).rounded())
            for channel in 0..<channels {
                buffer[index + channel] = value
            }
            index += channels
            phase += phaseIncrement
            if phase >= Self.twoPi { phase -= Self.twoPi }
        }
    }
}
