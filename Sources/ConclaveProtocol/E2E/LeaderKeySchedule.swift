import ConclaveCrypto

/// Why ``LeaderKeySchedule`` refused an operation. Nothing changed.
public enum LeaderError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// `start` was already called, or an operation came before it.
    case notStarted
    case alreadyStarted
    /// This schedule handed leadership over; use the returned ``MemberKeySchedule``.
    case handedOver
    /// The index is not in the roster.
    case unknownMember(UInt16)
    /// An admitted index is already in the roster, repeated, or not a member index.
    case invalidMember(UInt16)
    /// A role change that would leave other than exactly one host, the leader (what).
    case invalidRole(String)
    /// The roster would break a structural rule, list more than 500 members or exceed 74 631 bytes (3.6).
    case roster(E2EControlError)
    /// The epoch number would pass 2^48 − 1, or `roster_version` 2^32 − 1.
    case exhausted
    /// A key package could not be made (e.g. a member's X25519 key is invalid).
    case keyPackage(KeyScheduleError)

    public var description: String {
        switch self {
        case .notStarted: return "the key schedule has not started"
        case .alreadyStarted: return "the key schedule has already started"
        case .handedOver: return "leadership was handed over"
        case let .unknownMember(i): return "#\(i) is not in the roster"
        case let .invalidMember(i): return "#\(i) cannot be admitted"
        case let .invalidRole(what): return "invalid role change: \(what)"
        case let .roster(e): return e.description
        case .exhausted: return "epoch or roster_version space exhausted"
        case let .keyPackage(e): return "key package: \(e)"
        }
    }
}

/// Changes to one roster entry that keep the epoch (`ROSTER` with `epoch_change` 0).
public struct MemberUpdate: Sendable, Hashable {
    public var index: UInt16
    public var role: Role?
    public var muted: Bool?
    public var presenter: Bool?
    /// The right to record (3.8).
    public var recorder: Bool?
    public var displayName: String?

    public init(index: UInt16, role: Role? = nil, muted: Bool? = nil, presenter: Bool? = nil, recorder: Bool? = nil, displayName: String? = nil) {
        self.index = index; self.role = role; self.muted = muted; self.presenter = presenter; self.recorder = recorder
        self.displayName = displayName
    }
}

/// The leader's end-to-end key schedule (the host's client, sections 3.2–3.6): creates
/// epoch secrets, signs `ROSTER`s and `HANDOVER`s, seals key packages.
///
/// Every operation returns the ``LeaderAction``s to carry out in order: the broadcast
/// `ROSTER`, the key packages, the local install, then the addressed `ROSTER`s for new
/// members (control frames always under the leader's newest epoch, see ``LeaderAction``). Admissions and departures
/// handled in one ``changeMembership(admit:remove:now:)`` make one epoch; if anyone left,
/// the fresh secret wins (3.2). Randomness comes from `random` (default: libsodium);
/// sealed boxes inside key packages use libsodium's own randomness.
public struct LeaderKeySchedule: Sendable {
    /// Periodic rotation interval by default: 10 minutes (3.2).
    public static let defaultRotationInterval: UInt64 = 600_000

    public let roomID: RoomID
    public let me: UInt16
    let identity: PrivateIdentity
    private let random: @Sendable () -> SecretKey

    /// The current epoch (0 before ``start(now:)``).
    public private(set) var epoch: UInt64 = 0
    private var epochSecret: SecretKey?
    /// The latest signed roster (the leader's own view; version 1 is never sent).
    public private(set) var roster: SignedRoster?
    /// When the epoch last changed, for ``rotateIfDue(now:)``.
    public private(set) var lastEpochChangeAt: UInt64 = 0
    /// A setting of the leader's client, not sent on the wire.
    public var rotationInterval: UInt64 = defaultRotationInterval
    private var ownEntry: SignedRoster.Entry
    private var handedOver = false
    /// Members other than the leader in the order they were admitted: the successor is the
    /// longest-admitted co-host, else the longest-admitted participant (the relay's rule, 5.5).
    public private(set) var admissionOrder: [UInt16] = []
    /// The last heartbeat's sequence and time (3.6).
    private var heartbeatSequence: UInt64 = 0
    private var lastHeartbeatAt: UInt64?
    /// A setting of the leader's client: milliseconds between heartbeats.
    public var heartbeatInterval: UInt64 = Heartbeat.interval
    /// Send a `ROSTER_DELTA` and `KEY_WRAP`s instead of a full `ROSTER` and key packages to
    /// members that hold the previous roster (3.6, 3.4.1). A setting of the leader's client;
    /// off only in tests of the full path.
    public var sendsDeltas = true
    /// Pairwise wrap keys with members (3.4.1), made when they are admitted: a rekey then
    /// costs no public-key operation per member.
    private var wrapKeys: [UInt16: SecretKey] = [:]

