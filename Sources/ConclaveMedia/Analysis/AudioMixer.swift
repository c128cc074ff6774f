/// Sums mono Int16 streams into one, saturating at the Int16 range.
///
/// The sum is accumulated at full precision and clipped once at the end, so
/// the result does not depend on the order in which streams are added (two
/// loud streams of opposite sign cancel instead of clipping first).
///
/// Typical use for one mixing period, reusing the mixer so nothing is
/// allocated per period:
/// ```swift
/// mixer.reset()
/// for participant in decoded { mixer.add(participant) }
/// mixer.mix(into: output)
/// ```
public struct AudioMixer: Sendable {
    /// Samples per mixing period (the length of ``mix(into:)``'s output).
    public let frameCount: Int
    /// Streams added since the last ``reset()``.
    public private(set) var streamCount = 0

    private var accumulator: [Int]

    /// Creates a mixer for periods of `frameCount` samples.
    /// - Precondition: `frameCount >= 0`.
    public init(frameCount: Int) {
        precondition(frameCount >= 0, "frameCount must not be negative")
        self.frameCount = frameCount
        self.accumulator = [Int](repeating: 0, count: frameCount)
    }

    /// Clears the sum for a new period. Does not allocate.
    public mutating func reset() {
        for index in accumulator.indices { accumulator[index] = 0 }
        streamCount = 0
    }

    /// Adds one stream. A stream shorter than ``frameCount`` is treated as
    /// silent after its end.
    /// - Precondition: `stream.count <= frameCount`.
    public mutating func add(_ stream: UnsafeBufferPointer<Int16>) {
        precondition(stream.count <= frameCount, "stream longer than the mixer's frameCount")
        accumulator.withUnsafeMutableBufferPointer { sum in
            for index in stream.indices {
                sum[index] += Int(stream[index])
            }
        }
        streamCount += 1
    }

    /// Array convenience for ``add(_:)-(UnsafeBufferPointer<Int16>)``.
    public mutating func add(_ stream: [Int16]) {
        stream.withUnsafeBufferPointer { add($0) }
    }

    /// Writes the saturated sum into `output` without allocating.
    /// - Precondition: `output.count == frameCount`.
    public func mix(into output: UnsafeMutableBufferPointer<Int16>) {
        precondition(output.count == frameCount, "output must hold frameCount samples")
        for index in output.indices {
            output[index] = Int16(clamping: accumulator[index])
        }
    }

    /// The saturated sum as a new array.
    public func mixed() -> [Int16] {
        accumulator.map { Int16(clamping: $0) }
    }

    /// Mixes whole streams in one call; the result is as long as the longest
    /// stream (shorter ones are silent after their end).
    public static func mix(_ streams: [[Int16]]) -> [Int16] {
        var mixer = AudioMixer(frameCount: streams.map(\.count).max() ?? 0)
        for stream in streams { mixer.add(stream) }
        return mixer.mixed()
    }
}
