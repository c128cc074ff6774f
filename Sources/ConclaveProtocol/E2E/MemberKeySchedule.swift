import ConclaveCrypto

/// A non-leader participant's end-to-end key schedule (sections 3.2–3.6): verifies key
/// packages, `ROSTER`s and `HANDOVER`s against the pinned leader key, tracks the epoch
/// and the verified roster, and follows leadership changes.
///
/// Inputs are the plaintexts the client already has (a key package payload; a control
/// frame's plaintext after ``ReceiverKeyRing`` opened it) with the `FRAME` sender.
/// Outputs are ``MemberAction``s; any failed check throws ``E2EError/keyRejected(_:)``
/// and changes nothing. No clock, no I/O, no randomness.
public struct MemberKeySchedule: Sendable {
    /// Messages kept from a host the user has not confirmed yet (oldest dropped first).
    public static let heldMessageLimit = 16
    /// `ROSTER`s with `epoch_change` 2 kept while their key packages are on the way.
    public static let pendingRosterLimit = 4

    public let roomID: RoomID
    public let me: UInt16
    let identity: PrivateIdentity

    // Leadership.
    public private(set) var leaderIndex: UInt16
    public private(set) var leaderIdentity: PublicIdentity
    public var leaderKey: Ed25519.PublicKey { leaderIdentity.signingKey }
    /// True once leadership moved without a verified `HANDOVER` (the leader fell silent and
    /// the roster's successor took over): the client keeps showing it with the code.
    public private(set) var leaderChangedWithoutHandover: Bool
    private var expectedRelayHost: UInt16?
    /// Messages from the roster's successor while the leader is current (oldest dropped
    /// first): replayed if leadership moves to it.
    private var held: [(sender: UInt16, message: Held)] = []
    /// A verified roster removed this member: nothing more is accepted.
    public private(set) var removed = false
    /// The split (the successor acting as leader while the leader is alive) was reported.
    private var splitReported = false
    /// This member's own join nonce (4.2): its key packages and roster entry must carry it.
    public let joinNonce: [UInt8]
    /// Every index → identity seen in a verified roster: an index never changes hands (3.6).
    private var seenIdentities: [UInt16: PublicIdentity] = [:]
    /// The highest heartbeat sequence verified from the current leader.
    private var lastHeartbeatSequence: UInt64 = 0
    /// The leader's ``ControlPart``s of a message in progress (one message, ≤ 74 631 bytes).
    private var reassembly = ControlReassembly()

    // Epoch.
    /// The installed epoch (provisional while ``awaitingRoster``).
    public private(set) var epoch: UInt64?
    var epochSecret: SecretKey?
    private var epochRosterHash: [UInt8]?
    /// A new member's epoch came from a key package and waits for its addressed `ROSTER`;
    /// the client MUST NOT send frames of kinds 1–4 meanwhile.
    public private(set) var awaitingRoster = false
    /// Verified rosters announcing a fresh epoch whose secret has not arrived, with the
    /// `ROSTER_DELTA`'s commitment to it (nil after a full `ROSTER`).
    private var pendingFresh: [UInt64: (roster: SignedRoster, commit: [UInt8]?, removed: Set<UInt16>)] = [:]
    /// The pairwise wrap key with the current leader (3.4.1), made when its first roster verifies.
    private var wrapKey: (leader: UInt16, key: SecretKey)?
    /// `ROSTER_DELTA`s that came inside a key wrap, authenticated by the pairwise key, whose
    /// Ed25519 signature is checked on the next heartbeat, off the rekey's path (3.4.1).
    private var unverifiedDeltas: [RosterDelta] = []
    /// At most this many wait; one more has the oldest checked at once.
    public static let unverifiedDeltaLimit = 8
    /// A late check failed (a delta's signature, or its roster hash): the roster rests on
    /// something the leader did not sign. Reported once; this member never leads from it.
    /// Cleared by the next full `ROSTER`.
    public private(set) var rosterUntrusted = false
    /// Key packages (signature verified) for epochs whose `ROSTER` has not verified yet.
    private var earlyPackages: [UInt64: [UInt8]] = [:]