    /// A leader for a room it created. `random` must return 32 fresh random bytes per call;
    /// `joinNonce` is the leader's own (16 random bytes by default).
    public init(
        roomID: RoomID, me: UInt16, identity: PrivateIdentity, displayName: String = "",
        joinNonce: [UInt8] = SecureRandom.bytes(count: Knock.joinNonceLength),
        random: @escaping @Sendable () -> SecretKey = { SecretKey.random(count: 32) }
    ) {
        self.roomID = roomID
        self.me = me
        self.identity = identity
        self.random = random
        self.ownEntry = SignedRoster.Entry(index: me, identity: identity.publicIdentity, role: .host, displayName: displayName, joinNonce: joinNonce)
    }

    /// The successor the next signed roster names (0: none).
    public var successor: UInt16 { Self.successor(in: entries, order: admissionOrder, leader: me) }

    static func successor(in entries: [SignedRoster.Entry], order: [UInt16], leader: UInt16) -> UInt16 {
        let present = order.filter { i in i != leader && entries.contains { $0.index == i } }
        if let cohost = present.first(where: { i in entries.first { $0.index == i }?.role == .cohost }) { return cohost }
        return present.first ?? 0
    }

    /// A signed `HEARTBEAT` (3.6) when ``heartbeatInterval`` has passed since the last one
    /// (at once the first time); no actions otherwise.
    public mutating func heartbeatIfDue(now: UInt64) throws(LeaderError) -> [LeaderAction] {
        let current = try requireLeading()
        if let last = lastHeartbeatAt, now < last &+ heartbeatInterval { return [] }
        lastHeartbeatAt = now
        heartbeatSequence += 1
        let beat = Heartbeat.sign(
            roomID: roomID, epoch: epoch, rosterVersion: current.rosterVersion, chainHead: current.chainHead,
            sequence: heartbeatSequence, leader: identity.signingKey)
        return [.broadcastControl(beat.encoded)]
    }

    /// The leader key members verify against.
    public var leaderKey: Ed25519.PublicKey { identity.signingKey.publicKey }

    /// Members, the leader included.
    public var entries: [SignedRoster.Entry] { roster?.entries ?? [] }

    public var securityCode: SecurityCode? {
        roster.map { SecurityCode(roomID: roomID, leader: leaderKey, rosterHash: $0.rosterHash, chainHead: $0.chainHead) }
    }

    // MARK: Operations

    /// Epoch 1 with a fresh secret and a roster of the leader alone.
    public mutating func start(now: UInt64) throws(LeaderError) -> [LeaderAction] {
        guard !handedOver else { throw .handedOver }
        guard epochSecret == nil else { throw .alreadyStarted }
        let secret = random()
        precondition(secret.count == 32, "epoch secrets are 32 bytes")
        let signed = try sign(epoch: 1, version: 1, change: .none, chainPrevious: SignedRoster.chainStart, entries: [ownEntry])
        epoch = 1
        epochSecret = secret
        roster = signed
        lastEpochChangeAt = now
        return [.install(EpochInstall(epoch: 1, secret: secret, members: signed.members, mode: .full))]
    }

    /// One member admitted: the join ratchet.
    public mutating func admit(_ member: SignedRoster.Entry, now: UInt64) throws(LeaderError) -> [LeaderAction] {
        try changeMembership(admit: [member], remove: [], now: now)
    }

