/// Limits failures per key: at most ``limit`` failures in any sliding window of ``window``
/// milliseconds (e.g. wrong password proofs per room and client address, or failed joins
/// per address).
///
/// Pure and clock-free: the caller passes `now` (a monotonic ``RelayMillis``). Use:
/// 1. before doing the expensive or guessable work, ask ``decision(for:now:)``; when it is
///    ``Decision/limited(retryAfterMilliseconds:)``, answer `rate_limited` with that delay;
/// 2. after a failure, call ``recordFailure(for:now:)``; after a success you may
///    ``forget(_:)`` the key.
///
/// Sliding window log: for each key it keeps at most ``limit`` failure times, so a key costs
/// `O(limit)` memory. At most ``maximumKeys`` keys are tracked: when a new key arrives and
/// the table is full, keys whose failures have all expired are dropped, and if none have, the
/// key whose newest failure is oldest is evicted (so a flood of keys can make the limiter
/// forget old, quiet keys, but never blocks an innocent key).
public struct RateLimiter<Key: Hashable & Sendable>: Sendable {
    /// The answer for a key at a given time.
    public enum Decision: Sendable, Hashable {
        case allowed
        /// The key has ``RateLimiter/limit`` failures in the window; the oldest of them
        /// leaves the window after this many milliseconds (at least 1).
        case limited(retryAfterMilliseconds: UInt32)
    }

    /// Failures allowed per window (at least 1).
    public let limit: Int
    /// Window length in milliseconds (at least 1).
    public let window: RelayMillis
    /// Most keys tracked at once (at least 1).
    public let maximumKeys: Int

    /// Failure times per key, oldest first; never more than `limit`, never empty.
    private var failures: [Key: [RelayMillis]] = [:]

    /// - Precondition: `limit`, `window` and `maximumKeys` are at least 1.
    public init(limit: Int, window: RelayMillis, maximumKeys: Int = 10_000) {
        precondition(limit >= 1 && window >= 1 && maximumKeys >= 1, "RateLimiter needs a positive limit, window and key count")
        self.limit = limit
        self.window = window
        self.maximumKeys = maximumKeys
    }

    /// Number of keys with failures still remembered (expired ones may linger until pruned).
    public var trackedKeyCount: Int { failures.count }

    /// Whether `key` may try now.
    public func decision(for key: Key, now: RelayMillis) -> Decision {
        guard let times = failures[key] else { return .allowed }
        let live = times.filter { !isExpired($0, now: now) }
        guard live.count >= limit else { return .allowed }
        // The oldest live failure leaves the window at oldest + window.
        let leaves = live[live.count - limit].addingSaturating(window)
        return .limited(retryAfterMilliseconds: UInt32(clamping: max(1, leaves - now)))
    }

    /// Records one failure of `key` at `now` and returns the decision for its next attempt.
    @discardableResult
    public mutating func recordFailure(for key: Key, now: RelayMillis) -> Decision {
        if failures[key] == nil, failures.count >= maximumKeys { makeRoom(now: now) }
        var times = failures[key, default: []].filter { !isExpired($0, now: now) }
        times.append(now)
        if times.count > limit { times.removeFirst(times.count - limit) }
        failures[key] = times
        return decision(for: key, now: now)
    }

    /// Forgets every failure of `key` (e.g. after it succeeded).
    public mutating func forget(_ key: Key) {
        failures[key] = nil
    }

    /// Drops keys whose failures have all left the window. Call now and then (e.g. once a
    /// minute) to keep memory proportional to recent failures.
    public mutating func removeExpired(now: RelayMillis) {
        failures = failures.filter { _, times in !isExpired(times[times.count - 1], now: now) }
    }

    /// A failure at `time` counts while `now < time + window`.
    private func isExpired(_ time: RelayMillis, now: RelayMillis) -> Bool {
        time.addingSaturating(window) <= now
    }

    /// Frees one slot: expired keys first, else the key whose newest failure is oldest.
    private mutating func makeRoom(now: RelayMillis) {
        removeExpired(now: now)
        guard failures.count >= maximumKeys else { return }
        if let stalest = failures.min(by: { $0.value[$0.value.count - 1] < $1.value[$1.value.count - 1] })?.key {
            failures[stalest] = nil
        }
    }
}