    // Roster.
    /// The latest verified `ROSTER`.
    public private(set) var roster: SignedRoster?
    var lastRosterVersion: UInt32?

    private enum Held: Sendable {
        case control([UInt8])
        case keyPackage([UInt8])
    }

    /// A new member: `me` from `ADMITTED`, the leader's index from its host entry, and
    /// the leader identity pinned by the invite. If the invite's host differs from the
    /// relay's, pass the relay's host only with the user's consent and
    /// `leaderConfirmedWithoutPin: true` (4.1): the schedule then reports
    /// ``leaderChangedWithoutHandover``.
    public init(
        roomID: RoomID, me: UInt16, identity: PrivateIdentity, joinNonce: [UInt8], leaderIndex: UInt16, leaderIdentity: PublicIdentity,
        leaderConfirmedWithoutPin: Bool = false
    ) {
        self.roomID = roomID
        self.me = me
        self.identity = identity
        self.joinNonce = joinNonce
        self.leaderIndex = leaderIndex
        self.leaderIdentity = leaderIdentity
        self.leaderChangedWithoutHandover = leaderConfirmedWithoutPin
    }

    /// The old leader after a handover (``LeaderKeySchedule/handover(to:)``).
    init(
        formerLeader roomID: RoomID, me: UInt16, identity: PrivateIdentity, newLeaderIndex: UInt16, newLeaderIdentity: PublicIdentity,
        epoch: UInt64, epochSecret: SecretKey, roster: SignedRoster
    ) {
        self.init(
            roomID: roomID, me: me, identity: identity, joinNonce: roster.entry(for: me)?.joinNonce ?? [UInt8](repeating: 0, count: Knock.joinNonceLength),
            leaderIndex: newLeaderIndex, leaderIdentity: newLeaderIdentity)
        for e in roster.entries { seenIdentities[e.index] = e.identity }
        self.epoch = epoch
        self.epochSecret = epochSecret
        self.epochRosterHash = roster.rosterHash
        self.roster = roster
        self.lastRosterVersion = roster.rosterVersion
        self.expectedRelayHost = newLeaderIndex
    }

    // MARK: What the client shows and uses

    /// The verified roster's members (index and identity).
    public var members: [RosterMember] { roster?.members ?? [] }

    /// A member's display name from the verified roster (nil if unknown or empty).
    public func displayName(of index: UInt16) -> String? {
        guard let name = roster?.entry(for: index)?.displayName, !name.isEmpty else { return nil }
        return name
    }

    /// Members the verified roster marks presenter: screen frames from anyone else are dropped (2.6).
    public var presenters: Set<UInt16> { Set(roster?.entries.filter(\.presenter).map(\.index) ?? []) }

    public func isPresenter(_ index: UInt16) -> Bool { roster?.entry(for: index)?.presenter ?? false }

    /// A peer's X25519 key from the verified roster, for private chat (2.7).
    public func agreementKey(of index: UInt16) -> X25519.PublicKey? { roster?.entry(for: index)?.identity.agreementKey }

    /// The roster hash of the verified roster (3.5).
    public var rosterHash: [UInt8]? { roster?.rosterHash }

    /// The security code (4.3) over the room, the current leader key and the verified
    /// roster; nil until a roster is verified. Recompute and show it whenever
    /// `rosterChanged` or `leaderChanged` is reported.
    public var securityCode: SecurityCode? {
        roster.map { SecurityCode(roomID: roomID, leader: leaderKey, rosterHash: $0.rosterHash, chainHead: $0.chainHead) }
    }

    // MARK: Inputs