    /// One member left or was removed: a fresh secret.
    public mutating func remove(_ index: UInt16, now: UInt64) throws(LeaderError) -> [LeaderAction] {
        try changeMembership(admit: [], remove: [index], now: now)
    }

    /// Admissions and departures learnt together, as one epoch change. Admitted entries
    /// must be new member indices with role participant or co-host; an index both
    /// admitted and removed is neither; removing an unknown index is ignored (e.g. a
    /// joiner who left the waiting room). Any departure makes a fresh secret (reason 2
    /// for everyone, new members included); otherwise the join ratchet (reason 1 to new
    /// members only). Nothing to do returns no actions.
    public mutating func changeMembership(admit: [SignedRoster.Entry], remove: [UInt16], now: UInt64) throws(LeaderError) -> [LeaderAction] {
        let current = try requireLeading()
        let removing = Set(remove).filter { $0 != me && current.entry(for: $0) != nil }
        let admitted = admit.filter { !Set(remove).contains($0.index) }
        var seen = Set<UInt16>()
        for a in admitted {
            guard ParticipantIndex.memberRange.contains(a.index), current.entry(for: a.index) == nil, seen.insert(a.index).inserted
            else { throw .invalidMember(a.index) }
            guard a.role != .host else { throw .invalidRole("#\(a.index) admitted as host") }
        }
        guard !removing.isEmpty || !admitted.isEmpty else { return [] }
        let entries = (current.entries.filter { !removing.contains($0.index) } + admitted).sorted { $0.index < $1.index }
        let previousOrder = admissionOrder
        admissionOrder = admissionOrder.filter { !removing.contains($0) } + admitted.map(\.index)
        defer { if roster?.rosterVersion == current.rosterVersion { admissionOrder = previousOrder } }
        if removing.isEmpty {
            return try changeEpoch(entries: entries, fresh: false, reason: .join, newMembers: Set(admitted.map(\.index)), now: now)
        }
        return try changeEpoch(entries: entries, fresh: true, reason: .fresh, newMembers: Set(admitted.map(\.index)), now: now)
    }

    /// Periodic rotation: a fresh secret for the same members (reason 3).
    public mutating func rotate(now: UInt64) throws(LeaderError) -> [LeaderAction] {
        let current = try requireLeading()
        return try changeEpoch(entries: current.entries, fresh: true, reason: .rotation, newMembers: [], now: now)
    }

    /// ``rotate(now:)`` if ``rotationInterval`` has passed since the last epoch change.
    public mutating func rotateIfDue(now: UInt64) throws(LeaderError) -> [LeaderAction] {
        _ = try requireLeading()
        guard now >= lastEpochChangeAt &+ rotationInterval else { return [] }
        return try rotate(now: now)
    }

    /// Roles, mute, presenter or names change: a `ROSTER` with `epoch_change` 0. The host
    /// role stays with the leader (move it with ``handover(to:)``).
    public mutating func updateRoster(_ updates: [MemberUpdate]) throws(LeaderError) -> [LeaderAction] {
        let current = try requireLeading()
        var entries = current.entries
        for u in updates {
            guard let i = entries.firstIndex(where: { $0.index == u.index }) else { throw .unknownMember(u.index) }
            if let role = u.role {
                guard (role == .host) == (u.index == me) else { throw .invalidRole("#\(u.index) to \(role)") }
                entries[i].role = role
            }
            if let muted = u.muted { entries[i].muted = muted }
            if let presenter = u.presenter { entries[i].presenter = presenter }
            if let recorder = u.recorder { entries[i].recorder = recorder }
            if let name = u.displayName { entries[i].displayName = name }
        }
        guard entries != current.entries else { return [] }
        let version = try nextVersion(current)
        let successor = Self.successor(in: entries, order: admissionOrder, leader: me)
        if sendsDeltas {
            do { try SignedRoster.validate(entries: entries, successor: successor) } catch { throw .roster(error) }
            if let delta = RosterDelta.make(
                base: current, epoch: epoch, rosterVersion: version, epochChange: .none, successor: successor,
                chainPrevious: current.chainPrevious, entries: entries, rosterHash: current.rosterHash,
                secretCommit: RosterDelta.noCommitment, leader: identity.signingKey)
            {
                roster = SignedRoster(derivedFrom: delta, entries: entries, hashVerified: true)
                if let mine = entries.first(where: { $0.index == me }) { ownEntry = mine }
                return [.broadcastControl(delta.encoded)]
            }
        }
        let signed = try sign(
            epoch: epoch, version: version, change: .none,
            chainPrevious: current.chainPrevious, entries: entries, rosterHash: current.rosterHash)
        roster = signed
        if let mine = signed.entry(for: me) { ownEntry = mine }
        return [.broadcastControl(signed.encoded)]
    }

