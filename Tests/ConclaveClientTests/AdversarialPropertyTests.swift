import Foundation
import Testing
import ConclaveCrypto
import ConclaveProtocol
@testable import ConclaveClient

/// Issue 9, the property test: random sequences of honest and forged relay events against
/// real participants over the real relay, with the invariants checked after every step:
/// - the leader's signed roster holds only identities its user admitted;
/// - members follow the same leader, and no one takes the keys on the relay's word;
/// - roles and presenter rights in the signed roster are the leader's decisions only;
/// - every forged admission raised an alert;
/// and, at the end, the honest members still agree on the security code and can talk.
@Suite(.serialized, .timeLimit(.minutes(2)), .tags(.integration), .live) struct AdversarialPropertyTests {
    /// Deterministic draws from SHA-256(seed ‖ counter): a failing seed replays exactly.
    struct Draws {
        let seed: UInt64
        var counter: UInt64 = 0
        mutating func next(_ n: Int) -> Int {
            counter += 1
            let d = SHA2.sha256(seed.bigEndianBytes + counter.bigEndianBytes)
            let v = d.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            return Int(v % UInt64(n))
        }
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func forgedRelayEventsNeverChangeWhoHoldsKeys(seed: UInt64) async throws {
        try await withRelay { _, endpoint in
            var draws = Draws(seed: seed)
            let hostLog = EventLog(), aliceLog = EventLog(), bobLog = EventLog()
            var hostOptions = ParticipantOptions(displayName: "host")
            hostOptions.autoAdmit = true
            let host = try await Participant.host(relay: endpoint, password: nil, settings: .privacyDefaults, options: hostOptions, output: hostLog.output)
            let invite = try #require(await host.invite)
            let hostRun = Task { await host.run(for: .seconds(60)) }
            let alice = try await Participant.join(invite: invite, options: ParticipantOptions(displayName: "alice"), output: aliceLog.output)
            let aliceRun = Task { await alice.run(for: .seconds(60)) }
            try await waitUntil("alice's keys") {
                let a = await alice.securityCode, h = await host.securityCode; return a != nil && a == h
            }
            let bob = try await Participant.join(invite: invite, options: ParticipantOptions(displayName: "bob"), output: bobLog.output)
            let bobRun = Task { await bob.run(for: .seconds(60)) }
            try await waitUntil("bob's keys") {
                let b = await bob.securityCode, h = await host.securityCode; return b != nil && b == h
            }

            let hostIndex = await host.index, aliceIndex = await alice.index, bobIndex = await bob.index
            let honest: Set<PublicIdentity> = [await host.identity.publicIdentity, await alice.identity.publicIdentity, await bob.identity.publicIdentity]
            var knocks: [[UInt8]] = []
            var forgedAdmissions = 0
            var nextIndex: UInt16 = 0x0400
            func freshIndex() -> ParticipantIndex { nextIndex += 1; return ParticipantIndex(nextIndex) }
            func event(_ e: RoomEvent) -> RelayMessage { .event(EventMessage(actor: .none, event: e)) }

            for step in 0..<40 {
                let members = [aliceIndex, bobIndex]
                let someone = ParticipantIndex(members[draws.next(2)])
                switch draws.next(8) {
                case 0:  // a ghost `joined`
                    forgedAdmissions += 1
                    await host.handle(event(.joined(freshIndex(), identity: PrivateIdentity.generate().publicIdentity.wireIdentity, role: .participant)))
                case 1:  // a genuine knock, then `joined` with another identity
                    let carol = PrivateIdentity.generate(), n = freshIndex()
                    let (k, _) = try Knock.seal(
                        roomID: invite.roomID, displayName: "carol", joiner: carol, host: invite.hostIdentity.agreementKey,
                        inviteSecret: invite.secret)
                    knocks.append(k)
                    await host.handle(.knock(KnockMessage(index: n, identity: carol.publicIdentity.wireIdentity, knock: k)))
                    forgedAdmissions += 1
                    await host.handle(event(.joined(n, identity: PrivateIdentity.generate().publicIdentity.wireIdentity, role: .participant)))
                case 2:  // a replayed knock at a new index, then `joined` for it
                    guard let k = knocks.last else { continue }
                    let n = freshIndex()
                    await host.handle(.knock(KnockMessage(index: n, identity: PrivateIdentity.generate().publicIdentity.wireIdentity, knock: k)))
                    forgedAdmissions += 1
                    await host.handle(event(.joined(n, identity: PrivateIdentity.generate().publicIdentity.wireIdentity, role: .participant)))
                case 3:  // a knock minted without the invite secret, then `joined`
                    let mallory = PrivateIdentity.generate(), n = freshIndex()
                    let (k, _) = try Knock.seal(
                        roomID: invite.roomID, displayName: "alice", joiner: mallory, host: invite.hostIdentity.agreementKey,
                        inviteSecret: Invite.randomSecret())
                    await host.handle(.knock(KnockMessage(index: n, identity: mallory.publicIdentity.wireIdentity, knock: k)))
                    forgedAdmissions += 1
                    await host.handle(event(.joined(n, identity: mallory.publicIdentity.wireIdentity, role: .participant)))
                case 4:  // a forged role to the leader
                    await host.handle(event(.roleChanged(someone, role: [Role.cohost, .participant][draws.next(2)])))
                case 5:  // forged presenter rights to the leader
                    await host.handle(event(.presenterChanged(someone, granted: draws.next(2) == 0)))
                case 6:  // a forged host change to a member
                    let target = [alice, bob][draws.next(2)]
                    await target.handle(event(.roleChanged(ParticipantIndex([aliceIndex, bobIndex, 0x0300][draws.next(3)]), role: .host)))
                default:  // honest traffic
                    try await alice.say("step \(step)")
                }
                // Invariants after every step.
                let roster = await host.leader?.roster
                let ids = Set(roster?.entries.map(\.identity) ?? [])
                #expect(ids.isSubset(of: honest), "seed \(seed) step \(step): a forged identity is in the signed roster")
                for i in [aliceIndex, bobIndex] {
                    let e = roster?.entry(for: i)
                    #expect(e?.role == .participant && e?.presenter == false, "seed \(seed) step \(step): #\(i) is \(String(describing: e))")
                }
                for m in [alice, bob] {
                    let followed = await m.member?.leaderIndex
                    let leads = await m.leader != nil
                    #expect(followed == hostIndex && !leads, "seed \(seed) step \(step): leadership moved")
                }
            }
            let alerts = hostLog.events("alert").filter {
                ["unauthorized_join", "identity_mismatch", "not_admitted", "knock_rejected", "knock_replayed"].contains($0["code"] as? String ?? "")
            }
            #expect(alerts.count >= forgedAdmissions, "seed \(seed): \(forgedAdmissions) forged admissions, \(alerts.count) alerts")
            // The honest room still agrees and talks.
            try await waitUntil("codes to agree") {
                let h = await host.securityCode, a = await alice.securityCode, b = await bob.securityCode
                return h != nil && h == a && a == b
            }
            try await alice.say("still here")
            _ = try await bobLog.waitFor("chat") { $0["text"] as? String == "still here" }
            await host.stop(); await alice.stop(); await bob.stop()
            await hostRun.value; await aliceRun.value; await bobRun.value
        }
    }
}
