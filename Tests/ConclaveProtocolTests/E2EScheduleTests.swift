import Testing
import ConclaveCrypto
@testable import ConclaveProtocol

/// ``LeaderKeySchedule`` and ``MemberKeySchedule`` together, through ``E2ERoom``
/// (immediate delivery unless a test says otherwise).
@Suite struct E2EScheduleTests {
    /// Every member of `room` has the leader's epoch and security code and no rejections.
    func expectConsistent(_ room: E2ERoom, sourceLocation: SourceLocation = #_sourceLocation) {
        let leader = room.leader
        for peer in room.peers.values {
            #expect(peer.rejections.isEmpty, "#\(peer.index): \(peer.rejections)", sourceLocation: sourceLocation)
            #expect(peer.ring.currentEpoch == leader.leader?.epoch, "#\(peer.index) epoch", sourceLocation: sourceLocation)
            #expect(peer.currentSecurityCode == leader.currentSecurityCode, "#\(peer.index) code", sourceLocation: sourceLocation)
            #expect(peer.ring.counters.decryptFailed == 0 && peer.ring.counters.noKey == 0, sourceLocation: sourceLocation)
        }
    }

    /// Each peer sends one audio frame; returns the frames' ids in `room.sent`.
    @discardableResult
    func everyoneSends(_ room: E2ERoom, _ label: String) throws -> [Int] {
        try room.peers.keys.sorted().map { i in try room.send(from: i, plaintext: Array("\(label) from \(i)".utf8)) }
    }

    func opened(_ peer: E2EPeer, _ room: E2ERoom, _ ids: [Int]) -> Bool {
        let want = Set(ids.filter { room.sent[$0].header.sender.rawValue != peer.index }.map { room.sent[$0].plaintext })
        return want.isSubset(of: Set(peer.received.map(\.plaintext)))
    }

    // MARK: Admission and removal

