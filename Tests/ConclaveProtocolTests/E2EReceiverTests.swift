import Testing
import ConclaveCrypto
@testable import ConclaveProtocol

/// ``ReceiverKeyRing`` and ``SenderKeyState`` on their own (sections 2.5, 2.7, 2.8, 3.3, 3.7).
@Suite struct E2EReceiverTests {
    let room = RoomID(bytes: [UInt8](repeating: 0x5A, count: 16))!
    let alice = PrivateIdentity.generate()  // index 1
    let bob = PrivateIdentity.generate()  // index 2
    let carol = PrivateIdentity.generate()  // index 3

    /// Join nonces of the tests' members (4.2): 16 bytes of the index.
    static func nonce(_ i: UInt16) -> [UInt8] { [UInt8](repeating: UInt8(i), count: Knock.joinNonceLength) }
    var members: [RosterMember] {
        [
            RosterMember(index: 1, identity: alice.publicIdentity, joinNonce: Self.nonce(1)),
            RosterMember(index: 2, identity: bob.publicIdentity, joinNonce: Self.nonce(2)),
        ]
    }

    func header(_ kind: FrameKind, from sender: UInt16, to recipient: ParticipantIndex = .everyone) throws -> FrameHeader {
        try FrameHeader(kind: kind, sender: ParticipantIndex(sender), recipient: recipient)
    }

    func sender(_ index: UInt16, _ identity: PrivateIdentity, epoch: UInt64 = 1, secret: SecretKey) -> SenderKeyState {
        var s = SenderKeyState(roomID: room, me: index, identity: identity)
        s.install(epoch: epoch, secret: secret, now: 0)
        return s
    }

    // MARK: Drops are typed and counted

    @Test func tamperedReplayedRelabelledAndMisattributedFramesAreCounted() throws {
        let secret = SecretKey.random()
        var ring = ReceiverKeyRing(roomID: room, me: 2, identity: bob)
        ring.install(epoch: 1, secret: secret, members: members, now: 0)
        var a = sender(1, alice, secret: secret)
        let audio = try a.seal(kind: .audio, recipient: .everyone, plaintext: Array("hello".utf8), now: 0)

        guard case let .opened(frame) = ring.open(header: try header(.audio, from: 1), payload: audio, now: 1) else {
            Issue.record("did not open"); return
        }
        #expect(frame.plaintext == Array("hello".utf8) && frame.epoch == 1 && frame.counter == 0 && frame.sender == 1)

        // Replay of the same frame.
        #expect(ring.open(header: try header(.audio, from: 1), payload: audio, now: 2) == .dropped(.replayed))
        // One flipped bit in the ciphertext.
        let next = try a.seal(kind: .audio, recipient: .everyone, plaintext: Array("world".utf8), now: 3)
        var flipped = next
        flipped[flipped.count - 20] ^= 0x01
        #expect(ring.open(header: try header(.audio, from: 1), payload: flipped, now: 3) == .dropped(.decryptFailed))
        // The forged frame did not burn the counter: the genuine one still opens.
        if case .opened = ring.open(header: try header(.audio, from: 1), payload: next, now: 3) {} else { Issue.record("genuine frame lost") }
        // Screen relabelled as audio by the relay: the metadata differs, the tag fails.
        let screen = try a.seal(kind: .screen, recipient: .everyone, plaintext: [UInt8](repeating: 7, count: 40), now: 4)
        #expect(ring.open(header: try header(.audio, from: 1), payload: screen, now: 4) == .dropped(.decryptFailed))
        // ... and the untouched frame still opens as screen.
        if case .opened = ring.open(header: try header(.screen, from: 1), payload: screen, now: 4) {} else { Issue.record("screen lost") }
        // KID sender 1 but FRAME sender 3.
        let another = try a.seal(kind: .audio, recipient: .everyone, plaintext: [1], now: 5)
        #expect(ring.open(header: try header(.audio, from: 3), payload: another, now: 5) == .dropped(.senderMismatch))
        // Carol (index 3) holds the secret but is not in this epoch's verified roster.
        var c = sender(3, carol, secret: secret)
        let fromCarol = try c.seal(kind: .audio, recipient: .everyone, plaintext: [1], now: 5)
        #expect(ring.open(header: try header(.audio, from: 3), payload: fromCarol, now: 5) == .dropped(.notMember))
        // Truncated payloads, and an epoch KID on addressed chat.
        #expect(ring.open(header: try header(.audio, from: 1), payload: Array(another.prefix(3)), now: 6) == .dropped(.decryptFailed))
        #expect(ring.open(header: try header(.audio, from: 1), payload: [0x90], now: 6) == .dropped(.decryptFailed))
        let addressed = try a.seal(kind: .control, recipient: 2, plaintext: [9], now: 6)
        #expect(ring.open(header: try header(.chat, from: 1, to: 2), payload: addressed, now: 6) == .dropped(.decryptFailed))
        // Too old: 1 024 counters behind the highest accepted.
        a.setNextCounterForTesting(5_000)
        let far = try a.seal(kind: .audio, recipient: .everyone, plaintext: [1], now: 7)
        if case .opened = ring.open(header: try header(.audio, from: 1), payload: far, now: 7) {} else { Issue.record("far lost") }
        #expect(ring.open(header: try header(.audio, from: 1), payload: another, now: 7) == .dropped(.tooOld))

        let counted = ring.counters
        #expect(counted.opened == 4)
        #expect(counted.replayed == 1)
        #expect(counted.decryptFailed == 5)
        #expect(counted.senderMismatch == 1)
        #expect(counted.notMember == 1)
        #expect(counted.tooOld == 1)
        #expect(counted.unknownEpoch == 0 && counted.noKey == 0 && counted.buffered == 0)
    }