    /// A key package (the payload of a `FRAME` of kind 5 from `sender`), section 3.4 checks 1–12.
    public mutating func receiveKeyPackage(_ payload: [UInt8], from sender: UInt16) throws(E2EError) -> [MemberAction] {
        guard !removed else { throw .keyRejected(.selfMissing) }
        if payload.first == KeyWrap.format { return try receiveKeyWrap(payload, from: sender) }
        if sender != leaderIndex, let s = roster?.successor, s == sender, s != 0 {
            // Held only if the successor signed it: forged packages cannot push the real
            // takeover out of the bounded queue.
            guard let key = roster?.entry(for: s)?.identity.signingKey, let package = try? KeyPackage(encoded: payload),
                key.isValidSignature(package.signature, for: Array(payload.dropLast(64)), context: Labels.keyPackageSignature)
            else { throw .keyRejected(.notFromLeader(sender: sender)) }
            hold(sender, .keyPackage(payload))
            return []
        }
        guard sender == leaderIndex else { throw .keyRejected(.notFromLeader(sender: sender)) }
        let opened: KeyPackage.Opened
        do {
            opened = try KeyPackage(encoded: payload).open(expectedRoom: roomID, me: me, myIdentity: identity, joinNonce: joinNonce, leader: leaderKey)
        } catch let error as KeyScheduleError {
            throw .keyRejected(.keyPackage(error))
        } catch {
            throw .keyRejected(.keyPackage(.malformed("key package")))
        }
        guard opened.epoch >= 1, opened.epoch <= EpochKeys.maximumEpoch else {
            throw .keyRejected(.keyPackage(.epochOutOfRange(opened.epoch)))
        }
        if let current = epoch {
            guard opened.epoch > current else { throw .keyRejected(.staleEpoch(current: current, received: opened.epoch)) }
            guard opened.reason != .join, !awaitingRoster else { throw .keyRejected(.unexpectedReason(opened.reason)) }
            guard let announced = pendingFresh[opened.epoch] else {
                // Signed by the leader for a later epoch whose ROSTER has not been verified
                // yet (it may wait in the key ring for the key this package's predecessor
                // brings): keep it, bounded, and check it when that ROSTER verifies.
                earlyPackages[opened.epoch] = payload
                while earlyPackages.count > Self.pendingRosterLimit, let oldest = earlyPackages.keys.min() { earlyPackages[oldest] = nil }
                return []
            }
            return try installFresh(epoch: opened.epoch, secret: opened.epochSecret, rosterHash: opened.rosterHash, announced: announced)
        }
        // A new member: reason 1 or 2, installed provisionally until the addressed ROSTER.
        guard opened.reason == .join || opened.reason == .fresh else { throw .keyRejected(.unexpectedReason(opened.reason)) }
        epoch = opened.epoch
        epochSecret = opened.epochSecret
        epochRosterHash = opened.rosterHash
        awaitingRoster = true
        let leader = RosterMember(index: leaderIndex, identity: leaderIdentity)
        return [.install(EpochInstall(epoch: opened.epoch, secret: opened.epochSecret, members: [leader], mode: .provisional))]
    }

