import Testing
@testable import ConclaveClient

/// Issue 10, defect 9: audio that waited before the inbound queue (kernel buffers, relay
/// queues) is recognised from the senders' own timestamps, whatever their clock offset.
@Suite struct AudioAgeEstimatorTests {
    @Test func framesLateAgainstTheSendersUsualDelayAreStale() {
        var estimator = AudioAgeEstimator(limitMicros: 200_000, windowMicros: 30_000_000)
        // The sender's clock is 1 h behind ours; its frames usually take 5 ms.
        let offset: UInt64 = 3_600_000_000
        var stale: [Bool] = []
        for n in 0..<50 {
            let send = UInt64(n) * 20_000
            stale.append(estimator.isStale(sender: 7, sendTimeMicros: send, nowMicros: send + offset + 5_000))
        }
        #expect(!stale.contains(true))
        // A burst that sat 150 ms in a buffer is fine; 250 ms is stale; exactly the limit is not.
        let buffered = estimator.isStale(sender: 7, sendTimeMicros: 1_000_000, nowMicros: 1_000_000 + offset + 155_000)
        let late = estimator.isStale(sender: 7, sendTimeMicros: 1_020_000, nowMicros: 1_020_000 + offset + 255_000)
        let atLimit = estimator.isStale(sender: 7, sendTimeMicros: 1_040_000, nowMicros: 1_040_000 + offset + 205_000)
        #expect(!buffered && late && !atLimit)
        // Senders are independent: another with a different offset starts fresh.
        let other = estimator.isStale(sender: 8, sendTimeMicros: 5, nowMicros: 99_999_999)
        #expect(!other)
    }

    @Test func aStandingQueueStaysStaleForAtLeastAWindow() {
        var estimator = AudioAgeEstimator(limitMicros: 200_000, windowMicros: 30_000_000)
        var now: UInt64 = 10_000_000
        for _ in 0..<100 { now += 20_000; _ = estimator.isStale(sender: 1, sendTimeMicros: now - 1_000, nowMicros: now) }
        // From here every frame is 5 s old (a full kernel buffer): stale for the whole next
        // window, since the minimum of the previous one still holds.
        var staleCount = 0
        for _ in 0..<1_500 {  // 30 s
            now += 20_000
            if estimator.isStale(sender: 1, sendTimeMicros: now - 5_000_000, nowMicros: now) { staleCount += 1 }
        }
        #expect(staleCount == 1_500)
    }
}