    @Test func failedOpenLeavesNoPlaintextInOutput() throws {
        let secret = SecretKey.random()
        var ring = ReceiverKeyRing(roomID: room, me: 2)
        ring.install(epoch: 1, secret: secret, members: members, now: 0)
        var a = sender(1, alice, secret: secret)
        var frame = try a.seal(kind: .chat, recipient: .everyone, plaintext: Array("secret text".utf8), now: 0)
        frame[frame.count - 1] ^= 0x80
        var out = [UInt8](repeating: 0xEE, count: frame.count)
        let h = try header(.chat, from: 1)
        let outcome = frame.withUnsafeBytes { p in out.withUnsafeMutableBytes { o in ring.open(header: h, payload: p, into: o, now: 1) } }
        #expect(outcome == .dropped(.decryptFailed))
        #expect(out.allSatisfy { $0 == 0 })
    }

    // MARK: Epochs

    @Test func previousEpochIsErasedAfterGracePeriod() throws {
        let s1 = SecretKey.random(), s2 = SecretKey.random(), s3 = SecretKey.random()
        var ring = ReceiverKeyRing(roomID: room, me: 2)
        ring.install(epoch: 1, secret: s1, members: members, now: 0)
        var a1 = sender(1, alice, epoch: 1, secret: s1)
        let early = try a1.seal(kind: .audio, recipient: .everyone, plaintext: [1], now: 0)
        if case .opened = ring.open(header: try header(.audio, from: 1), payload: early, now: 10) {} else { Issue.record("early") }
        weak var epoch1Key = ring.cachedKeys(epoch: 1).first
        #expect(epoch1Key != nil)

        ring.install(epoch: 2, secret: s2, members: members, now: 1_000)
        #expect(ring.currentEpoch == 2 && ring.previousEpoch == 1 && ring.previousEpochErasedAt == 6_000)
        // Within the grace period old-epoch frames still open.
        let late = try a1.seal(kind: .audio, recipient: .everyone, plaintext: [2], now: 5_999)
        if case .opened = ring.open(header: try header(.audio, from: 1), payload: late, now: 5_999) {} else { Issue.record("late") }
        #expect(epoch1Key != nil)
        // 5 s after the install the previous epoch is gone: its keys are released (and wiped).
        let tooLate = try a1.seal(kind: .audio, recipient: .everyone, plaintext: [3], now: 6_000)
        #expect(ring.open(header: try header(.audio, from: 1), payload: tooLate, now: 6_000) == .dropped(.unknownEpoch))
        #expect(ring.previousEpoch == nil && ring.cachedKeys(epoch: 1).isEmpty)
        #expect(epoch1Key == nil)
        #expect(ring.counters.unknownEpoch == 1)

        // A burst of epochs keeps every replaced one for its own grace (3.3) ...
        var a2 = sender(1, alice, epoch: 2, secret: s2)
        let e2 = try a2.seal(kind: .audio, recipient: .everyone, plaintext: [4], now: 7_000)
        if case .opened = ring.open(header: try header(.audio, from: 1), payload: e2, now: 7_000) {} else { Issue.record("e2") }
        weak var epoch2Key = ring.cachedKeys(epoch: 2).first
        ring.install(epoch: 3, secret: s3, members: members, now: 7_001)
        ring.install(epoch: 4, secret: .random(), members: members, now: 7_002)
        #expect(ring.currentEpoch == 4 && ring.retainedPreviousEpochs == [3, 2])
        let e2late = try a2.seal(kind: .audio, recipient: .everyone, plaintext: [5], now: 7_003)
        if case .opened = ring.open(header: try header(.audio, from: 1), payload: e2late, now: 7_003) {} else { Issue.record("e2 within its grace") }
        #expect(epoch2Key != nil)
        // ... and erases each when its grace ends (epoch 2: 5 s after epoch 3 replaced it).
        let e2after = try a2.seal(kind: .audio, recipient: .everyone, plaintext: [6], now: 12_001)
        #expect(ring.open(header: try header(.audio, from: 1), payload: e2after, now: 12_001) == .dropped(.unknownEpoch))
        #expect(ring.retainedPreviousEpochs == [3] && epoch2Key == nil)
        // At most `maximumPreviousEpochs` are kept: one more install erases the oldest at once.
        for e in UInt64(5)...UInt64(5 + ReceiverKeyRing.maximumPreviousEpochs) {
            ring.install(epoch: e, secret: .random(), members: members, now: 12_002)
        }
        #expect(ring.retainedPreviousEpochs.count == ReceiverKeyRing.maximumPreviousEpochs)
        #expect(!ring.retainedPreviousEpochs.contains(3) && ring.retainedPreviousEpochs.first == UInt64(4 + ReceiverKeyRing.maximumPreviousEpochs))
        #expect(ring.cachedKeys(epoch: 3).isEmpty)
    }

