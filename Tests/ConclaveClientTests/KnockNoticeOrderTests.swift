import Testing
import ConclaveCrypto
import ConclaveProtocol
@testable import ConclaveClient

/// 3.6: a co-host checks the leader's `KNOCK_NOTICE` against the relay's `KNOCK` for the
/// same index. The two reach it by different routes (the leader's frame; the relay's own
/// message, which follows the relay's co-host role), so the notice can come first. It did
/// once in a full test run: the co-host reported `key_rejected` and never showed the
/// knocker's name (AdversarialRelayTests.coHostDecisionsCountOnlyWhenSignedEndToEnd).
@Suite struct KnockNoticeOrderTests {
    /// Alice is co-host in the signed roster and `name` waits to be let in. The simulated
    /// relay, like one whose co-host role lags the roster, sends the `KNOCK` to the host
    /// only: alice has the leader's notice and not the relay's knock.
    func coHostWithAWaitingJoiner(_ name: String) throws -> (sim: SimulatedMeeting, alice: UInt16, joiner: UInt16) {
        let sim = try SimulatedMeeting(autoAdmit: false)
        let alice = try sim.join("alice")
        sim.command(.admit(ParticipantIndex(alice)), at: sim.hostIndex)
        sim.advance(300)
        sim.command(.promoteCohost(ParticipantIndex(alice)), at: sim.hostIndex)
        sim.advance(300)
        #expect(sim.clients[alice]!.session.member?.roster?.entry(for: alice)?.role == .cohost)
        return (sim, alice, try sim.join(name))
    }

    func rejections(_ sim: SimulatedMeeting, _ i: UInt16) -> [String] {
        sim.clients[i]!.events.compactMap {
            if case .keyRejected(let what) = $0 { return what }; return nil
        }
    }

    /// The names `i` was shown for knocker `index` through the host.
    func namesThroughTheHost(_ sim: SimulatedMeeting, _ i: UInt16, for index: UInt16) -> [String] {
        sim.clients[i]!.events.compactMap {
            if case .knock(let k, let name?, _, true) = $0, k == index { return name }; return nil
        }
    }

    /// The relay's `KNOCK` for `index`, naming `identity` (the knocker's own by default).
    func relayKnock(_ sim: SimulatedMeeting, _ index: UInt16, identity: PublicIdentity? = nil) throws -> RelayMessage {
        let k = try #require(sim.knocks.first { $0.index == index })
        return .knock(KnockMessage(index: ParticipantIndex(index), identity: (identity ?? k.identity).wireIdentity, knock: k.knock))
    }

    @Test func aNoticeThatOvertakesTheRelaysKnockIsCheckedWhenTheKnockComes() throws {
        let (sim, alice, dave) = try coHostWithAWaitingJoiner("Dave")
        #expect(rejections(sim, alice).isEmpty, "a notice that came before the relay's knock was rejected")
        #expect(namesThroughTheHost(sim, alice, for: dave).isEmpty, "a name shown before the relay reported the knock")
        sim.send(try relayKnock(sim, dave), to: alice)
        sim.pump()
        #expect(namesThroughTheHost(sim, alice, for: dave) == ["Dave"])
        #expect(rejections(sim, alice).isEmpty)
    }

    @Test func aHeldNoticeWhoseKnockNamesAnotherIdentityIsRejected() throws {
        let (sim, alice, dave) = try coHostWithAWaitingJoiner("Dave")
        sim.send(try relayKnock(sim, dave, identity: PrivateIdentity.generate().publicIdentity), to: alice)
        sim.pump()
        #expect(namesThroughTheHost(sim, alice, for: dave).isEmpty, "a name shown for an identity the relay did not report")
        #expect(rejections(sim, alice).contains { $0.contains("names an identity the relay did not report") })
    }

    /// Held notices are bounded: past the limit, one more is rejected at once.
    @Test func heldNoticesAreBounded() throws {
        let (sim, alice, _) = try coHostWithAWaitingJoiner("first")
        for k in 1..<ParticipantSession.maximumEarlyKnockNotices { _ = try sim.join("joiner \(k)") }
        #expect(rejections(sim, alice).isEmpty)
        #expect(sim.clients[alice]!.session.earlyKnockNotices.count == ParticipantSession.maximumEarlyKnockNotices)
        _ = try sim.join("one too many")
        #expect(rejections(sim, alice).count == 1)
        #expect(sim.clients[alice]!.session.earlyKnockNotices.count == ParticipantSession.maximumEarlyKnockNotices)
    }

    /// A held notice goes when its knocker leaves the waiting room.
    @Test func aHeldNoticeGoesWhenTheKnockerLeaves() throws {
        let (sim, alice, dave) = try coHostWithAWaitingJoiner("Dave")
        #expect(sim.clients[alice]!.session.earlyKnockNotices[dave] != nil)
        sim.send(.event(EventMessage(actor: ParticipantIndex(dave), event: .waitingLeft(ParticipantIndex(dave)))), to: alice)
        sim.pump()
        #expect(sim.clients[alice]!.session.earlyKnockNotices[dave] == nil)
    }
}
