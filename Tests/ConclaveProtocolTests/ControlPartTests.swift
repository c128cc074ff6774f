import ConclaveCrypto
@testable import ConclaveProtocol
import Testing

/// `CONTROL_PART` (3.6): a `ROSTER` of up to 500 members travels in parts of at most one
/// control frame each, and is checked whole.
@Suite struct ControlPartTests {
    static let name64 = String(repeating: "n", count: 64)

    static func largestRoster(members: Int = SignedRoster.maximumMembers) throws -> (SignedRoster, PrivateIdentity) {
        let leader = try E2EControlMessageTests.identity("leader")
        let entries = (1...members).map { i in
            SignedRoster.Entry(
                index: UInt16(i), identity: leader.publicIdentity, role: i == 1 ? .host : .participant,
                displayName: name64, joinNonce: E2EControlMessageTests.nonce(UInt16(i)))
        }
        let roster = try SignedRoster.sign(
            roomID: E2EControlMessageTests.roomID, epoch: 3, rosterVersion: 9, epochChange: .freshSecret,
            entries: entries, leader: leader.signingKey)
        return (roster, leader)
    }

    @Test func limits() throws {
        #expect(SignedRoster.maximumSingleFrameLength == 16_351)
        #expect(SignedRoster.maximumMembersWithLongestNames == 108)
        #expect(SignedRoster.maximumEncodedLength == 131 + 500 * 149)
        #expect(ControlPart.maximumDataLength == 16_339)
        #expect(ControlPart.maximumPartCount == 5)
        let (largest, leader) = try Self.largestRoster()
        #expect(largest.encoded.count == 74_631)
        #expect(largest.isSigned(by: leader.signingKey.publicKey))
        #expect(throws: E2EControlError.invalidRoster("501 entries")) {
            try SignedRoster.sign(
                roomID: E2EControlMessageTests.roomID, epoch: 3, rosterVersion: 9, epochChange: .freshSecret,
                entries: (1...501).map { i in
                    SignedRoster.Entry(index: UInt16(i), identity: leader.publicIdentity, joinNonce: E2EControlMessageTests.nonce(1))
                }, leader: leader.signingKey)
        }
    }

    @Test func splitsOnlyWhatDoesNotFitAndReassemblesInAnyOrder() throws {
        let fits = [UInt8](repeating: 7, count: 16_351)
        #expect(try ControlPart.split(fits, messageNumber: 1) == [fits])
        let (roster, leader) = try Self.largestRoster()
        let parts = try ControlPart.split(roster.encoded, messageNumber: 42)
        #expect(parts.count == 5)
        #expect(parts.allSatisfy { $0.count <= SignedRoster.maximumSingleFrameLength })
        #expect(parts.map(\.count) == [16_351, 16_351, 16_351, 16_351, 74_631 - 4 * 16_339 + 12])
        for order in [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 0, 4, 1, 3]] {
            var reassembly = ControlReassembly()
            var whole: [UInt8]?
            for (n, i) in order.enumerated() {
                guard case let .part(p) = try E2EControlMessage.decode(parts[i]) else { Issue.record("not a part"); return }
                whole = reassembly.add(p)
                #expect((whole == nil) == (n < 4))
            }
            #expect(whole == roster.encoded)
            #expect(reassembly.heldBytes == 0)
            guard case let .roster(decoded)? = try whole.map({ try E2EControlMessage.decode($0) }) else { Issue.record("no roster"); return }
            #expect(decoded == roster)
            #expect(decoded.isSigned(by: leader.signingKey.publicKey))
        }
        #expect(throws: E2EControlError.tooLong(length: 74_632, limit: 74_631)) {
            try ControlPart.split([UInt8](repeating: 1, count: 74_632), messageNumber: 1)
        }
    }

    @Test func malformedPartsAreRejectedBeforeAnythingIsReserved() throws {
        let (roster, _) = try Self.largestRoster(members: 120)
        let parts = try ControlPart.split(roster.encoded, messageNumber: 5)
        #expect(parts.count == 2)
        func mutated(_ i: Int, _ change: (inout [UInt8]) -> Void) -> [UInt8] { var b = parts[i]; change(&b); return b }
        func setU32(_ b: inout [UInt8], at o: Int, _ v: UInt32) { for k in 0..<4 { b[o + k] = UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32(k))) } }
        let bad: [(String, [UInt8])] = [
            ("version", mutated(0) { $0[1] = 1 }),
            ("total over the largest roster", mutated(0) { setU32(&$0, at: 8, 0xFFFF_FFFF) }),
            ("total that fits one frame", mutated(0) { setU32(&$0, at: 8, 16_351) }),
            ("part count for another total", mutated(0) { $0[7] = 3 }),
            ("index past count", mutated(1) { $0[6] = 2 }),
            ("short data", Array(parts[0].dropLast())),
            ("long last part", parts[1] + [0]),
            ("truncated header", Array(parts[0].prefix(12))),
        ]
        for (what, bytes) in bad {
            #expect(throws: E2EControlError.self, "\(what)") { try E2EControlMessage.decode(bytes) }
        }
        // Longer than one control frame: refused before parsing.
        let oversize = parts[0] + [UInt8](repeating: 0, count: 1)
        #expect(throws: E2EControlError.tooLong(length: 16_352, limit: 16_351)) { try E2EControlMessage.decode(oversize) }
    }

    @Test func conflictingOrRepeatedPartsRestartTheMessage() throws {
        let (roster, _) = try Self.largestRoster(members: 300)
        let a = try ControlPart.split(roster.encoded, messageNumber: 1).map { try part($0) }
        let b = try ControlPart.split(roster.encoded, messageNumber: 2).map { try part($0) }
        #expect(a.count == 3)
        var r = ControlReassembly()
        #expect(r.add(a[0]) == nil)
        #expect(r.add(a[0]) == nil)  // a repeat: the message starts over with it
        #expect(r.abandoned == 1)
        #expect(r.add(b[1]) == nil)  // another message: the first is dropped
        #expect(r.abandoned == 2)
        #expect(r.add(a[1]) == nil)
        #expect(r.add(a[2]) == nil)
        #expect(r.add(a[0]) == roster.encoded)
        #expect(r.heldBytes == 0)
    }

    func part(_ bytes: [UInt8]) throws -> ControlPart {
        guard case let .part(p) = try E2EControlMessage.decode(bytes) else { throw E2EControlError.malformed("not a part") }
        return p
    }

    /// A member reassembles only the leader's parts and accepts only a `ROSTER` from them.
    @Test func memberTakesPartsFromTheLeaderOnly() throws {
        let (room, ann, bob) = try E2ERoom.withAnnAndBob()
        _ = room
        // Bob cuts a long message and sends the parts to Ann as if they were the leader's.
        let junk = [UInt8](repeating: 0x01, count: 20_000)
        for piece in try ControlPart.split(junk, messageNumber: 1) {
            #expect(throws: E2EError.keyRejected(.notFromLeader(sender: bob.index))) {
                _ = try ann.member!.receiveControl(piece, from: bob.index)
            }
        }
        // From the leader's index, a reassembled message that is not a ROSTER is refused.
        let pieces = try ControlPart.split([Heartbeat.type] + junk, messageNumber: 1)
        #expect(try ann.member!.receiveControl(pieces[0], from: room.leaderIndex).isEmpty)
        #expect(throws: E2EError.self) { _ = try ann.member!.receiveControl(pieces[1], from: room.leaderIndex) }
    }

    /// A 500-member room: every ROSTER goes in parts that each fit a control frame, every
    /// member verifies it whole, and a removal rekeys all 498 who stay.
    @Test func fiveHundredMemberRoomJoinsAndRekeys() throws {
        let room = E2ERoom()
        try room.createLeader(name: Self.name64)
        var joiners: [E2EPeer] = []
        for i in 2...500 {
            joiners.append(
                try room.join(
                    index: UInt16(i), name: String("member \(i) ".padding(toLength: 64, withPad: "x", startingAt: 0)),
                    leaderReacts: false))
        }
        try room.leaderHandles(admit: joiners, remove: [])
        room.flush()
        let leaderEpoch = room.leader.leader!.epoch
        #expect(room.leader.leader!.entries.count == 500)
        #expect(room.controlFramesSealed >= 10)  // the broadcast and the addressed ROSTER, 5 parts each
        for p in joiners {
            #expect(p.rejections.isEmpty, "#\(p.index): \(p.rejections)")
            #expect(p.member!.epoch == leaderEpoch && !p.member!.awaitingRoster, "#\(p.index)")
            #expect(p.member!.roster?.entries.count == 500)
        }
        let code = room.leader.currentSecurityCode
        #expect(joiners.allSatisfy { $0.currentSecurityCode == code })

        _ = try room.leave(index: 500)
        room.flush()
        let next = room.leader.leader!.epoch
        #expect(next == leaderEpoch + 1)
        for p in joiners.dropLast() {
            #expect(p.rejections.isEmpty, "#\(p.index): \(p.rejections)")
            #expect(p.member!.epoch == next, "#\(p.index)")
            #expect(p.member!.roster?.entries.count == 499)
        }
        #expect(joiners.dropLast().allSatisfy { $0.currentSecurityCode == room.leader.currentSecurityCode })
    }
}