    /// Names `index` as the next leader: broadcast the returned `HANDOVER` before sending
    /// `transfer_host`. This schedule stops leading; the
    /// returned member schedule follows the new leader.
    public mutating func handover(to index: UInt16) throws(LeaderError) -> (actions: [LeaderAction], member: MemberKeySchedule) {
        let current = try requireLeading()
        guard index != me, let successor = current.entry(for: index) else { throw .unknownMember(index) }
        let message = Handover.sign(
            roomID: roomID, epoch: epoch, newLeaderIndex: index, newLeaderKey: successor.identity.signingKey,
            oldLeader: identity.signingKey)
        handedOver = true
        let member = MemberKeySchedule(
            formerLeader: roomID, me: me, identity: identity, newLeaderIndex: index,
            newLeaderIdentity: successor.identity, epoch: epoch, epochSecret: epochSecret!, roster: current)
        return ([.broadcastControl(message.encoded)], member)
    }

    /// A member becomes leader (after a verified `HANDOVER` naming it, or when the relay
    /// made it host): it continues the roster version, makes itself the host (any other
    /// host entry becomes a participant unless `updates` say otherwise), drops `removing`,
    /// and starts a fresh epoch at once (reason 4 `handover`).
    public static func takeOver(
        from member: MemberKeySchedule, displayName: String? = nil, removing: [UInt16] = [],
        updates: [MemberUpdate] = [], now: UInt64,
        random: @escaping @Sendable () -> SecretKey = { SecretKey.random(count: 32) }
    )
        throws(LeaderError) -> (leader: LeaderKeySchedule, actions: [LeaderAction])
    {
        guard var verified = member.roster, let epoch = member.epoch, let secret = member.epochSecret, !member.awaitingRoster,
            let mine = verified.entry(for: member.me)
        else { throw .notStarted }
        // A roster made from a delta is led from only once its hash is recomputed.
        guard verified.verifyHash() else { throw .roster(.invalidRoster("the roster hash differs from the delta's")) }
        guard member.deferredSignaturesValid, !member.rosterUntrusted else {
            throw .roster(.invalidRoster("the roster rests on a delta that failed its late check"))
        }
        var leader = LeaderKeySchedule(
            roomID: member.roomID, me: member.me, identity: member.identity,
            displayName: displayName ?? mine.displayName, joinNonce: mine.joinNonce, random: random)
        leader.epoch = epoch
        leader.epochSecret = secret
        leader.roster = verified
        // The old order is not known end to end: keep index order (the relay assigns
        // increasing indices), which the next roster's successor follows.
        leader.admissionOrder = verified.entries.map(\.index).filter { $0 != member.me && !removing.contains($0) }
        var entries = verified.entries.filter { $0.index == member.me || !removing.contains($0.index) }
        for i in entries.indices {
            if entries[i].index == member.me {
                entries[i].role = .host
                if let displayName { entries[i].displayName = displayName }
            } else if entries[i].role == .host {
                entries[i].role = .participant
            }
        }
        for u in updates {
            guard let i = entries.firstIndex(where: { $0.index == u.index }) else { throw .unknownMember(u.index) }
            if let role = u.role {
                guard (role == .host) == (u.index == member.me) else { throw .invalidRole("#\(u.index) to \(role)") }
                entries[i].role = role
            }
            if let muted = u.muted { entries[i].muted = muted }
            if let presenter = u.presenter { entries[i].presenter = presenter }
            if let recorder = u.recorder { entries[i].recorder = recorder }
            if let name = u.displayName { entries[i].displayName = name }
        }
        leader.ownEntry = entries.first { $0.index == member.me }!
        // Members hold no wrap key with the new leader yet: its first epoch travels in a
        // full ROSTER and key packages.
        let actions = try leader.changeEpoch(entries: entries, fresh: true, reason: .handover, newMembers: [], now: now, allowDelta: false)
        return (leader, actions)
    }

