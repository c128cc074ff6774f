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
        for _ in 0..<3 { try sim.talk(carol); try sim.talk(carol, text: "still here?") }
        for i in [sim.hostIndex, alice, bob] {
            let late = sim.clients[i]!.delivered.dropFirst(before[i]!).filter { $0.sender == carol }
            #expect(late.isEmpty, "#\(i) opened \(late.count) frames from removed carol")
        }
        // And carol opens nothing sealed after her removal.
        try sim.talk(alice, text: "without carol")
        try sim.talk(sim.hostIndex)
        #expect(sim.clients[carol]!.delivered.dropFirst(before[carol]!).isEmpty)
        // The relay hid the removal; the leader's signed roster told carol herself.
        #expect(
            sim.clients[carol]!.events.contains {
                if case .removed = $0 { return true }; return false
            })
        #expect(sim.clients[carol]!.session.removedEndToEnd && !sim.clients[carol]!.session.canSeal(now: sim.now))
        #expect(try sim.repeatedNonce() == nil)
    }

    /// A split room: the relay withholds everything the leader sends from its successor,
    /// which then takes the keys over, while the others still hear the leader. Each side
    /// sees the other leader's messages and raises `history_differs`; codes then differ.
    @Test func aSplitRoomIsReportedOnBothSides() throws {
        let sim = try SimulatedMeeting()
        let alice = try sim.join("alice"), bob = try sim.join("bob")
        sim.advance(300)
        #expect(sim.host.leader?.successor == alice)
        sim.withhold = { to, m in
            if to == alice, case .frame(let f) = m, f.header.sender.rawValue == sim.hostIndex { return true }
            return false
        }
        let bobBefore = sim.clients[bob]!.events.count, hostBefore = sim.clients[sim.hostIndex]!.events.count
        sim.advance(Heartbeat.silenceTimeout + 3 * Heartbeat.interval)
        #expect(sim.clients[alice]!.session.leader != nil, "the successor did not take over")
        #expect(sim.clients[bob]!.session.member?.leaderIndex == sim.hostIndex, "bob followed the successor although the leader is alive")
        #expect(sim.alerts(bob, since: bobBefore).contains(.historyDiffers), "bob: \(sim.alerts(bob, since: bobBefore))")
        #expect(sim.alerts(sim.hostIndex, since: hostBefore).contains(.historyDiffers))
        #expect(sim.clients[alice]!.session.securityCode != sim.host.securityCode)
    }

    /// After a handover the invite names the new leader's key: the new leader shows a new
    /// invite, keys a joiner who knocks with it, and reports a knock sealed to the old key.
    @Test func aNewLeaderIssuesTheInviteKnocksAreSealedTo() throws {
        let sim = try SimulatedMeeting()
        let alice = try sim.join("alice"), bob = try sim.join("bob")
        sim.advance(300)
        sim.command(.transferHost(ParticipantIndex(alice)), at: sim.hostIndex)
        sim.advance(300)
        let text = try #require(
            sim.clients[alice]!.events.compactMap {
                if case let .invite(t) = $0 { return t }; return nil
            }.last)
        let fresh = try Invite(parsing: text)
        #expect(fresh.hostIdentity == sim.clients[alice]!.session.identity.publicIdentity)
        #expect(fresh.roomID == sim.roomID && fresh.secret == sim.invite.secret)
        // A knock with the old invite: sealed to the old host's key.
        let before = sim.clients[alice]!.events.count
        _ = try sim.join("late")
        #expect(sim.alerts(alice, since: before) == [.knockRejected])
        // A knock with the new invite: alice opens it, admits, and the joiner is keyed.
        let dave = try sim.join("dave", invite: fresh)
        sim.command(.admit(ParticipantIndex(dave)), at: alice)
        sim.advance(500)
        let code = try #require(sim.clients[alice]!.session.securityCode)
        for i in [sim.hostIndex, bob, dave] { #expect(sim.clients[i]!.session.securityCode == code, "#\(i)") }
        #expect(sim.clients[dave]!.session.member?.leaderIndex == alice)
    }
}
