import Testing
import ConclaveCrypto
@testable import ConclaveProtocol

@Suite struct KeyScheduleTests {
    let room = RoomID(bytes: [UInt8](repeating: 0x42, count: 16))!

    @Test func kidLayout() {
        #expect(EpochKeys.keyID(epoch: 0, sender: 1) == 1)
        #expect(EpochKeys.keyID(epoch: 3, sender: 0x0102) == 0x3_0102)
        let (e, s) = EpochKeys.split(keyID: EpochKeys.keyID(epoch: 0xABCDEF, sender: 0xFFFE))
        #expect(e == 0xABCDEF && s == 0xFFFE)
    }

    /// A member admitted at epoch e+1 holds only the ratcheted secret; frames of epoch e
    /// fail to open with anything it can derive.
    @Test func lateJoinerCannotOpenEarlierEpoch() throws {
        let s0 = SecretKey.random()
        let s1 = try EpochKeys.ratchet(epochSecret: s0, roomID: room, epoch: 0)
        #expect(s1 != s0)
        let senderKey0 = try EpochKeys.senderFrameKey(epochSecret: s0, roomID: room, epoch: 0, sender: 1)
        let md = FrameMetadata(roomID: room).bytes(kind: 1, sender: 1, recipient: 0xFFFF)
        let frame = try senderKey0.seal(counter: 1, metadata: md, plaintext: Array("before you came".utf8))
        // The joiner tries its own secret under epoch 0's KID.
        let guess = try SFrameKey(
            suite: .conclaveXChaCha20Poly1305SHA256,
            baseKey: try EpochKeys.senderBaseKey(epochSecret: s1, roomID: room, epoch: 0, sender: 1),
            keyID: EpochKeys.keyID(epoch: 0, sender: 1))
        #expect(throws: SFrameError.authenticationFailed) { try guess.open(frame: frame, metadata: md) }
        // Existing members ratchet in step and agree.
        #expect(try EpochKeys.ratchet(epochSecret: s0, roomID: room, epoch: 0) == s1)
        // Different rooms, epochs and senders give different keys.
        let other = RoomID(bytes: [UInt8](repeating: 0x43, count: 16))!
        #expect(try EpochKeys.ratchet(epochSecret: s0, roomID: other, epoch: 0) != s1)
        #expect(
            try EpochKeys.senderBaseKey(epochSecret: s0, roomID: room, epoch: 0, sender: 1)
                != EpochKeys.senderBaseKey(epochSecret: s0, roomID: room, epoch: 0, sender: 2))
        #expect(throws: KeyScheduleError.epochOutOfRange(EpochKeys.maximumEpoch + 1)) {
            try EpochKeys.ratchet(epochSecret: s0, roomID: room, epoch: EpochKeys.maximumEpoch)
        }
    }

    func identity() -> PrivateIdentity { .generate() }

    @Test func keyPackageRoundTripAndAttacks() throws {
        let leader = identity(), bob = identity(), mallory = identity()
        let members = [RosterMember(index: 1, identity: leader.publicIdentity), RosterMember(index: 2, identity: bob.publicIdentity)]
        let rh = RosterHash.compute(roomID: room, members: members)
        let secret = SecretKey.random()
        let nonce = SecureRandom.bytes(count: Knock.joinNonceLength)
        let kp = try KeyPackage.create(
            roomID: room, recipient: 2, recipientIdentity: bob.publicIdentity, joinNonce: nonce, epoch: 9, rosterHash: rh,
            reason: .fresh, epochSecret: secret, leader: leader.signingKey)
        let opened = try KeyPackage(encoded: kp.encoded).open(expectedRoom: room, me: 2, myIdentity: bob, joinNonce: nonce, leader: leader.signingKey.publicKey)
        #expect(opened.epochSecret == secret && opened.epoch == 9 && opened.reason == .fresh)

        // Every single-byte change is rejected (signature, binding or parse).
        let bytes = kp.encoded
        for i in 0..<bytes.count {
            var t = bytes; t[i] ^= 0x01
            #expect(throws: KeyScheduleError.self) {
                try KeyPackage(encoded: t).open(expectedRoom: room, me: 2, myIdentity: bob, joinNonce: nonce, leader: leader.signingKey.publicKey)
            }
        }
        // Substituted: Mallory (e.g. the relay) signs a package for Bob with her own key.
        let forged = try KeyPackage.create(
            roomID: room, recipient: 2, recipientIdentity: bob.publicIdentity, joinNonce: nonce, epoch: 9, rosterHash: rh,
            reason: .fresh, epochSecret: .random(), leader: mallory.signingKey)
        #expect(throws: KeyScheduleError.badSignature("key package")) {
            try forged.open(expectedRoom: room, me: 2, myIdentity: bob, joinNonce: nonce, leader: leader.signingKey.publicKey)
        }
        // Redirected: a package for Bob delivered to Mallory does not open for her.
        #expect(throws: KeyScheduleError.bindingMismatch("key package recipient")) {
            try kp.open(expectedRoom: room, me: 3, myIdentity: mallory, joinNonce: nonce, leader: leader.signingKey.publicKey)
        }
        #expect(throws: KeyScheduleError.sealOpenFailed) {
            try kp.open(expectedRoom: room, me: 2, myIdentity: mallory, joinNonce: nonce, leader: leader.signingKey.publicKey)
        }
        // Replayed into another room.
        #expect(throws: KeyScheduleError.bindingMismatch("key package room")) {
            try kp.open(
                expectedRoom: RoomID(bytes: [UInt8](repeating: 1, count: 16))!, me: 2, myIdentity: bob, joinNonce: nonce, leader: leader.signingKey.publicKey)
        }
        // Made for an earlier join of the same identity (another join nonce): refused.
        #expect(throws: KeyScheduleError.bindingMismatch("key package join nonce (made for another join)")) {
            try kp.open(
                expectedRoom: room, me: 2, myIdentity: bob, joinNonce: SecureRandom.bytes(count: Knock.joinNonceLength), leader: leader.signingKey.publicKey)
        }
        // Truncated / extended.
        #expect(throws: KeyScheduleError.self) { try KeyPackage(encoded: bytes.dropLast()) }
        #expect(throws: KeyScheduleError.self) { try KeyPackage(encoded: bytes + [0]) }
    }

    @Test func knockRoundTripAndAttacks() throws {
        let host = identity(), joiner = identity(), other = identity()
        let secret = Invite.randomSecret()
        let (sealed, nonce) = try Knock.seal(roomID: room, displayName: "Alice", joiner: joiner, host: host.agreementKey.publicKey, inviteSecret: secret)
        #expect(sealed.count <= Knock.maximumSealedLength && sealed.count == 242 + 5)
        let k = try Knock.open(sealed, host: host, expectedRoom: room, relayIdentity: joiner.publicIdentity, inviteSecret: secret)
        #expect(k.displayName == "Alice" && k.identity == joiner.publicIdentity && k.joinNonce == nonce)
        // Two knocks never share a join nonce.
        #expect(try Knock.seal(roomID: room, displayName: "Alice", joiner: joiner, host: host.agreementKey.publicKey, inviteSecret: secret).joinNonce != nonce)
        // The relay claims the knock came from another identity: mismatch.
        #expect(throws: KeyScheduleError.bindingMismatch("knock identity")) {
            try Knock.open(sealed, host: host, expectedRoom: room, relayIdentity: other.publicIdentity, inviteSecret: secret)
        }
        // Minted by someone without the invite secret (the relay knows the host's public key).
        let (minted, _) = try Knock.seal(
            roomID: room, displayName: "Alice", joiner: other, host: host.agreementKey.publicKey, inviteSecret: Invite.randomSecret())
        #expect(throws: KeyScheduleError.bindingMismatch("knock invite proof")) {
            try Knock.open(minted, host: host, expectedRoom: room, relayIdentity: other.publicIdentity, inviteSecret: secret)
        }
        #expect(throws: KeyScheduleError.sealOpenFailed) {
            try Knock.open(sealed, host: other, expectedRoom: room, relayIdentity: joiner.publicIdentity, inviteSecret: secret)
        }
        var t = sealed; t[t.count - 1] ^= 1
        #expect(throws: KeyScheduleError.sealOpenFailed) {
            try Knock.open(t, host: host, expectedRoom: room, relayIdentity: joiner.publicIdentity, inviteSecret: secret)
        }
        #expect(throws: KeyScheduleError.invalidDisplayName) {
            try Knock.seal(roomID: room, displayName: "", joiner: joiner, host: host.agreementKey.publicKey, inviteSecret: secret)
        }
        #expect(throws: KeyScheduleError.invalidDisplayName) {
            try Knock.seal(
                roomID: room, displayName: String(repeating: "x", count: 65), joiner: joiner, host: host.agreementKey.publicKey, inviteSecret: secret)
        }
        // The canary name is not visible in the sealed bytes.
        #expect(!Hex.encode(sealed).contains(Hex.encode(Array("Alice".utf8))))
    }

    @Test func securityCodeChangesWithAnySubstitution() throws {
        let leader = identity(), a = identity(), b = identity(), evil = identity()
        let members = [
            RosterMember(index: 1, identity: leader.publicIdentity), RosterMember(index: 2, identity: a.publicIdentity),
            RosterMember(index: 3, identity: b.publicIdentity),
        ]
        let head = SignedRoster.chainStart
        let code = SecurityCode(
            roomID: room, leader: leader.signingKey.publicKey, rosterHash: RosterHash.compute(roomID: room, members: members), chainHead: head)
        #expect(code.groups.count == 6 && code.groups.allSatisfy { $0.count == 5 && $0.allSatisfy(\.isNumber) })
        // Order of listing does not matter; content does.
        #expect(
            try code
                == SecurityCode(
                    roomID: room, leader: leader.signingKey.publicKey, rosterHash: RosterHash.compute(roomID: room, members: members.reversed()),
                    chainHead: head))
        let swapped = [members[0], members[1], RosterMember(index: 3, identity: evil.publicIdentity)]
        #expect(
            try code
                != SecurityCode(
                    roomID: room, leader: leader.signingKey.publicKey, rosterHash: RosterHash.compute(roomID: room, members: swapped), chainHead: head))
        #expect(
            try code
                != SecurityCode(
                    roomID: room, leader: evil.signingKey.publicKey, rosterHash: RosterHash.compute(roomID: room, members: members), chainHead: head))
        let halfSwapped = PublicIdentity(signingKey: b.signingKey.publicKey, agreementKey: evil.agreementKey.publicKey)
        #expect(
            try code
                != SecurityCode(
                    roomID: room, leader: leader.signingKey.publicKey,
                    rosterHash: RosterHash.compute(roomID: room, members: [members[0], members[1], RosterMember(index: 3, identity: halfSwapped)]),
                    chainHead: head))
        // The same members under another roster history: another code (3.6, 4.3).
        #expect(
            code
                != SecurityCode(
                    roomID: room, leader: leader.signingKey.publicKey, rosterHash: RosterHash.compute(roomID: room, members: members),
                    chainHead: SHA2.sha256(Array("another history".utf8))))
    }

    @Test func inviteRoundTripAndErrors() throws {
        let host = identity().publicIdentity
        let invite = Invite(
            secure: false, host: "127.0.0.1", port: 7443, roomID: room, hostIdentity: host, secret: Invite.randomSecret(), password: "p@ss wörd&x")
        let parsed = try Invite(parsing: invite.text)
        #expect(parsed == invite)
        #expect(!invite.description.contains("p%40ss") && !invite.description.contains("k=") && !invite.description.contains("s="))
        // A version 1 invite (no invite secret) is refused with a clear error.
        #expect(throws: Invite.ParseError.missingSecret) {
            try Invite(parsing: invite.text.replacingOccurrences(of: "&s=" + Base64URL.encode(invite.secret), with: ""))
        }
        #expect(throws: Invite.ParseError.badSecret) { try Invite(parsing: invite.text.replacingOccurrences(of: "&s=", with: "&s=AA")) }
        #expect(parsed.hostFingerprint == host.fingerprint)
        let v6 = Invite(secure: true, host: "::1", port: 443, roomID: room, hostIdentity: host, secret: Invite.randomSecret(), password: nil)
        #expect(try Invite(parsing: v6.text) == v6)
        #expect(v6.text.hasPrefix("wss://[::1]:443/r/"))
        let good = invite.text
        #expect(throws: Invite.ParseError.badScheme) { try Invite(parsing: "http://x:1/r/a#k=b") }
        #expect(throws: Invite.ParseError.missingFingerprint) { try Invite(parsing: String(good.prefix(while: { $0 != "#" }))) }
        #expect(throws: Invite.ParseError.badPort) { try Invite(parsing: good.replacingOccurrences(of: ":7443", with: ":99999")) }
        #expect(throws: Invite.ParseError.badRoomID) { try Invite(parsing: good.replacingOccurrences(of: "/r/", with: "/r/x")) }
        #expect(throws: Invite.ParseError.badFingerprint) { try Invite(parsing: good.replacingOccurrences(of: "#k=", with: "#k=A")) }
        #expect(throws: Invite.ParseError.badPassword) { try Invite(parsing: good + "%") }
        #expect(throws: Invite.ParseError.badPassword) { try Invite(parsing: good + "%+F") }
        #expect(throws: Invite.ParseError.badPort) { try Invite(parsing: good.replacingOccurrences(of: ":7443", with: ":+7443")) }
        #expect(throws: Invite.ParseError.unknownParameter("z")) { try Invite(parsing: good + "&z=1") }
        #expect(throws: Invite.ParseError.tooLong(2000)) { try Invite(parsing: String(repeating: "a", count: 2000)) }
        // relay_auth never contains the password and depends on it, the room and the relay.
        let room = RoomID(bytes: (0..<16).map { UInt8($0) })!, otherRoom = RoomID(bytes: (0..<16).map { UInt8($0 + 1) })!
        let auth = try Invite.relayAuth(password: "hunter2", roomID: room, relayOrigin: "wss://relay.example.org:443")
        #expect(auth.count == 32)
        #expect(auth != (try Invite.relayAuth(password: "hunter3", roomID: room, relayOrigin: "wss://relay.example.org:443")))
        #expect(auth != (try Invite.relayAuth(password: "hunter2", roomID: otherRoom, relayOrigin: "wss://relay.example.org:443")))
        #expect(auth != (try Invite.relayAuth(password: "hunter2", roomID: room, relayOrigin: "wss://relay.example.net:443")))
        // The value 4.1 gives (informative), cross-checked with Python's HKDF.
        #expect(Hex.encode(auth) == "5b8e7c94507f7a1be0d920ff6850a6946e0bd4d496e422d48b73fef96edd0257")
    }

    @Test func base64URLIsStrict() {
        for n in 0..<40 {
            let b = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(Base64URL.decode(Base64URL.encode(b)) == b)
        }
        #expect(Base64URL.decode("A") == nil)
        #expect(Base64URL.decode("AB=") == nil)
        #expect(Base64URL.decode("AA") == [0])
        #expect(Base64URL.decode("AB") == nil)  // non-zero trailing bits
    }
}