    // MARK: Internals

    private func requireLeading() throws(LeaderError) -> SignedRoster {
        guard !handedOver else { throw .handedOver }
        guard let roster, epochSecret != nil else { throw .notStarted }
        return roster
    }

    private func nextVersion(_ r: SignedRoster) throws(LeaderError) -> UInt32 {
        guard r.rosterVersion < UInt32.max else { throw .exhausted }
        return r.rosterVersion + 1
    }

    private func sign(
        epoch: UInt64, version: UInt32, change: EpochChange, chainPrevious: [UInt8],
        entries: [SignedRoster.Entry], rosterHash: [UInt8]? = nil
    ) throws(LeaderError) -> SignedRoster {
        do {
            return try SignedRoster.sign(
                roomID: roomID, epoch: epoch, rosterVersion: version, epochChange: change,
                successor: Self.successor(in: entries, order: admissionOrder, leader: me),
                chainPrevious: chainPrevious,
                entries: entries, leader: identity.signingKey, rosterHash: rosterHash)
        } catch {
            throw .roster(error)
        }
    }

    /// The pairwise wrap key with `member` (3.4.1): cached, made on first use.
    private mutating func wrapKey(for member: SignedRoster.Entry) -> SecretKey? {
        if let key = wrapKeys[member.index] { return key }
        let key = try? KeyWrap.pairwiseKey(roomID: roomID, mine: identity, leader: ownEntry.member, member: member.member)
        wrapKeys[member.index] = key
        return key
    }

