import ConclaveCrypto

/// Why ``SenderKeyState`` refused to seal a frame. Carries no key material or plaintext.
public enum SendError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// No epoch installed yet (a new member before its roster is verified, 3.2).
    case noEpoch
    /// The key's counter reached 2^48 (2.5): wait for the next epoch (or, for private
    /// chat, stop: the pair's key never changes within a room).
    case counterExhausted
    /// Addressed chat to a member with no identity in the verified roster, or this state
    /// was made without our identity.
    case noPairwiseKey(recipient: UInt16)
    /// Kind and recipient break section 5.6's addressing rules, or kind 5 (not SFrame).
    case invalidAddressing
    /// The frame would exceed the kind's payload limit.
    case payloadTooLarge(length: Int, limit: Int)
    /// The caller's output buffer cannot hold the frame.
    case bufferTooSmall(required: Int, available: Int)

    public var description: String {
        switch self {
        case .noEpoch: return "no sending epoch installed"
        case .counterExhausted: return "the sending counter is exhausted for this key"
        case let .noPairwiseKey(r): return "no private chat key for #\(r)"
        case .invalidAddressing: return "kind and recipient do not fit section 5.6"
        case let .payloadTooLarge(l, limit): return "payload of \(l) bytes exceeds \(limit)"
        case let .bufferTooSmall(r, a): return "output buffer too small: need \(r) bytes, have \(a)"
        }
    }
}

/// A participant's sending keys (sections 2.5, 2.7, 2.8 and 3.3): its own SFrame key in
/// the current sending epoch, a pending switch to a newly installed epoch, and one
/// counter per key, starting at 0 and never reused.
///
/// After ``install(epoch:secret:now:)`` the state keeps sealing under the old epoch for
/// 250 ms (receivers get their key packages first), then switches. The first epoch is
/// used at once. Installing another epoch while a switch is pending completes that switch
/// at once (receivers that have the newest epoch still hold the one before it).
///
/// Sealing allocates nothing (header and metadata in place, counter in place) except
/// the `[UInt8]` convenience's result and a private-chat key's first use.
public struct SenderKeyState: Sendable {
    /// The delay between installing an epoch and sending under it (3.3).
    public static let switchDelay: UInt64 = 250
    /// The highest counter a key may use (2.5).
    public static let maximumCounter: UInt64 = (1 << 48) - 1

    /// Which epoch key to seal under.
    public enum EpochChoice: Sendable, Hashable {
        /// The sending epoch: the old one during the 250 ms grace.
        case scheduled
        /// The newest installed epoch even during the grace: the leader's control frames
        /// (every member already holds that epoch, see ``LeaderAction``).
        case newest
    }

    public let roomID: RoomID
    public let me: UInt16
    private let metadata: FrameMetadata
    private let identity: PrivateIdentity?

    private var active: SendingKey?
    private var pending: SendingKey?
    private var switchAt: UInt64 = 0
    private var peers = MemberTable([])
    /// Our join nonce, from our own entry of the verified roster (private chat keys, 2.7).
    private var ownJoinNonce: [UInt8] = []
    /// Pairwise keys, found through `pairwiseIndex`; never dropped, so a counter never restarts.
    private var pairwise: [SendingKey] = []
    private var pairwiseIndex: [PairwiseID: Int] = [:]

    /// `identity` enables private chat (pairwise keys with the peers of ``setPeers(_:)``).
    public init(roomID: RoomID, me: UInt16, identity: PrivateIdentity? = nil) {
        self.roomID = roomID
        self.me = me
        self.metadata = FrameMetadata(roomID: roomID)
        self.identity = identity
    }

    /// The epoch frames are sealed under at `now` with ``EpochChoice/scheduled``.
    public func sendingEpoch(at now: UInt64) -> UInt64? {
        if let pending, now >= switchAt { return pending.epoch }
        return active?.epoch
    }

    /// The newest installed epoch.
    public var newestEpoch: UInt64? { pending?.epoch ?? active?.epoch }

    /// When the pending switch happens, if one is pending.
    public var pendingSwitchAt: UInt64? { pending == nil ? nil : switchAt }

    /// Installs `epoch` (newer than every installed one): at once if none is installed,
    /// otherwise `switchDelay` ms after `now`. Derives our own key only; the secret is not kept.
    ///
    /// With `immediately` (an epoch whose verified roster removed members, 3.3) the switch
    /// happens at once: a removed member holds the old epoch, so nothing more is sealed
    /// under it.
    public mutating func install(epoch: UInt64, secret: SecretKey, now: UInt64, immediately: Bool = false) {
        precondition(epoch > (newestEpoch ?? 0) && epoch <= EpochKeys.maximumEpoch, "sending epochs only move forward")
        let key: SFrameKey
        do { key = try EpochKeys.senderFrameKey(epochSecret: secret, roomID: roomID, epoch: epoch, sender: me) } catch {
            preconditionFailure("HKDF with fixed lengths cannot fail")
        }
        let fresh = SendingKey(epoch: epoch, key: key)
        if active == nil || immediately {
            active = fresh
            pending = nil
            return
        }
        if let p = pending { active = p }  // complete the earlier switch now
        pending = fresh
        switchAt = now &+ Self.switchDelay
    }

