/// A source of synthetic 16-bit PCM, for tests and load generation.
///
/// Generators are stateful values: each call continues where the previous one
/// stopped, so a stream can be produced frame by frame into a reused buffer.
public protocol AudioGenerator {
    /// Interleaved channel count of the output.
    var channels: Int { get }

    /// Fills `buffer` with the next `buffer.count / channels` frames of
    /// interleaved audio without allocating.
    ///
    /// - Precondition: `buffer.count` is a multiple of ``channels``.
    mutating func fill(_ buffer: UnsafeMutableBufferPointer<Int16>)
}

extension AudioGenerator {
    /// Returns the next `frameCount` frames (`frameCount * channels` samples).
    /// Allocates; use ``fill(_:)`` on a hot path.
    public mutating func generate(frameCount: Int) -> [Int16] {
        precondition(frameCount >= 0, "frameCount must not be negative")
        var samples = [Int16](repeating: 0, count: frameCount * channels)
        samples.withUnsafeMutableBufferPointer { fill($0) }
        return samples
    }
}

/// Digital silence (all zeros).
public struct SilenceGenerator: AudioGenerator, Sendable {
    public let channels: Int

    /// - Precondition: `channels > 0`.
    public init(channels: Int = 1) {
        precondition(channels > 0, "channels must be positive")
        self.channels = channels
    }

    public mutating func fill(_ buffer: UnsafeMutableBufferPointer<Int16>) {
        precondition(buffer.count % channels == 0, "buffer must hold whole frames")
        buffer.update(repeating: 0)
    }
}
