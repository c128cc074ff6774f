import Testing
import ConclaveCrypto
import ConclaveProtocol
@testable import ConclaveClient

/// Issue 9, the property test in memory: random sequences of honest relay behaviour and
/// forgeries, fed to ``ParticipantSession``s through ``SimulatedMeeting``, with the
/// invariants checked after every step:
/// - the attacker's identities never hold a key or open a frame, though their sessions
///   hear every frame that crosses the relay;
/// - the leader's signed roster holds only identities that knocked with the invite and
///   were admitted, with the roles and presenter rights the leader decided;
/// - no one but the host holds the keys, and every keyed member follows it;
/// - a removed member opens nothing sealed after its removal, even when the relay hides
///   the removal and keeps forwarding, and no one opens its frames after it;
/// - each forgery raised the alert it should;
/// - no AEAD (key, nonce) pair repeats.
/// The clock is the simulation's; a failing seed replays exactly.
@Suite struct SessionPropertyTests {
    typealias Draws = AdversarialPropertyTests.Draws

    @Test(arguments: Array(UInt64(1)...8))
    func randomForgeriesNeverKeyTheAttackerOrMoveTheKeys(seed: UInt64) throws {
        var draws = Draws(seed: seed)
        let sim = try SimulatedMeeting()
        var honest: [UInt16] = []
        for name in ["alice", "bob"] { honest.append(try sim.join(name)) }
        sim.advance(300)
        /// Removed members: the host's epoch after the removal, and how many frames each
        /// client had delivered at that moment.
        var removed: [UInt16: (epoch: UInt64, deliveredAt: [UInt16: Int])] = [:]
        var expectedAlerts = 0

        func event(_ e: RoomEvent) -> RelayMessage { .event(EventMessage(actor: .none, event: e)) }
        func freshIndex() -> UInt16 { defer { sim.nextIndex += 1 }; return sim.nextIndex }
        func keyed(_ i: UInt16) -> Bool { sim.clients[i]?.session.hasKeys == true }
        /// Runs a forgery and checks that client `at` raised one of `codes`.
        func forged(at i: UInt16, _ codes: Set<AlertCode>, _ what: String, within ms: UInt64 = 0, _ body: () throws -> Void) rethrows {
            let before = sim.clients[i]!.events.count
            try body()
            sim.pump()
            if ms > 0 { sim.advance(ms) }
            let raised = sim.alerts(i, since: before)
            #expect(!codes.isDisjoint(with: raised), "seed \(seed): \(what) raised \(raised), expected one of \(codes)")
            expectedAlerts += 1
        }

        for step in 0..<150 {
            let present = honest.filter { removed[$0] == nil && sim.clients[$0]!.connected }
            let someone = present.isEmpty ? nil : present[draws.next(present.count)]
            switch draws.next(13) {
            case 0:  // a ghost `joined`: an identity that never knocked
                let mallory = PrivateIdentity.generate(), n = freshIndex()
                sim.attackerListens(mallory, at: n, joinNonce: SecureRandom.bytes(count: Knock.joinNonceLength))
                forged(at: sim.hostIndex, [.unauthorizedJoin], "a ghost join") {
                    sim.send(event(.joined(ParticipantIndex(n), identity: mallory.publicIdentity.wireIdentity, role: .participant)), to: sim.hostIndex)
                }
            case 1:  // identity swap: carol knocks and is admitted; the relay says mallory joined
                guard present.count < 8 else { continue }
                let mallory = PrivateIdentity.generate(), n = sim.nextIndex
                sim.withhold = { to, m in
                    if to == sim.hostIndex, case .event(let e) = m, case .joined(let i, _, _) = e.event, i.rawValue == n { return true }
                    return false
                }
                try sim.join("carol")
                sim.withhold = { _, _ in false }
                sim.attackerListens(mallory, at: n, joinNonce: SecureRandom.bytes(count: Knock.joinNonceLength))
                forged(at: sim.hostIndex, [.identityMismatch], "an identity swap") {
                    sim.send(event(.joined(ParticipantIndex(n), identity: mallory.publicIdentity.wireIdentity, role: .participant)), to: sim.hostIndex)
                }
                // The genuine `joined` follows: carol is keyed under her own identity.
                let carol = sim.clients[n]!.session.identity.publicIdentity.wireIdentity
                sim.send(event(.joined(ParticipantIndex(n), identity: carol, role: .participant)), to: sim.hostIndex)
                sim.pump()
                honest.append(n)
            case 2:  // a replayed knock at a new index, then `joined` for the attacker there
                guard let old = sim.knocks.last else { continue }
                let mallory = PrivateIdentity.generate(), n = freshIndex()
                forged(at: sim.hostIndex, [.knockReplayed], "a replayed knock") {
                    sim.send(.knock(KnockMessage(index: ParticipantIndex(n), identity: old.identity.wireIdentity, knock: old.knock)), to: sim.hostIndex)
                }
                sim.attackerListens(mallory, at: n, joinNonce: SecureRandom.bytes(count: Knock.joinNonceLength))
                forged(at: sim.hostIndex, [.unauthorizedJoin], "a join after a replayed knock") {
                    sim.send(event(.joined(ParticipantIndex(n), identity: mallory.publicIdentity.wireIdentity, role: .participant)), to: sim.hostIndex)
                }
            case 3:  // a knock minted without the invite secret, then `joined`
                let mallory = PrivateIdentity.generate(), n = freshIndex()
                let (k, nonce) = try Knock.seal(
                    roomID: sim.roomID, displayName: "alice", joiner: mallory,
                    host: sim.invite.hostIdentity.agreementKey, inviteSecret: Invite.randomSecret())
                sim.attackerListens(mallory, at: n, joinNonce: nonce)
                forged(at: sim.hostIndex, [.knockRejected], "a knock without the invite secret") {
                    sim.send(.knock(KnockMessage(index: ParticipantIndex(n), identity: mallory.publicIdentity.wireIdentity, knock: k)), to: sim.hostIndex)
                }
                forged(at: sim.hostIndex, [.unauthorizedJoin], "a join after a bad knock") {
                    sim.send(event(.joined(ParticipantIndex(n), identity: mallory.publicIdentity.wireIdentity, role: .participant)), to: sim.hostIndex)
                }
            case 4:  // a forged role or presenter right, told to the leader
                guard let someone, keyed(someone) else { continue }
                forged(at: sim.hostIndex, [.relayRoleMismatch], "a forged role") {
                    if draws.next(2) == 0 {
                        sim.send(event(.roleChanged(ParticipantIndex(someone), role: .cohost)), to: sim.hostIndex)
                    } else {
                        sim.send(event(.presenterChanged(ParticipantIndex(someone), granted: true)), to: sim.hostIndex)
                    }
                }
            case 5:  // a forged host change, told to a member while the leader is alive
                guard let someone, keyed(someone) else { continue }
                let claimed = [someone, sim.hostIndex &+ 0x0300, present[draws.next(present.count)]][draws.next(3)]
                // Naming the signed successor is what the relay does when the leader leaves:
                // reported once the leader's next heartbeat shows it alive.
                forged(at: someone, [.relayRoleMismatch], "a forged host change", within: Heartbeat.interval + 100) {
                    sim.send(event(.roleChanged(ParticipantIndex(claimed), role: .host)), to: someone)
                }
            case 6:  // a second ADMITTED
                guard let someone else { continue }
                forged(at: someone, [.unexpectedAdmission], "a second ADMITTED") {
                    sim.send(
                        .admitted(
                            AdmittedMessage(
                                index: ParticipantIndex(someone), role: .participant, settings: .privacyDefaults,
                                recording: false, roster: sim.relayRoster)), to: someone)
                }
            case 7:  // a replayed frame (any that crossed the relay) to a member: nothing opens twice
                guard let someone, !sim.crossed.isEmpty else { continue }
                let old = sim.crossed[draws.next(sim.crossed.count)]
                let before = sim.clients[someone]!.delivered
                sim.send(.frame(old), to: someone)
                sim.pump()
                // A frame it never opened may open late (the relay may delay); one it
                // opened never opens again.
                let again = sim.clients[someone]!.delivered.dropFirst(before.count).filter { before.contains($0) }
                #expect(again.isEmpty, "seed \(seed) step \(step): a replayed frame opened again")
            case 8, 9:  // an honest join
                guard present.count < 8 else { continue }
                honest.append(try sim.join(["carol", "dave", "erin", "frank"][draws.next(4)]))
            case 10:  // a removal the relay hides: it keeps the member connected and says nothing
                guard let someone, present.count > 2 else { continue }
                sim.keptConnected.insert(someone)
                sim.command(.remove(ParticipantIndex(someone)), at: sim.hostIndex)
                #expect(sim.host.leader?.roster?.entry(for: someone) == nil, "seed \(seed): the removal waited for the relay")
                removed[someone] = (sim.host.leader?.epoch ?? 0, sim.clients.mapValues(\.delivered.count))
                try sim.talk(someone)  // the removed member still talks; no one may open it
            case 11:  // honest traffic: everyone talks, someone chats
                for i in present + [sim.hostIndex] { try sim.talk(i) }
                if let someone { try sim.talk(someone, text: "step \(step)") }
            default:  // time passes: heartbeats, rotations, wipes
                sim.advance(UInt64(100 + 100 * draws.next(30)))
            }

            // Invariants after every step.
            if let breach = sim.attackerBreach { Issue.record("seed \(seed) step \(step): \(breach)") }
            let roster = try #require(sim.host.leader?.roster, "seed \(seed) step \(step): the host lost the keys")
            let allowed = Set(honest.compactMap { sim.clients[$0]?.session.identity.publicIdentity } + [sim.hostIdentity.publicIdentity])
            #expect(Set(roster.entries.map(\.identity)).isSubset(of: allowed), "seed \(seed) step \(step): a forged identity is in the signed roster")
            for e in roster.entries where e.index != sim.hostIndex {
                #expect(e.role == .participant && !e.presenter, "seed \(seed) step \(step): #\(e.index) is \(e.role.name), presenter \(e.presenter)")
            }
            for i in honest where removed[i] == nil && keyed(i) {
                let s = sim.clients[i]!.session
                #expect(s.leader == nil && s.member?.leaderIndex == sim.hostIndex, "seed \(seed) step \(step): #\(i) follows someone else")
            }
            for (r, at) in removed {
                let late = sim.clients[r]!.delivered.dropFirst(at.deliveredAt[r] ?? 0).filter { $0.epoch >= at.epoch }
                #expect(late.isEmpty, "seed \(seed) step \(step): removed #\(r) opened \(late.count) frames sealed after its removal")
                for (i, c) in sim.clients where i != r {
                    let fromRemoved = c.delivered.dropFirst(at.deliveredAt[i] ?? 0).filter { $0.sender == r }
                    #expect(fromRemoved.isEmpty, "seed \(seed) step \(step): #\(i) (host: \(i == sim.hostIndex)) opened a frame of removed #\(r)")
                }
            }
        }
        #expect(try sim.repeatedNonce() == nil, "seed \(seed): a (key, nonce) pair repeated")
        #expect(expectedAlerts > 10 && sim.sealed.count > 100, "seed \(seed): \(expectedAlerts) forgeries, \(sim.sealed.count) frames")

        // The honest room still agrees and talks.
        sim.advance(2_000)
        let members = honest.filter { removed[$0] == nil && keyed($0) }
        for i in members { #expect(sim.clients[i]!.session.securityCode == sim.host.securityCode, "seed \(seed): #\(i)'s code differs") }
        let before = sim.clients.mapValues(\.delivered.count)
        try sim.talk(sim.hostIndex, text: "still here")
        for i in members {
            let got = sim.clients[i]!.delivered.dropFirst(before[i] ?? 0).contains { $0.plaintext == Array("still here".utf8) }
            #expect(got, "seed \(seed): #\(i) did not get the host's last line")
        }
    }
}