    /// A control plaintext (kind 4, opened by the ring) from `sender`. Reserved types are
    /// ignored (no action); `ROSTER` and `HANDOVER` are checked as in section 3.6.
    public mutating func receiveControl(_ plaintext: [UInt8], from sender: UInt16) throws(E2EError) -> [MemberAction] {
        guard !removed else { throw .keyRejected(.selfMissing) }
        if sender != leaderIndex, let s = roster?.successor, s == sender, s != 0 {
            hold(sender, .control(plaintext))
            return []
        }
        guard sender == leaderIndex else { throw .keyRejected(.notFromLeader(sender: sender)) }
        var message: E2EControlMessage
        do { message = try E2EControlMessage.decode(plaintext) } catch {
            if case .unknownType = error { return [] }
            throw .keyRejected(.malformed(error))
        }
        if case let .part(part) = message {
            // A piece of a longer message (a ROSTER of more than 108 long names): checked as
            // a whole once every piece has arrived.
            guard let whole = reassembly.add(part) else { return [] }
            do { message = try E2EControlMessage.decode(whole) } catch {
                if case .unknownType = error { return [] }
                throw .keyRejected(.malformed(error))
            }
            guard case .roster = message else { throw .keyRejected(.malformed(.malformed("only a ROSTER may be sent in parts"))) }
        }
        switch message {
        case .part:
            preconditionFailure("handled above")
        case let .roster(r): return try receiveRoster(r, from: sender)
        case let .rosterDelta(d): return try receiveDelta(d, from: sender)
        case let .handover(h): return try receiveHandover(h)
        case let .knockNotice(n):
            guard n.isSigned(by: leaderKey) else { throw .keyRejected(.badSignature) }
            guard n.roomID == roomID else { throw .keyRejected(.malformed(.malformed("knock notice room"))) }
            return [.knockNotice(index: n.waitingIndex, identity: n.identity, displayName: n.displayName)]
        case .moderationRequest:
            // Only the leader acts on requests; one relayed to a member is dropped.
            throw .keyRejected(.malformed(.malformed("moderation request to a member")))
        case .recordingNotice, .recordingConsent:
            // Any member's; the participant checks them against the verified roster (3.8).
            return []
        case let .heartbeat(b):
            guard b.isSigned(by: leaderKey) else { throw .keyRejected(.badSignature) }
            guard b.roomID == roomID else { throw .keyRejected(.wrongRoom) }
            guard b.sequence > lastHeartbeatSequence else { throw .keyRejected(.staleHeartbeat(last: lastHeartbeatSequence, received: b.sequence)) }
            lastHeartbeatSequence = b.sequence
            var actions: [MemberAction] = [.heartbeat(epoch: b.epoch, rosterVersion: b.rosterVersion)]
            // The successor's messages are held only when it acts as leader; the leader
            // signing a heartbeat after that means two leaders: a split room.
            if !splitReported, let s = held.first(where: { $0.sender != leaderIndex })?.sender {
                splitReported = true
                actions.append(.successorClaimsKeys(successor: s))
            }
            // A roster made from a ROSTER_DELTA carries the delta's signed roster hash:
            // recomputed here, at most once per roster and off the rekey's path (3.6).
            if var r = roster, !r.hashVerified, !rosterUntrusted {
                if r.verifyHash() {
                    roster = r
                } else {
                    rosterUntrusted = true
                    actions.append(.historyDiffers(rosterVersion: r.rosterVersion))
                }
            }
            actions += verifyDeferredSignatures()
            // Same roster version, another history: the leader signed rosters this member
            // never saw in that order (a fork, or a withheld roster). Show it.
            if let r = roster, b.rosterVersion == r.rosterVersion, b.chainHead != r.chainHead {
                actions.append(.historyDiffers(rosterVersion: b.rosterVersion))
            }
            return actions
        }
    }

    /// The relay reports that `index` now holds the host role (`role_changed` to 2). The
    /// relay's word never moves key leadership (3.6): the host after a verified `HANDOVER`,
    /// the current leader, or the verified roster's successor (whom the relay's own rule
    /// also picks after the leader leaves) are expected; anyone else is reported.
    public mutating func relayReportedHost(_ index: UInt16) -> [MemberAction] {
        if let expected = expectedRelayHost {
            if index == expected { expectedRelayHost = nil; return [] }
            return [.relayHostDisagrees(relayHost: index, leader: expected)]
        }
        if index == leaderIndex || (index != me && index == roster?.successor) { return [] }
        return [.relayHostDisagrees(relayHost: index, leader: leaderIndex)]
    }

    /// The successor the last verified roster names (nil: none, or it is this member).
    public var successor: UInt16? {
        guard let s = roster?.successor, s != 0 else { return nil }
        return s
    }

