import Testing
import ConclaveCrypto
import ConclaveProtocol
@testable import ConclaveClient

/// Issue 9: attacks on ``ParticipantSession``s in memory (``SimulatedMeeting``), each
/// deterministic, with time as a number the test advances.
@Suite struct SessionAttackTests {
    /// A removal the relay hides: it keeps the removed member connected, says nothing,
    /// and forwards what it sends. The leader rekeys on its own decision, and no one — the
    /// leader included, under the old epoch's grace — opens the removed member's frames.
    @Test func aHiddenRemovalStopsTheRemovedMembersFramesEverywhereAtOnce() throws {
        let sim = try SimulatedMeeting()
        let alice = try sim.join("alice"), bob = try sim.join("bob"), carol = try sim.join("carol")
        sim.advance(300)
        try sim.talk(carol)
        for i in [sim.hostIndex, alice, bob] {
            #expect(sim.clients[i]!.delivered.contains { $0.sender == carol }, "#\(i) did not hear carol before her removal")
        }
        let epochBefore = try #require(sim.host.leader?.epoch)
        sim.keptConnected.insert(carol)
        sim.command(.remove(ParticipantIndex(carol)), at: sim.hostIndex)
        #expect(sim.host.leader?.roster?.entry(for: carol) == nil)
        #expect(try #require(sim.host.leader?.epoch) > epochBefore)
        let before = sim.clients.mapValues(\.delivered.count)
        for _ in 0 ..< 3 { try sim.talk(carol); try sim.talk(carol, text: "still here?") }
        for i in [sim.hostIndex, alice, bob] {
            let late = sim.clients[i]!.delivered.dropFirst(before[i]!).filter { $0.sender == carol }
            #expect(late.isEmpty, "#\(i) opened \(late.count) frames from removed carol")
        }
        // And carol opens nothing sealed after her removal.
        try sim.talk(alice, text: "without carol")
        try sim.talk(sim.hostIndex)
        #expect(sim.clients[carol]!.delivered.dropFirst(before[carol]!).isEmpty)
        #expect(try sim.repeatedNonce() == nil)
    }
}
