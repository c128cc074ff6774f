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
/// u8        version      = 1
/// bytes[16] room_id
/// u16       recipient    (participant index)
/// u64       epoch
/// bytes[32] roster_hash
/// u8        reason
/// u16       sealed_length (= 170)
/// bytes[]   sealed       = crypto_box_seal(inner, recipient.x25519)
/// bytes[64] signature    = Ed25519(leader, "conclave/v1 key-package", all bytes above)
///
/// inner (122 bytes) = room_id || u16 recipient || recipient fingerprint (32)
///                     || u64 epoch || roster_hash || epoch_secret (32)
/// ```
public struct KeyPackage: Sendable, Equatable {
    public static let version: UInt8 = 1
    public static let innerLength = 16 + 2 + 32 + 8 + 32 + 32
    public static let sealedLength = innerLength + SealedBox.overhead
    /// Total encoded length: 1 + 16 + 2 + 8 + 32 + 1 + 2 + 170 + 64.
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
    public static func create(roomID: RoomID, recipient: UInt16, recipientIdentity: PublicIdentity, epoch: UInt64,
                              rosterHash: [UInt8], reason: KeyPackageReason, epochSecret: SecretKey,
                              leader: Ed25519.PrivateKey) throws -> KeyPackage {
        precondition(rosterHash.count == 32 && epochSecret.count == 32)
        var inner = roomID.bytes + recipient.bigEndianBytes + recipientIdentity.fingerprint.bytes + epoch.bigEndianBytes + rosterHash
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
    public func open(expectedRoom: RoomID, me: UInt16, myIdentity: PrivateIdentity, leader: Ed25519.PublicKey) throws -> Opened {
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
        let expected = roomID.bytes + recipient.bigEndianBytes + myIdentity.publicIdentity.fingerprint.bytes + epoch.bigEndianBytes + rosterHash
        guard fields == expected else { throw KeyScheduleError.bindingMismatch("key package inner fields") }
        let secret = SecretKey(SecretBytes(count: 32) { out in
            inner.withUnsafeBytes { out.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[(Self.innerLength - 32)...])) }
        })
        return Opened(epoch: epoch, epochSecret: secret, rosterHash: rosterHash, reason: reason)
    }
}

/// The waiting-room knock (section 4.2): the joiner's display name and identity, signed
/// by the joiner and sealed to the host's X25519 key. The relay forwards it unread.
///
/// ```
/// inner = u8 version (1) || room_id (16) || identity (64) || u8 name_length || name (UTF-8, 1…64)
///         || signature (64) = Ed25519(joiner, "conclave/v1 knock", all bytes before it)
/// knock = crypto_box_seal(inner, host.x25519)
/// ```
public struct Knock: Sendable, Equatable {
    public static let maximumNameLength = 64
    /// The longest sealed knock: 1 + 16 + 64 + 1 + 64 + 64 + 48 bytes.
    public static let maximumSealedLength = 1 + 16 + 64 + 1 + maximumNameLength + 64 + SealedBox.overhead

    public let roomID: RoomID
    public let identity: PublicIdentity
    public let displayName: String

    public init(roomID: RoomID, identity: PublicIdentity, displayName: String) {
        self.roomID = roomID; self.identity = identity; self.displayName = displayName
    }

    /// Signs and seals a knock to the host.
    public static func seal(roomID: RoomID, displayName: String, joiner: PrivateIdentity, host: X25519.PublicKey) throws -> [UInt8] {
        let name = Array(displayName.utf8)
        guard (1...maximumNameLength).contains(name.count) else { throw KeyScheduleError.invalidDisplayName }
        let body: [UInt8] = [1] + roomID.bytes + joiner.publicIdentity.encoded + [UInt8(name.count)] + name
        let signature = try joiner.signingKey.signature(for: body, context: Labels.knockSignature)
        return try SealedBox.seal(body + signature, to: host)
    }

    /// Opens a knock with the host's key, verifies the joiner's signature, and checks that
    /// the identity inside is the one the relay reported (`relayIdentity`) and the room is ours.
    public static func open(_ sealed: [UInt8], host: PrivateIdentity, expectedRoom: RoomID, relayIdentity: PublicIdentity) throws -> Knock {
        guard sealed.count <= maximumSealedLength else { throw KeyScheduleError.malformed("knock (\(sealed.count) bytes)") }
        let inner: [UInt8]
        do { inner = try SealedBox.open(sealed, recipient: host.agreementKey).withUnsafeBytes { Array($0) } } catch { throw KeyScheduleError.sealOpenFailed }
        guard inner.count >= 1 + 16 + 64 + 1 + 1 + 64, inner[0] == 1 else { throw KeyScheduleError.malformed("knock") }
        let nameLength = Int(inner[81])
        guard (1...maximumNameLength).contains(nameLength), inner.count == 82 + nameLength + 64 else {
            throw KeyScheduleError.malformed("knock")
        }
        let room = RoomID(bytes: inner[1..<17])!
        let identity = try PublicIdentity(encoded: inner[17..<81])
        let body = Array(inner[0..<(82 + nameLength)])
        let signature = Array(inner[(82 + nameLength)...])
        guard identity.signingKey.isValidSignature(signature, for: body, context: Labels.knockSignature) else {
            throw KeyScheduleError.badSignature("knock")
        }
        guard room == expectedRoom else { throw KeyScheduleError.bindingMismatch("knock room") }
        guard identity == relayIdentity else { throw KeyScheduleError.bindingMismatch("knock identity") }
        guard let name = String(validating: inner[82..<(82 + nameLength)], as: UTF8.self) else { throw KeyScheduleError.invalidDisplayName }
        return Knock(roomID: room, identity: identity, displayName: name)
    }
}