    @Test func futureEpochFramesAreBufferedAndReleasedInOrder() throws {
        let s1 = SecretKey.random(), s2 = SecretKey.random()
        var ring = ReceiverKeyRing(roomID: room, me: 2)
        ring.install(epoch: 1, secret: s1, members: members, now: 0)
        var a = sender(1, alice, epoch: 2, secret: s2)
        let frames = try (0..<5).map { i in try a.seal(kind: .audio, recipient: .everyone, plaintext: [UInt8(i)], now: 100) }
        for f in frames.reversed() { #expect(ring.open(header: try header(.audio, from: 1), payload: f, now: 100) == .buffered) }
        #expect(ring.bufferedFrameCount == 5 && ring.counters.buffered == 5)
        let released = ring.install(epoch: 2, secret: s2, members: members, now: 900)
        #expect(released.map(\.plaintext) == [[4], [3], [2], [1], [0]])  // arrival order
        #expect(ring.counters.opened == 5 && ring.counters.openedFromBuffer == 5 && ring.counters.noKey == 0)
        #expect(ring.bufferedFrameCount == 0)
    }

    @Test func bufferLimitsAndExpiryCountNoKey() throws {
        var ring = ReceiverKeyRing(roomID: room, me: 2)
        ring.install(epoch: 1, secret: .random(), members: members, now: 0)
        let s2 = SecretKey.random()
        var a = sender(1, alice, epoch: 2, secret: s2)
        // 65 frames from one sender: the 65th pushes out the oldest.
        for i in 0..<65 {
            let f = try a.seal(kind: .audio, recipient: .everyone, plaintext: [UInt8(i)], now: 0)
            #expect(ring.open(header: try header(.audio, from: 1), payload: f, now: UInt64(i)) == .buffered)
        }
        #expect(ring.bufferedFrameCount == 64 && ring.counters.noKey == 1)
        // After 1 s each frame expires.
        ring.advance(to: 1_010)
        #expect(ring.bufferedFrameCount == 54 && ring.counters.noKey == 11)
        ring.advance(to: 2_000)
        #expect(ring.bufferedFrameCount == 0 && ring.counters.noKey == 65)
        // Expired frames are not released by a late install.
        #expect(ring.install(epoch: 2, secret: s2, members: members, now: 2_001).isEmpty)
        #expect(ring.counters.buffered == 65 && ring.counters.opened == 0)
    }

    @Test func provisionalEpochOpensLeaderOnlyUntilConfirmed() throws {
        let secret = SecretKey.random()
        var ring = ReceiverKeyRing(roomID: room, me: 3, identity: carol)
        var leader = sender(1, alice, secret: secret), other = sender(2, bob, secret: secret)
        let fromOther = try other.seal(kind: .audio, recipient: .everyone, plaintext: [2], now: 0)
        // Before any key: buffered.
        #expect(ring.open(header: try header(.audio, from: 2), payload: fromOther, now: 0) == .buffered)
        #expect(
            ring.install(
                epoch: 1, secret: secret, members: [RosterMember(index: 1, identity: alice.publicIdentity)],
                provisional: true, now: 10
            ).isEmpty)
        let fromLeader = try leader.seal(kind: .control, recipient: 3, plaintext: [1], now: 10)
        if case .opened = ring.open(header: try header(.control, from: 1, to: 3), payload: fromLeader, now: 11) {} else { Issue.record("leader") }
        let again = try other.seal(kind: .audio, recipient: .everyone, plaintext: [3], now: 12)
        #expect(ring.open(header: try header(.audio, from: 2), payload: again, now: 12) == .buffered)
        // Only control frames from the leader open before the roster; its audio waits too.
        let leaderAudio = try leader.seal(kind: .audio, recipient: .everyone, plaintext: [4], now: 13)
        #expect(ring.open(header: try header(.audio, from: 1), payload: leaderAudio, now: 13) == .buffered)
        let all = members + [RosterMember(index: 3, identity: carol.publicIdentity, joinNonce: Self.nonce(3))]
        let released = ring.confirm(epoch: 1, members: all, now: 20)
        #expect(released.map(\.plaintext) == [[2], [3], [4]])
        #expect(!ring.currentIsProvisional && ring.counters.dropped == 0)
    }