    @Test func threeMembersAcrossAdmissionAndRemoval() throws {
        let room = E2ERoom()
        try room.createLeader(name: "Host")
        let a = try room.join(index: 2, name: "Ann")
        let b = try room.join(index: 3, name: "Bob")
        room.flush()
        room.run(until: 1_000)  // every sender past its 250 ms switch
        expectConsistent(room)
        #expect(room.leader.leader!.epoch == 3)  // start, two join ratchets
        #expect(a.member!.displayName(of: 3) == "Bob" && b.member!.displayName(of: 1) == "Host")
        #expect(a.member!.securityCode != nil)

        let before = try everyoneSends(room, "before C")
        room.flush()
        for p in room.peers.values { #expect(opened(p, room, before), "#\(p.index)") }

        // C is admitted: the join ratchet.
        let c = try room.join(index: 4, name: "Cy")
        room.flush()
        #expect(c.member!.epoch == 4 && !c.member!.awaitingRoster && c.firstEpoch == 4)
        // Captured frames from before the admission: C has no key for them.
        for id in before {
            let f = room.sent[id]
            #expect(c.receive(header: f.header, payload: f.payload, now: room.now) == .dropped(.unknownEpoch))
        }
        // Even deriving "epoch 3" keys from its own secret does not open them: the ratchet is one-way.
        var guess = ReceiverKeyRing(roomID: room.roomID, me: 4)
        guess.install(epoch: 3, secret: c.ring.currentEpoch == 4 ? c.member!.epochSecret! : .random(), members: room.leader.leader!.roster!.members, now: 0)
        let f0 = room.sent[before[0]]
        #expect(guess.open(header: f0.header, payload: f0.payload, now: 0) == .dropped(.decryptFailed))

        room.run(until: room.now + 300)
        let withC = try everyoneSends(room, "with C")
        room.flush()
        for p in room.peers.values { #expect(opened(p, room, withC), "#\(p.index)") }
        expectConsistent(room)

        // A is removed: a fresh secret that A never receives.
        let oldSecretOfA = a.member!.epochSecret!
        let removed = try room.leave(index: 2)
        room.flush()
        room.run(until: room.now + 300)
        #expect(room.leader.leader!.epoch == 5)
        let afterRemoval = try everyoneSends(room, "after A left")
        room.flush()
        for p in room.peers.values { #expect(opened(p, room, afterRemoval), "#\(p.index)") }
        expectConsistent(room)
        // Frames sent after the removal, captured and fed to A: they wait for a key that never comes.
        for id in afterRemoval {
            let f = room.sent[id]
            #expect(removed.receive(header: f.header, payload: f.payload, now: room.now) == .buffered)
        }
        removed.ring.advance(to: room.now + 1_000)
        #expect(removed.ring.counters.noKey == afterRemoval.count)
        #expect(removed.received.allSatisfy { !Set(afterRemoval.map { room.sent[$0].plaintext }).contains($0.plaintext) })
        // Ratcheting its last secret does not give A the fresh epoch.
        var ratcheted = ReceiverKeyRing(roomID: room.roomID, me: 2)
        ratcheted.install(
            epoch: 5, secret: try EpochKeys.ratchet(epochSecret: oldSecretOfA, roomID: room.roomID, epoch: 4),
            members: room.leader.leader!.roster!.members, now: 0)
        let f1 = room.sent[afterRemoval[0]]
        #expect(ratcheted.open(header: f1.header, payload: f1.payload, now: 0) == .dropped(.decryptFailed))
        // The security code changed with the membership.
        #expect(room.leader.currentSecurityCode != removed.currentSecurityCode)
    }

    @Test func batchedJoinAndLeaveUseFreshSecret() throws {
        let secrets = CountingSecrets()
        let room = E2ERoom()
        let host = E2EPeer(roomID: room.roomID, index: 1, name: "Host")
        host.leader = LeaderKeySchedule(roomID: room.roomID, me: 1, identity: host.identity, displayName: "Host", random: { secrets.next() })
        room.peers[1] = host
        try room.perform(host.leader!.start(now: 0), by: host)
        try room.join(index: 2, name: "Ann")
        try room.join(index: 3, name: "Bob")
        room.flush()
        let before = host.leader!.epoch
        // 4 joins while 2 leaves, and 5 joins and leaves in the same batch: one fresh epoch.
        let d = try room.join(index: 4, name: "Dee", leaderReacts: false)
        let e = try room.join(index: 5, name: "Eve", leaderReacts: false)
        room.peers[2] = nil
        room.peers[5] = nil
        let actions = try host.leader!.changeMembership(admit: [d.entry, e.entry], remove: [2, 5, 77], now: room.now)
        var reasons: [UInt16: KeyPackageReason] = [:], formats: [UInt16: UInt8] = [:]
        for case let .sendKeyPackage(recipient, payload) in actions {
            reasons[recipient] = payload.first == KeyWrap.format ? try KeyWrap(encoded: payload).reason : try KeyPackage(encoded: payload).reason
            formats[recipient] = payload.first
        }
        #expect(reasons == [3: .fresh, 4: .fresh])
        // Bob holds the last roster: a key wrap, with the ROSTER_DELTA inside. Dee is new: a
        // key package, then the addressed ROSTER. Nothing is broadcast.
        #expect(formats == [3: KeyWrap.format, 4: KeyPackage.version])
        #expect(!actions.contains { if case .broadcastControl = $0 { true } else { false } })
        let bobEntry = try bob(room).entry(for: 3)!, hostEntry = try bob(room).entry(for: 1)!
        let pairwise = try KeyWrap.pairwiseKey(roomID: room.roomID, mine: host.identity, leader: hostEntry.member, member: bobEntry.member)
        let key = try KeyWrap.epochKey(pairwise: pairwise, previousSecret: room.peers[3]!.member!.epochSecret!, epoch: before + 1)
        var bobWrap: [UInt8] = []
        for case let .sendKeyPackage(3, payload) in actions { bobWrap = payload }
        let inside = try KeyWrap(encoded: bobWrap).open(key: key).delta
        guard case let .rosterDelta(r) = try E2EControlMessage.decode(inside) else { Issue.record("the wrap carries the ROSTER_DELTA"); return }
        #expect(r.epochChange == .freshSecret && r.epoch == before + 1 && r.removed == [2] && r.changed.map(\.index) == [4])
        #expect(try r.apply(to: bob(room)).entries.map(\.index) == [1, 3, 4])
        try room.perform(actions, by: host)
        room.flush()
        room.run(until: room.now + 300)
        expectConsistent(room)
        #expect(d.member!.displayName(of: 3) == "Bob")
        // Nothing to do: no actions.
        #expect(try host.leader!.changeMembership(admit: [], remove: [99], now: room.now).isEmpty)
        #expect(throws: LeaderError.invalidMember(3)) { try host.leader!.changeMembership(admit: [room.peers[3]!.entry], remove: [], now: 0) }
    }

    /// Bob's verified roster before the batch (the delta's base).
    private func bob(_ room: E2ERoom) throws -> SignedRoster { try #require(room.peers[3]?.member?.roster) }

    // MARK: Substitution by the relay

    @Test func substitutedOrSwappedKeyMaterialIsRejected() throws {
        let (room, a, b) = try E2ERoom.withAnnAndBob()
        let mallory = PrivateIdentity.generate()
        let leader = room.leader.leader!
        let next = leader.epoch + 1

        // A key package signed by another key (the relay's).
        let forged = try KeyPackage.create(
            roomID: room.roomID, recipient: 2, recipientIdentity: a.identity.publicIdentity, joinNonce: a.joinNonce, epoch: next,
            rosterHash: leader.roster!.rosterHash, reason: .fresh, epochSecret: .random(),
            leader: mallory.signingKey)
        #expect(throws: E2EError.keyRejected(.keyPackage(.badSignature("key package")))) {
            try a.member!.receiveKeyPackage(forged.encoded, from: 1)
        }
        // A ROSTER signed by another key.
        let forgedRoster = try SignedRoster.sign(
            roomID: room.roomID, epoch: next, rosterVersion: 99, epochChange: .freshSecret,
            entries: leader.roster!.entries, leader: mallory.signingKey)
        #expect(throws: E2EError.keyRejected(.badSignature)) { try a.member!.receiveControl(forgedRoster.encoded, from: 1) }

        // Bob's genuine key wrap delivered to Ann.
        let rotate = try room.leader.leader!.rotate(now: room.now)
        var packages: [UInt16: [UInt8]] = [:]
        for case let .sendKeyPackage(r, p) in rotate { packages[r] = p }
        #expect(throws: E2EError.keyRejected(.keyPackage(.bindingMismatch("key wrap recipient")))) {
            try a.member!.receiveKeyPackage(packages[3]!, from: 1)
        }
        // ... with the recipient field rewritten: it does not open under Ann's pairwise key.
        var rewritten = packages[3]!
        rewritten[18] = 2
        #expect(throws: E2EError.keyRejected(.keyPackage(.sealOpenFailed))) { try a.member!.receiveKeyPackage(rewritten, from: 1) }
        // ... nor one sealed by the relay under a key of its choosing.
        let relayWrap = try KeyWrap.seal(
            roomID: room.roomID, recipient: 2, epoch: next, rosterHash: KeyWrap(encoded: packages[2]!).rosterHash,
            reason: .rotation, epochSecret: .random(), key: .random())
        #expect(throws: E2EError.keyRejected(.keyPackage(.sealOpenFailed))) { try a.member!.receiveKeyPackage(relayWrap.encoded, from: 1) }
        // ... nor Ann's own wrap sent as if from Bob.
        #expect(throws: E2EError.keyRejected(.notFromLeader(sender: 3))) { try a.member!.receiveKeyPackage(packages[2]!, from: 3) }
        // Nothing was installed by the rejected inputs; the genuine wrap still works.
        #expect(a.member!.epoch == leader.epoch)
        let installs = try a.member!.receiveKeyPackage(packages[2]!, from: 1).filter { if case .install = $0 { true } else { false } }
        #expect(installs.count == 1 && a.member!.epoch == next)
        // Replayed once installed: refused.
        #expect(throws: E2EError.keyRejected(.staleEpoch(current: next, received: next))) { try a.member!.receiveKeyPackage(packages[2]!, from: 1) }

        // The full path (a leader that sends ROSTERs and key packages): the same checks.
        room.leader.leader!.sendsDeltas = false
        let full = try room.leader.leader!.rotate(now: room.now)
        packages = [:]
        for case let .sendKeyPackage(r, p) in full { packages[r] = p }
        guard case let .broadcastControl(fullRoster) = full.first else { Issue.record("roster"); return }
        _ = try a.member!.receiveControl(fullRoster, from: 1)
        #expect(throws: E2EError.keyRejected(.keyPackage(.bindingMismatch("key package recipient")))) {
            try a.member!.receiveKeyPackage(packages[3]!, from: 1)
        }
        var rewrittenPackage = packages[3]!
        rewrittenPackage[18] = 2
        #expect(throws: E2EError.keyRejected(.keyPackage(.badSignature("key package")))) {
            try a.member!.receiveKeyPackage(rewrittenPackage, from: 1)
        }
        #expect(try a.member!.receiveKeyPackage(packages[2]!, from: 1).count == 1 && a.member!.epoch == next + 1)
        _ = b
    }

