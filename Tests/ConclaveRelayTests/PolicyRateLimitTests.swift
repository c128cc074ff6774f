import ConclaveRelay
import Testing

@Suite("Policy: rate limiter and token bucket")
struct PolicyRateLimitTests: PolicyShorthands {
    typealias Decision = RateLimiter<String>.Decision

    @Test func rateLimiterAllowsUpToTheLimitThenGivesRetryAfter() {
        var limiter = RateLimiter<String>(limit: 3, window: 10_000)
        #expect(limiter.decision(for: "a", now: 0) == .allowed)
        let first = limiter.recordFailure(for: "a", now: 1_000)
        let second = limiter.recordFailure(for: "a", now: 2_000)
        // The third failure reaches the limit: blocked until the first leaves the window.
        let third = limiter.recordFailure(for: "a", now: 3_000)
        #expect(first == .allowed)
        #expect(second == .allowed)
        #expect(third == .limited(retryAfterMilliseconds: 8_000))
        #expect(limiter.decision(for: "a", now: 10_999) == .limited(retryAfterMilliseconds: 1))
        #expect(limiter.decision(for: "a", now: 11_000) == .allowed)
        // Sliding: a failure at 11 000 makes three in the window again (2 000, 3 000, 11 000).
        let fourth = limiter.recordFailure(for: "a", now: 11_000)
        #expect(fourth == .limited(retryAfterMilliseconds: 1_000))
        #expect(limiter.decision(for: "a", now: 12_000) == .allowed)
    }

    @Test func rateLimiterKeysAreIndependentAndForgettable() {
        var limiter = RateLimiter<Int>(limit: 1, window: 500)
        let failure = limiter.recordFailure(for: 1, now: 0)
        #expect(failure == .limited(retryAfterMilliseconds: 500))
        #expect(limiter.decision(for: 2, now: 0) == .allowed)
        limiter.forget(1)
        #expect(limiter.decision(for: 1, now: 1) == .allowed)
        #expect(limiter.trackedKeyCount == 0)
    }

    @Test func rateLimiterMemoryIsBounded() {
        var limiter = RateLimiter<Int>(limit: 2, window: 1_000, maximumKeys: 4)
        for key in 0..<4 { limiter.recordFailure(for: key, now: RelayMillis(key)) }
        #expect(limiter.trackedKeyCount == 4)
        // Full: the key whose newest failure is oldest (0) makes room.
        limiter.recordFailure(for: 99, now: 10)
        #expect(limiter.trackedKeyCount == 4)
        #expect(limiter.decision(for: 1, now: 10) == .allowed)
        limiter.recordFailure(for: 1, now: 12)
        #expect(limiter.decision(for: 1, now: 13) == .limited(retryAfterMilliseconds: 988))
        // Expired keys are pruned on demand.
        limiter.removeExpired(now: 5_000)
        #expect(limiter.trackedKeyCount == 0)
    }

    @Test func tokenBucketAllowsABurstThenTheRate() {
        var bucket = TokenBucket(ratePerSecond: 10, burst: 5, now: 0)
        var results: [Bool] = []
        for _ in 0..<6 { results.append(bucket.consume(now: 0)) }
        #expect(results == [true, true, true, true, true, false])
        #expect(bucket.retryAfterMilliseconds(for: 1, now: 0) == 100)
        let early = bucket.consume(now: 99)
        let onTime = bucket.consume(now: 100)
        #expect(!early)
        #expect(onTime)
        // A long pause refills to the burst, not beyond.
        #expect(bucket.availableTokens(now: 1_000_000) == 5)
        let all = bucket.consume(5, now: 1_000_000)
        let more = bucket.consume(now: 1_000_000)
        #expect(all)
        #expect(!more)
    }

    @Test func tokenBucketCostsAndEdgeCases() {
        var bytes = TokenBucket(ratePerSecond: 1_000, burst: 1_500, now: 0)
        let big = bytes.consume(1_200, now: 0)
        let tooMuch = bytes.consume(400, now: 0)  // nothing is taken on refusal
        let rest = bytes.consume(300, now: 0)
        #expect([big, tooMuch, rest] == [true, false, true])
        #expect(bytes.retryAfterMilliseconds(for: 1_500, now: 0) == 1_500)
        #expect(bytes.retryAfterMilliseconds(for: 1_501, now: 0) == nil)  // above the burst: never
        let aboveBurst = bytes.consume(1_501, now: 10_000)
        #expect(!aboveBurst)
        // Time going backwards adds nothing.
        var frames = TokenBucket(ratePerSecond: 1, burst: 1, now: 5_000)
        let a = frames.consume(now: 5_000)
        let b = frames.consume(now: 1_000)
        let c = frames.consume(now: 6_000)
        #expect([a, b, c] == [true, false, true])
        // No refill at all.
        var once = TokenBucket(ratePerSecond: 0, burst: 2, now: 0)
        let two = once.consume(2, now: 0)
        let later = once.consume(now: .max)
        #expect(two)
        #expect(!later)
        #expect(once.retryAfterMilliseconds(for: 1, now: 0) == nil)
    }
}