    // MARK: Sending

    @Test func senderSwitchesEpochAfterGraceAndCountsFromZero() throws {
        let s1 = SecretKey.random(), s2 = SecretKey.random(), s3 = SecretKey.random()
        var s = SenderKeyState(roomID: room, me: 1)
        #expect(throws: SendError.noEpoch) { try s.seal(kind: .audio, recipient: .everyone, plaintext: [1], now: 0) }
        s.install(epoch: 1, secret: s1, now: 0)
        #expect(s.sendingEpoch(at: 0) == 1)
        for i in 0..<3 {
            let f = try s.seal(kind: .audio, recipient: .everyone, plaintext: [1], now: 10)
            let h = try SFrameHeader.decode(f).header
            #expect(h.keyID == EpochKeys.keyID(epoch: 1, sender: 1) && h.counter == UInt64(i))
        }
        s.install(epoch: 2, secret: s2, now: 100)
        #expect(s.sendingEpoch(at: 349) == 1 && s.sendingEpoch(at: 350) == 2 && s.pendingSwitchAt == 350)
        let during = try SFrameHeader.decode(try s.seal(kind: .audio, recipient: .everyone, plaintext: [1], now: 349)).header
        #expect(during.keyID == EpochKeys.keyID(epoch: 1, sender: 1) && during.counter == 3)
        // `.newest` reaches the new epoch during the grace period (the addressed ROSTER).
        let newest = try SFrameHeader.decode(try s.seal(kind: .control, recipient: 2, plaintext: [1], now: 349, epoch: .newest)).header
        #expect(newest.keyID == EpochKeys.keyID(epoch: 2, sender: 1) && newest.counter == 0)
        let after = try SFrameHeader.decode(try s.seal(kind: .audio, recipient: .everyone, plaintext: [1], now: 350)).header
        #expect(after.keyID == EpochKeys.keyID(epoch: 2, sender: 1) && after.counter == 1)
        // A third install while a switch is pending completes that switch at once.
        s.install(epoch: 3, secret: s3, now: 400)
        s.install(epoch: 4, secret: .random(), now: 410)
        #expect(s.sendingEpoch(at: 411) == 3 && s.sendingEpoch(at: 660) == 4)
        #expect(s.nextCounter(epoch: 3) == 0)
    }