    /// The peers of the latest verified roster, for private chat keys (2.7).
    public mutating func setPeers(_ members: [RosterMember]) { setPeers(MemberTable(members)) }

    /// ``setPeers(_:)`` with a roster's member table (not copied).
    public mutating func setPeers(_ table: MemberTable) {
        peers = table
        if let mine = peers.member(me), !mine.joinNonce.isEmpty { ownJoinNonce = mine.joinNonce }
        peers.revoke(me)
    }

    private mutating func advance(to now: UInt64) {
        if let p = pending, now >= switchAt {
            active = p
            pending = nil
        }
    }

    // MARK: Sealing

    /// Seals `plaintext` for a `FRAME` of `kind` (1–4) from us to `recipient` into
    /// `output`; returns the payload length. Addressed chat uses the pairwise key with the
    /// recipient (2.7); everything else our key in the chosen epoch (KID = epoch << 16 | me).
    public mutating func seal(
        kind: FrameKind, recipient: ParticipantIndex, plaintext: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer, now: UInt64,
        epoch choice: EpochChoice = .scheduled
    ) throws(SendError) -> Int {
        guard kind != .keys, (try? FrameHeader(kind: kind, sender: ParticipantIndex(me), recipient: recipient)) != nil else {
            throw .invalidAddressing
        }
        advance(to: now)
        let slot: Slot
        if kind == .chat && recipient != .everyone {
            let peerIndex = recipient.rawValue
            guard let identity, let peer = peers.member(peerIndex) else { throw .noPairwiseKey(recipient: peerIndex) }
            let id = PairwiseID(sender: peerIndex, peer: peer.identity, peerJoinNonce: peer.joinNonce)
            if let known = pairwiseIndex[id] {
                slot = .pairwise(known)
            } else {
                guard
                    let key = try? PrivateChatKeys.frameKey(
                        me: identity, peer: peer.identity, roomID: roomID, sender: me, recipient: peerIndex,
                        senderJoinNonce: ownJoinNonce, recipientJoinNonce: peer.joinNonce)
                else { throw .noPairwiseKey(recipient: peerIndex) }
                pairwise.append(SendingKey(epoch: 0, key: key))
                pairwiseIndex[id] = pairwise.count - 1
                slot = .pairwise(pairwise.count - 1)
            }
        } else if choice == .newest, pending != nil {
            slot = .pending
        } else if active != nil {
            slot = .active
        } else {
            throw .noEpoch
        }
        let metadata = self.metadata, me = self.me
        return try withKey(slot) { (k) throws(SendError) -> Int in
            guard k.nextCounter <= Self.maximumCounter else { throw .counterExhausted }
            let length = k.key.sealedLength(counter: k.nextCounter, plaintextLength: plaintext.count)
            guard length <= kind.payloadLimit else { throw .payloadTooLarge(length: length, limit: kind.payloadLimit) }
            guard length <= output.count else { throw .bufferTooSmall(required: length, available: output.count) }
            let sealed: Int? = withUnsafeTemporaryAllocation(byteCount: FrameMetadata.length, alignment: 1) { md in
                metadata.write(kind: kind.rawValue, flags: 0, sender: me, recipient: recipient.rawValue, into: md)
                return try? k.key.seal(counter: k.nextCounter, metadata: UnsafeRawBufferPointer(md), plaintext: plaintext, into: output)
            }
            guard let sealed else { throw .payloadTooLarge(length: length, limit: SFrame.maximumPlaintextLength) }
            k.nextCounter += 1
            return sealed
        }
    }

    /// ``seal(kind:recipient:plaintext:into:now:epoch:)`` returning a new array (allocates).
    public mutating func seal(
        kind: FrameKind, recipient: ParticipantIndex, plaintext: [UInt8], now: UInt64,
        epoch choice: EpochChoice = .scheduled
    ) throws(SendError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: plaintext.count + SFrameHeader.maximumEncodedLength + 16)
        let result = plaintext.withUnsafeBytes { p in
            out.withUnsafeMutableBytes { o in
                Result { () throws(SendError) -> Int in try seal(kind: kind, recipient: recipient, plaintext: p, into: o, now: now, epoch: choice) }
            }
        }
        let n = try result.get()
        out.removeLast(out.count - n)
        return out
    }

    /// The next counter of our key in `epoch` (tests and diagnostics).
    public func nextCounter(epoch: UInt64) -> UInt64? {
        [active, pending].compactMap { $0 }.first { $0.epoch == epoch }?.nextCounter
    }

    /// Moves the counter of our newest epoch key (tests of counter exhaustion).
    mutating func setNextCounterForTesting(_ value: UInt64) {
        if pending != nil { pending!.nextCounter = value } else { active!.nextCounter = value }
    }

    private enum Slot { case active, pending, pairwise(Int) }

    private mutating func withKey<R>(_ slot: Slot, _ body: (inout SendingKey) throws(SendError) -> R) throws(SendError) -> R {
        switch slot {
        case .active: return try body(&active!)
        case .pending: return try body(&pending!)
        case let .pairwise(i): return try body(&pairwise[i])
        }
    }
}

/// One of our keys and its next counter.
struct SendingKey: Sendable {
    let epoch: UInt64
    let key: SFrameKey
    var nextCounter: UInt64 = 0
}
