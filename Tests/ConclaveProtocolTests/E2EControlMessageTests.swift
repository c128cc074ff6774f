import Foundation
import Testing
import ConclaveCrypto
@testable import ConclaveProtocol

/// ROSTER and HANDOVER (section 3.6): layout, exact lengths, limits, malformed input, and
/// the committed vectors in `protocol/test-vectors/e2e-control.json`
/// (`CONCLAVE_WRITE_VECTORS=1 swift test --filter E2EControlMessageTests` regenerates them).
@Suite(.serialized) struct E2EControlMessageTests {
    static let roomID = RoomID(bytes: hexBytes("a1b2c3d4e5f60718293a4b5c6d7e8f90"))!

    static func identity(_ label: String) throws -> PrivateIdentity {
        PrivateIdentity(
            signingKey: try Ed25519.PrivateKey(seed: SecretKey(copying: SHA2.sha256(Array("conclave vector e2e \(label) ed25519".utf8)))),
            agreementKey: try X25519.PrivateKey(secret: SecretKey(copying: SHA2.sha256(Array("conclave vector e2e \(label) x25519".utf8)))))
    }

    /// A member's join nonce in the vectors: 16 bytes of its index's low byte.
    static func nonce(_ i: UInt16) -> [UInt8] { [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: Knock.joinNonceLength) }

    static func sampleEntries() throws -> [SignedRoster.Entry] {
        [
            SignedRoster.Entry(index: 1, identity: try identity("leader").publicIdentity, role: .host, displayName: "Host", joinNonce: nonce(1)),
            SignedRoster.Entry(
                index: 2, identity: try identity("member 2").publicIdentity, role: .participant, muted: true,
                presenter: true, displayName: "Zoë Example", joinNonce: nonce(2)),
            SignedRoster.Entry(
                index: 300, identity: try identity("member 300").publicIdentity, role: .cohost, recorder: true, displayName: "", joinNonce: nonce(300)),
        ]
    }

    static func sampleRoster() throws -> SignedRoster {
        try SignedRoster.sign(
            roomID: roomID, epoch: 7, rosterVersion: 12, epochChange: .joinRatchet, successor: 300,
            chainPrevious: sampleChainPrevious, entries: sampleEntries(), leader: identity("leader").signingKey)
    }

    /// The chain head before the sample roster in the vectors.
    static let sampleChainPrevious = SHA2.sha256(Array("conclave vector chain previous".utf8))

    static func sampleHeartbeatHead() throws -> [UInt8] {
        try sampleRoster().chainHead
    }

    static func sampleHeartbeat() throws -> Heartbeat {
        Heartbeat.sign(
            roomID: roomID, epoch: 7, rosterVersion: 12, chainHead: try sampleHeartbeatHead(), sequence: 42,
            leader: try identity("leader").signingKey)
    }

    static func sampleModerationRequest() throws -> ModerationRequest {
        ModerationRequest.sign(
            roomID: roomID, requester: 300, sequence: 7, action: .remove, target: 2,
            targetIdentity: try identity("member 2").publicIdentity, by: try identity("member 300").signingKey)
    }

    static let sampleRecordingID = [UInt8](repeating: 0x5A, count: 16)

    static func sampleRecordingNotice() throws -> RecordingNotice {
        RecordingNotice.sign(
            roomID: roomID, recordingID: sampleRecordingID, recorder: 300, state: .recording,
            retainUntil: 1_800_000_000, sequence: 3, by: try identity("member 300").signingKey)
    }

    static func sampleRecordingConsent() throws -> RecordingConsent {
        RecordingConsent.sign(
            roomID: roomID, recordingID: sampleRecordingID, member: 2, recorder: 300, decision: .consent,
            by: try identity("member 2").signingKey)
    }

    @Test func recordingNoticeAndConsentExactBytes() throws {
        let n = try Self.sampleRecordingNotice()
        let b = n.encoded
        #expect(b.count == 112 && RecordingNotice.encodedLength == 112)
        #expect(b[0] == 0x08 && Array(b[1..<17]) == Self.roomID.bytes && Array(b[17..<33]) == Self.sampleRecordingID)
        #expect(
            Array(b[33..<35]) == [0x01, 0x2C] && b[35] == 1 && Array(b[36..<44]) == UInt64(1_800_000_000).bigEndianBytes && Array(b[44..<48]) == [0, 0, 0, 3])
        #expect(try E2EControlMessage.decode(b) == .recordingNotice(n))
        let (member300, leaderKey) = (try Self.identity("member 300").signingKey.publicKey, try Self.identity("leader").signingKey.publicKey)
        #expect(n.isSigned(by: member300) && !n.isSigned(by: leaderKey))
        var badState = b; badState[35] = 3
        #expect(throws: E2EControlError.self) { try E2EControlMessage.decode(badState) }
        var stopWithRetention = b; stopWithRetention[35] = 2
        #expect(throws: E2EControlError.self) { try E2EControlMessage.decode(stopWithRetention) }
        #expect(throws: E2EControlError.self) { try E2EControlMessage.decode(Array(b.dropLast())) }

