import Testing
import ConclaveProtocol
@testable import ConclaveClient

/// Issue 14: an audio frame under an epoch its receiver no longer holds is dropped as
/// `unknownEpoch`, and the drop says which epochs were involved, so that a load run can
/// tell a key erased before a late sender switched from a key that never arrived.
@Suite struct UnknownEpochDiagnosticsTests {
    @Test func aFrameUnderAnErasedEpochReportsTheEpochsInvolved() throws {
        let m = try SimulatedMeeting()
        let guest = try m.join("guest")
        m.advance(500)
        #expect(m.clients[guest]!.session.hasKeys)
        // The host seals a frame under the current epoch; the relay holds it back.
        var host = m.clients[m.hostIndex]!
        let held = try host.session.seal(.audio, to: .everyone, plaintext: [0xF8, 1, 2, 3], now: m.now)
        m.clients[m.hostIndex] = host
        let heldEpoch = try #require(ParticipantSession.epoch(of: held.payload))
        // A third member joins (a new epoch); the guest's grace for the old one runs out.
        _ = try m.join("third")
        m.advance(ReceiverKeyRing.previousEpochRetention + 1_000)
        var g = m.clients[guest]!
        let current = try #require(g.session.e2e.ring.currentEpoch)
        #expect(current > heldEpoch)
        // The relay now delivers the held frame.
        let outcome = g.session.receiveFrame(held, now: m.now)
        m.clients[guest] = g
        #expect(outcome.dropped == .unknownEpoch && !outcome.beforeJoin)
        let detail = try #require(outcome.unknownEpoch)
        #expect(detail.frameEpoch == heldEpoch && detail.currentEpoch == current && detail.oldestRetained == nil)
        #expect(detail.firstEpoch <= heldEpoch)
    }
}