    @Test func substitutedIdentityChangesTheSecurityCode() throws {
        let room = E2ERoom()
        try room.createLeader()
        let a = try room.join(index: 2, name: "Ann")
        room.flush()
        // The relay gives the host Mallory's identity for index 3 instead of Bob's.
        let bob = E2EPeer(roomID: room.roomID, index: 3, name: "Bob")
        bob.member = MemberKeySchedule(
            roomID: room.roomID, me: 3, identity: bob.identity, joinNonce: bob.joinNonce, leaderIndex: 1,
            leaderIdentity: room.leader.identity.publicIdentity)
        room.peers[3] = bob
        let mallory = PrivateIdentity.generate()
        let substituted = SignedRoster.Entry(index: 3, identity: mallory.publicIdentity, displayName: "Bob", joinNonce: bob.joinNonce)
        try room.perform(room.leader.leader!.changeMembership(admit: [substituted], remove: [], now: room.now), by: room.leader)
        room.flush()
        // Ann verified a roster that lists Mallory as #3 (the signature is the host's).
        #expect(a.rejections.isEmpty && a.member!.roster!.entry(for: 3)?.identity == mallory.publicIdentity)
        // Bob cannot open the package sealed to Mallory, and would reject the roster.
        #expect(bob.rejections.contains { if case .keyPackage = $0 { true } else { false } })
        #expect(bob.member!.epoch == nil)
        // The code Ann reads aloud differs from the one an honest roster gives.
        let honest = RosterHash.compute(
            roomID: room.roomID,
            members: [
                RosterMember(index: 1, identity: room.leader.identity.publicIdentity),
                RosterMember(index: 2, identity: a.identity.publicIdentity),
                RosterMember(index: 3, identity: bob.identity.publicIdentity),
            ])
        let honestCode = SecurityCode(
            roomID: room.roomID, leader: room.leader.leader!.leaderKey, rosterHash: honest,
            chainHead: a.member!.roster!.chainHead)
        #expect(a.member!.securityCode != nil && a.member!.securityCode != honestCode)
        #expect(a.member!.securityCode == room.leader.currentSecurityCode)
        // A roster listing #3 with Mallory's identity is rejected by the real #3 (check 6).
        var bobLikeMember = MemberKeySchedule(
            roomID: room.roomID, me: 3, identity: bob.identity, joinNonce: bob.joinNonce, leaderIndex: 1,
            leaderIdentity: room.leader.identity.publicIdentity)
        let roster = room.leader.leader!.roster!
        let fresh = try SignedRoster.sign(
            roomID: room.roomID, epoch: roster.epoch + 1, rosterVersion: roster.rosterVersion + 1,
            epochChange: .freshSecret, entries: roster.entries, leader: room.leader.identity.signingKey)
        #expect(throws: E2EError.keyRejected(.selfMissing)) { try bobLikeMember.receiveControl(fresh.encoded, from: 1) }
    }

    // MARK: ROSTER and key package rules

