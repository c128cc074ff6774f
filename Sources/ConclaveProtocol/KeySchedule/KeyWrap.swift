import ConclaveCrypto

/// A key wrap (protocol/PROTOCOL.md section 3.4.1): a fresh epoch secret sealed under the
/// pairwise key of the leader and one member, announced by a signed `ROSTER_DELTA` whose
/// `secret_commit` it must match. The payload of a `FRAME` of kind `keys`, like a key
/// package, told apart by its first byte. A member admitted earlier gets one instead of a
/// key package when the leader rekeys: about 1 µs to seal and to open, instead of a sealed
/// box and a signature (about 120 µs and 100 µs here).
///
/// ```
/// u8        format      = 3
/// bytes[16] room_id
/// u16       recipient
/// u64       epoch
/// bytes[32] roster_hash
/// u8        reason       (2 fresh or 3 rotation)
/// bytes[24] nonce        (random)
/// bytes[48 + n] sealed   = XChaCha20-Poly1305(epoch_wrap_key, nonce, epoch_secret || delta, ad = bytes 0–59)
///
/// wrap_key = HKDF-SHA256(salt = "conclave/v2 key-wrap", ikm = X25519(own x25519, peer x25519),
///                        info = room_id || u16 leader_index || leader identity (64) || leader join_nonce (16)
///                               || u16 member_index || member identity (64) || member join_nonce (16), L = 32)
/// epoch_wrap_key = HKDF-SHA256(salt = wrap_key, ikm = epoch_secret(epoch − 1),
///                              info = "conclave/v2 key-wrap epoch" || u64 epoch, L = 32)
/// ```
/// `delta` is empty, or the whole `ROSTER_DELTA` (n ≤ 3 964 bytes) that announces the
/// epoch: then the member needs no broadcast, and one message (one read, one wake-up)
/// rekeys it. 132 + n bytes. The pairwise key is the same for the leader and the member and
/// known to no one else: not the relay, not a removed member. It changes with either
/// side's join nonce, so a rejoin under the same identity gets another.
public struct KeyWrap: Sendable, Equatable {
    public static let format: UInt8 = 3
    public static let nonceLength = XChaCha20Poly1305.nonceByteCount
    /// Bytes covered as associated data: format to reason.
    public static let headerLength = 1 + 16 + 2 + 8 + 32 + 1
    /// A wrap without a delta.
    public static let encodedLength = headerLength + nonceLength + 32 + XChaCha20Poly1305.tagByteCount
    /// The longest delta a wrap carries: a kind-5 (`keys`) payload is at most 4 096 bytes
    /// (5.6), so 3 964. A longer delta is broadcast as a control message instead.
    public static let maximumDeltaLength = 4_096 - encodedLength

    public let roomID: RoomID
    public let recipient: UInt16
    public let epoch: UInt64
    public let rosterHash: [UInt8]
    public let reason: KeyPackageReason
    public let nonce: [UInt8]
    public let sealed: [UInt8]

    /// What an opened wrap holds.
    public struct Opened: Sendable {
        public let epochSecret: SecretKey
        /// The `ROSTER_DELTA` sealed with the secret (empty if none).
        public let delta: [UInt8]
    }

    /// The pairwise wrap key of `leader` and `member` (each with its index, identity and
    /// 16-byte join nonce), computed by either side with its own X25519 key and the other's
    /// public one.
    public static func pairwiseKey(roomID: RoomID, mine: PrivateIdentity, leader: RosterMember, member: RosterMember) throws -> SecretKey {
        precondition(
            leader.joinNonce.count == Knock.joinNonceLength && member.joinNonce.count == Knock.joinNonceLength,
            "wrap keys bind both join nonces")
        let peer = mine.publicIdentity == leader.identity ? member.identity : leader.identity
        let q = try mine.agreementKey.rawSharedSecret(with: peer.agreementKey)
        let info =
            roomID.bytes + leader.index.bigEndianBytes + leader.identity.encoded + leader.joinNonce
            + member.index.bigEndianBytes + member.identity.encoded + member.joinNonce
        return try HKDF.deriveKey(.sha256, salt: Array(Labels.keyWrap.utf8), ikm: q, info: info, length: 32)
    }

    static func header(roomID: RoomID, recipient: UInt16, epoch: UInt64, rosterHash: [UInt8], reason: KeyPackageReason) -> [UInt8] {
        [format] + roomID.bytes + recipient.bigEndianBytes + epoch.bigEndianBytes + rosterHash + [reason.rawValue]
    }

    /// The key one wrap is sealed under: the pairwise key chained with the epoch secret
    /// both sides hold now (the one before `epoch`).
    ///
    /// ```
    /// epoch_wrap_key = HKDF-SHA256(salt = wrap_key, ikm = epoch_secret(epoch − 1),
    ///                              info = "conclave/v2 key-wrap epoch" || u64 epoch, L = 32)
    /// ```
    /// Whoever steals the leader's (or a member's) X25519 key alone still cannot open a
    /// wrap: it would need an epoch secret of the room too.
    public static func epochKey(pairwise: SecretKey, previousSecret: SecretKey, epoch: UInt64) throws -> SecretKey {
        try HKDF.deriveKey(.sha256, salt: pairwise, ikm: previousSecret, info: Array(Labels.keyWrapEpoch.utf8) + epoch.bigEndianBytes, length: 32)
    }

