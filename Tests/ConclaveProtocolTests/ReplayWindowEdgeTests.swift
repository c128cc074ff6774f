import Testing
@testable import ConclaveProtocol

/// Counters at the top of the 64-bit range: the window must slide without wrapping (a
/// relay's UDP sequence numbers and an SFrame CTR may both reach 2^64 − 1).
@Suite(.timeLimit(.minutes(1))) struct ReplayWindowEdgeTests {
    @Test func slidesToTheLargestCounterAndStops() {
        var w = ReplayWindow()
        w.accept(UInt64.max - 5)
        #expect(w.check(UInt64.max) == .fresh)
        w.accept(UInt64.max)  // an earlier version looped forever here
        #expect(w.highestAccepted == UInt64.max)
        #expect(w.check(UInt64.max) == .duplicate)
        #expect(w.check(UInt64.max - 5) == .duplicate)
        #expect(w.check(UInt64.max - 4) == .fresh)
        #expect(w.check(UInt64.max - 1024) == .tooOld)
        w.accept(UInt64.max - 4)
        #expect(w.check(UInt64.max - 4) == .duplicate)
    }

    @Test func everyShiftNearTheTopClearsExactlyTheSkippedBits() {
        for shift: UInt64 in [1, 2, 63, 64, 65, 1023] {
            var w = ReplayWindow()
            let start = UInt64.max - shift
            w.accept(start)
            w.accept(UInt64.max)
            #expect(w.check(start) == .duplicate, "shift \(shift)")
            for c in (start + 1)..<UInt64.max { #expect(w.check(c) == .fresh, "shift \(shift) counter \(c)") }
        }
    }
}