    /// Builds every message of an epoch change, then commits the new state (nothing
    /// changes if any step throws). Members that hold the current roster get a
    /// `ROSTER_DELTA` and, for a fresh secret, a `KEY_WRAP` each; new members (and everyone,
    /// when the delta would not fit one control frame or `allowDelta` is false) a full
    /// `ROSTER` and key packages.
    private mutating func changeEpoch(
        entries: [SignedRoster.Entry], fresh: Bool, reason: KeyPackageReason,
        newMembers: Set<UInt16>, now: UInt64, allowDelta: Bool = true
    ) throws(LeaderError) -> [LeaderAction] {
        let current = try requireLeading()
        guard epoch < EpochKeys.maximumEpoch else { throw .exhausted }
        let next = epoch + 1
        let secret: SecretKey
        if fresh {
            secret = random()
            precondition(secret.count == 32, "epoch secrets are 32 bytes")
        } else {
            do { secret = try EpochKeys.ratchet(epochSecret: epochSecret!, roomID: roomID, epoch: epoch) } catch { throw .exhausted }
        }
        let broadcastVersion = try nextVersion(current)
        let change: EpochChange = fresh ? .freshSecret : .joinRatchet
        let successor = Self.successor(in: entries, order: admissionOrder, leader: me)
        do { try SignedRoster.validate(entries: entries, successor: successor) } catch { throw .roster(error) }
        // One roster hash per change (a 500-member roster hashes 33 kB).
        let hash = RosterHash.compute(roomID: roomID, members: entries.map(\.member))
        // The broadcast and the addressed ROSTER of one change continue the same chain head.
        let chainPrevious = hash == current.rosterHash ? current.chainPrevious : current.chainHead
        let delta =
            sendsDeltas && allowDelta
            ? RosterDelta.make(
                base: current, epoch: next, rosterVersion: broadcastVersion, epochChange: change, successor: successor,
                chainPrevious: chainPrevious, entries: entries, rosterHash: hash,
                secretCommit: RosterDelta.commitment(roomID: roomID, epoch: next, secret: secret), leader: identity.signingKey)
            : nil
        var latest: SignedRoster
        var actions: [LeaderAction]
        // A fresh secret's delta travels inside each member's key wrap when it fits: one
        // message rekeys a member. Otherwise it is broadcast.
        let embedded = delta.map { fresh && $0.signedPart.count + 64 <= KeyWrap.maximumDeltaLength } ?? false
        let deltaBytes = embedded ? delta!.encoded : []
        if let delta {
            latest = SignedRoster(derivedFrom: delta, entries: entries, hashVerified: true)
            actions = embedded ? [] : [.broadcastControl(delta.encoded)]
        } else {
            latest = try sign(epoch: next, version: broadcastVersion, change: change, chainPrevious: chainPrevious, entries: entries, rosterHash: hash)
            actions = [.broadcastControl(latest.encoded)]
        }
        for e in entries where e.index != me && (fresh || newMembers.contains(e.index)) {
            if delta != nil, !newMembers.contains(e.index), let pairwise = wrapKey(for: e) {
                do {
                    let key = try KeyWrap.epochKey(pairwise: pairwise, previousSecret: epochSecret!, epoch: next)
                    let wrap = try KeyWrap.seal(
                        roomID: roomID, recipient: e.index, epoch: next, rosterHash: hash,
                        reason: reason == .rotation ? .rotation : .fresh, epochSecret: secret, delta: deltaBytes, key: key)
                    actions.append(.sendKeyPackage(recipient: e.index, payload: wrap.encoded))
                    continue
                } catch {
                    throw .keyPackage(.sealOpenFailed)
                }
            }
            if embedded, !newMembers.contains(e.index) {
                // No wrap key (its X25519 key was refused): the delta comes addressed, then a key package.
                actions.append(.sendControl(recipient: e.index, plaintext: deltaBytes))
            }
            let package: KeyPackage
            do {
                package = try KeyPackage.create(
                    roomID: roomID, recipient: e.index, recipientIdentity: e.identity, joinNonce: e.joinNonce, epoch: next,
                    rosterHash: hash, reason: reason, epochSecret: secret, leader: identity.signingKey)
            } catch let error as KeyScheduleError {
                throw .keyPackage(error)
            } catch {
                throw .keyPackage(.sealOpenFailed)
            }
            actions.append(.sendKeyPackage(recipient: e.index, payload: package.encoded))
        }
        let kept = Set(entries.map(\.index))
        let removed = Set(current.entries.map(\.index).filter { !kept.contains($0) })
        // Each removed member gets the signed roster without it, sealed under the epoch it
        // still holds: the relay cannot hide a removal from the member removed (3.6).
        // (A broadcast delta or ROSTER reaches it anyway: it is sealed before the install.)
        if embedded {
            for r in removed.sorted() where r != me { actions.append(.sendControl(recipient: r, plaintext: deltaBytes)) }
        }
        actions.append(.install(EpochInstall(epoch: next, secret: secret, table: MemberTable(entries: entries), mode: .full, removed: removed)))
        if !newMembers.isEmpty {
            // Same roster_version as the broadcast: every member then knows the same last
            // version, which a new leader continues from (3.6).
            let addressed = try sign(epoch: next, version: broadcastVersion, change: .none, chainPrevious: chainPrevious, entries: entries, rosterHash: hash)
            latest = addressed
            for index in newMembers.sorted() {
                actions.append(.sendControl(recipient: index, plaintext: addressed.encoded))
            }
        }
        // Wrap keys of new members now, while admissions are batched: the next rekey needs
        // no X25519 per member. Departed members' keys are dropped.
        let present = Set(entries.map(\.index))
        var keys = wrapKeys.filter { present.contains($0.key) }
        for e in entries where newMembers.contains(e.index) {
            keys[e.index] = try? KeyWrap.pairwiseKey(roomID: roomID, mine: identity, leader: ownEntry.member, member: e.member)
        }
        wrapKeys = keys
        epoch = next
        epochSecret = secret
        roster = latest
        lastEpochChangeAt = now
        return actions
    }
}
