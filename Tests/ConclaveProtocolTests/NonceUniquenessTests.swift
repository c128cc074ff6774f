import Testing
import ConclaveCrypto
@testable import ConclaveProtocol

/// Issue 9 G: nonce safety never depends on the relay. A run records the AEAD (key, nonce)
/// pair of every frame sealed — recomputed from the spec's derivations (2.3, 2.7, 3.2), not
/// read from the sender — through a member who leaves and rejoins with the same identity
/// at the same index (as a lying relay would seat it) while the relay replays her old key
/// package; no pair may repeat.
@Suite struct NonceUniquenessTests {
    /// A sealed frame, with the roster entries its sender held when it sealed it.
    struct Sealed {
        let by: E2EPeer
        let header: FrameHeader
        let payload: [UInt8]
        var mine: SignedRoster.Entry?
        var peer: SignedRoster.Entry?
    }

    @Test func noKeyNoncePairRepeatsAcrossARejoinAtTheSameIndex() throws {
        let room = E2ERoom()
        try room.createLeader()
        let annIdentity = PrivateIdentity.generate()
        var sealed: [Sealed] = []

        func admit(_ index: UInt16, _ name: String, identity: PrivateIdentity = .generate()) throws -> E2EPeer {
            let peer = E2EPeer(roomID: room.roomID, index: index, identity: identity, name: name)
            peer.member = MemberKeySchedule(
                roomID: room.roomID, me: index, identity: identity, joinNonce: peer.joinNonce,
                leaderIndex: room.leaderIndex, leaderIdentity: room.leader.identity.publicIdentity)
            room.peers[index] = peer
            return peer
        }
        func talk(_ rounds: Int) throws {
            for _ in 0..<rounds {
                room.run(until: room.now + 20)
                for peer in room.peers.values.sorted(by: { $0.index < $1.index }) {
                    guard peer.sender.sendingEpoch(at: room.now) != nil, peer.member?.awaitingRoster != true else { continue }
                    let audio = try peer.sender.seal(kind: .audio, recipient: .everyone, plaintext: [1, 2, 3], now: room.now)
                    sealed.append(
                        Sealed(by: peer, header: try FrameHeader(kind: .audio, sender: ParticipantIndex(peer.index), recipient: .everyone), payload: audio))
                    // Private chat to every other member (pairwise keys, 2.7).
                    for other in room.peers.keys where other != peer.index {
                        guard let chat = try? peer.sender.seal(kind: .chat, recipient: ParticipantIndex(other), plaintext: [9], now: room.now) else { continue }
                        let roster = peer.member?.roster ?? peer.leader?.roster
                        sealed.append(
                            Sealed(
                                by: peer, header: try FrameHeader(kind: .chat, sender: ParticipantIndex(peer.index), recipient: ParticipantIndex(other)),
                                payload: chat, mine: roster?.entry(for: peer.index), peer: roster?.entry(for: other)))
                    }
                }
            }
        }

        let ann = try admit(2, "Ann", identity: annIdentity)
        let bob = try admit(3, "Bob")
        try room.leaderHandles(admit: [ann, bob], remove: [])
        room.flush()
        try talk(20)
        let annPackages = room.keyPackagesSent.filter { $0.to == 2 }.map(\.payload)
        #expect(!annPackages.isEmpty)

        // Ann leaves; she rejoins with the same identity, and the relay seats her at #2 again.
        try room.leave(index: 2)
        room.flush()
        try talk(5)
        let ann2 = try admit(2, "Ann", identity: annIdentity)
        #expect(ann2.joinNonce != ann.joinNonce)
        // The relay replays every key package Ann ever got: each is refused (join nonce, 3.4).
        for old in annPackages { ann2.receiveKeyPackage(old, from: 1, now: room.now) }
        #expect(ann2.member!.epoch == nil, "a replayed key package was installed")
        #expect(ann2.rejections.count == annPackages.count)
        try room.leaderHandles(admit: [ann2], remove: [])
        room.flush()
        try talk(20)
        #expect(sealed.contains { $0.by === ann2 } && sealed.contains { $0.by === ann })

        // Recompute every (key, nonce) pair and check that none repeats.
        var pairs = Set<[UInt8]>()
        var pairwiseFrames = 0
        for s in sealed {
            let (h, _) = try SFrameHeader.decode(s.payload)
            let (epoch, sender) = EpochKeys.split(keyID: h.keyID)
            let base: SecretKey
            if epoch == 0 {
                pairwiseFrames += 1
                let recipient = s.header.recipient.rawValue
                let peerEntry = try #require(s.peer)
                let myNonce = try #require(s.mine?.joinNonce)
                let context =
                    Labels.privateChat + " " + Hex.encode(room.roomID.bytes + sender.bigEndianBytes + recipient.bigEndianBytes + myNonce + peerEntry.joinNonce)
                base = try s.by.identity.agreementKey.sharedKey(with: peerEntry.identity.agreementKey, context: context)
            } else {
                let secret = try #require(s.by.epochSecrets[epoch])
                base = try EpochKeys.senderBaseKey(epochSecret: secret, roomID: room.roomID, epoch: epoch, sender: sender)
            }
            let material = try SFrameKeyMaterial(suite: .conclaveXChaCha20Poly1305SHA256, baseKey: base, keyID: h.keyID)
            let pair = material.key.withUnsafeBytes { Array($0) } + material.nonce(counter: h.counter)
            #expect(pairs.insert(pair).inserted, "(key, nonce) repeated: #\(s.by.index) KID \(h.keyID) CTR \(h.counter)")
        }
        #expect(pairs.count == sealed.count && sealed.count > 100 && pairwiseFrames > 20)
    }
}