    /// The leader's heartbeat was silent past the timeout (the client's clock, 3.6):
    /// leadership moves to the verified roster's successor, if it is another member, and
    /// what that successor sent meanwhile is checked in order. If the successor is this
    /// member, the client takes over instead (``LeaderKeySchedule/takeOver(from:displayName:removing:updates:now:random:)``).
    public mutating func leaderLost() -> [MemberAction] {
        guard let s = successor, s != me, s != leaderIndex, let entry = roster?.entry(for: s) else { return [] }
        let deferred = verifyDeferredSignatures()
        leaderIndex = s
        reassembly.reset()
        leaderIdentity = entry.identity
        leaderChangedWithoutHandover = true
        lastHeartbeatSequence = 0
        expectedRelayHost = nil
        return deferred + [.leaderChanged(index: s, key: entry.identity.signingKey, handover: false)] + replayHeld(from: s)
    }

    private mutating func replayHeld(from index: UInt16) -> [MemberAction] {
        let replay = held.filter { $0.sender == index }
        held = []
        var actions: [MemberAction] = []
        for (_, message) in replay {
            do {
                switch message {
                case let .control(bytes): actions += try receiveControl(bytes, from: index)
                case let .keyPackage(bytes): actions += try receiveKeyPackage(bytes, from: index)
                }
            } catch {
                if case let .keyRejected(reason) = error { actions.append(.heldMessageRejected(reason)) }
            }
        }
        return actions
    }

    /// A `KEY_WRAP` (3.4.1) from the leader: the fresh secret of an epoch a verified
    /// `ROSTER_DELTA` announced, sealed under this member's pairwise key with the leader.
    private mutating func receiveKeyWrap(_ payload: [UInt8], from sender: UInt16) throws(E2EError) -> [MemberAction] {
        // A new leader's first epoch always comes in key packages; a successor's wrap is refused.
        guard sender == leaderIndex else { throw .keyRejected(.notFromLeader(sender: sender)) }
        let wrap: KeyWrap
        do { wrap = try KeyWrap(encoded: payload) } catch let error as KeyScheduleError {
            throw .keyRejected(.keyPackage(error))
        } catch {
            throw .keyRejected(.keyPackage(.malformed("key wrap")))
        }
        guard wrap.roomID == roomID else { throw .keyRejected(.keyPackage(.bindingMismatch("key wrap room"))) }
        guard wrap.recipient == me else { throw .keyRejected(.keyPackage(.bindingMismatch("key wrap recipient"))) }
        guard let current = epoch, let previous = epochSecret, !awaitingRoster, let key = wrapKey, key.leader == leaderIndex else {
            throw .keyRejected(.keyPackage(.bindingMismatch("key wrap before this member's first roster from the leader")))
        }
        guard wrap.epoch > current else { throw .keyRejected(.staleEpoch(current: current, received: wrap.epoch)) }
        // Sealed under the pairwise key chained with the epoch both sides hold: only the
        // next epoch's wrap opens (one for a later epoch would need a secret not held yet).
        guard wrap.epoch == current + 1 else { throw .keyRejected(.missedEpoch(current: current, received: wrap.epoch)) }
        let opened: KeyWrap.Opened
        do {
            let epochKey = try KeyWrap.epochKey(pairwise: key.key, previousSecret: previous, epoch: wrap.epoch)
            opened = try wrap.open(key: epochKey)
        } catch { throw .keyRejected(.keyPackage(.sealOpenFailed)) }
        var actions: [MemberAction] = []
        if !opened.delta.isEmpty {
            // The ROSTER_DELTA announcing this epoch, sealed with its secret: checked exactly
            // as if it had come as the leader's control message, before the secret.
            let message: E2EControlMessage
            do { message = try E2EControlMessage.decode(opened.delta) } catch { throw .keyRejected(.malformed(error)) }
            guard case let .rosterDelta(d) = message, d.epochChange == .freshSecret, d.epoch == wrap.epoch, d.rosterHash == wrap.rosterHash else {
                throw .keyRejected(.keyPackage(.bindingMismatch("key wrap delta")))
            }
            // The pairwise key authenticates it as the leader's; its signature is checked on
            // the next heartbeat (a member whose X25519 key was stolen is the only one who
            // could be shown a forged one, and it then raises history_differs).
            actions = try receiveDelta(d, from: sender, signatureDeferred: true)
            if unverifiedDeltas.count >= Self.unverifiedDeltaLimit { actions += verifyDeferredSignatures() }
            unverifiedDeltas.append(d)
        }
        guard let announced = pendingFresh[wrap.epoch] else {
            // Sealed under the pairwise key, so from the leader: kept (bounded) until its
            // delta verifies, like an early key package.
            earlyPackages[wrap.epoch] = payload
            while earlyPackages.count > Self.pendingRosterLimit, let oldest = earlyPackages.keys.min() { earlyPackages[oldest] = nil }
            return actions
        }
        // A wrap answers a ROSTER_DELTA only: its commitment is what ties the secret to a
        // signed statement (a full ROSTER's epochs come in signed key packages).
        guard announced.commit != nil else {
            throw .keyRejected(.keyPackage(.bindingMismatch("key wrap for an epoch a full ROSTER announced")))
        }
        return actions + (try installFresh(epoch: wrap.epoch, secret: opened.epochSecret, rosterHash: wrap.rosterHash, announced: announced))
    }