    /// Seals `epochSecret` for `recipient` under `key` (random nonce, or `nonce` for vectors).
    public static func seal(
        roomID: RoomID, recipient: UInt16, epoch: UInt64, rosterHash: [UInt8], reason: KeyPackageReason,
        epochSecret: SecretKey, delta: [UInt8] = [], key: SecretKey, nonce: [UInt8]? = nil
    ) throws -> KeyWrap {
        precondition(rosterHash.count == 32 && epochSecret.count == 32 && delta.count <= maximumDeltaLength)
        let n = nonce ?? SecureRandom.bytes(count: nonceLength)
        precondition(n.count == nonceLength)
        let ad = header(roomID: roomID, recipient: recipient, epoch: epoch, rosterHash: rosterHash, reason: reason)
        let plain = 32 + delta.count
        var box = [UInt8](repeating: 0, count: plain + XChaCha20Poly1305.tagByteCount)
        try box.withUnsafeMutableBytes { out in
            epochSecret.withUnsafeBytes { out.copyMemory(from: $0) }
            delta.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: out[32..<plain]).copyMemory(from: $0) }
            try n.withUnsafeBytes { nb in
                try ad.withUnsafeBytes { a in
                    try XChaCha20Poly1305.seal(
                        inPlace: UnsafeMutableRawBufferPointer(rebasing: out[0..<plain]),
                        tag: UnsafeMutableRawBufferPointer(rebasing: out[plain...]), key: key, nonce: nb, authenticating: a)
                }
            }
        }
        return KeyWrap(roomID: roomID, recipient: recipient, epoch: epoch, rosterHash: rosterHash, reason: reason, nonce: n, sealed: box)
    }

    init(roomID: RoomID, recipient: UInt16, epoch: UInt64, rosterHash: [UInt8], reason: KeyPackageReason, nonce: [UInt8], sealed: [UInt8]) {
        self.roomID = roomID; self.recipient = recipient; self.epoch = epoch; self.rosterHash = rosterHash
        self.reason = reason; self.nonce = nonce; self.sealed = sealed
    }

    public var encoded: [UInt8] {
        Self.header(roomID: roomID, recipient: recipient, epoch: epoch, rosterHash: rosterHash, reason: reason) + nonce + sealed
    }

    /// Parses the structure (132 to 4 096 bytes, format 3, reason 2 or 3).
    public init(encoded b: [UInt8]) throws {
        guard b.count >= Self.encodedLength, b.count <= Self.encodedLength + Self.maximumDeltaLength else {
            throw KeyScheduleError.malformed("key wrap (\(b.count) bytes, expected \(Self.encodedLength) to \(Self.encodedLength + Self.maximumDeltaLength))")
        }
        guard b[0] == Self.format else { throw KeyScheduleError.malformed("key wrap format \(b[0])") }
        self.roomID = RoomID(bytes: b[1..<17])!
        self.recipient = UInt16(b[17]) << 8 | UInt16(b[18])
        self.epoch = b[19..<27].reduce(0) { $0 << 8 | UInt64($1) }
        self.rosterHash = Array(b[27..<59])
        guard let reason = KeyPackageReason(rawValue: b[59]), reason == .fresh || reason == .rotation else {
            throw KeyScheduleError.malformed("key wrap reason \(b[59])")
        }
        self.reason = reason
        self.nonce = Array(b[60..<84])
        self.sealed = Array(b[84...])
    }

    /// Opens the wrap under the pairwise key. Throws ``KeyScheduleError/sealOpenFailed`` if
    /// it was not sealed under `key` with exactly this header.
    public func open(key: SecretKey) throws -> Opened {
        let ad = Self.header(roomID: roomID, recipient: recipient, epoch: epoch, rosterHash: rosterHash, reason: reason)
        var box = sealed
        let plain = box.count - XChaCha20Poly1305.tagByteCount
        defer { box.withUnsafeMutableBytes { $0.initializeMemory(as: UInt8.self, repeating: 0) } }
        do {
            try box.withUnsafeMutableBytes { b in
                try nonce.withUnsafeBytes { nb in
                    try ad.withUnsafeBytes { a in
                        try XChaCha20Poly1305.open(
                            inPlace: UnsafeMutableRawBufferPointer(rebasing: b[0..<plain]),
                            tag: UnsafeRawBufferPointer(rebasing: b[plain...]), key: key, nonce: nb, authenticating: a)
                    }
                }
            }
        } catch {
            throw KeyScheduleError.sealOpenFailed
        }
        let secret = SecretKey(SecretBytes(count: 32) { out in box.withUnsafeBytes { out.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<32])) } })
        return Opened(epochSecret: secret, delta: Array(box[32..<plain]))
    }
}
