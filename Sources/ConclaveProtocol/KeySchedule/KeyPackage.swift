import ConclaveCrypto

/// Why a key package was sent.
public enum KeyPackageReason: UInt8, Sendable, CaseIterable {
    /// The first epoch of a room, or a new member's package after the join ratchet.
    case join = 1
    /// A fresh secret after a leave or a removal.
    case fresh = 2
    /// A periodic rotation.
    case rotation = 3
    /// The new leader's first secret after a leadership change.
    case handover = 4
}

/// A key package (protocol/PROTOCOL.md section 3.4): an epoch secret sealed to one
/// recipient's X25519 key and signed by the leader's Ed25519 key. The payload of a
/// FRAME of kind `keys`.
///
/// ```
/// u8        version      = 2
/// bytes[16] room_id
/// u16       recipient    (participant index)
/// u64       epoch
/// bytes[32] roster_hash
/// u8        reason
/// u16       sealed_length (= 186)
/// bytes[]   sealed       = crypto_box_seal(inner, recipient.x25519)
/// bytes[64] signature    = Ed25519(leader, "conclave/v1 key-package", all bytes above)
///
/// inner (138 bytes) = room_id || u16 recipient || recipient fingerprint (32)
///                     || join_nonce (16) || u64 epoch || roster_hash || epoch_secret (32)
/// ```
/// `join_nonce` is the recipient's, from its knock (4.2): a key package made for an
/// earlier join of the same identity does not open for a later one.
/// ```
/// ```
public struct KeyPackage: Sendable, Equatable {
    public static let version: UInt8 = 2
    public static let innerLength = 16 + 2 + 32 + 16 + 8 + 32 + 32
    public static let sealedLength = innerLength + SealedBox.overhead
    /// Total encoded length: 1 + 16 + 2 + 8 + 32 + 1 + 2 + 186 + 64 = 312.
    public static let encodedLength = 1 + 16 + 2 + 8 + 32 + 1 + 2 + sealedLength + 64

    public let roomID: RoomID
    public let recipient: UInt16
    public let epoch: UInt64
    public let rosterHash: [UInt8]
    public let reason: KeyPackageReason
    public let sealed: [UInt8]
    public let signature: [UInt8]

    /// What a recipient learns from a verified package.
    public struct Opened: Sendable {
        public let epoch: UInt64
        public let epochSecret: SecretKey
        public let rosterHash: [UInt8]
        public let reason: KeyPackageReason
    }

    /// Seals and signs a package.
    public static func create(
        roomID: RoomID, recipient: UInt16, recipientIdentity: PublicIdentity, joinNonce: [UInt8], epoch: UInt64,
        rosterHash: [UInt8], reason: KeyPackageReason, epochSecret: SecretKey,
        leader: Ed25519.PrivateKey
    ) throws -> KeyPackage {
        precondition(rosterHash.count == 32 && epochSecret.count == 32 && joinNonce.count == Knock.joinNonceLength)
        var inner = roomID.bytes + recipient.bigEndianBytes + recipientIdentity.fingerprint.bytes + joinNonce + epoch.bigEndianBytes + rosterHash
        epochSecret.withUnsafeBytes { inner.append(contentsOf: $0) }
        defer { inner.withUnsafeMutableBytes { $0.initializeMemory(as: UInt8.self, repeating: 0) } }
        let sealed = try SealedBox.seal(inner, to: recipientIdentity.agreementKey)
        let unsigned = signedPart(roomID: roomID, recipient: recipient, epoch: epoch, rosterHash: rosterHash, reason: reason, sealed: sealed)
        let signature = try leader.signature(for: unsigned, context: Labels.keyPackageSignature)
        return KeyPackage(roomID: roomID, recipient: recipient, epoch: epoch, rosterHash: rosterHash, reason: reason, sealed: sealed, signature: signature)
    }

    static func signedPart(roomID: RoomID, recipient: UInt16, epoch: UInt64, rosterHash: [UInt8], reason: KeyPackageReason, sealed: [UInt8]) -> [UInt8] {
        [version] + roomID.bytes + recipient.bigEndianBytes + epoch.bigEndianBytes + rosterHash + [reason.rawValue]
            + UInt16(sealed.count).bigEndianBytes + sealed
    }

    public var encoded: [UInt8] {
        Self.signedPart(roomID: roomID, recipient: recipient, epoch: epoch, rosterHash: rosterHash, reason: reason, sealed: sealed) + signature
    }

