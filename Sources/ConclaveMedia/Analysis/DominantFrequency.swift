#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Estimates the strongest frequency in a block of PCM.
///
/// Method: channels are averaged to mono, the mean (DC) removed, a Hann
/// window applied over the analysed frames, the block zero-padded to the next
/// power of two and transformed with a radix-2 FFT. The strongest bin above
/// DC is refined by fitting a parabola through the log power of it and its
/// two neighbours. For a pure tone of half a second or more this is accurate
/// to a small fraction of a hertz (the bin spacing is ≤ 1.5 Hz at 48 kHz and
/// the interpolation recovers most of the rest).
public enum DominantFrequency {
    /// At most this many frames (from the start) are analysed: 2^20, about
    /// 22 s at 48 kHz. Longer input is cut so the FFT stays bounded.
    public static let maximumAnalysisFrames = 1 << 20

    /// The dominant frequency in Hz, or `nil` if there are fewer than 4
    /// frames or the (DC-removed) signal is silent.
    ///
    /// - Parameters:
    ///   - samples: interleaved PCM.
    ///   - sampleRate: samples per second per channel.
    ///   - channels: interleaved channel count; trailing samples that do not
    ///     make a whole frame are ignored.
    /// - Precondition: `sampleRate > 0` and `channels > 0`.
    public static func estimate(samples: UnsafeBufferPointer<Int16>, sampleRate: Int, channels: Int = 1) -> Double? {
        precondition(sampleRate > 0, "sampleRate must be positive")
        precondition(channels > 0, "channels must be positive")
        let frames = min(samples.count / channels, maximumAnalysisFrames)
        guard frames >= 4 else { return nil }

        var size = 1
        while size < frames { size <<= 1 }
        var real = [Double](repeating: 0, count: size)
        var imag = [Double](repeating: 0, count: size)

        // Downmix and remove DC.
        var sum = 0.0
        for frame in 0..<frames {
            var value = 0
            for channel in 0..<channels {
                value += Int(samples[frame * channels + channel])
            }
            let mono = Double(value) / Double(channels)
            real[frame] = mono
            sum += mono
        }
        let mean = sum / Double(frames)
        let windowScale = 2 * Double.pi / Double(frames - 1)
        for frame in 0..<frames {
            let hann = 0.5 - 0.5 * cos(windowScale * Double(frame))
            real[frame] = (real[frame] - mean) * hann
        }

        FFT.forward(real: &real, imag: &imag)

        let bins = size / 2
        var peak = 1
        var peakPower = 0.0
        for bin in 1..<bins {
            let power = real[bin] * real[bin] + imag[bin] * imag[bin]
            if power > peakPower {
                peakPower = power
                peak = bin
            }
        }
        guard peakPower > 0 else { return nil }

        var offset = 0.0
        if peak > 1 && peak < bins - 1 {
            func logPower(_ bin: Int) -> Double {
                log(real[bin] * real[bin] + imag[bin] * imag[bin] + .leastNonzeroMagnitude)
            }
            let left = logPower(peak - 1)
            let center = logPower(peak)
            let right = logPower(peak + 1)
            let denominator = left - 2 * center + right
            if denominator < 0 {
                offset = max(-0.5, min(0.5, 0.5 * (left - right) / denominator))
            }
        }
        return (Double(peak) + offset) * Double(sampleRate) / Double(size)
    }

    /// Array convenience for ``estimate(samples:sampleRate:channels:)-(UnsafeBufferPointer<Int16>,_,_)``.
    public static func estimate(samples: [Int16], sampleRate: Int, channels: Int = 1) -> Double? {
        samples.withUnsafeBufferPointer { estimate(samples: $0, sampleRate: sampleRate, channels: channels) }
    }
}
