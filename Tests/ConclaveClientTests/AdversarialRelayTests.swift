import Foundation
import Synchronization
import Testing
import ConclaveCrypto
import ConclaveProtocol
@testable import ConclaveClient

/// Issue 9: a hostile relay against real participants. The meeting runs over the real
/// relay; the attack is a relay→client message the relay forges, rewrites or replays,
/// handed to the participant exactly as its connection would (`handle`). Each test asserts
/// that the attacker's identity gets no key material, that the honest client raises the
/// expected `alert`, and that nothing signed changed on the relay's word.
/// Frames a participant sent (its outbound tap).
final class SentFrames: Sendable {
    let frames = Mutex<[FrameMessage]>([])
}

@Suite(.serialized, .timeLimit(.minutes(2)), .tags(.integration), .live) struct AdversarialRelayTests {
    struct Meeting {
        let host: Participant
        /// Every frame the host sent, as the relay received it.
        let hostSent: SentFrames
        let alice: Participant
        let hostLog: EventLog
        let aliceLog: EventLog
        let invite: Invite
        let runs: [Task<Void, Never>]
        func finish() async {
            await host.stop(); await alice.stop()
            for r in runs { await r.value }
        }
    }

    /// A host (auto-admitting) and alice, both keyed, over the real relay.
    func meeting(
        _ endpoint: RelayEndpoint, hostTap: (@Sendable (RelayMessage) -> Void)? = nil,
        aliceIdentity: PrivateIdentity = .generate(), aliceTap: (@Sendable (RelayMessage) -> Void)? = nil
    ) async throws -> Meeting {
        let hostLog = EventLog(), aliceLog = EventLog()
        var hostOptions = ParticipantOptions(displayName: "host")
        hostOptions.autoAdmit = true
        hostOptions.inboundTap = hostTap
        let sent = SentFrames()
        hostOptions.outboundTap = { f in sent.frames.withLock { $0.append(f) } }
        let host = try await Participant.host(relay: endpoint, password: nil, settings: .privacyDefaults, options: hostOptions, output: hostLog.output)
        let invite = try #require(await host.invite)
        let hostRun = Task { await host.run(for: .seconds(60)) }
        var aliceOptions = ParticipantOptions(displayName: "alice", identity: aliceIdentity)
        aliceOptions.inboundTap = aliceTap
        let alice = try await Participant.join(invite: invite, options: aliceOptions, output: aliceLog.output)
        let aliceRun = Task { await alice.run(for: .seconds(60)) }
        try await waitUntil("alice's keys") {
            let a = await alice.securityCode, h = await host.securityCode
            return a != nil && a == h
        }
        return Meeting(host: host, hostSent: sent, alice: alice, hostLog: hostLog, aliceLog: aliceLog, invite: invite, runs: [hostRun, aliceRun])
    }

    func rosterIdentities(_ p: Participant) async -> [PublicIdentity] {
        await p.leader?.entries.map(\.identity) ?? []
    }

    /// The attacker's identity opens none of the key packages the leader sent, whatever
    /// index or join nonce it tries (and none was addressed to `index`).
    func expectNoKeyPackage(for attacker: PrivateIdentity, at index: UInt16, in m: Meeting) {
        let packages = m.hostSent.frames.withLock { $0 }.filter { $0.header.kind == .keys }
        #expect(!packages.isEmpty, "the leader sent no key packages at all")
        #expect(!packages.contains { $0.header.recipient.rawValue == index }, "a key package was addressed to #\(index)")
        for p in packages {
            guard let kp = try? KeyPackage(encoded: p.payload) else { continue }
            #expect(throws: (any Error).self) {
                try kp.open(
                    expectedRoom: m.invite.roomID, me: kp.recipient, myIdentity: attacker, joinNonce: [UInt8](repeating: 0, count: 16),
                    leader: m.invite.hostIdentity.signingKey)
            }
            #expect((try? SealedBox.open(kp.sealed, recipient: attacker.agreementKey)) == nil, "the attacker opened a sealed epoch secret")
        }
    }

    /// Attack 1, ghost member: the relay announces its own identity as joined. The leader
    /// opened no knock from it and decided nothing: no roster entry, no key, an alert.
    @Test func ghostJoinIsNotKeyed() async throws {
        try await withRelay { _, endpoint in
            let m = try await meeting(endpoint)
            let ghost = PrivateIdentity.generate()
            let codeBefore = await m.host.securityCode
            await m.host.handle(
                .event(EventMessage(actor: .none, event: .joined(ParticipantIndex(0x0200), identity: ghost.publicIdentity.wireIdentity, role: .participant))))
            #expect(await !rosterIdentities(m.host).contains(ghost.publicIdentity), "the leader put the relay's ghost in the signed roster")
            #expect(await m.host.securityCode == codeBefore)
            #expect(m.hostLog.events("alert").contains { $0["code"] as? String == "unauthorized_join" }, "no alert for the ghost")
            expectNoKeyPackage(for: ghost, at: 0x0200, in: m)
            await m.finish()
        }
    }

    /// Attack 2, identity swap: a genuine knock from carol at index N, then the relay's
    /// `joined(N)` carries mallory's identity.
    @Test func identitySwapIsRefused() async throws {
        try await withRelay { _, endpoint in
            let m = try await meeting(endpoint)
            let carol = PrivateIdentity.generate(), mallory = PrivateIdentity.generate()
            let (knock, _) = try Knock.seal(
                roomID: m.invite.roomID, displayName: "carol", joiner: carol, host: m.invite.hostIdentity.agreementKey,
                inviteSecret: m.invite.secret)
            let n = ParticipantIndex(0x0201)
            await m.host.handle(.knock(KnockMessage(index: n, identity: carol.publicIdentity.wireIdentity, knock: knock)))
            await m.host.handle(.event(EventMessage(actor: .none, event: .joined(n, identity: mallory.publicIdentity.wireIdentity, role: .participant))))
            let ids = await rosterIdentities(m.host)
            #expect(!ids.contains(mallory.publicIdentity), "mallory's key was admitted under carol's knock")
            #expect(m.hostLog.events("alert").contains { $0["code"] as? String == "identity_mismatch" }, "no alert for the swap")
            expectNoKeyPackage(for: mallory, at: 0x0201, in: m)
            await m.finish()
        }
    }

    /// Attack 3, leader change on the relay's word while the leader is alive.
    @Test func forgedHostChangeMovesNothing() async throws {
        try await withRelay { _, endpoint in
            let m = try await meeting(endpoint)
            let leaderBefore = await m.alice.member?.leaderIndex
            let codeBefore = await m.alice.securityCode
            // The relay tells alice that she is host now (she is the signed roster's successor,
            // so this is what the relay's own rule would say after a real loss: no alert, and
            // nothing moves while the leader's heartbeat lives), then names a stranger host.
            await m.alice.handle(.event(EventMessage(actor: .none, event: .roleChanged(ParticipantIndex(await m.alice.index), role: .host))))
            await m.alice.handle(.event(EventMessage(actor: .none, event: .roleChanged(ParticipantIndex(0x0300), role: .host))))
            #expect(await m.alice.leader == nil, "alice took the keys on the relay's word")
            #expect(await m.alice.member?.leaderIndex == leaderBefore)
            #expect(await m.alice.securityCode == codeBefore)
            #expect(m.aliceLog.events("alert").contains { $0["code"] as? String == "relay_role_mismatch" })
            await m.finish()
        }
    }

    /// Attack 5, a role copied from a relay event into the signed roster.
    @Test func forgedRoleChangesNothingSigned() async throws {
        try await withRelay { _, endpoint in
            let m = try await meeting(endpoint)
            let a = await m.alice.index
            let versionBefore = await m.host.leader?.roster?.rosterVersion
            await m.host.handle(.event(EventMessage(actor: .none, event: .roleChanged(ParticipantIndex(a), role: .cohost))))
            await m.host.handle(.event(EventMessage(actor: .none, event: .presenterChanged(ParticipantIndex(a), granted: true))))
            let entry = await m.host.leader?.roster?.entry(for: a)
            #expect(entry?.role == .participant && entry?.presenter == false, "the leader signed the relay's role: \(String(describing: entry))")
            #expect(await m.host.leader?.roster?.rosterVersion == versionBefore)
            #expect(m.hostLog.events("alert").filter { $0["code"] as? String == "relay_role_mismatch" }.count >= 2)
            await m.finish()
        }
    }

    /// Attack 4, removal only when the relay confirms it: the leader rekeys the moment its
    /// user removes someone, before any relay event.
    @Test func removalRekeysWithoutTheRelay() async throws {
        try await withRelay { _, endpoint in
            let m = try await meeting(endpoint)
            let a = await m.alice.index
            let epochBefore = await m.host.leader?.epoch ?? 0
            await m.host.perform(ConsoleCommand.relay(.remove(ParticipantIndex(a))))
            // No relay message has been handled in between: perform returned first.
            let leader = await m.host.leader
            #expect(leader?.roster?.entry(for: a) == nil, "alice is still in the signed roster")
            #expect((leader?.epoch ?? 0) > epochBefore, "no fresh epoch on removal")
            await m.finish()
        }
    }

    /// Attack 6, nonce reuse on rejoin: alice rejoins with the same identity; the relay
    /// gives her the same index and replays her old key package.
    @Test func replayedKeyPackageAfterRejoinIsRefused() async throws {
        try await withRelay { _, endpoint in
            let packages = Mutex<[FrameMessage]>([])
            let identity = PrivateIdentity.generate()
            let m = try await meeting(endpoint, aliceIdentity: identity) { msg in
                if case .frame(let f) = msg, f.header.kind == .keys { packages.withLock { $0.append(f) } }
            }
            let old = try #require(packages.withLock { $0.first })
            let a = await m.alice.index
            // A second session of the same identity at the same index, as a lying relay would seat it.
            let log = EventLog()
            let session = ParticipantSession(
                roomID: m.invite.roomID, index: a, identity: identity, invite: m.invite,
                joinNonce: SecureRandom.bytes(count: Knock.joinNonceLength),  // a new join, a new knock
                configuration: .init(displayName: "alice"))
            let again = try Participant(
                connection: await m.alice.connection, session: session,
                options: ParticipantOptions(displayName: "alice", identity: identity), output: log.output)
            let hostEntry = RosterEntry(index: ParticipantIndex(await m.host.index), identity: m.invite.hostIdentity.wireIdentity, role: .host, state: [])
            let aliceEntry = RosterEntry(index: ParticipantIndex(a), identity: identity.publicIdentity.wireIdentity, role: .participant, state: [.muted])
            await again.handle(
                .admitted(
                    AdmittedMessage(
                        index: ParticipantIndex(a), role: .participant, settings: .privacyDefaults, recording: false,
                        roster: [hostEntry, aliceEntry])))
            await again.handle(.frame(old))
            #expect(await again.member?.epoch == nil, "the replayed key package was installed")
            #expect(await !again.rejections.isEmpty)
            await m.finish()
        }
    }

    /// Attack 7a, a replayed knock: the same sealed knock at a second index.
    @Test func replayedKnockIsRefused() async throws {
        try await withRelay { _, endpoint in
            let m = try await meeting(endpoint)
            let carol = PrivateIdentity.generate()
            let (knock, _) = try Knock.seal(
                roomID: m.invite.roomID, displayName: "carol", joiner: carol, host: m.invite.hostIdentity.agreementKey,
                inviteSecret: m.invite.secret)
            await m.host.handle(.knock(KnockMessage(index: ParticipantIndex(0x0210), identity: carol.publicIdentity.wireIdentity, knock: knock)))
            await m.host.handle(.knock(KnockMessage(index: ParticipantIndex(0x0211), identity: carol.publicIdentity.wireIdentity, knock: knock)))
            #expect(m.hostLog.events("alert").contains { $0["code"] as? String == "knock_replayed" }, "the replayed knock was accepted")
            #expect(m.hostLog.events("knock").filter { $0["participant"] as? Int == 0x0211 }.isEmpty)
            await m.finish()
        }
    }

    /// Attack 7b, a knock minted by someone holding only the host's public key (the relay).
    @Test func knockWithoutTheInviteSecretIsRefused() async throws {
        try await withRelay { _, endpoint in
            let m = try await meeting(endpoint)
            let mallory = PrivateIdentity.generate()
            // Mallory has everything the relay has: the host's public identity, the room id;
            // not the invite secret, which travels only in the invite's fragment.
            let (knock, _) = try Knock.seal(
                roomID: m.invite.roomID, displayName: "Alice Real", joiner: mallory, host: m.invite.hostIdentity.agreementKey,
                inviteSecret: Invite.randomSecret())
            let n = ParticipantIndex(0x0220)
            await m.host.handle(.knock(KnockMessage(index: n, identity: mallory.publicIdentity.wireIdentity, knock: knock)))
            await m.host.handle(.event(EventMessage(actor: .none, event: .joined(n, identity: mallory.publicIdentity.wireIdentity, role: .participant))))
            #expect(await !rosterIdentities(m.host).contains(mallory.publicIdentity), "a knock without the invite secret was keyed")
            #expect(m.hostLog.events("knock").filter { $0["participant"] as? Int == Int(n.rawValue) }.isEmpty, "its name was shown")
            expectNoKeyPackage(for: mallory, at: n.rawValue, in: m)
            await m.finish()
        }
    }

    /// Issue 9 H: a client takes only audio and screen frames from the relay's UDP address;
    /// chat, control and key packages by UDP (which a network attacker can spoof) are dropped.
    @Test func udpCarriesAudioAndScreenOnly() throws {
        for kind in [FrameKind.audio, .screen, .chat, .control, .keys] {
            let frame = try FrameMessage(kind: kind, sender: 2, recipient: kind == .keys ? 3 : .everyone, payload: [1, 2, 3])
            #expect(MediaPath.acceptsByUDP(.frame(frame)) == (kind == .audio || kind == .screen), "\(kind)")
        }
        #expect(!MediaPath.acceptsByUDP(.pong(nonce: 1)))
    }

    /// Issue 9 F: the relay withholds alice's key packages while the leader rotates. The
    /// leader's heartbeats announce an epoch alice cannot install: she raises `stale_keys`
    /// and stops sending, and does not take the leader for lost (leadership stays put).
    @Test func withheldKeyPackageIsStaleKeysNotALostLeader() async throws {
        try await withRelay { _, endpoint in
            let hostLog = EventLog(), aliceLog = EventLog()
            var hostOptions = ParticipantOptions(displayName: "host")
            hostOptions.autoAdmit = true
            hostOptions.heartbeatIntervalMillis = 200
            hostOptions.rotationIntervalMillis = 800
            let host = try await Participant.host(relay: endpoint, password: nil, settings: .privacyDefaults, options: hostOptions, output: hostLog.output)
            let invite = try #require(await host.invite)
            let hostRun = Task { await host.run(for: .seconds(30)) }
            let keyed = Mutex(false)
            var aliceOptions = ParticipantOptions(displayName: "alice")
            aliceOptions.leaderSilenceTimeoutMillis = 1_200
            aliceOptions.inboundDrop = { m in
                // After her first keys, every key package to alice is withheld.
                if case .frame(let f) = m, f.header.kind == .keys { return keyed.withLock { $0 } }
                return false
            }
            let alice = try await Participant.join(invite: invite, options: aliceOptions, output: aliceLog.output)
            let aliceRun = Task { await alice.run(for: .seconds(30)) }
            try await waitUntil("alice's keys") { await alice.securityCode != nil }
            keyed.withLock { $0 = true }
            let leaderBefore = await alice.member?.leaderIndex
            _ = try await aliceLog.waitFor("alert", timeout: .seconds(10)) { $0["code"] as? String == "stale_keys" }
            let leaderAfter = await alice.member?.leaderIndex
            let aliceLeads = await alice.leader != nil
            #expect(leaderAfter == leaderBefore && !aliceLeads, "leadership moved")
            #expect(aliceLog.events("alert").filter { $0["code"] as? String == "leader_lost" }.isEmpty, "a live leader was taken for lost")
            await host.stop(); await alice.stop()
            await hostRun.value; await aliceRun.value
        }
    }

    /// Issue 9 F, with deltas: the relay withholds one rekey (its key wrap, which carries the
    /// ROSTER_DELTA) from alice and lets the next through. The next delta's base is the
    /// roster she never got: she raises `history_differs` and installs nothing from it.
    @Test func withheldDeltaIsReportedAtTheNextOne() async throws {
        try await withRelay { _, endpoint in
            let hostLog = EventLog(), aliceLog = EventLog()
            var hostOptions = ParticipantOptions(displayName: "host")
            hostOptions.autoAdmit = true
            hostOptions.rotationIntervalMillis = 600
            let host = try await Participant.host(relay: endpoint, password: nil, settings: .privacyDefaults, options: hostOptions, output: hostLog.output)
            let invite = try #require(await host.invite)
            let hostRun = Task { await host.run(for: .seconds(30)) }
            // 0: let through; 1: drop the next key frame; 2: let everything through again.
            let stage = Mutex(0)
            var aliceOptions = ParticipantOptions(displayName: "alice")
            aliceOptions.inboundDrop = { m in
                guard case .frame(let f) = m, f.header.kind == .keys else { return false }
                return stage.withLock { s in
                    guard s == 1 else { return false }
                    s = 2
                    return true
                }
            }
            let alice = try await Participant.join(invite: invite, options: aliceOptions, output: aliceLog.output)
            let aliceRun = Task { await alice.run(for: .seconds(30)) }
            try await waitUntil("alice's keys") {
                let a = await alice.securityCode, h = await host.securityCode; return a != nil && a == h
            }
            let epochBefore = await alice.member?.epoch
            stage.withLock { $0 = 1 }
            _ = try await aliceLog.waitFor("alert", timeout: .seconds(10)) { $0["code"] as? String == "history_differs" }
            #expect(stage.withLock { $0 } == 2, "the alert came before anything was withheld")
            let epochAfter = await alice.member?.epoch
            #expect(epochAfter == epochBefore, "alice installed an epoch from a delta whose base she lacks")
            await host.stop(); await alice.stop()
            await hostRun.value; await aliceRun.value
        }
    }

    /// Issue 9 A, D, E: a co-host's decisions count end to end only as requests signed by a
    /// co-host of the signed roster. Its admission keys the joiner; its removal rekeys at
    /// once; a request signed by another key, or replayed, changes nothing.
    @Test func coHostDecisionsCountOnlyWhenSignedEndToEnd() async throws {
        try await withRelay { _, endpoint in
            let hostLog = EventLog(), cohostLog = EventLog(), daveLog = EventLog()
            let host = try await Participant.host(
                relay: endpoint, password: nil, settings: .privacyDefaults,
                options: ParticipantOptions(displayName: "host"), output: hostLog.output)
            let invite = try #require(await host.invite)
            let hostRun = Task { await host.run(for: .seconds(60)) }
            let cohost = try await Participant.join(invite: invite, options: ParticipantOptions(displayName: "cohost"), output: cohostLog.output)
            let cohostRun = Task { await cohost.run(for: .seconds(60)) }
            _ = try await hostLog.waitFor("knock")
            try await host.command(.admit(ParticipantIndex(await cohost.index)))
            try await waitUntil("the co-host's keys") {
                let c = await cohost.securityCode, h = await host.securityCode; return c != nil && c == h
            }
            try await host.command(.promoteCohost(ParticipantIndex(await cohost.index)))
            try await waitUntil("the co-host role in the signed roster") { await cohost.member?.roster?.entry(for: await cohost.index)?.role == .cohost }

            // Dave knocks; the co-host admits him (relay command and signed request).
            let dave = try await Participant.join(invite: invite, options: ParticipantOptions(displayName: "Dave"), output: daveLog.output)
            let daveRun = Task { await dave.run(for: .seconds(60)) }
            _ = try await cohostLog.waitFor("knock") { $0["name"] as? String == "Dave" }
            try await cohost.command(.admit(ParticipantIndex(await dave.index)))
            try await waitUntil("Dave's keys") {
                let d = await dave.securityCode, h = await host.securityCode; return d != nil && d == h
            }

            // A request signed by a key that is not the co-host's: refused, nothing changes.
            let d = await dave.index
            let daveIdentity = await dave.identity.publicIdentity
            let versionBefore = await host.leader?.roster?.rosterVersion
            let forged = ModerationRequest.sign(
                roomID: invite.roomID, requester: await cohost.index, sequence: 1_000, action: .remove,
                target: d, targetIdentity: daveIdentity, by: PrivateIdentity.generate().signingKey)
            let forgedFrame = try await cohost.makeFrame(kind: .control, plaintext: forged.encoded, to: await host.index)
            await host.handle(.frame(forgedFrame))
            let stillIn = await host.leader?.roster?.entry(for: d) != nil
            let versionAfter = await host.leader?.roster?.rosterVersion
            #expect(stillIn && versionAfter == versionBefore)
            #expect(hostLog.events("alert").contains { $0["code"] as? String == "request_rejected" })

            // The co-host removes Dave: the leader rekeys on the signed request.
            let epochBefore = await host.leader?.epoch ?? 0
            try await cohost.command(.remove(ParticipantIndex(d)))
            try await waitUntil("Dave out of the signed roster") { await host.leader?.roster?.entry(for: d) == nil }
            let epochAfter = await host.leader?.epoch ?? 0
            #expect(epochAfter > epochBefore)
            // A replay of an old sequence number (sealed afresh, so SFrame's window passes it).
            let replay = ModerationRequest.sign(
                roomID: invite.roomID, requester: await cohost.index, sequence: 1, action: .grantShare,
                target: await cohost.index, targetIdentity: await cohost.identity.publicIdentity,
                by: await cohost.identity.signingKey)
            await host.handle(.frame(try await cohost.makeFrame(kind: .control, plaintext: replay.encoded, to: await host.index)))
            #expect(hostLog.events("alert").filter { ($0["message"] as? String)?.contains("replayed") == true }.count == 1)
            await host.stop(); await cohost.stop(); await dave.stop()
            await hostRun.value; await cohostRun.value; await daveRun.value
        }
    }

    /// Review finding: after the user admits the knock at #N, the relay presents another
    /// invite holder's knock at #N and announces that identity. The decision was about the
    /// first knock (its join nonce): the second neither replaces it nor gets keys.
    @Test func aDecisionIsBoundToTheKnockNotTheIndex() async throws {
        try await withRelay { _, endpoint in
            let m = try await meeting(endpoint)
            let carol = PrivateIdentity.generate(), bob = PrivateIdentity.generate()
            let n = ParticipantIndex(0x0230)
            let (carolKnock, _) = try Knock.seal(
                roomID: m.invite.roomID, displayName: "carol", joiner: carol, host: m.invite.hostIdentity.agreementKey,
                inviteSecret: m.invite.secret)
            let (bobKnock, _) = try Knock.seal(
                roomID: m.invite.roomID, displayName: "bob", joiner: bob, host: m.invite.hostIdentity.agreementKey,
                inviteSecret: m.invite.secret)
            // The meeting's host auto-admits: carol's knock is admitted as it arrives.
            await m.host.handle(.knock(KnockMessage(index: n, identity: carol.publicIdentity.wireIdentity, knock: carolKnock)))
            await m.host.handle(.knock(KnockMessage(index: n, identity: bob.publicIdentity.wireIdentity, knock: bobKnock)))
            await m.host.handle(.event(EventMessage(actor: .none, event: .joined(n, identity: bob.publicIdentity.wireIdentity, role: .participant))))
            #expect(await !rosterIdentities(m.host).contains(bob.publicIdentity), "the second knock at #N was keyed")
            #expect(m.hostLog.events("alert").contains { $0["code"] as? String == "knock_replaced" })
            expectNoKeyPackage(for: bob, at: n.rawValue, in: m)
            await m.finish()
        }
    }

    /// Review finding: a second ADMITTED would reset the member's schedule; then a replayed
    /// key package of the current join would install an old epoch (and trap the key ring).
    @Test func aSecondAdmittedIsIgnored() async throws {
        try await withRelay { _, endpoint in
            let packages = Mutex<[FrameMessage]>([])
            let m = try await meeting(
                endpoint,
                aliceTap: { msg in
                    if case .frame(let f) = msg, f.header.kind == .keys { packages.withLock { $0.append(f) } }
                })
            let a = await m.alice.index
            let epochBefore = await m.alice.member?.epoch
            let hostEntry = RosterEntry(index: ParticipantIndex(await m.host.index), identity: m.invite.hostIdentity.wireIdentity, role: .host, state: [])
            await m.alice.handle(
                .admitted(
                    AdmittedMessage(
                        index: ParticipantIndex(a), role: .participant, settings: .privacyDefaults, recording: false,
                        roster: [hostEntry])))
            #expect(m.aliceLog.events("alert").contains { $0["code"] as? String == "unexpected_admission" })
            for p in packages.withLock({ $0 }) { await m.alice.handle(.frame(p)) }
            #expect(await m.alice.member?.epoch == epochBefore, "a replayed key package moved the epoch")
            #expect(await m.alice.isRunning)
            await m.finish()
        }
    }

    /// Review finding: frames the relay forges (the leader's index, a future epoch, no valid
    /// tag) must not keep a dead leader alive: the successor takes over within twice the
    /// silence timeout all the same.
    @Test func forgedFramesDoNotKeepADeadLeaderAlive() async throws {
        try await withRelay { _, endpoint in
            let logs = (0..<3).map { _ in EventLog() }
            func options(_ name: String) -> ParticipantOptions {
                var o = ParticipantOptions(displayName: name)
                o.autoAdmit = true
                o.heartbeatIntervalMillis = 200
                o.leaderSilenceTimeoutMillis = 1_000
                return o
            }
            let host = try await Participant.host(relay: endpoint, password: nil, settings: .privacyDefaults, options: options("host"), output: logs[0].output)
            let invite = try #require(await host.invite)
            let hostRun = Task { await host.run(for: .seconds(60)) }
            let alice = try await Participant.join(invite: invite, options: options("alice"), output: logs[1].output)
            let aliceRun = Task { await alice.run(for: .seconds(60)) }
            try await waitUntil("alice's keys") {
                let a = await alice.securityCode, h = await host.securityCode; return a != nil && a == h
            }
            let bob = try await Participant.join(invite: invite, options: options("bob"), output: logs[2].output)
            let bobRun = Task { await bob.run(for: .seconds(60)) }
            try await waitUntil("bob's keys") {
                let b = await bob.securityCode, h = await host.securityCode; return b != nil && b == h
            }
            let hostIndex = await host.index
            let epoch = await bob.member?.epoch ?? 1
            await host.connection.close()  // the leader dies
            await hostRun.value
            // The relay keeps "the leader" talking to bob under a future epoch.
            let forger = Task {
                let header = SFrameHeader(keyID: EpochKeys.keyID(epoch: epoch + 1, sender: hostIndex), counter: 1)
                let payload = header.encoded + [UInt8](repeating: 0xEE, count: 40)
                for _ in 0..<40 {
                    guard !Task.isCancelled,
                        let f = try? FrameMessage(kind: .control, sender: ParticipantIndex(hostIndex), recipient: .everyone, payload: payload)
                    else { return }
                    await bob.handle(.frame(f))
                    try? await Task.sleep(for: .milliseconds(150))
                }
            }
            _ = try await logs[2].waitFor("leader", timeout: .seconds(6)) { $0["handover"] as? Bool == false }
            forger.cancel()
            await alice.stop(); await bob.stop()
            await aliceRun.value; await bobRun.value
        }
    }
}
