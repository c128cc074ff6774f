/// A token bucket: refills at ``ratePerSecond`` tokens per second up to ``burst`` tokens,
/// and each event consumes some tokens (1 per frame or control message, the byte count for
/// a bytes-per-second limit). Starts full.
///
/// Pure and clock-free: the caller passes `now` (a monotonic ``RelayMillis``); a `now`
/// earlier than a previous one is treated as no time passing. Exact integer arithmetic:
/// tokens are kept in thousandths, so a rate of `r` tokens/s adds exactly `r` thousandths per
/// millisecond and no rounding accumulates. Allocation-free, so it can sit on the frame path.
///
/// A connection typically has three: frames per second (cost 1), bytes per second (cost =
/// message length) and control messages per second (cost 1).
public struct TokenBucket: Sendable, Hashable {
    /// Tokens added per second.
    public let ratePerSecond: UInt64
    /// Capacity in tokens: the largest burst after a quiet period.
    public let burst: UInt64

    /// Current tokens, in thousandths.
    private var milliTokens: UInt64
    private var lastRefill: RelayMillis

    /// A full bucket. `ratePerSecond` 0 never refills; `burst` 0 refuses everything.
    public init(ratePerSecond: UInt64, burst: UInt64, now: RelayMillis) {
        self.ratePerSecond = ratePerSecond
        self.burst = burst
        milliTokens = Self.thousandths(burst)
        lastRefill = now
    }

    /// Takes `cost` tokens if that many are available now and returns true; otherwise takes
    /// nothing and returns false. A cost above ``burst`` never succeeds.
    public mutating func consume(_ cost: UInt64 = 1, now: RelayMillis) -> Bool {
        refill(now: now)
        let needed = Self.thousandths(cost)
        guard milliTokens >= needed else { return false }
        milliTokens -= needed
        return true
    }

    /// Whole tokens available at `now`.
    public func availableTokens(now: RelayMillis) -> UInt64 {
        var copy = self
        copy.refill(now: now)
        return copy.milliTokens / 1_000
    }

    /// Milliseconds until `cost` tokens are available (0 if they are now); `nil` when they
    /// never will be (cost above ``burst``, or no refill).
    public func retryAfterMilliseconds(for cost: UInt64, now: RelayMillis) -> RelayMillis? {
        var copy = self
        copy.refill(now: now)
        let needed = Self.thousandths(cost)
        if copy.milliTokens >= needed { return 0 }
        guard cost <= burst, ratePerSecond > 0 else { return nil }
        let missing = needed - copy.milliTokens
        return (missing + ratePerSecond - 1) / ratePerSecond  // ceil(missing / rate) ms
    }

    private mutating func refill(now: RelayMillis) {
        guard now > lastRefill else { return }
        let elapsed = now - lastRefill
        lastRefill = now
        let capacity = Self.thousandths(burst)
        let (added, overflow) = elapsed.multipliedReportingOverflow(by: ratePerSecond)
        let (sum, overflow2) = milliTokens.addingReportingOverflow(added)
        milliTokens = overflow || overflow2 ? capacity : min(capacity, sum)
    }

    private static func thousandths(_ tokens: UInt64) -> UInt64 {
        let (value, overflow) = tokens.multipliedReportingOverflow(by: 1_000)
        return overflow ? .max : value
    }
}