    @Test func senderRefusesPast2To48FramesAndOversizedPayloads() throws {
        var s = sender(1, alice, secret: .random())
        s.setNextCounterForTesting(SenderKeyState.maximumCounter)
        let last = try s.seal(kind: .audio, recipient: .everyone, plaintext: [1], now: 0)
        #expect(try SFrameHeader.decode(last).header.counter == (1 << 48) - 1)
        #expect(throws: SendError.counterExhausted) { try s.seal(kind: .audio, recipient: .everyone, plaintext: [1], now: 0) }

        var t = sender(1, alice, secret: .random())
        // 1 500-byte audio limit: header (4 bytes: KID 0x010001, CTR < 8) + plaintext + 16.
        _ = try t.seal(kind: .audio, recipient: .everyone, plaintext: [UInt8](repeating: 0, count: 1_480), now: 0)
        #expect(throws: SendError.payloadTooLarge(length: 1_501, limit: 1_500)) {
            try t.seal(kind: .audio, recipient: .everyone, plaintext: [UInt8](repeating: 0, count: 1_481), now: 0)
        }
        #expect(throws: SendError.invalidAddressing) { try t.seal(kind: .audio, recipient: 2, plaintext: [1], now: 0) }
        #expect(throws: SendError.invalidAddressing) { try t.seal(kind: .keys, recipient: 2, plaintext: [1], now: 0) }
        #expect(throws: SendError.invalidAddressing) { try t.seal(kind: .chat, recipient: 1, plaintext: [1], now: 0) }
        #expect(throws: SendError.noPairwiseKey(recipient: 2)) { try t.seal(kind: .chat, recipient: 2, plaintext: [1], now: 0) }
    }

    @Test func privateChatUsesPairwiseKeysFromTheVerifiedRoster() throws {
        let secret = SecretKey.random()
        let all = members + [RosterMember(index: 3, identity: carol.publicIdentity, joinNonce: Self.nonce(3))]
        var a = sender(1, alice, secret: secret)
        a.setPeers(all)
        var bobRing = ReceiverKeyRing(roomID: room, me: 2, identity: bob)
        var carolRing = ReceiverKeyRing(roomID: room, me: 3, identity: carol)
        bobRing.install(epoch: 1, secret: secret, members: all, now: 0)
        carolRing.install(epoch: 1, secret: secret, members: all, now: 0)

        let toBob = try a.seal(kind: .chat, recipient: 2, plaintext: Array("just for you".utf8), now: 0)
        #expect(try SFrameHeader.decode(toBob).header.keyID == 1)  // KID = sender index, epoch bits zero
        guard case let .opened(f) = bobRing.open(header: try header(.chat, from: 1, to: 2), payload: toBob, now: 1) else {
            Issue.record("bob"); return
        }
        #expect(f.plaintext == Array("just for you".utf8) && f.epoch == 0)
        #expect(bobRing.open(header: try header(.chat, from: 1, to: 2), payload: toBob, now: 2) == .dropped(.replayed))
        // Carol holds the epoch secret but not the pair's key; the relay may redirect it to her.
        let redirected = carolRing.open(header: try header(.chat, from: 1, to: 3), payload: toBob, now: 1)
        #expect(redirected == .dropped(.decryptFailed), "\(redirected)")
        #expect(carolRing.open(header: try header(.chat, from: 1, to: 2), payload: toBob, now: 1) == .dropped(.decryptFailed))
        // Broadcast with a pairwise KID: not allowed.
        #expect(bobRing.open(header: try header(.chat, from: 1), payload: toBob, now: 3) == .dropped(.decryptFailed))
        // A ring whose roster lacks Alice cannot take her pairwise frames.
        var stranger = ReceiverKeyRing(roomID: room, me: 2, identity: bob)
        stranger.install(epoch: 1, secret: secret, members: [RosterMember(index: 2, identity: bob.publicIdentity, joinNonce: Self.nonce(2))], now: 0)
        let again = try a.seal(kind: .chat, recipient: 2, plaintext: [1], now: 4)
        #expect(stranger.open(header: try header(.chat, from: 1, to: 2), payload: again, now: 4) == .dropped(.notMember))
        // Counters per pairwise key start at 0 and go on across epochs.
        a.install(epoch: 2, secret: .random(), now: 5)
        let third = try a.seal(kind: .chat, recipient: 2, plaintext: [2], now: 1_000)
        #expect(try SFrameHeader.decode(third).header.counter == 2)

        // Alice rejoins with the same identity and (a lying relay's) same index: a new join
        // nonce, so a new pairwise key. Her new session starts its counter at 0 again, but
        // under another key: no (key, nonce) pair repeats, and Bob, told the new nonce by
        // the verified roster, no longer opens the old session's frames.
        let rejoined = [RosterMember(index: 1, identity: alice.publicIdentity, joinNonce: Self.nonce(9)), members[1]]
        var a2 = sender(1, alice, secret: secret)
        a2.setPeers(rejoined)
        let fresh = try a2.seal(kind: .chat, recipient: 2, plaintext: Array("just for you".utf8), now: 0)
        #expect(try SFrameHeader.decode(fresh).header.counter == 0)
        #expect(Array(fresh.suffix(fresh.count - 2)) != Array(toBob.suffix(toBob.count - 2)), "same key and counter: nonce reuse")
        var bob2 = ReceiverKeyRing(roomID: room, me: 2, identity: bob)
        bob2.install(epoch: 1, secret: secret, members: rejoined, now: 0)
        guard case .opened = bob2.open(header: try header(.chat, from: 1, to: 2), payload: fresh, now: 1) else { Issue.record("rejoined"); return }
        #expect(bob2.open(header: try header(.chat, from: 1, to: 2), payload: again, now: 1) == .dropped(.decryptFailed))
        // Without join nonces in the roster there is no pairwise key at all.
        var noNonces = sender(1, alice, secret: secret)
        noNonces.setPeers(all.map { RosterMember(index: $0.index, identity: $0.identity) })
        #expect(throws: SendError.noPairwiseKey(recipient: 2)) { try noNonces.seal(kind: .chat, recipient: 2, plaintext: [1], now: 0) }
    }
}