    /// Installs a fresh epoch whose secret came in a key package or a key wrap, once it
    /// matches the verified roster that announced it (and the delta's commitment, if any).
    private mutating func installFresh(
        epoch next: UInt64, secret: SecretKey, rosterHash: [UInt8],
        announced: (roster: SignedRoster, commit: [UInt8]?, removed: Set<UInt16>)
    ) throws(E2EError) -> [MemberAction] {
        guard announced.roster.rosterHash == rosterHash else { throw .keyRejected(.noMatchingRoster(epoch: next)) }
        if let commit = announced.commit, RosterDelta.commitment(roomID: roomID, epoch: next, secret: secret) != commit {
            throw .keyRejected(.secretCommitMismatch(epoch: next))
        }
        epoch = next
        epochSecret = secret
        epochRosterHash = rosterHash
        pendingFresh = pendingFresh.filter { $0.key > next }
        return [.install(EpochInstall(epoch: next, secret: secret, table: announced.roster.memberTable, mode: .full, removed: announced.removed))]
    }

    /// Checks the signatures of the deltas that came inside key wraps (under the key of the
    /// leader that sent them); each that fails is a `historyDiffers`. Done on every verified
    /// heartbeat, and before this member leads.
    public mutating func verifyDeferredSignatures() -> [MemberAction] {
        let pending = unverifiedDeltas
        unverifiedDeltas = []
        let failed = pending.filter { !$0.isSigned(by: leaderKey) }
        if !failed.isEmpty { rosterUntrusted = true }
        return failed.map { .historyDiffers(rosterVersion: $0.rosterVersion) }
    }

    /// True when no delta waits for its signature check, or every waiting one verifies.
    var deferredSignaturesValid: Bool { unverifiedDeltas.allSatisfy { $0.isSigned(by: leaderKey) } }

    // MARK: Checks

    private mutating func receiveRoster(_ r: SignedRoster, from sender: UInt16) throws(E2EError) -> [MemberAction] {
        // 1 (structure) was checked by the decoder. 2: signature.
        guard r.isSigned(by: leaderKey) else { throw .keyRejected(.badSignature) }
        let actions = try accept(r, commit: nil, from: sender)
        rosterUntrusted = false
        return actions
    }

