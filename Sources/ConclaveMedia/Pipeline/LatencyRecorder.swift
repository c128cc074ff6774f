/// Latency figures in microseconds: count, extremes and mean over everything
/// recorded, percentiles over the most recent window.
public struct LatencySummary: Sendable, Equatable, CustomStringConvertible {
    /// Samples recorded in total.
    public var count: Int
    public var minimum: UInt64?
    public var maximum: UInt64?
    public var mean: Double?
    /// Median of the recent window (nearest rank).
    public var p50: UInt64?
    /// 99th percentile of the recent window (nearest rank).
    public var p99: UInt64?

    public init(count: Int = 0, minimum: UInt64? = nil, maximum: UInt64? = nil, mean: Double? = nil, p50: UInt64? = nil, p99: UInt64? = nil) {
        self.count = count
        self.minimum = minimum
        self.maximum = maximum
        self.mean = mean
        self.p50 = p50
        self.p99 = p99
    }

    public var description: String {
        guard count > 0, let minimum, let maximum, let mean, let p50, let p99 else { return "no latency samples" }
        return "\(count) samples: min \(minimum) µs, p50 \(p50) µs, p99 \(p99) µs, max \(maximum) µs, mean \(Int(mean.rounded())) µs"
    }
}

/// Records latencies (µs) in bounded memory: running count, min, max and
/// mean, plus a ring of the last ``windowSize`` values for percentiles.
///
/// ``record(_:)`` never allocates (the ring is allocated at creation);
/// ``percentile(_:)`` and ``summary`` sort a copy of the window and do.
public struct LatencyRecorder: Sendable {
    /// Values kept for percentiles.
    public let windowSize: Int
    /// Values recorded in total.
    public private(set) var count = 0
    public private(set) var minimum: UInt64?
    public private(set) var maximum: UInt64?
    private var sum = 0.0
    private var window: [UInt64]
    private var writeIndex = 0

    /// Creates a recorder keeping the last `windowSize` values (at least 1).
    public init(windowSize: Int = 1_024) {
        self.windowSize = max(1, windowSize)
        window = []
        window.reserveCapacity(self.windowSize)
    }

    public mutating func record(_ micros: UInt64) {
        count += 1
        sum += Double(micros)
        minimum = Swift.min(minimum ?? micros, micros)
        maximum = Swift.max(maximum ?? micros, micros)
        if window.count < windowSize {
            window.append(micros)
        } else {
            window[writeIndex] = micros
        }
        writeIndex = writeIndex + 1 == windowSize ? 0 : writeIndex + 1
    }

    /// Mean of everything recorded.
    public var mean: Double? { count > 0 ? sum / Double(count) : nil }

    /// The nearest-rank percentile of the recent window: `fraction` 0.5 is
    /// the median, 0.99 the 99th percentile. `nil` when nothing is recorded.
    public func percentile(_ fraction: Double) -> UInt64? {
        Self.percentile(fraction, ofSorted: window.sorted())
    }

    /// Count, extremes, mean, p50 and p99.
    public var summary: LatencySummary {
        let sorted = window.sorted()
        return LatencySummary(
            count: count, minimum: minimum, maximum: maximum, mean: mean,
            p50: Self.percentile(0.5, ofSorted: sorted), p99: Self.percentile(0.99, ofSorted: sorted))
    }

    /// One summary over several recorders (e.g. every sender): percentiles
    /// over the union of their windows.
    public static func summary(of recorders: [LatencyRecorder]) -> LatencySummary {
        let sorted = recorders.flatMap(\.window).sorted()
        let count = recorders.reduce(0) { $0 + $1.count }
        let sum = recorders.reduce(0.0) { $0 + $1.sum }
        return LatencySummary(
            count: count,
            minimum: recorders.compactMap(\.minimum).min(),
            maximum: recorders.compactMap(\.maximum).max(),
            mean: count > 0 ? sum / Double(count) : nil,
            p50: percentile(0.5, ofSorted: sorted), p99: percentile(0.99, ofSorted: sorted))
    }

    private static func percentile(_ fraction: Double, ofSorted sorted: [UInt64]) -> UInt64? {
        guard !sorted.isEmpty else { return nil }
        let clamped = Swift.min(1, Swift.max(0, fraction.isNaN ? 0 : fraction))
        let rank = Int((clamped * Double(sorted.count)).rounded(.up))
        return sorted[Swift.max(0, Swift.min(sorted.count - 1, rank - 1))]
    }
}

/// RFC 3550 §6.4.1 interarrival jitter, in microseconds: a smoothed mean
/// deviation of the packet transit time (`arrival − send_time_us`). Only
/// differences of transit times are used, so sender and receiver clocks
/// need not agree.
public struct TransitJitter: Sendable, Equatable {
    /// The current estimate (µs).
    public private(set) var jitterMicros = 0.0
    private var lastTransit: Int64?

    public init() {}

    /// Adds one packet's send time and arrival time (each on its own clock).
    public mutating func record(sendMicros: UInt64, arrivalMicros: UInt64) {
        let transit = Int64(bitPattern: arrivalMicros &- sendMicros)
        if let lastTransit {
            let difference = Double(transit &- lastTransit).magnitude
            jitterMicros += (difference - jitterMicros) / 16
        }
        lastTransit = transit
    }
}
