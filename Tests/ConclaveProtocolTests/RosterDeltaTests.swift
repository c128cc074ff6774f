import Foundation
import Testing
import ConclaveCrypto
@testable import ConclaveProtocol

/// `ROSTER_DELTA` (3.6) and `KEY_WRAP` (3.4.1): layout, application, malformed input, and
/// what a member refuses.
@Suite struct RosterDeltaTests {
    typealias V = E2EControlMessageTests

    @Test func roundTripExactLengthAndApplication() throws {
        let base = try V.sampleRoster()
        let delta = try V.sampleDelta()
        // 233 fixed + one removal (2) + two entries (85 + 0 name bytes, 85 + 3).
        #expect(delta.encoded.count == RosterDelta.fixedLength + 2 + 85 + 88)
        #expect(delta.removed == [2] && delta.changed.map(\.index) == [300, 301])
        guard case let .rosterDelta(decoded) = try E2EControlMessage.decode(delta.encoded) else { Issue.record("type"); return }
        let leaderKey = try V.identity("leader").signingKey.publicKey
        #expect(decoded == delta && decoded.isSigned(by: leaderKey))
        #expect(!decoded.isSigned(by: try V.identity("member 2").signingKey.publicKey))
        var result = try decoded.apply(to: base)
        #expect(result.entries.map(\.index) == [1, 300, 301] && result.entries[1].muted && result.isDerived)
        let matches = result.verifyHash()
        #expect(matches && result.hashVerified)
        // A delta whose signed roster hash is not its result's: caught when recomputed.
        let lyingDelta = try #require(
            RosterDelta.make(
                base: base, epoch: 8, rosterVersion: 13, epochChange: .freshSecret, successor: 300,
                chainPrevious: base.chainHead, entries: result.entries, rosterHash: base.rosterHash,
                secretCommit: delta.secretCommit, leader: V.identity("leader").signingKey))
        var lying = try lyingDelta.apply(to: base)
        let lyingMatches = lying.verifyHash()
        #expect(!lyingMatches)
    }

    @Test func applyRefusesAnotherBaseAndChangesOfHands() throws {
        let base = try V.sampleRoster()
        let leader = try V.identity("leader").signingKey
        let delta = try V.sampleDelta()
        // Another roster at another version, or with other members: not the base.
        let other = try SignedRoster.sign(
            roomID: base.roomID, epoch: 7, rosterVersion: 11, epochChange: .none, successor: 300,
            chainPrevious: V.sampleChainPrevious, entries: base.entries, leader: leader)
        #expect(throws: RosterDelta.ApplyError.baseMismatch(have: 11, needs: 12)) { try delta.apply(to: other) }
        // An entry that keeps its index but takes another identity is refused.
        var swapped = base.entries
        swapped[2].identity = try V.identity("mallory").publicIdentity
        let hash = RosterHash.compute(roomID: base.roomID, members: swapped.map(\.member))
        let swap = try #require(
            RosterDelta.make(
                base: base, epoch: 8, rosterVersion: 13, epochChange: .freshSecret, successor: 300,
                chainPrevious: base.chainHead, entries: swapped, rosterHash: hash,
                secretCommit: delta.secretCommit, leader: leader))
        #expect(throws: RosterDelta.ApplyError.invalid("#300 would change hands")) { try swap.apply(to: base) }
        // Removing someone not in the base.
        var bytes = delta.signedPart
        let removedAt = RosterDelta.fixedLength - 64 - 2
        bytes[removedAt] = 0; bytes[removedAt + 1] = 3
        let resigned = try leader.signature(for: bytes, context: Labels.rosterDeltaSignature)
        guard case let .rosterDelta(ghost) = try E2EControlMessage.decode(bytes + resigned) else { Issue.record("decode"); return }
        #expect(throws: RosterDelta.ApplyError.invalid("#3 is removed but not in the base")) { try ghost.apply(to: base) }
    }

    @Test func malformedDeltasAreRejectedWithoutTrapping() throws {
        let good = try V.sampleDelta().encoded
        let listsAt = RosterDelta.fixedLength - 64 - 4  // removed_count
        func mutated(_ f: (inout [UInt8]) -> Void) -> [UInt8] { var b = good; f(&b); return b }
        let cases: [(String, [UInt8])] = [
            ("version 1", mutated { $0[1] = 1 }),
            ("epoch_change 3", mutated { $0[30] = 3 }),
            ("base_version = roster_version", mutated { $0[65...68] = [0, 0, 0, 13] }),
            ("zero commit with a fresh epoch", mutated { for i in 133..<165 { $0[i] = 0 } }),
            (
                "removed_count beyond the bytes",
                mutated {
                    $0[listsAt] = 0x7F; $0[listsAt + 1] = 0xFF
                }
            ),
            (
                "removed index 0",
                mutated {
                    $0[listsAt + 2] = 0; $0[listsAt + 3] = 0
                }
            ),
            (
                "changed_count beyond the bytes",
                mutated {
                    $0[listsAt + 4] = 0; $0[listsAt + 5] = 9
                }
            ),
            (
                "changed out of order",
                mutated {
                    $0[listsAt + 6] = 0x01; $0[listsAt + 7] = 0x2E
                }
            ),
            ("trailing byte", good + [0]),
            ("truncated", Array(good.dropLast())),
            ("too long", good + [UInt8](repeating: 0, count: RosterDelta.maximumEncodedLength)),
        ]
        for (name, bytes) in cases {
            #expect(throws: E2EControlError.self, "\(name)") { try E2EControlMessage.decode(bytes) }
        }
        // Removed and changed at once.
        var both = good
        both[listsAt + 2] = 0x01; both[listsAt + 3] = 0x2C  // removed #300, also changed
        #expect(throws: E2EControlError.malformed("#300 is both removed and changed")) { try E2EControlMessage.decode(both) }
        // Every prefix, and random mutations: errors, never traps.
        for n in 0..<good.count { _ = try? E2EControlMessage.decode(Array(good.prefix(n))) }
        var rng = SplitMix64(seed: 0xDE17A)
        for _ in 0..<3_000 {
            var b = good
            for _ in 0..<1 + Int(rng.next() % 4) { b[Int(rng.next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            if case let .rosterDelta(d)? = try? E2EControlMessage.decode(b) { #expect(d.encoded == b) }
        }
    }

    @Test func keyWrapBindsEveryHeaderFieldAndBothJoins() throws {
        let leaderSide = try V.sampleWrapKey(mine: V.identity("leader"))
        let memberSide = try V.sampleWrapKey(mine: V.identity("member 300"))
        #expect(leaderSide == memberSide)
        let secret = SecretKey.random()
        let wrap = try KeyWrap.seal(
            roomID: V.roomID, recipient: 300, epoch: 8, rosterHash: [UInt8](repeating: 7, count: 32),
            reason: .fresh, epochSecret: secret, key: leaderSide)
        #expect(wrap.encoded.count == 132 && wrap.encoded[0] == KeyWrap.format)
        let opened = try KeyWrap(encoded: wrap.encoded).open(key: memberSide)
        #expect(opened.epochSecret == secret && opened.delta.isEmpty)
        // With a delta inside: still bound to the header, and the delta comes back whole.
        let delta = try V.sampleDelta().encoded
        let carrying = try KeyWrap.seal(
            roomID: V.roomID, recipient: 300, epoch: 8, rosterHash: [UInt8](repeating: 7, count: 32),
            reason: .fresh, epochSecret: secret, delta: delta, key: leaderSide)
        #expect(carrying.encoded.count == 132 + delta.count)
        let both = try KeyWrap(encoded: carrying.encoded).open(key: memberSide)
        #expect(both.epochSecret == secret && both.delta == delta)
        var cut = carrying.encoded
        cut[cut.count - 20] ^= 1
        #expect(throws: KeyScheduleError.sealOpenFailed) { try KeyWrap(encoded: cut).open(key: memberSide) }
        #expect(throws: KeyScheduleError.self) { try KeyWrap(encoded: [UInt8](repeating: 3, count: 132 + KeyWrap.maximumDeltaLength + 1)) }
        // Any header byte changed: does not open.
        for i in 1..<KeyWrap.headerLength where i != 59 {
            var b = wrap.encoded
            b[i] ^= 0x01
            #expect(throws: KeyScheduleError.sealOpenFailed, "byte \(i)") { try KeyWrap(encoded: b).open(key: memberSide) }
        }
        // Another join of the same identity (another nonce) has another pairwise key.
        let rejoined = try KeyWrap.pairwiseKey(
            roomID: V.roomID, mine: V.identity("member 300"),
            leader: RosterMember(index: 1, identity: V.identity("leader").publicIdentity, joinNonce: V.nonce(1)),
            member: RosterMember(index: 300, identity: V.identity("member 300").publicIdentity, joinNonce: V.nonce(7)))
        #expect(throws: KeyScheduleError.sealOpenFailed) { try wrap.open(key: rejoined) }
        // A third member cannot compute it: its own pairwise key with the leader differs.
        let third = try KeyWrap.pairwiseKey(
            roomID: V.roomID, mine: V.identity("member 2"),
            leader: RosterMember(index: 1, identity: V.identity("leader").publicIdentity, joinNonce: V.nonce(1)),
            member: RosterMember(index: 2, identity: V.identity("member 2").publicIdentity, joinNonce: V.nonce(2)))
        #expect(throws: KeyScheduleError.sealOpenFailed) { try wrap.open(key: third) }
        // Structure: length, format and reason.
        #expect(throws: KeyScheduleError.self) { try KeyWrap(encoded: Array(wrap.encoded.dropLast())) }
        var join = wrap.encoded
        join[59] = KeyPackageReason.join.rawValue
        #expect(throws: KeyScheduleError.malformed("key wrap reason 1")) { try KeyWrap(encoded: join) }
    }

    /// The member's side: a removal by delta installs through the wrap; a removed member
    /// opens none of the wraps; a commitment that does not match, or a wrap before its
    /// delta's base, changes nothing.
    @Test func removalByDeltaKeysOnlyThoseWhoStay() throws {
        let room = E2ERoom()
        try room.createLeader()
        for i in 2...6 { try room.join(index: UInt16(i), name: "M\(i)") }
        room.flush()
        let removed = room.peers[6]!
        let actions = try room.leader.leader!.remove(6, now: room.now)
        // No broadcast: each member's wrap carries the ROSTER_DELTA.
        #expect(!actions.contains { if case .broadcastControl = $0 { true } else { false } })
        var wraps: [UInt16: [UInt8]] = [:]
        for case let .sendKeyPackage(r, p) in actions { wraps[r] = p }
        #expect(Set(wraps.keys) == [2, 3, 4, 5] && wraps.values.allSatisfy { $0.count > KeyWrap.encodedLength })
        // The removed member, shown every wrap, gets no key and no roster.
        var victim = removed.member!
        let epochBefore = victim.epoch
        for (_, w) in wraps { #expect(throws: E2EError.self) { try victim.receiveKeyPackage(w, from: 1) } }
        #expect(victim.epoch == epochBefore)
        room.peers[6] = nil
        try room.perform(actions, by: room.leader)
        room.flush()
        room.run(until: room.now + 300)
        for p in room.peers.values where p.index != 1 { #expect(p.member!.epoch == room.leader.leader!.epoch, "#\(p.index)") }
        // Heartbeats recompute the derived roster's hash: no alert when it is right.
        let beat = try room.leader.leader!.heartbeatIfDue(now: room.now + 10_000)
        guard case let .broadcastControl(b)? = beat.first else { Issue.record("heartbeat"); return }
        var m2 = room.peers[2]!.member!
        #expect(!m2.roster!.hashVerified)
        let hb = try m2.receiveControl(b, from: 1)
        #expect(!hb.contains { if case .historyDiffers = $0 { true } else { false } } && m2.roster!.hashVerified)
    }

    /// A delta inside a key wrap is authenticated by the pairwise key at once and its
    /// signature checked on the next heartbeat: one sealed by someone who holds the wrap
    /// key (a stolen X25519 key) but signed by another key raises history_differs then.
    @Test func aDeltaInAWrapIsSignatureCheckedOnTheNextHeartbeat() throws {
        let (room, a, _) = try E2ERoom.withAnnAndBob()
        let leaderID = room.leader.identity
        let base = try #require(a.member!.roster)
        let epoch = a.member!.epoch! + 1
        let secret = SecretKey.random()
        let pairwise = try KeyWrap.pairwiseKey(roomID: room.roomID, mine: a.identity, leader: base.entry(for: 1)!.member, member: base.entry(for: 2)!.member)
        let key = try KeyWrap.epochKey(pairwise: pairwise, previousSecret: a.member!.epochSecret!, epoch: epoch)
        // Without the current epoch secret (a thief of an X25519 key alone), the wrap does not open.
        let keyWithoutSecret = try KeyWrap.epochKey(pairwise: pairwise, previousSecret: .random(), epoch: epoch)
        func wrap(signedBy signer: Ed25519.PrivateKey) throws -> [UInt8] {
            let delta = try #require(
                RosterDelta.make(
                    base: base, epoch: epoch, rosterVersion: base.rosterVersion + 1, epochChange: .freshSecret,
                    successor: base.successor, chainPrevious: base.chainPrevious, entries: base.entries,
                    rosterHash: base.rosterHash, secretCommit: RosterDelta.commitment(roomID: room.roomID, epoch: epoch, secret: secret),
                    leader: signer))
            return try KeyWrap.seal(
                roomID: room.roomID, recipient: 2, epoch: epoch, rosterHash: base.rosterHash, reason: .rotation,
                epochSecret: secret, delta: delta.encoded, key: key
            ).encoded
        }
        func heartbeatAlerts(_ m: inout MemberKeySchedule) throws -> Bool {
            let beat = Heartbeat.sign(
                roomID: room.roomID, epoch: epoch, rosterVersion: base.rosterVersion + 1, chainHead: m.roster!.chainHead,
                sequence: 1_000, leader: leaderID.signingKey)
            return try m.receiveControl(beat.encoded, from: 1).contains { if case .historyDiffers = $0 { true } else { false } }
        }
        let thief = try KeyWrap.seal(
            roomID: room.roomID, recipient: 2, epoch: epoch, rosterHash: base.rosterHash, reason: .rotation,
            epochSecret: secret, key: keyWithoutSecret
        ).encoded
        var robbed = a.member!
        #expect(throws: E2EError.keyRejected(.keyPackage(.sealOpenFailed))) { try robbed.receiveKeyPackage(thief, from: 1) }
        // Genuine: installed at once, no alert at the heartbeat.
        var honest = a.member!
        let installed = try honest.receiveKeyPackage(wrap(signedBy: leaderID.signingKey), from: 1)
        #expect(installed.contains { if case .install = $0 { true } else { false } } && honest.epoch == epoch)
        #expect(try !heartbeatAlerts(&honest))
        // Forged signature: installed (the pairwise key vouches), then reported.
        var fooled = a.member!
        _ = try fooled.receiveKeyPackage(wrap(signedBy: PrivateIdentity.generate().signingKey), from: 1)
        #expect(fooled.epoch == epoch)
        // It cannot lead from there (the check runs before it would) ...
        #expect(throws: LeaderError.self) { try LeaderKeySchedule.takeOver(from: fooled, now: 0) }
        // ... and the next heartbeat reports it; it still cannot lead from that roster.
        #expect(try heartbeatAlerts(&fooled), "a delta not signed by the leader went unnoticed")
        #expect(fooled.rosterUntrusted)
        #expect(throws: LeaderError.self) { try LeaderKeySchedule.takeOver(from: fooled, now: 0) }
    }

    /// A delta too long for a key wrap (a keys payload is at most 4 096 bytes) is broadcast,
    /// and the wraps carry the secret alone; every member still installs.
    @Test func aDeltaTooLongForAWrapIsBroadcast() throws {
        let room = E2ERoom()
        try room.createLeader()
        for i in 2...4 { try room.join(index: UInt16(i), name: "M\(i)") }
        room.flush()
        // 60 admissions with 64-byte names and a removal, in one change: a delta of about 9 kB.
        var admitted: [E2EPeer] = []
        for i in 10..<70 { admitted.append(try room.join(index: UInt16(i), name: String(repeating: "n", count: 64), leaderReacts: false)) }
        room.peers[4] = nil
        let actions = try room.leader.leader!.changeMembership(admit: admitted.map(\.entry), remove: [4], now: room.now)
        guard case let .broadcastControl(bytes)? = actions.first, case let .rosterDelta(d) = try E2EControlMessage.decode(bytes) else {
            Issue.record("the long delta is broadcast"); return
        }
        #expect(d.encoded.count > KeyWrap.maximumDeltaLength)
        var sizes: [UInt16: Int] = [:]
        for case let .sendKeyPackage(r, p) in actions { sizes[r] = p.count }
        #expect(sizes[2] == KeyWrap.encodedLength && sizes[3] == KeyWrap.encodedLength && sizes[10] == KeyPackage.encodedLength)
        try room.perform(actions, by: room.leader)
        room.flush()
        room.run(until: room.now + 300)
        for p in room.peers.values where p.index != 1 { #expect(p.member!.epoch == room.leader.leader!.epoch, "#\(p.index)") }
    }

    /// A wrap answers a ROSTER_DELTA only: after a full ROSTER announced the epoch (signed
    /// key packages follow), a wrap, even one sealed under the right key, is refused.
    @Test func aWrapForAnEpochAFullRosterAnnouncedIsRefused() throws {
        let (room, a, _) = try E2ERoom.withAnnAndBob()
        room.leader.leader!.sendsDeltas = false
        let rotate = try room.leader.leader!.rotate(now: room.now)
        guard case let .broadcastControl(full)? = rotate.first else { Issue.record("full roster"); return }
        var ann = a.member!
        let previous = ann.epochSecret!, epoch = ann.epoch! + 1
        _ = try ann.receiveControl(full, from: 1)
        let base = try #require(a.member!.roster)
        let pairwise = try KeyWrap.pairwiseKey(roomID: room.roomID, mine: a.identity, leader: base.entry(for: 1)!.member, member: base.entry(for: 2)!.member)
        let wrap = try KeyWrap.seal(
            roomID: room.roomID, recipient: 2, epoch: epoch, rosterHash: ann.roster!.rosterHash, reason: .rotation,
            epochSecret: .random(), key: KeyWrap.epochKey(pairwise: pairwise, previousSecret: previous, epoch: epoch))
        #expect(throws: E2EError.keyRejected(.keyPackage(.bindingMismatch("key wrap for an epoch a full ROSTER announced")))) {
            try ann.receiveKeyPackage(wrap.encoded, from: 1)
        }
        #expect(ann.epoch == epoch - 1)
    }

    /// A delta without an epoch change cannot add a member (ROSTER check 7 without hashing).
    @Test func aDeltaWithoutAnEpochChangeAddsNoOne() throws {
        let base = try V.sampleRoster()
        var entries = base.entries
        entries.append(SignedRoster.Entry(index: 400, identity: try V.identity("ghost").publicIdentity, joinNonce: V.nonce(400)))
        let delta = try #require(
            RosterDelta.make(
                base: base, epoch: base.epoch, rosterVersion: 13, epochChange: .none, successor: 300,
                chainPrevious: base.chainPrevious, entries: entries, rosterHash: base.rosterHash,
                secretCommit: RosterDelta.noCommitment, leader: V.identity("leader").signingKey))
        #expect(throws: RosterDelta.ApplyError.invalid("members added without an epoch change")) { try delta.apply(to: base) }
    }

    @Test func wrongCommitmentAndWrongHashAreCaught() throws {
        let (room, a, _) = try E2ERoom.withAnnAndBob()
        let leaderID = room.leader.identity
        let base = try #require(a.member!.roster)
        let entries = base.entries
        let epoch = a.member!.epoch! + 1
        let secret = SecretKey.random()
        // The leader (say, a buggy one) commits to another secret than it wraps.
        let badCommit = try #require(
            RosterDelta.make(
                base: base, epoch: epoch, rosterVersion: base.rosterVersion + 1, epochChange: .freshSecret,
                successor: base.successor, chainPrevious: base.chainPrevious, entries: entries,
                rosterHash: base.rosterHash, secretCommit: SHA2.sha256([1]), leader: leaderID.signingKey))
        var ann = a.member!
        _ = try ann.receiveControl(badCommit.encoded, from: 1)
        let pairwise = try KeyWrap.pairwiseKey(roomID: room.roomID, mine: leaderID, leader: base.entry(for: 1)!.member, member: base.entry(for: 2)!.member)
        let key = try KeyWrap.epochKey(pairwise: pairwise, previousSecret: a.member!.epochSecret!, epoch: epoch)
        let wrap = try KeyWrap.seal(
            roomID: room.roomID, recipient: 2, epoch: epoch, rosterHash: base.rosterHash, reason: .rotation,
            epochSecret: secret, key: key)
        #expect(throws: E2EError.keyRejected(.secretCommitMismatch(epoch: epoch))) { try ann.receiveKeyPackage(wrap.encoded, from: 1) }
        #expect(ann.epoch == epoch - 1)
        // A delta signed by anyone but the leader: refused before anything is applied.
        let forged = try #require(
            RosterDelta.make(
                base: base, epoch: epoch, rosterVersion: base.rosterVersion + 1, epochChange: .freshSecret,
                successor: base.successor, chainPrevious: base.chainPrevious, entries: entries,
                rosterHash: base.rosterHash, secretCommit: RosterDelta.commitment(roomID: room.roomID, epoch: epoch, secret: secret),
                leader: PrivateIdentity.generate().signingKey))
        var ann2 = a.member!
        #expect(throws: E2EError.keyRejected(.badSignature)) { try ann2.receiveControl(forged.encoded, from: 1) }
        // A delta whose signed hash is wrong: accepted, then the next heartbeat reports it.
        var lessBob = entries.filter { $0.index != 3 }
        lessBob[0].displayName = "Host"
        let lying = try #require(
            RosterDelta.make(
                base: base, epoch: epoch, rosterVersion: base.rosterVersion + 1, epochChange: .freshSecret,
                successor: 0, chainPrevious: base.chainHead, entries: lessBob,
                rosterHash: base.rosterHash, secretCommit: RosterDelta.commitment(roomID: room.roomID, epoch: epoch, secret: secret),
                leader: leaderID.signingKey))
        _ = try ann2.receiveControl(lying.encoded, from: 1)
        let beat = Heartbeat.sign(
            roomID: room.roomID, epoch: epoch, rosterVersion: base.rosterVersion + 1, chainHead: ann2.roster!.chainHead,
            sequence: 1_000, leader: leaderID.signingKey)
        let actions = try ann2.receiveControl(beat.encoded, from: 1)
        #expect(actions.contains { if case .historyDiffers = $0 { true } else { false } }, "a wrong roster hash in a delta went unnoticed")
    }
}