    /// Parses the structure; checks lengths only (no keys involved).
    public init<Bytes: Collection>(encoded bytes: Bytes) throws where Bytes.Element == UInt8 {
        guard bytes.count == Self.encodedLength else {
            throw KeyScheduleError.malformed("key package (\(bytes.count) bytes, expected \(Self.encodedLength))")
        }
        let b = Array(bytes)
        guard b[0] == Self.version else { throw KeyScheduleError.malformed("key package version \(b[0])") }
        self.roomID = RoomID(bytes: b[1..<17])!
        self.recipient = UInt16(b[17]) << 8 | UInt16(b[18])
        self.epoch = b[19..<27].reduce(0) { $0 << 8 | UInt64($1) }
        self.rosterHash = Array(b[27..<59])
        guard let reason = KeyPackageReason(rawValue: b[59]) else { throw KeyScheduleError.malformed("key package reason \(b[59])") }
        self.reason = reason
        let sealedLength = Int(b[60]) << 8 | Int(b[61])
        guard sealedLength == Self.sealedLength else { throw KeyScheduleError.malformed("key package sealed length \(sealedLength)") }
        self.sealed = Array(b[62..<(62 + sealedLength)])
        self.signature = Array(b[(62 + sealedLength)...])
    }

    init(roomID: RoomID, recipient: UInt16, epoch: UInt64, rosterHash: [UInt8], reason: KeyPackageReason, sealed: [UInt8], signature: [UInt8]) {
        self.roomID = roomID; self.recipient = recipient; self.epoch = epoch; self.rosterHash = rosterHash
        self.reason = reason; self.sealed = sealed; self.signature = signature
    }

    /// Verifies the leader's signature, opens the sealed part and checks every binding:
    /// room, recipient index and fingerprint, epoch and roster hash must match both the
    /// signed header and the caller's own view. Throws ``KeyScheduleError``; the caller
    /// reports it as `key_rejected`.
    public func open(expectedRoom: RoomID, me: UInt16, myIdentity: PrivateIdentity, joinNonce: [UInt8], leader: Ed25519.PublicKey) throws -> Opened {
        let unsigned = Self.signedPart(roomID: roomID, recipient: recipient, epoch: epoch, rosterHash: rosterHash, reason: reason, sealed: sealed)
        guard leader.isValidSignature(signature, for: unsigned, context: Labels.keyPackageSignature) else {
            throw KeyScheduleError.badSignature("key package")
        }
        guard roomID == expectedRoom else { throw KeyScheduleError.bindingMismatch("key package room") }
        guard recipient == me else { throw KeyScheduleError.bindingMismatch("key package recipient") }
        let inner: SecretBytes
        do { inner = try SealedBox.open(sealed, recipient: myIdentity.agreementKey) } catch { throw KeyScheduleError.sealOpenFailed }
        guard inner.count == Self.innerLength else { throw KeyScheduleError.malformed("key package inner part") }
        let fields = inner.withUnsafeBytes { Array($0[0..<(Self.innerLength - 32)]) }
        let expectedHead = roomID.bytes + recipient.bigEndianBytes + myIdentity.publicIdentity.fingerprint.bytes
        guard Array(fields[0..<50]) == expectedHead else { throw KeyScheduleError.bindingMismatch("key package inner fields") }
        guard Array(fields[50..<66]) == joinNonce else { throw KeyScheduleError.bindingMismatch("key package join nonce (made for another join)") }
        guard Array(fields[66...]) == epoch.bigEndianBytes + rosterHash else { throw KeyScheduleError.bindingMismatch("key package inner fields") }
        let secret = SecretKey(
            SecretBytes(count: 32) { out in
                inner.withUnsafeBytes { out.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[(Self.innerLength - 32)...])) }
            })
        return Opened(epoch: epoch, epochSecret: secret, rosterHash: rosterHash, reason: reason)
    }
}

/// The knock (section 4.2, protocol version 2): the joiner's display name and identity, a
/// fresh join nonce and a proof that the joiner holds the invite secret, signed by the
/// joiner and sealed to the host's X25519 key. The relay forwards it unread.
///
/// ```
/// inner = u8 version (2) || room_id (16) || identity (64) || join_nonce (16)
///         || invite_proof (32) || u8 name_length || name (UTF-8, 1…64)
///         || signature (64) = Ed25519(joiner, "conclave/v1 knock", all bytes before it)
/// invite_proof = HKDF-SHA256(salt = "conclave/v2 knock-proof", ikm = invite_secret,
///                            info = room_id || identity || join_nonce, L = 32)
/// knock = crypto_box_seal(inner, host.x25519)
/// ```
public struct Knock: Sendable, Equatable {
    public static let version: UInt8 = 2
    public static let maximumNameLength = 64
    public static let joinNonceLength = 16
    public static let proofLength = 32
    /// Inner bytes without the name: 1 + 16 + 64 + 16 + 32 + 1 + 64.
    public static let innerFixedLength = 1 + 16 + 64 + joinNonceLength + proofLength + 1 + 64
    /// The longest sealed knock: 194 + 64 + 48 bytes.
    public static let maximumSealedLength = innerFixedLength + maximumNameLength + SealedBox.overhead

