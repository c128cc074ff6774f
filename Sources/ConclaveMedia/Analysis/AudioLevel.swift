#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Signal level measurements, relative to full scale (1.0 = 32768).
public enum AudioLevel {
    /// Root-mean-square level over all samples (all channels together), as a
    /// fraction of full scale: 0 for silence, ≈0.707 for a full-scale sine,
    /// 0 for an empty buffer.
    public static func rms(_ samples: UnsafeBufferPointer<Int16>) -> Double {
        guard !samples.isEmpty else { return 0 }
        var sumOfSquares = 0.0
        for sample in samples {
            let value = Double(sample)
            sumOfSquares += value * value
        }
        return (sumOfSquares / Double(samples.count)).squareRoot() / 32768
    }

    /// Array convenience for ``rms(_:)-(UnsafeBufferPointer<Int16>)``.
    public static func rms(_ samples: [Int16]) -> Double {
        samples.withUnsafeBufferPointer { rms($0) }
    }

    /// Largest absolute sample as a fraction of full scale (0 for an empty buffer).
    public static func peak(_ samples: [Int16]) -> Double {
        samples.reduce(0) { max($0, Double($1.magnitude)) } / 32768
    }

    /// A linear level (such as ``rms(_:)-([Int16])``) in dBFS: 0 dBFS is full
    /// scale, −∞ for silence.
    public static func decibelsFullScale(_ level: Double) -> Double {
        level > 0 ? 20 * log10(level) : -Double.infinity
    }
}
