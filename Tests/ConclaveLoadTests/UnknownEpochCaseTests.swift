import Testing
import ConclaveClient
@testable import ConclaveLoad

/// The load summary's account of `unknown_epoch` failures (issue 14).
@Suite struct UnknownEpochCaseTests {
    @Test func theLoadSummaryTellsAnErasedEpochFromOneNeverInstalled() {
        let erased = UnknownEpochCase(.init(frameEpoch: 3, firstEpoch: 2, currentEpoch: 7, oldestRetained: 5)).description
        #expect(erased == "frame epoch 4 behind the receiver's current, 1 after its first; older than the oldest it retains (2 behind)")
        let missing = UnknownEpochCase(.init(frameEpoch: 6, firstEpoch: 2, currentEpoch: 7, oldestRetained: 5)).description
        #expect(missing.hasSuffix("within its retained range but not held (never installed)"))
    }

    @Test func aReceiverWithNoRetainedEpochSaysSo() {
        let text = UnknownEpochCase(.init(frameEpoch: 4, firstEpoch: 4, currentEpoch: 5, oldestRetained: nil)).description
        #expect(text == "frame epoch 1 behind the receiver's current, 0 after its first; it retains no previous epoch")
    }
}