    public let roomID: RoomID
    public let identity: PublicIdentity
    public let displayName: String
    /// The joiner's fresh nonce: the leader refuses one it has seen, and echoes it in the
    /// joiner's key packages (3.4) and roster entry (3.6).
    public let joinNonce: [UInt8]

    public init(roomID: RoomID, identity: PublicIdentity, displayName: String, joinNonce: [UInt8]) {
        self.roomID = roomID; self.identity = identity; self.displayName = displayName; self.joinNonce = joinNonce
    }

    /// The invite proof: only holders of the invite secret can compute it.
    public static func inviteProof(inviteSecret: [UInt8], roomID: RoomID, identity: PublicIdentity, joinNonce: [UInt8]) throws -> [UInt8] {
        try HKDF.deriveKey(
            .sha256, salt: Array(Labels.knockProof.utf8), ikm: inviteSecret,
            info: roomID.bytes + identity.encoded + joinNonce, length: proofLength
        ).withUnsafeBytes { Array($0) }
    }

    /// Signs and seals a knock to the host with a fresh join nonce (or `joinNonce`, for
    /// vectors). Returns the sealed bytes and the nonce, which the joiner keeps to check its
    /// key packages.
    public static func seal(
        roomID: RoomID, displayName: String, joiner: PrivateIdentity, host: X25519.PublicKey,
        inviteSecret: [UInt8], joinNonce: [UInt8]? = nil
    ) throws -> (sealed: [UInt8], joinNonce: [UInt8]) {
        let name = Array(displayName.utf8)
        guard (1...maximumNameLength).contains(name.count) else { throw KeyScheduleError.invalidDisplayName }
        let nonce = joinNonce ?? SecureRandom.bytes(count: joinNonceLength)
        precondition(nonce.count == joinNonceLength)
        let proof = try inviteProof(inviteSecret: inviteSecret, roomID: roomID, identity: joiner.publicIdentity, joinNonce: nonce)
        let body: [UInt8] = [version] + roomID.bytes + joiner.publicIdentity.encoded + nonce + proof + [UInt8(name.count)] + name
        let signature = try joiner.signingKey.signature(for: body, context: Labels.knockSignature)
        return (try SealedBox.seal(body + signature, to: host), nonce)
    }

    /// Opens a knock with the host's key and checks it (4.2, checks 1–9): length, the sealed
    /// box, version and structure, the joiner's signature, the invite proof under
    /// `inviteSecret`, the room, the identity the relay reported, the name's UTF-8.
    public static func open(
        _ sealed: [UInt8], host: PrivateIdentity, expectedRoom: RoomID, relayIdentity: PublicIdentity,
        inviteSecret: [UInt8]
    ) throws -> Knock {
        guard sealed.count <= maximumSealedLength else { throw KeyScheduleError.malformed("knock (\(sealed.count) bytes)") }
        let inner: [UInt8]
        do { inner = try SealedBox.open(sealed, recipient: host.agreementKey).withUnsafeBytes { Array($0) } } catch { throw KeyScheduleError.sealOpenFailed }
        guard inner.count >= innerFixedLength + 1 else { throw KeyScheduleError.malformed("knock") }
        guard inner[0] == version else { throw KeyScheduleError.malformed("knock version \(inner[0])") }
        let nameAt = innerFixedLength - 64
        let nameLength = Int(inner[nameAt - 1])
        guard (1...maximumNameLength).contains(nameLength), inner.count == innerFixedLength + nameLength else {
            throw KeyScheduleError.malformed("knock")
        }
        let room = RoomID(bytes: inner[1..<17])!
        let identity = try PublicIdentity(encoded: inner[17..<81])
        let nonce = Array(inner[81..<97])
        let proof = Array(inner[97..<129])
        let body = Array(inner[0..<(nameAt + nameLength)])
        let signature = Array(inner[(nameAt + nameLength)...])
        guard identity.signingKey.isValidSignature(signature, for: body, context: Labels.knockSignature) else {
            throw KeyScheduleError.badSignature("knock")
        }
        let expected = try inviteProof(inviteSecret: inviteSecret, roomID: room, identity: identity, joinNonce: nonce)
        guard Sodium.constantTimeEqual(proof, expected) else { throw KeyScheduleError.bindingMismatch("knock invite proof") }
        guard room == expectedRoom else { throw KeyScheduleError.bindingMismatch("knock room") }
        guard identity == relayIdentity else { throw KeyScheduleError.bindingMismatch("knock identity") }
        guard let name = String(validating: inner[nameAt..<(nameAt + nameLength)], as: UTF8.self) else { throw KeyScheduleError.invalidDisplayName }
        return Knock(roomID: room, identity: identity, displayName: name, joinNonce: nonce)
    }
}
