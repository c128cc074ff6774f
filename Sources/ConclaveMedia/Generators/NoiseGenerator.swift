/// SplitMix64 (Steele, Lea & Flood 2014): a tiny, fast, seedable generator
/// whose output sequence is fully determined by its seed. Not cryptographic.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// White noise, uniformly distributed in ±amplitude, reproducible from a seed.
///
/// The same seed always yields the same samples, on every platform; channels
/// get independent samples.
public struct NoiseGenerator: AudioGenerator, Sendable {
    /// Peak amplitude as a fraction of full scale, 0...1.
    public let amplitude: Double
    public let channels: Int
    /// The seed this generator started from.
    public let seed: UInt64

    private var random: SplitMix64

    /// - Precondition: `amplitude` in 0...1 and `channels > 0`.
    public init(seed: UInt64, amplitude: Double = 0.5, channels: Int = 1) {
        precondition((0...1).contains(amplitude), "amplitude must be in 0...1")
        precondition(channels > 0, "channels must be positive")
        self.amplitude = amplitude
        self.channels = channels
        self.seed = seed
        self.random = SplitMix64(seed: seed)
    }

    public mutating func fill(_ buffer: UnsafeMutableBufferPointer<Int16>) {
        precondition(buffer.count % channels == 0, "buffer must hold whole frames")
        let scale = amplitude * Double(Int16.max)
        for index in buffer.indices {
            // 53 random bits → [0, 1) → [-1, 1).
            let unit = Double(random.next() >> 11) * 0x1p-53
            buffer[index] = Int16((scale * (2 * unit - 1)).rounded())
        }
    }
}