    /// A `ROSTER_DELTA` (3.6): verified like a `ROSTER`, then applied to the roster this
    /// member holds. A member without a verified roster (a new member before its addressed
    /// `ROSTER`) ignores it: its own full roster follows.
    private mutating func receiveDelta(_ d: RosterDelta, from sender: UInt16, signatureDeferred: Bool = false) throws(E2EError) -> [MemberAction] {
        guard signatureDeferred || d.isSigned(by: leaderKey) else { throw .keyRejected(.badSignature) }
        guard d.roomID == roomID else { throw .keyRejected(.wrongRoom) }
        guard let base = roster, !awaitingRoster else { return [] }
        if let last = lastRosterVersion, d.rosterVersion <= last {
            throw .keyRejected(.staleRosterVersion(last: last, received: d.rosterVersion))
        }
        let derived: SignedRoster
        do { derived = try d.apply(to: base) } catch {
            switch error {
            case let .baseMismatch(have, needs): throw .keyRejected(.deltaBaseMismatch(have: have, needs: needs))
            case let .invalid(what): throw .keyRejected(.malformed(.invalidRoster(what)))
            }
        }
        return try accept(derived, commit: d.epochChange == .none ? nil : d.secretCommit, delta: d, from: sender)
    }

    /// Checks 3–7 of a verified `ROSTER` (or the roster a verified delta made), then records it.
    /// With `delta`, only what it changed is checked again: the rest is the verified base's.
    private mutating func accept(_ r: SignedRoster, commit: [UInt8]?, delta: RosterDelta? = nil, from sender: UInt16) throws(E2EError) -> [MemberAction] {
        // 3: room, version.
        guard r.roomID == roomID else { throw .keyRejected(.wrongRoom) }
        if let last = lastRosterVersion, r.rosterVersion <= last {
            throw .keyRejected(.staleRosterVersion(last: last, received: r.rosterVersion))
        }
        // 4: epoch change.
        let current = epoch ?? 0
        let fits: Bool
        switch r.epochChange {
        case .none: fits = epoch != nil && r.epoch == current
        case .joinRatchet:
            guard epoch != nil, epochSecret != nil else { throw .keyRejected(.noEpoch) }
            fits = !awaitingRoster && r.epoch == current + 1
        case .freshSecret: fits = r.epoch > current
        }
        guard fits, r.epoch <= EpochKeys.maximumEpoch else {
            throw .keyRejected(.invalidEpochChange(r.epochChange, current: current, received: r.epoch))
        }
        // 5: exactly one host entry: the sender, with the leader key.
        // Counted in place: copying 500 entries to read a byte each costs more than the rest.
        let hostCount = r.entries.withUnsafeBufferPointer { b in
            var n = 0
            for i in b.indices where b[i].role == .host { n += 1 }
            return n
        }
        guard hostCount == 1, let host = r.entry(for: sender), host.role == .host, host.identity.signingKey == leaderKey else {
            throw .keyRejected(.leaderEntryMismatch)
        }
        // 6: ourselves, with our identity and join nonce. A verified, newer roster without
        // us, once we were in one, is the leader removing us (the relay cannot make one).
        guard let mine = r.entry(for: me) else {
            guard let held = roster, !awaitingRoster, held.entry(for: me) != nil else { throw .keyRejected(.selfMissing) }
            removed = true
            return [.removedFromRoster(rosterVersion: r.rosterVersion)]
        }
        guard mine.identity == identity.publicIdentity, mine.joinNonce == joinNonce else {
            throw .keyRejected(.selfMissing)
        }
        // An index never changes hands within a room.
        for e in delta?.changed ?? r.entries {
            if let seen = seenIdentities[e.index], seen != e.identity { throw .keyRejected(.indexReused(e.index)) }
        }
        // A ratcheted secret must be the one the delta committed to.
        var ratcheted: SecretKey?
        if r.epochChange == .joinRatchet {
            do { ratcheted = try EpochKeys.ratchet(epochSecret: epochSecret!, roomID: roomID, epoch: current) } catch {
                throw .keyRejected(.invalidEpochChange(r.epochChange, current: current, received: r.epoch))
            }
            if let commit, RosterDelta.commitment(roomID: roomID, epoch: r.epoch, secret: ratcheted!) != commit {
                throw .keyRejected(.secretCommitMismatch(epoch: r.epoch))
            }
        }
        // 7: same members as the epoch's.
        let hash = r.rosterHash
        if r.epochChange == .none, hash != epochRosterHash { throw .keyRejected(.rosterHashMismatch) }

        // Every check passed: record.
        var actions: [MemberAction] = []
        var gone: Set<UInt16> = []
        if let previous = roster {
            gone = delta.map { Set($0.removed) } ?? Set(previous.entries.map(\.index)).subtracting(r.entries.map(\.index))
            if !gone.isEmpty { actions.append(.membersRemoved(gone)) }
            // Each roster names the chain head before its membership: a gap means a roster
            // was withheld, or this member was shown another history.
            let expected = r.rosterHash == previous.rosterHash ? previous.chainPrevious : previous.chainHead
            if r.chainPrevious != expected { actions.append(.historyDiffers(rosterVersion: r.rosterVersion)) }
        }
        switch r.epochChange {
        case .none:
            if awaitingRoster {
                awaitingRoster = false
                actions.append(.install(EpochInstall(epoch: current, secret: epochSecret!, table: r.memberTable, mode: .confirm)))
            }
        case .joinRatchet:
            let next = ratcheted!
            epoch = r.epoch
            epochSecret = next
            epochRosterHash = hash
            actions.append(.install(EpochInstall(epoch: r.epoch, secret: next, table: r.memberTable, mode: .full)))
        case .freshSecret:
            pendingFresh[r.epoch] = (r, commit, gone)
            while pendingFresh.count > Self.pendingRosterLimit, let oldest = pendingFresh.keys.min() { pendingFresh[oldest] = nil }
        }
        lastRosterVersion = r.rosterVersion
        roster = r
        for e in delta?.changed ?? r.entries where seenIdentities[e.index] == nil { seenIdentities[e.index] = e.identity }
        if wrapKey?.leader != leaderIndex, let leaderEntry = r.entry(for: leaderIndex), let mine = r.entry(for: me) {
            // Made once per leader, on its first roster: a rekey then needs no X25519 here.
            if let key = try? KeyWrap.pairwiseKey(roomID: roomID, mine: identity, leader: leaderEntry.member, member: mine.member) {
                wrapKey = (leaderIndex, key)
            }
        }
        actions.append(.rosterChanged)
        if r.epochChange == .freshSecret, let early = earlyPackages.removeValue(forKey: r.epoch) {
            do { actions += try receiveKeyPackage(early, from: sender) } catch {
                if case let .keyRejected(reason) = error { actions.append(.heldMessageRejected(reason)) }
            }
        }
        earlyPackages = earlyPackages.filter { $0.key > (epoch ?? 0) }
        return actions
    }