        let c = try Self.sampleRecordingConsent()
        let cb = c.encoded
        #expect(cb.count == 102 && RecordingConsent.encodedLength == 102)
        #expect(cb[0] == 0x09 && Array(cb[33..<35]) == [0, 2] && Array(cb[35..<37]) == [0x01, 0x2C] && cb[37] == 1)
        #expect(try E2EControlMessage.decode(cb) == .recordingConsent(c))
        #expect(c.isSigned(by: try Self.identity("member 2").signingKey.publicKey))
        // A decline is the same size: the relay cannot tell the answers apart.
        let d = RecordingConsent.sign(
            roomID: Self.roomID, recordingID: Self.sampleRecordingID, member: 2, recorder: 300, decision: .decline,
            by: try Self.identity("member 2").signingKey)
        #expect(d.encoded.count == cb.count && d.encoded[37] == 2)
        var badDecision = cb; badDecision[37] = 0
        #expect(throws: E2EControlError.self) { try E2EControlMessage.decode(badDecision) }
        // The recorder flag is bit 2 of a roster entry's flags; bits 3-7 stay reserved.
        let roster = try Self.sampleRoster()
        #expect(roster.entries.first { $0.index == 300 }?.recorder == true && roster.entries.first { $0.index == 300 }?.mayRecord == true)
        #expect(roster.entries.first { $0.index == 2 }?.mayRecord == false && roster.entries.first { $0.index == 1 }?.mayRecord == true)
    }

    @Test func moderationRequestRoundTripAndExactLength() throws {
        let r = try Self.sampleModerationRequest()
        let bytes = r.encoded
        #expect(bytes.count == 154 && ModerationRequest.encodedLength == 154)
        #expect(bytes[0] == 0x05)
        #expect(Array(bytes[1..<17]) == Self.roomID.bytes)
        #expect(Array(bytes[17..<19]) == [0x01, 0x2C] && Array(bytes[19..<23]) == [0, 0, 0, 7] && bytes[23] == 2)
        let targetIdentity = try Self.identity("member 2").publicIdentity.encoded
        #expect(Array(bytes[24..<26]) == [0, 2] && Array(bytes[26..<90]) == targetIdentity)
        #expect(try E2EControlMessage.decode(bytes) == .moderationRequest(r))
        #expect(r.isSigned(by: try Self.identity("member 300").signingKey.publicKey))
        #expect(!r.isSigned(by: try Self.identity("leader").signingKey.publicKey))
        var badAction = bytes; badAction[23] = 9
        #expect(throws: E2EControlError.self) { try E2EControlMessage.decode(badAction) }
        var zeroTarget = bytes; zeroTarget[24] = 0; zeroTarget[25] = 0
        #expect(throws: E2EControlError.self) { try E2EControlMessage.decode(zeroTarget) }
        #expect(throws: E2EControlError.self) { try E2EControlMessage.decode(bytes.dropLast()) }
    }

    static func sampleHandover() throws -> Handover {
        Handover.sign(
            roomID: roomID, epoch: 7, newLeaderIndex: 2, newLeaderKey: try identity("member 2").signingKey.publicKey,
            oldLeader: try identity("leader").signingKey)
    }

    // MARK: Layout

    @Test func rosterRoundTripAndExactLength() throws {
        let roster = try Self.sampleRoster()
        let bytes = roster.encoded
        // 131 + (85 + 4) + (85 + 12) + (85 + 0): "Zoë Example" is 12 bytes of UTF-8.
        #expect(bytes.count == 131 + 89 + 97 + 85)
        #expect(bytes.count == roster.encodedLength)
        #expect(Array(bytes[0..<2]) == [0x01, 0x02])
        #expect(Array(bytes[2..<18]) == Self.roomID.bytes)
        #expect(Array(bytes[18..<26]) == UInt64(7).bigEndianBytes)
        #expect(Array(bytes[26..<30]) == UInt32(12).bigEndianBytes)
        #expect(bytes[30] == 1)
        #expect(Array(bytes[31..<33]) == [0x01, 0x2C])  // successor #300
        #expect(Array(bytes[33..<65]) == Self.sampleChainPrevious)
        #expect(Array(bytes[65..<67]) == [0, 3])
        // Second entry: index, identity, join nonce, role, flags (muted | presenter), name.
        let e2 = 67 + 89
        #expect(Array(bytes[e2..<e2 + 2]) == [0, 2])
        #expect(Array(bytes[(e2 + 66)..<(e2 + 82)]) == Self.nonce(2))
        #expect(bytes[e2 + 82] == 0 && bytes[e2 + 83] == 0x03 && bytes[e2 + 84] == 12)
        #expect(String(decoding: bytes[(e2 + 85)..<(e2 + 97)], as: UTF8.self) == "Zoë Example")
        #expect(Array(bytes[(bytes.count - 64)...]) == roster.signature)

        guard case let .roster(decoded) = try E2EControlMessage.decode(bytes) else { Issue.record("not a roster"); return }
        #expect(decoded == roster)
        #expect(decoded.encoded == bytes)
        #expect(decoded.isSigned(by: try Self.identity("leader").signingKey.publicKey))
        #expect(!decoded.isSigned(by: try Self.identity("member 2").signingKey.publicKey))
        #expect(decoded.entry(for: 300)?.role == .cohost && decoded.entry(for: 3) == nil)
        // The roster hash covers index and identity only (3.5).
        #expect(decoded.rosterHash == RosterHash.compute(roomID: Self.roomID, members: try Self.sampleEntries().map(\.member)))
        var renamed = try Self.sampleEntries()
        renamed[1].displayName = "Someone"; renamed[1].role = .cohost; renamed[1].muted = false
        let other = try SignedRoster.sign(
            roomID: Self.roomID, epoch: 7, rosterVersion: 13, epochChange: .none, entries: renamed,
            leader: Self.identity("leader").signingKey)
        #expect(other.rosterHash == roster.rosterHash)
        // The successor must be a non-host entry, when signing and when decoding.
        #expect(throws: E2EControlError.self) {
            try SignedRoster.sign(
                roomID: Self.roomID, epoch: 7, rosterVersion: 13, epochChange: .none, successor: 1, entries: renamed,
                leader: Self.identity("leader").signingKey)
        }
        var badSuccessor = bytes
        badSuccessor[31] = 0; badSuccessor[32] = 9
        #expect(throws: E2EControlError.self) { try E2EControlMessage.decode(badSuccessor) }
    }

    @Test func heartbeatRoundTripAndExactLength() throws {
        let b = try Self.sampleHeartbeat()
        let bytes = b.encoded
        #expect(bytes.count == 133 && Heartbeat.encodedLength == 133)
        #expect(bytes[0] == 0x04)
        #expect(Array(bytes[1..<17]) == Self.roomID.bytes)
        #expect(Array(bytes[17..<25]) == UInt64(7).bigEndianBytes)
        #expect(Array(bytes[25..<29]) == UInt32(12).bigEndianBytes)
        #expect(Array(bytes[29..<61]) == (try Self.sampleRoster().chainHead))
        #expect(Array(bytes[61..<69]) == UInt64(42).bigEndianBytes)
        #expect(try E2EControlMessage.decode(bytes) == .heartbeat(b))
        #expect(b.isSigned(by: try Self.identity("leader").signingKey.publicKey))
        #expect(!b.isSigned(by: try Self.identity("member 2").signingKey.publicKey))
        #expect(throws: E2EControlError.self) { try E2EControlMessage.decode(bytes.dropLast()) }
        var flipped = bytes
        flipped[30] ^= 1
        guard case let .heartbeat(f) = try E2EControlMessage.decode(flipped) else { Issue.record("decode"); return }
        #expect(!f.isSigned(by: try Self.identity("leader").signingKey.publicKey))
    }

    @Test func handoverRoundTripAndExactLength() throws {
        let h = try Self.sampleHandover()
        let bytes = h.encoded
        #expect(bytes.count == 123 && Handover.encodedLength == 123)
        #expect(bytes[0] == 0x02)
        #expect(Array(bytes[1..<17]) == Self.roomID.bytes)
        #expect(Array(bytes[17..<25]) == UInt64(7).bigEndianBytes)
        #expect(Array(bytes[25..<27]) == [0, 2])
        #expect(Array(bytes[27..<59]) == (try Self.identity("member 2").signingKey.publicKey.rawRepresentation))
        #expect(h.signedPart == Array(bytes[0..<59]))
        #expect(try E2EControlMessage.decode(bytes) == .handover(h))
        #expect(h.isSigned(by: try Self.identity("leader").signingKey.publicKey))
        // A ROSTER signature never verifies as a HANDOVER one (different contexts).
        let leader = try Self.identity("leader").signingKey
        let crossSigned = Handover(
            roomID: h.roomID, epoch: h.epoch, newLeaderIndex: h.newLeaderIndex, newLeaderKey: h.newLeaderKey,
            signature: try leader.signature(for: h.signedPart, context: Labels.rosterSignature))
        #expect(!crossSigned.isSigned(by: leader.publicKey))
    }

    @Test func rosterSizeLimit() throws {
        let leader = try Self.identity("leader")
        let name = String(repeating: "n", count: 64)
        func entries(_ n: Int) -> [SignedRoster.Entry] {
            (1...n).map { i in
                SignedRoster.Entry(
                    index: UInt16(i), identity: leader.publicIdentity, role: i == 1 ? .host : .participant, displayName: name,
                    joinNonce: Self.nonce(UInt16(i)))
            }
        }
        #expect(SignedRoster.maximumSingleFrameLength == 16_351)
        #expect(SignedRoster.maximumMembersWithLongestNames == 108)
        let largest = try SignedRoster.sign(
            roomID: Self.roomID, epoch: 1, rosterVersion: 1, epochChange: .none, entries: entries(108),
            leader: leader.signingKey)
        #expect(largest.encoded.count == 131 + 108 * 149)
        #expect(largest.encoded.count <= 16_351)
        #expect(try E2EControlMessage.decode(largest.encoded) == .roster(largest))
        // 109 such members no longer fit one control frame: the roster goes in parts (ControlPartTests).
        let parted = try SignedRoster.sign(
            roomID: Self.roomID, epoch: 1, rosterVersion: 1, epochChange: .none, entries: entries(109),
            leader: leader.signingKey)
        #expect(try ControlPart.split(parted.encoded, messageNumber: 1).count == 2)
        // A decoder refuses anything longer than the largest roster, before parsing.
        var long = largest.encoded
        long += [UInt8](repeating: 0, count: 74_632 - long.count)
        #expect(throws: E2EControlError.tooLong(length: 74_632, limit: 74_631)) { try E2EControlMessage.decode(long) }
        // The leader cannot sign structurally invalid rosters.
        #expect(throws: E2EControlError.self) {
            try SignedRoster.sign(roomID: Self.roomID, epoch: 1, rosterVersion: 1, epochChange: .none, entries: [], leader: leader.signingKey)
        }
        #expect(throws: E2EControlError.self) {
            try SignedRoster.sign(
                roomID: Self.roomID, epoch: 1, rosterVersion: 1, epochChange: .none,
                entries: entries(2).reversed(), leader: leader.signingKey)
        }
        var longName = entries(1)
        longName[0].displayName = String(repeating: "x", count: 65)
        #expect(throws: E2EControlError.self) {
            try SignedRoster.sign(roomID: Self.roomID, epoch: 1, rosterVersion: 1, epochChange: .none, entries: longName, leader: leader.signingKey)
        }
    }

    // MARK: Malformed input

    @Test func everyPrefixAndExtensionIsRejected() throws {
        for message in [try Self.sampleRoster().encoded, try Self.sampleHandover().encoded] {
            for n in 0..<message.count {
                #expect(throws: E2EControlError.self, "prefix of \(n) bytes") { try E2EControlMessage.decode(Array(message[0..<n])) }
            }
            #expect(throws: E2EControlError.self) { try E2EControlMessage.decode(message + [0]) }
            #expect(try E2EControlMessage.decode(message).encoded == message)
        }
    }

    @Test func malformedFieldsAreRejected() throws {
        let good = try Self.sampleRoster().encoded
        let e1 = 67  // first entry
        func mutated(_ change: (inout [UInt8]) -> Void) -> [UInt8] { var b = good; change(&b); return b }
        let cases: [(String, [UInt8])] = [
            ("version 1", mutated { $0[1] = 1 }),
            ("epoch_change 3", mutated { $0[30] = 3 }),
            (
                "successor not listed",
                mutated {
                    $0[31] = 0; $0[32] = 9
                }
            ),
            (
                "successor is the host",
                mutated {
                    $0[31] = 0; $0[32] = 1
                }
            ),
            (
                "count 0",
                mutated {
                    $0[65] = 0; $0[66] = 0
                }
            ),
            ("count 4", mutated { $0[66] = 4 }),
            (
                "count 0xFFFF",
                mutated {
                    $0[65] = 0xFF; $0[66] = 0xFF
                }
            ),
            (
                "index 0",
                mutated {
                    $0[e1] = 0; $0[e1 + 1] = 0
                }
            ),
            ("index order", mutated { $0[e1 + 1] = 5 }),  // 5 then 2
            ("role 3", mutated { $0[e1 + 82] = 3 }),
            ("flags bit 3 (bit 2 is the recorder right, 3.8)", mutated { $0[e1 + 83] = 0x08 }),
            ("name_length 65", mutated { $0[e1 + 84] = 65 }),
            ("name_length 5", mutated { $0[e1 + 84] = 5 }),
            ("invalid UTF-8", mutated { $0[e1 + 85] = 0xFF }),
        ]
        for (name, bytes) in cases {
            #expect(throws: E2EControlError.self, "\(name)") { try E2EControlMessage.decode(bytes) }
        }
        var lastIndex = good
        let e3 = 67 + 89 + 97
        lastIndex[e3] = 0xFF; lastIndex[e3 + 1] = 0xFF
        #expect(throws: E2EControlError.self) { try E2EControlMessage.decode(lastIndex) }
        #expect(throws: E2EControlError.unknownType(0x0A)) { try E2EControlMessage.decode([0x0A, 0x00]) }
        #expect(throws: E2EControlError.unknownType(0x00)) { try E2EControlMessage.decode([0x00]) }
        #expect(throws: E2EControlError.malformed("empty")) { try E2EControlMessage.decode([]) }
    }

    /// Random mutations never trap; whatever decodes re-encodes to the same bytes.
    @Test func randomMutationsNeverTrap() throws {
        var rng = SplitMix64(seed: 0xE2E)
        let seeds = [try Self.sampleRoster().encoded, try Self.sampleHandover().encoded]
        for i in 0..<3000 {
            var b = seeds[i % 2]
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                case 1: b.removeLast(Int.random(in: 0...min(40, b.count - 1), using: &rng))
                default: b.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...b.count, using: &rng))
                }
            }
            if let decoded = try? E2EControlMessage.decode(b) { #expect(decoded.encoded == b) }
        }
    }

    static func sampleKnockNotice() throws -> KnockNotice {
        try KnockNotice.sign(
            roomID: roomID, waitingIndex: 4, identity: try identity("recipient").publicIdentity,
            displayName: "Zoë Example", leader: try identity("leader").signingKey)
    }

    @Test func knockNoticeRoundTripSignatureAndMalformedInput() throws {
        let n = try Self.sampleKnockNotice()
        let bytes = n.encoded
        #expect(bytes.count == 1 + 16 + 2 + 64 + 1 + "Zoë Example".utf8.count + 64)
        #expect(try E2EControlMessage.decode(bytes) == .knockNotice(n))
        #expect(n.isSigned(by: try Self.identity("leader").signingKey.publicKey))
        #expect(!n.isSigned(by: try Self.identity("recipient").signingKey.publicKey))
        for i in 0..<bytes.count {
            var t = bytes; t[i] ^= 0x01
            if case .knockNotice(let m)? = try? E2EControlMessage.decode(t) {
                #expect(!m.isSigned(by: try Self.identity("leader").signingKey.publicKey), "byte \(i) flipped still verifies")
            }
        }
        for n in 0..<bytes.count { #expect(throws: E2EControlError.self) { try E2EControlMessage.decode(Array(bytes.prefix(n))) } }
        #expect(throws: E2EControlError.self) { try E2EControlMessage.decode(bytes + [0]) }
        #expect(throws: E2EControlError.self) {
            try KnockNotice.sign(
                roomID: Self.roomID, waitingIndex: 1, identity: try Self.identity("leader").publicIdentity, displayName: "",
                leader: try Self.identity("leader").signingKey)
        }
    }

    // MARK: Vectors

    /// A 110-member roster (members 2…110 from the labels "member i", names "member i"
    /// padded with "." to 64 bytes): 16 521 bytes, so it travels as two `CONTROL_PART`s.
    static func partedRoster() throws -> SignedRoster {
        let leader = try identity("leader")
        var entries: [SignedRoster.Entry] = []
        for i in 1...110 {
            let who: PublicIdentity = i == 1 ? leader.publicIdentity : try identity("member \(i)").publicIdentity
            let name: String = "member \(i)".padding(toLength: 64, withPad: ".", startingAt: 0)
            let role: Role = i == 1 ? .host : .participant
            entries.append(SignedRoster.Entry(index: UInt16(i), identity: who, role: role, displayName: name, joinNonce: nonce(UInt16(i))))
        }
        return try SignedRoster.sign(
            roomID: roomID, epoch: 8, rosterVersion: 13, epochChange: .freshSecret, successor: 2,
            chainPrevious: try sampleRoster().chainHead, entries: entries, leader: leader.signingKey)
    }

    static func sampleEpochSecret() -> [UInt8] { SHA2.sha256(Array("conclave vector epoch secret 8".utf8)) }
    static func samplePreviousSecret() -> [UInt8] { SHA2.sha256(Array("conclave vector epoch secret 7".utf8)) }

    /// The sample roster less #2, with #300 muted and #301 new: epoch 8 with a fresh secret.
    static func sampleDelta() throws -> RosterDelta {
        let base = try sampleRoster()
        var entries = base.entries.filter { $0.index != 2 }
        entries[1].muted = true
        entries.append(SignedRoster.Entry(index: 301, identity: try identity("member 301").publicIdentity, displayName: "Neu", joinNonce: nonce(301)))
        let hash = RosterHash.compute(roomID: roomID, members: entries.map(\.member))
        return try #require(
            RosterDelta.make(
                base: base, epoch: 8, rosterVersion: 13, epochChange: .freshSecret, successor: 300,
                chainPrevious: base.chainHead, entries: entries, rosterHash: hash,
                secretCommit: RosterDelta.commitment(roomID: roomID, epoch: 8, secret: SecretKey(copying: sampleEpochSecret())),
                leader: identity("leader").signingKey))
    }

    /// The leader's (#1) and #300's pairwise wrap key, computed by either side.
    static func sampleWrapKey(mine: PrivateIdentity) throws -> SecretKey {
        try KeyWrap.pairwiseKey(
            roomID: roomID, mine: mine,
            leader: RosterMember(index: 1, identity: identity("leader").publicIdentity, joinNonce: nonce(1)),
            member: RosterMember(index: 300, identity: identity("member 300").publicIdentity, joinNonce: nonce(300)))
    }

    static func vectors() throws -> [String: Any] {
        let leader = try identity("leader")
        let roster = try sampleRoster()
        let handover = try sampleHandover()
        let heartbeat = try sampleHeartbeat()
        let entries: [[String: Any]] = roster.entries.map { e in
            [
                "index": Int(e.index), "identity": Hex.encode(e.identity.encoded), "join_nonce": Hex.encode(e.joinNonce), "role": Int(e.role.rawValue),
                "muted": e.muted, "presenter": e.presenter, "recorder": e.recorder, "display_name": e.displayName,
            ]
        }
        return [
            "description":
                "End-to-end control messages (PROTOCOL.md 3.6). Identities from SHA-256 of the labels 'conclave vector e2e <who> ed25519|x25519' (seed; X25519 secret). Ed25519 signatures are deterministic, so every byte is fixed.",
            "room_id": Hex.encode(roomID.bytes),
            "leader_ed25519_seed": leader.signingKey.seed.unsafeHexExport(),
            "leader_ed25519_public": Hex.encode(leader.signingKey.publicKey.rawRepresentation),
            "roster": [
                "epoch": Int(roster.epoch), "roster_version": Int(roster.rosterVersion), "epoch_change": Int(roster.epochChange.rawValue),
                "successor": Int(roster.successor),
                "entries": entries,
                "signed_part": Hex.encode(roster.signedPart),
                "encoded": Hex.encode(roster.encoded),
                "length": roster.encoded.count,
                "roster_hash": Hex.encode(roster.rosterHash),
                "chain_previous": Hex.encode(roster.chainPrevious),
                "chain_head": Hex.encode(roster.chainHead),
                "security_code": SecurityCode(
                    roomID: roomID, leader: leader.signingKey.publicKey, rosterHash: roster.rosterHash,
                    chainHead: roster.chainHead
                ).description,
            ] as [String: Any],
            "knock_notice": [
                "waiting_index": 4, "identity": Hex.encode(try identity("recipient").publicIdentity.encoded),
                "display_name": "Zoë Example", "encoded": Hex.encode(try sampleKnockNotice().encoded),
            ] as [String: Any],
            "handover": [
                "epoch": Int(handover.epoch), "new_leader_index": Int(handover.newLeaderIndex),
                "new_leader_ed25519": Hex.encode(handover.newLeaderKey.rawRepresentation),
                "encoded": Hex.encode(handover.encoded),
            ] as [String: Any],
            "recording_notice": [
                "recorder": 300, "recording_id": Hex.encode(Self.sampleRecordingID), "state": 1, "retain_until": 1_800_000_000, "sequence": 3,
                "recorder_ed25519_public": Hex.encode(try identity("member 300").signingKey.publicKey.rawRepresentation),
                "encoded": Hex.encode(try sampleRecordingNotice().encoded),
            ] as [String: Any],
            "recording_consent": [
                "member": 2, "recorder": 300, "recording_id": Hex.encode(Self.sampleRecordingID), "decision": 1,
                "member_ed25519_public": Hex.encode(try identity("member 2").signingKey.publicKey.rawRepresentation),
                "encoded": Hex.encode(try sampleRecordingConsent().encoded),
            ] as [String: Any],
            "moderation_request": [
                "requester": 300, "sequence": 7, "action": 2, "target": 2,
                "requester_ed25519_public": Hex.encode(try identity("member 300").signingKey.publicKey.rawRepresentation),
                "encoded": Hex.encode(try sampleModerationRequest().encoded),
            ] as [String: Any],
            "control_parts": try {
                let roster = try partedRoster()
                let parts = try ControlPart.split(roster.encoded, messageNumber: 77)
                return [
                    "description":
                        "A ROSTER of 110 members (index 1 the leader; index i > 1 the identity of label 'member i', display name 'member i' padded with '.' to 64 bytes, join nonce 16 bytes of i's low byte; epoch 8, roster_version 13, epoch_change 2, successor 2, chain_prev the chain head of 'roster'), cut into CONTROL_PARTs with message_number 77.",
                    "roster_length": roster.encoded.count,
                    "roster_sha256": Hex.encode(SHA2.sha256(roster.encoded)),
                    "roster_hash": Hex.encode(roster.rosterHash),
                    "chain_head": Hex.encode(roster.chainHead),
                    "parts": parts.map(Hex.encode),
                ] as [String: Any]
            }(),
            "roster_delta": try {
                let delta = try sampleDelta()
                let result = try delta.apply(to: sampleRoster())
                return [
                    "description":
                        "Applies to 'roster' (roster_version 12): removes #2, marks #300 muted, adds #301 (label 'member 301', name 'Neu', join nonce 16 × 0x2d); epoch 8, roster_version 13, epoch_change 2, successor 300, chain_prev the chain head of 'roster'. epoch_secret = SHA-256('conclave vector epoch secret 8').",
                    "epoch_secret": Hex.encode(sampleEpochSecret()),
                    "secret_commit": Hex.encode(delta.secretCommit),
                    "signed_part": Hex.encode(delta.signedPart),
                    "encoded": Hex.encode(delta.encoded),
                    "length": delta.encoded.count,
                    "result_indices": result.entries.map { Int($0.index) },
                    "roster_hash": Hex.encode(delta.rosterHash),
                    "chain_head": Hex.encode(result.chainHead),
                ] as [String: Any]
            }(),
            "key_wrap": try {
                let delta = try sampleDelta()
                let pairwise = try sampleWrapKey(mine: identity("leader"))
                let key = try KeyWrap.epochKey(pairwise: pairwise, previousSecret: SecretKey(copying: samplePreviousSecret()), epoch: 8)
                let wrap = try KeyWrap.seal(
                    roomID: roomID, recipient: 300, epoch: 8, rosterHash: delta.rosterHash, reason: .fresh,
                    epochSecret: SecretKey(copying: sampleEpochSecret()), delta: delta.encoded, key: key,
                    nonce: [UInt8](repeating: 0x24, count: KeyWrap.nonceLength))
                return [
                    "description":
                        "The epoch secret of 'roster_delta', followed by that delta, wrapped for #300 (label 'member 300', join nonce 16 × 0x2c) by the leader (#1, join nonce 16 × 0x01), under the epoch wrap key for epoch 8 (previous_epoch_secret = SHA-256('conclave vector epoch secret 7')); nonce 24 × 0x24.",
                    "x25519_shared": Hex.encode(
                        try identity("leader").agreementKey.rawSharedSecret(with: identity("member 300").publicIdentity.agreementKey).withUnsafeBytes {
                            Array($0)
                        }),
                    "wrap_key": Hex.encode(pairwise.withUnsafeBytes { Array($0) }),
                    "previous_epoch_secret": Hex.encode(samplePreviousSecret()),
                    "epoch_wrap_key": Hex.encode(key.withUnsafeBytes { Array($0) }),
                    "encoded": Hex.encode(wrap.encoded),
                ] as [String: Any]
            }(),
            "heartbeat": [
                "epoch": Int(heartbeat.epoch), "roster_version": Int(heartbeat.rosterVersion), "sequence": Int(heartbeat.sequence),
                "signed_part": Hex.encode(heartbeat.signedPart),
                "encoded": Hex.encode(heartbeat.encoded),
            ] as [String: Any],
        ]
    }

    @Test func vectorsMatchCode() throws {
        if shouldWriteVectors { try writeVectorFile("e2e-control.json", try Self.vectors()) }
        let committed = try loadVectorFile("e2e-control.json")
        let fresh = try Self.vectors()
        let c = try JSONSerialization.data(withJSONObject: committed, options: .sortedKeys)
        let f = try JSONSerialization.data(withJSONObject: fresh, options: .sortedKeys)
        #expect(c == f, "run CONCLAVE_WRITE_VECTORS=1 swift test --filter E2EControlMessageTests to regenerate")
        // Independent of the generator: the committed bytes decode and verify under the committed key.
        let leaderKey = try Ed25519.PublicKey(rawRepresentation: hexBytes(committed["leader_ed25519_public"] as! String))
        let r = committed["roster"] as! [String: Any]
        let rosterBytes = hexBytes(r["encoded"] as! String)
        guard case let .roster(roster) = try E2EControlMessage.decode(rosterBytes) else { Issue.record("roster"); return }
        #expect(roster.isSigned(by: leaderKey))
        let hb = committed["heartbeat"] as! [String: Any]
        guard case let .heartbeat(beat) = try E2EControlMessage.decode(hexBytes(hb["encoded"] as! String)) else { Issue.record("heartbeat"); return }
        #expect(beat.isSigned(by: leaderKey) && Int(beat.sequence) == hb["sequence"] as? Int)
        #expect(rosterBytes.count == (r["length"] as! Int))
        #expect(Hex.encode(roster.rosterHash) == r["roster_hash"] as! String)
        #expect(roster.entries.map(\.displayName) == ["Host", "Zoë Example", ""])
        let h = committed["handover"] as! [String: Any]
        guard case let .handover(handover) = try E2EControlMessage.decode(hexBytes(h["encoded"] as! String)) else { Issue.record("handover"); return }
        #expect(handover.isSigned(by: leaderKey) && handover.newLeaderIndex == 2)
        let rn = committed["recording_notice"] as! [String: Any]
        guard case let .recordingNotice(notice300) = try E2EControlMessage.decode(hexBytes(rn["encoded"] as! String)) else {
            Issue.record("recording notice"); return
        }
        #expect(notice300.isSigned(by: try Ed25519.PublicKey(rawRepresentation: hexBytes(rn["recorder_ed25519_public"] as! String))))
        #expect(Int(notice300.sequence) == rn["sequence"] as? Int && Int(notice300.retainUntil) == rn["retain_until"] as? Int)
        let rc = committed["recording_consent"] as! [String: Any]
        guard case let .recordingConsent(consent2) = try E2EControlMessage.decode(hexBytes(rc["encoded"] as! String)) else {
            Issue.record("recording consent"); return
        }
        #expect(consent2.isSigned(by: try Ed25519.PublicKey(rawRepresentation: hexBytes(rc["member_ed25519_public"] as! String))))
        #expect(consent2.decision == .consent && Hex.encode(consent2.recordingID) == rn["recording_id"] as? String)
        let k = committed["knock_notice"] as! [String: Any]
        guard case let .knockNotice(notice) = try E2EControlMessage.decode(hexBytes(k["encoded"] as! String)) else { Issue.record("knock notice"); return }
        #expect(notice.isSigned(by: leaderKey) && notice.displayName == k["display_name"] as? String && notice.waitingIndex == 4)
        // The parts reassemble to a ROSTER that verifies, whatever order they arrive in.
        let cp = committed["control_parts"] as! [String: Any]
        var reassembly = ControlReassembly()
        var whole: [UInt8]?
        for hex in (cp["parts"] as! [String]).reversed() {
            guard case let .part(part) = try E2EControlMessage.decode(hexBytes(hex)) else { Issue.record("part"); return }
            whole = reassembly.add(part)
        }
        let bytes = try #require(whole)
        #expect(bytes.count == cp["roster_length"] as! Int && Hex.encode(SHA2.sha256(bytes)) == cp["roster_sha256"] as! String)
        guard case let .roster(parted) = try E2EControlMessage.decode(bytes) else { Issue.record("parted roster"); return }
        #expect(parted.isSigned(by: leaderKey) && parted.entries.count == 110 && Hex.encode(parted.chainHead) == cp["chain_head"] as! String)
        // The delta verifies and applies to the committed roster; the result's hash, computed
        // from its entries, is the signed one; the wrap opens for #300 to the committed secret.
        let rd = committed["roster_delta"] as! [String: Any]
        guard case let .rosterDelta(delta) = try E2EControlMessage.decode(hexBytes(rd["encoded"] as! String)) else { Issue.record("delta"); return }
        #expect(delta.isSigned(by: leaderKey) && delta.encoded.count == rd["length"] as! Int)
        var result = try delta.apply(to: roster)
        #expect(result.entries.map { Int($0.index) } == rd["result_indices"] as! [Int] && !result.hashVerified)
        #expect(result.verifyHash() && Hex.encode(result.chainHead) == rd["chain_head"] as! String)
        let secret = hexBytes(rd["epoch_secret"] as! String)
        #expect(RosterDelta.commitment(roomID: roster.roomID, epoch: 8, secret: SecretKey(copying: secret)) == delta.secretCommit)
        let kw = committed["key_wrap"] as! [String: Any]
        let wrap = try KeyWrap(encoded: hexBytes(kw["encoded"] as! String))
        let epochKey = try KeyWrap.epochKey(
            pairwise: Self.sampleWrapKey(mine: Self.identity("member 300")),
            previousSecret: SecretKey(copying: hexBytes(kw["previous_epoch_secret"] as! String)), epoch: 8)
        let opened = try wrap.open(key: epochKey)
        #expect(opened.epochSecret.withUnsafeBytes { Array($0) } == secret && wrap.recipient == 300 && wrap.rosterHash == delta.rosterHash)
        #expect(opened.delta == delta.encoded)
    }
}