    @Test func rosterVersionEpochChangeAndEntryChecks() throws {
        let room = E2ERoom()
        try room.createLeader()
        let a = try room.join(index: 2, name: "Ann")
        try room.join(index: 3, name: "Bob")
        room.flush()
        let key = room.leader.identity.signingKey
        let verified = a.member!.roster!
        let epoch = a.member!.epoch!
        let v = verified.rosterVersion
        let entries = verified.entries
        func roster(
            epoch: UInt64, version: UInt32, change: EpochChange, entries: [SignedRoster.Entry] = entries,
            room roomID: RoomID? = nil
        ) throws -> [UInt8] {
            try SignedRoster.sign(
                roomID: roomID ?? room.roomID, epoch: epoch, rosterVersion: version, epochChange: change,
                chainPrevious: SignedRoster.chainPrevious(after: a.member!.roster, roomID: room.roomID, entries: entries),
                entries: entries, leader: key
            ).encoded
        }
        var m = a.member!
        func rejects(
            _ bytes: [UInt8], from sender: UInt16 = 1, _ reason: KeyRejectionReason,
            sourceLocation: SourceLocation = #_sourceLocation
        ) {
            #expect(throws: E2EError.keyRejected(reason), sourceLocation: sourceLocation) { try m.receiveControl(bytes, from: sender) }
        }
        // roster_version must increase.
        rejects(try roster(epoch: epoch, version: v, change: .none), .staleRosterVersion(last: v, received: v))
        rejects(try roster(epoch: epoch, version: v - 1, change: .none), .staleRosterVersion(last: v, received: v - 1))
        // epoch_change rules.
        rejects(try roster(epoch: epoch + 1, version: v + 1, change: .none), .invalidEpochChange(.none, current: epoch, received: epoch + 1))
        rejects(try roster(epoch: epoch + 2, version: v + 1, change: .joinRatchet), .invalidEpochChange(.joinRatchet, current: epoch, received: epoch + 2))
        rejects(try roster(epoch: epoch, version: v + 1, change: .joinRatchet), .invalidEpochChange(.joinRatchet, current: epoch, received: epoch))
        rejects(try roster(epoch: epoch, version: v + 1, change: .freshSecret), .invalidEpochChange(.freshSecret, current: epoch, received: epoch))
        // Room, sender, hosts, self, hash.
        rejects(try roster(epoch: epoch, version: v + 1, change: .none, room: RoomID(bytes: [UInt8](repeating: 9, count: 16))!), .wrongRoom)
        rejects(try roster(epoch: epoch, version: v + 1, change: .none), from: 3, .notFromLeader(sender: 3))
        var twoHosts = entries; twoHosts[2].role = .host
        rejects(try roster(epoch: epoch, version: v + 1, change: .none, entries: twoHosts), .leaderEntryMismatch)
        var noHost = entries; noHost[0].role = .cohost
        rejects(try roster(epoch: epoch, version: v + 1, change: .none, entries: noHost), .leaderEntryMismatch)
        var hostIsBob = entries; hostIsBob[0].role = .participant; hostIsBob[2].role = .host
        rejects(try roster(epoch: epoch, version: v + 1, change: .none, entries: hostIsBob), .leaderEntryMismatch)
        // A verified roster without this member is its removal, end to end (3.6): reported,
        // and nothing more is accepted (on a copy; the checks below go on with `m`).
        var removedCopy = m
        let removal = try removedCopy.receiveControl(
            try roster(
                epoch: epoch + 1, version: v + 1, change: .freshSecret,
                entries: entries.filter { $0.index != 2 }), from: 1)
        guard case .removedFromRoster(v + 1)? = removal.first, removal.count == 1 else {
            Issue.record("a roster without this member: \(removal)"); return
        }
        #expect(removedCopy.removed && removedCopy.epoch == epoch)
        #expect(throws: E2EError.keyRejected(.selfMissing)) { try removedCopy.receiveControl(try roster(epoch: epoch, version: v + 2, change: .none), from: 1) }
        var otherMe = entries; otherMe[1].identity = PrivateIdentity.generate().publicIdentity
        rejects(try roster(epoch: epoch + 1, version: v + 1, change: .freshSecret, entries: otherMe), .selfMissing)
        rejects(try roster(epoch: epoch, version: v + 1, change: .none, entries: entries.filter { $0.index != 3 }), .rosterHashMismatch)
        rejects([0x01, 0x02], .malformed(.malformed("truncated at room_id")))
        rejects([0x01, 0x01], .malformed(.malformed("version 1")))
        // A reserved type is dropped silently.
        #expect(try m.receiveControl([0x7F, 1, 2, 3], from: 1).isEmpty)
        // Nothing changed.
        #expect(m.epoch == epoch && m.roster == verified)

        // A valid update: names, presenter and roles change; the hash and the code do not.
        let code = m.securityCode
        var renamed = entries; renamed[2].displayName = "Robert"; renamed[2].presenter = true; renamed[2].role = .cohost
        let actions = try m.receiveControl(try roster(epoch: epoch, version: v + 5, change: .none, entries: renamed), from: 1)
        #expect(actions.count == 1)
        #expect(m.displayName(of: 3) == "Robert" && m.presenters == [3] && m.isPresenter(3) && !m.isPresenter(2))
        #expect(m.securityCode == code && m.agreementKey(of: 3) == entries[2].identity.agreementKey)
        // Versions may jump but never go back.
        rejects(try roster(epoch: epoch, version: v + 4, change: .none), .staleRosterVersion(last: v + 5, received: v + 4))

        // Key packages: 3.4 checks 11 and 12.
        let leader = room.leader.leader!
        let hash = leader.roster!.rosterHash
        func package(epoch: UInt64, reason: KeyPackageReason, hash: [UInt8] = hash) throws -> [UInt8] {
            try KeyPackage.create(
                roomID: room.roomID, recipient: 2, recipientIdentity: a.identity.publicIdentity, joinNonce: a.joinNonce, epoch: epoch,
                rosterHash: hash, reason: reason, epochSecret: .random(), leader: key
            ).encoded
        }
        #expect(throws: E2EError.keyRejected(.staleEpoch(current: epoch, received: epoch))) {
            try m.receiveKeyPackage(try package(epoch: epoch, reason: .fresh), from: 1)
        }
        #expect(throws: E2EError.keyRejected(.unexpectedReason(.join))) { try m.receiveKeyPackage(try package(epoch: epoch + 1, reason: .join), from: 1) }
        // Before its ROSTER, a leader-signed package for a later epoch is kept, not installed.
        #expect(try m.receiveKeyPackage(try package(epoch: epoch + 1, reason: .fresh, hash: [UInt8](repeating: 7, count: 32)), from: 1).isEmpty)
        #expect(m.epoch == epoch)
        #expect(throws: E2EError.keyRejected(.notFromLeader(sender: 3))) { try m.receiveKeyPackage(try package(epoch: epoch + 1, reason: .fresh), from: 3) }
        _ = try m.receiveControl(try roster(epoch: epoch + 1, version: v + 6, change: .freshSecret), from: 1)
        #expect(throws: E2EError.keyRejected(.noMatchingRoster(epoch: epoch + 1))) {
            try m.receiveKeyPackage(try package(epoch: epoch + 1, reason: .rotation, hash: [UInt8](repeating: 0, count: 32)), from: 1)
        }
        let installed = try m.receiveKeyPackage(try package(epoch: epoch + 1, reason: .rotation), from: 1)
        guard case let .install(install) = installed.first else { Issue.record("no install"); return }
        #expect(install.epoch == epoch + 1 && install.mode == .full && install.members.map(\.index) == [1, 2, 3])
        #expect(m.epoch == epoch + 1)
    }

    @Test func newMemberWaitsForItsRosterAndChecksItsHash() throws {
        let room = E2ERoom()
        try room.createLeader()
        try room.join(index: 2, name: "Ann")
        room.flush()
        let leader = room.leader.leader!
        let c = PrivateIdentity.generate()
        let cNonce = SecureRandom.bytes(count: Knock.joinNonceLength)
        var m = MemberKeySchedule(
            roomID: room.roomID, me: 4, identity: c, joinNonce: cNonce, leaderIndex: 1, leaderIdentity: room.leader.identity.publicIdentity)
        #expect(m.securityCode == nil)
        let entries = leader.roster!.entries + [SignedRoster.Entry(index: 4, identity: c.publicIdentity, displayName: "Cy", joinNonce: cNonce)]
        let hash = RosterHash.compute(roomID: room.roomID, members: entries.map(\.member))
        let secret = SecretKey.random()
        let kp = try KeyPackage.create(
            roomID: room.roomID, recipient: 4, recipientIdentity: c.publicIdentity, joinNonce: cNonce, epoch: 9, rosterHash: hash,
            reason: .join, epochSecret: secret, leader: room.leader.identity.signingKey)
        let first = try m.receiveKeyPackage(kp.encoded, from: 1)
        guard case let .install(provisional) = first.first else { Issue.record("install"); return }
        #expect(provisional.mode == .provisional && provisional.members.map(\.index) == [1] && m.awaitingRoster)
        // An addressed roster whose members differ from the package's roster hash: rejected (and the client leaves).
        let wrong = try SignedRoster.sign(
            roomID: room.roomID, epoch: 9, rosterVersion: 50, epochChange: .none,
            entries: entries.filter { $0.index != 2 }, leader: room.leader.identity.signingKey)
        #expect(throws: E2EError.keyRejected(.rosterHashMismatch)) { try m.receiveControl(wrong.encoded, from: 1) }
        #expect(m.awaitingRoster)
        let right = try SignedRoster.sign(
            roomID: room.roomID, epoch: 9, rosterVersion: 50, epochChange: .none, entries: entries,
            leader: room.leader.identity.signingKey)
        let confirmed = try m.receiveControl(right.encoded, from: 1)
        guard case let .install(confirm) = confirmed.first else { Issue.record("confirm"); return }
        #expect(confirm.mode == .confirm && confirm.secret == secret && !m.awaitingRoster && m.displayName(of: 4) == "Cy")
        // A new member accepts reasons 1 and 2 only.
        var n = MemberKeySchedule(
            roomID: room.roomID, me: 4, identity: c, joinNonce: cNonce, leaderIndex: 1, leaderIdentity: room.leader.identity.publicIdentity)
        let rotation = try KeyPackage.create(
            roomID: room.roomID, recipient: 4, recipientIdentity: c.publicIdentity, joinNonce: cNonce, epoch: 9, rosterHash: hash,
            reason: .rotation, epochSecret: secret, leader: room.leader.identity.signingKey)
        #expect(throws: E2EError.keyRejected(.unexpectedReason(.rotation))) { try n.receiveKeyPackage(rotation.encoded, from: 1) }
    }

    // MARK: Leadership

    @Test func cleanHandoverMovesLeadershipAndChangesTheCode() throws {
        let (room, a, b) = try E2ERoom.withAnnAndBob()
        let oldCode = b.currentSecurityCode
        let host = room.leader

        // Forged and invalid HANDOVERs first.
        let epoch = b.member!.epoch!
        let mallory = PrivateIdentity.generate()
        var probe = b.member!
        let forged = Handover.sign(
            roomID: room.roomID, epoch: epoch, newLeaderIndex: 2, newLeaderKey: a.identity.signingKey.publicKey,
            oldLeader: mallory.signingKey)
        #expect(throws: E2EError.keyRejected(.badSignature)) { try probe.receiveControl(forged.encoded, from: 1) }
        let stranger = Handover.sign(
            roomID: room.roomID, epoch: epoch, newLeaderIndex: 9, newLeaderKey: mallory.signingKey.publicKey,
            oldLeader: host.identity.signingKey)
        #expect(throws: E2EError.self) { try probe.receiveControl(stranger.encoded, from: 1) }
        let wrongKey = Handover.sign(
            roomID: room.roomID, epoch: epoch, newLeaderIndex: 2, newLeaderKey: mallory.signingKey.publicKey,
            oldLeader: host.identity.signingKey)
        #expect(throws: E2EError.keyRejected(.invalidHandover("key differs from the roster's"))) { try probe.receiveControl(wrongKey.encoded, from: 1) }
        let stale = Handover.sign(
            roomID: room.roomID, epoch: epoch - 1, newLeaderIndex: 2, newLeaderKey: a.identity.signingKey.publicKey,
            oldLeader: host.identity.signingKey)
        #expect(throws: E2EError.self) { try probe.receiveControl(stale.encoded, from: 1) }
        #expect(probe.leaderIndex == 1)

        // The real handover to Ann.
        let (actions, formerLeader) = try host.leader!.handover(to: 2)
        try room.perform(actions, by: host)
        room.flush()
        var retired = host.leader!
        #expect(throws: LeaderError.handedOver) { try retired.rotate(now: room.now) }
        #expect(throws: LeaderError.handedOver) { try retired.handover(to: 3) }
        host.leader = nil
        host.member = formerLeader
        #expect(formerLeader.leaderIndex == 2 && formerLeader.epoch == epoch)
        #expect(b.member!.leaderIndex == 2 && a.member!.leaderIndex == 2)
        #expect(b.memberActions.contains { if case .leaderChanged(2, _, true) = $0 { true } else { false } })
        // The relay's host transfer that follows is expected; another host name is a warning.
        #expect(b.member!.relayReportedHost(2).isEmpty)
        #expect(host.member!.relayReportedHost(3).count == 1)

        // Ann takes over: a fresh epoch (reason 4) and her first ROSTER continues the versions.
        let (newLeader, first) = try LeaderKeySchedule.takeOver(from: a.member!, now: room.now)
        a.member = nil
        a.leader = newLeader
        room.leaderIndex = 2
        var reasons = Set<KeyPackageReason>()
        for case let .sendKeyPackage(_, p) in first { reasons.insert(try KeyPackage(encoded: p).reason) }
        #expect(reasons == [.handover])
        try room.perform(first, by: a)
        room.flush()
        room.run(until: room.now + 300)
        expectConsistent(room)
        #expect(b.member!.roster!.entry(for: 2)?.role == .host && b.member!.roster!.entry(for: 1)?.role == .participant)
        #expect(b.currentSecurityCode != oldCode && host.currentSecurityCode == a.currentSecurityCode)
        // The old leader's signatures no longer count.
        let old = try SignedRoster.sign(
            roomID: room.roomID, epoch: b.member!.epoch!, rosterVersion: 1_000, epochChange: .none,
            entries: b.member!.roster!.entries, leader: host.identity.signingKey)
        // From #1, the new roster's successor, it is held unapplied (it would count only if
        // leadership moved to #1).
        let versionBefore = b.member!.roster!.rosterVersion
        #expect(try b.member!.receiveControl(old.encoded, from: 1).isEmpty)
        #expect(b.member!.roster!.rosterVersion == versionBefore)
        #expect(throws: E2EError.keyRejected(.badSignature)) { try b.member!.receiveControl(old.encoded, from: 2) }
        let frames = try everyoneSends(room, "after handover")
        room.flush()
        for p in room.peers.values { #expect(opened(p, room, frames), "#\(p.index)") }
    }

    /// Leadership never moves on the relay's word (issue 9, C): only a verified HANDOVER, or
    /// the leader's heartbeat falling silent, which moves it to the successor the last
    /// verified roster names.
    @Test func abruptLeaderLossMovesToTheSignedSuccessorOnly() throws {
        let (room, a, b) = try E2ERoom.withAnnAndBob()
        let oldCode = b.currentSecurityCode
        // The signed roster names Ann (admitted first) as successor.
        #expect(b.member!.successor == 2 && room.leader.leader!.successor == 2)
        // The relay's claims move nothing: Bob as host is reported, Ann as host is expected.
        guard case .relayHostDisagrees(3, 1)? = b.member!.relayReportedHost(3).first else { Issue.record("no warning"); return }
        #expect(b.member!.relayReportedHost(2).isEmpty)
        #expect(b.member!.leaderIndex == 1 && !b.member!.leaderChangedWithoutHandover)

        // Heartbeats verify once each; a replayed one is refused.
        let beat = try room.leader.leader!.heartbeatIfDue(now: room.now)
        guard case let .broadcastControl(beatBytes)? = beat.first else { Issue.record("no heartbeat"); return }
        guard case .heartbeat? = try b.member!.receiveControl(beatBytes, from: 1).first else { Issue.record("heartbeat not verified"); return }
        #expect(throws: E2EError.keyRejected(.staleHeartbeat(last: 1, received: 1))) { try b.member!.receiveControl(beatBytes, from: 1) }
        #expect(try room.leader.leader!.heartbeatIfDue(now: room.now + 1).isEmpty)

        // The host vanishes. Ann's client sees the silence, is the successor, and takes over.
        _ = try room.leave(index: 1, leaderReacts: false)
        let (newLeader, first) = try LeaderKeySchedule.takeOver(from: a.member!, removing: [1], now: room.now)
        a.member = nil
        a.leader = newLeader
        room.leaderIndex = 2
        try room.perform(first, by: a)
        room.flush()
        // Bob holds what Ann sent until his own timer says the leader is silent.
        #expect(b.rejections.isEmpty && b.member!.epoch == a.leader!.epoch - 1 && b.member!.leaderIndex == 1)
        let moved = b.member!.leaderLost()
        b.apply(moved, now: room.now)
        #expect(moved.contains { if case .leaderChanged(2, _, false) = $0 { true } else { false } })
        room.run(until: room.now + 300)
        expectConsistent(room)
        #expect(b.member!.leaderChangedWithoutHandover)
        #expect(b.currentSecurityCode != oldCode && b.currentSecurityCode == a.currentSecurityCode)
        #expect(b.member!.roster!.entry(for: 1) == nil)
        let frames = try everyoneSends(room, "after takeover")
        room.flush()
        for p in room.peers.values { #expect(opened(p, room, frames), "#\(p.index)") }
    }

    /// Issue 9 E: members drop a removed member's frames as soon as the removal `ROSTER`
    /// verifies, even under the old epoch and before the fresh key package arrives.
    @Test func removedMemberIsDroppedWhenTheRosterVerifies() throws {
        let (room, a, b) = try E2ERoom.withAnnAndBob()
        room.leader.leader!.sendsDeltas = false
        // A frame Bob seals now, under the current epoch, which the relay holds back.
        let held = try b.sender.seal(kind: .audio, recipient: .everyone, plaintext: [1, 2, 3], now: room.now)
        let header = try FrameHeader(kind: .audio, sender: 3, recipient: .everyone)
        // The leader removes Bob: Ann gets only the ROSTER (the key package is withheld).
        let actions = try room.leader.leader!.remove(3, now: room.now)
        guard case let .broadcastControl(rosterPlain)? = actions.first else { Issue.record("no roster"); return }
        let rosterPayload = try room.leader.sender.seal(kind: .control, recipient: .everyone, plaintext: rosterPlain, now: room.now, epoch: .newest)
        let rosterHeader = try FrameHeader(kind: .control, sender: 1, recipient: .everyone)
        let before = a.ring.counters.removedMember
        a.receive(header: rosterHeader, payload: rosterPayload, now: room.now)
        #expect(a.memberActions.contains { if case .membersRemoved(let gone) = $0 { gone == [3] } else { false } })
        #expect(a.member!.epoch == room.leader.leader!.epoch - 1, "the fresh epoch must not be installed yet")
        guard case .dropped(.removedMember) = a.receive(header: header, payload: held, now: room.now) else {
            Issue.record("a frame from the removed member still opened"); return
        }
        #expect(a.ring.counters.removedMember == before + 1)
        #expect(a.ring.counters.notMember == 0, "a removed member is not a stranger")
    }

    /// The same with a ROSTER_DELTA inside Ann's key wrap: the removal verifies with the
    /// fresh key, and Bob's frames under the epoch Ann still keeps for its grace are dropped.
    @Test func removedMemberIsDroppedWhenTheDeltaInItsWrapVerifies() throws {
        let (room, a, b) = try E2ERoom.withAnnAndBob()
        let held = try b.sender.seal(kind: .audio, recipient: .everyone, plaintext: [1, 2, 3], now: room.now)
        let header = try FrameHeader(kind: .audio, sender: 3, recipient: .everyone)
        let actions = try room.leader.leader!.remove(3, now: room.now)
        var annWrap: [UInt8] = []
        for case let .sendKeyPackage(2, payload) in actions { annWrap = payload }
        let before = a.ring.counters.removedMember
        a.receiveKeyPackage(annWrap, from: 1, now: room.now)
        #expect(a.memberActions.contains { if case .membersRemoved(let gone) = $0 { gone == [3] } else { false } })
        #expect(a.member!.epoch == room.leader.leader!.epoch)
        guard case .dropped(.removedMember) = a.receive(header: header, payload: held, now: room.now) else {
            Issue.record("a frame from the removed member still opened under the previous epoch"); return
        }
        #expect(a.ring.counters.removedMember == before + 1)
    }

    /// Issue 9 F: the roster chain. A roster the relay withholds from one member shows up
    /// as a history difference at the next one, and a member shown another history (a
    /// second chain under the same leader key) ends with another security code.
    /// With full ROSTERs the member who missed one sees another chain head; with deltas it
    /// cannot apply the next one (its base is gone) and says so.
    @Test(arguments: [false, true]) func withheldRosterAndSplitHistoryAreDetected(deltas: Bool) throws {
        let (room, a, b) = try E2ERoom.withAnnAndBob()
        room.leader.leader!.sendsDeltas = deltas
        #expect(a.currentSecurityCode == b.currentSecurityCode)
        let leader = room.leader
        // A rename keeps the membership: same chain head, same code.
        let codeBefore = a.currentSecurityCode
        try room.perform(leader.leader!.updateRoster([MemberUpdate(index: 2, displayName: "Annie")]), by: leader)
        room.flush()
        #expect(a.currentSecurityCode == codeBefore && a.member!.displayName(of: 2) == "Annie")

        // Carol joins; the relay withholds that ROSTER from Bob only (he keeps his epoch).
        let carol = E2EPeer(roomID: room.roomID, index: 4, name: "Carol")
        let join = try leader.leader!.changeMembership(admit: [carol.entry], remove: [], now: room.now)
        guard case let .broadcastControl(joinRoster)? = join.first else { Issue.record("roster"); return }
        let sealed = try leader.sender.seal(kind: .control, recipient: .everyone, plaintext: joinRoster, now: room.now, epoch: .newest)
        for case let .install(i) in join { leader.applyInstall(i, now: room.now) }
        a.receive(header: try FrameHeader(kind: .control, sender: 1, recipient: .everyone), payload: sealed, now: room.now)
        #expect(!a.memberActions.contains { if case .historyDiffers = $0 { true } else { false } })
        // The leader's next heartbeat: Ann agrees; Bob is behind (another version).
        let beat = try leader.leader!.heartbeatIfDue(now: room.now)
        guard case let .broadcastControl(beatBytes)? = beat.first else { Issue.record("heartbeat"); return }
        guard case .heartbeat? = try a.member!.receiveControl(beatBytes, from: 1).first else { Issue.record("ann heartbeat"); return }
        #expect(try a.member!.receiveControl(beatBytes.withSequence(2, leader: leader.identity), from: 1).count == 1)
        // The next change reaches Bob: its chain_prev is a head he never saw.
        let leave = try leader.leader!.changeMembership(admit: [], remove: [4], now: room.now)
        if deltas {
            // The delta comes inside Bob's key wrap; its base is the roster he never got.
            var bobWrap: [UInt8] = []
            for case let .sendKeyPackage(3, payload) in leave { bobWrap = payload }
            // Its key is chained with the epoch Bob missed: he cannot even open it, and says why.
            let bobEpoch = try #require(b.member!.epoch)
            #expect(throws: E2EError.keyRejected(.missedEpoch(current: bobEpoch, received: bobEpoch + 2)), "a withheld roster went unnoticed") {
                try b.member!.receiveKeyPackage(bobWrap, from: 1)
            }
        } else {
            guard case let .broadcastControl(leaveRoster)? = leave.first else { Issue.record("roster"); return }
            let bobActions = try b.member!.receiveControl(leaveRoster, from: 1)
            #expect(bobActions.contains { if case .historyDiffers = $0 { true } else { false } }, "a withheld roster went unnoticed")
        }

        // A member told of the same membership under another history shows another code.
        let forkedPrevious = SHA2.sha256(Array("another history".utf8))
        let current = try #require(a.member!.roster)
        let forked = try SignedRoster.sign(
            roomID: room.roomID, epoch: current.epoch, rosterVersion: current.rosterVersion + 50, epochChange: .none,
            successor: current.successor, chainPrevious: forkedPrevious, entries: current.entries,
            leader: leader.identity.signingKey)
        var split = a.member!
        let splitActions = try split.receiveControl(forked.encoded, from: 1)
        #expect(splitActions.contains { if case .historyDiffers = $0 { true } else { false } })
        #expect(split.securityCode != a.member!.securityCode, "two histories, one code")
    }

    /// A member refuses a key package made for an earlier join of its identity, and a
    /// roster that gives a known index to another identity (issue 9, G).
    @Test func joinNonceAndIndexBindings() throws {
        let room = E2ERoom()
        try room.createLeader()
        let a = try room.join(index: 2, name: "Ann")
        room.flush()
        let leader = room.leader.leader!
        let earlier = SecureRandom.bytes(count: Knock.joinNonceLength)
        let replay = try KeyPackage.create(
            roomID: room.roomID, recipient: 2, recipientIdentity: a.identity.publicIdentity, joinNonce: earlier,
            epoch: leader.epoch + 1, rosterHash: leader.roster!.rosterHash, reason: .fresh,
            epochSecret: .random(), leader: room.leader.identity.signingKey)
        #expect(throws: E2EError.keyRejected(.keyPackage(.bindingMismatch("key package join nonce (made for another join)")))) {
            try a.member!.receiveKeyPackage(replay.encoded, from: 1)
        }
        let mallory = PrivateIdentity.generate()
        var entries = leader.roster!.entries
        entries.append(SignedRoster.Entry(index: 3, identity: mallory.publicIdentity, joinNonce: earlier))
        let first = try SignedRoster.sign(
            roomID: room.roomID, epoch: leader.epoch + 1, rosterVersion: leader.roster!.rosterVersion + 1,
            epochChange: .freshSecret, entries: entries, leader: room.leader.identity.signingKey)
        _ = try a.member!.receiveControl(first.encoded, from: 1)
        entries[entries.count - 1] = SignedRoster.Entry(index: 3, identity: PrivateIdentity.generate().publicIdentity, joinNonce: earlier)
        let second = try SignedRoster.sign(
            roomID: room.roomID, epoch: leader.epoch + 5, rosterVersion: leader.roster!.rosterVersion + 2,
            epochChange: .freshSecret, entries: entries, leader: room.leader.identity.signingKey)
        #expect(throws: E2EError.keyRejected(.indexReused(3))) { try a.member!.receiveControl(second.encoded, from: 1) }
    }

    @Test func updateRosterAndRotation() throws {
        let room = E2ERoom()
        try room.createLeader()
        let a = try room.join(index: 2, name: "Ann")
        room.flush()
        var leader = room.leader.leader!
        #expect(throws: LeaderError.invalidRole("#2 to host")) { try leader.updateRoster([MemberUpdate(index: 2, role: .host)]) }
        #expect(throws: LeaderError.invalidRole("#1 to co_host")) { try leader.updateRoster([MemberUpdate(index: 1, role: .cohost)]) }
        #expect(throws: LeaderError.unknownMember(7)) { try leader.updateRoster([MemberUpdate(index: 7, muted: true)]) }
        #expect(try leader.updateRoster([MemberUpdate(index: 2, displayName: "Ann")]).isEmpty)
        let update = try leader.updateRoster([MemberUpdate(index: 2, muted: true, presenter: true)])
        room.leader.leader = leader
        try room.perform(update, by: room.leader)
        room.flush()
        #expect(a.member!.presenters == [2] && a.member!.roster!.entry(for: 2)!.muted)
        leader = room.leader.leader!
        leader.rotationInterval = 60_000
        #expect(try leader.rotateIfDue(now: room.now + 59_999).isEmpty)
        let rotation = try leader.rotateIfDue(now: room.now + 60_000)
        room.leader.leader = leader
        room.now += 60_000
        try room.perform(rotation, by: room.leader)
        room.flush()
        room.run(until: room.now + 300)
        expectConsistent(room)
        #expect(a.member!.epoch == 3)
    }
}

extension Array where Element == UInt8 {
    /// This `HEARTBEAT`'s content with another sequence number, re-signed by `leader`.
    func withSequence(_ sequence: UInt64, leader: PrivateIdentity) throws -> [UInt8] {
        guard case let .heartbeat(b) = try E2EControlMessage.decode(self) else { throw E2EControlError.malformed("not a heartbeat") }
        return Heartbeat.sign(
            roomID: b.roomID, epoch: b.epoch, rosterVersion: b.rosterVersion, chainHead: b.chainHead,
            sequence: sequence, leader: leader.signingKey
        ).encoded
    }
}