    private mutating func receiveHandover(_ h: Handover) throws(E2EError) -> [MemberAction] {
        guard h.isSigned(by: leaderKey) else { throw .keyRejected(.badSignature) }
        guard h.roomID == roomID else { throw .keyRejected(.wrongRoom) }
        guard let current = epoch, h.epoch == current else { throw .keyRejected(.invalidHandover("epoch \(h.epoch) is not current")) }
        guard let entry = roster?.entry(for: h.newLeaderIndex) else {
            throw .keyRejected(.invalidHandover("#\(h.newLeaderIndex) is not in the verified roster"))
        }
        guard h.newLeaderIndex != leaderIndex else { throw .keyRejected(.invalidHandover("names the current leader")) }
        guard entry.identity.signingKey == h.newLeaderKey else {
            throw .keyRejected(.invalidHandover("key differs from the roster's"))
        }
        let deferred = verifyDeferredSignatures()
        leaderIndex = h.newLeaderIndex
        reassembly.reset()
        leaderIdentity = entry.identity
        lastHeartbeatSequence = 0
        expectedRelayHost = h.newLeaderIndex
        return deferred + [.leaderChanged(index: h.newLeaderIndex, key: h.newLeaderKey, handover: true)] + replayHeld(from: h.newLeaderIndex)
    }

    private mutating func hold(_ sender: UInt16, _ message: Held) {
        if held.count >= Self.heldMessageLimit { held.removeFirst() }
        held.append((sender, message))
    }
}
