import ConclaveCrypto

/// The epoch key schedule (protocol/PROTOCOL.md section 3.2).
///
/// ```
/// prk(e)            = HKDF-Extract(salt = "conclave/v1 epoch", ikm = epoch_secret(e))      [SHA-256]
/// base_key(e, i)    = HKDF-Expand(prk(e), "conclave/v1 sender" || room_id || u64(e) || u16(i), 32)
/// epoch_secret(e+1) = HKDF-Expand(prk(e), "conclave/v1 ratchet" || room_id || u64(e+1), 32)   (join ratchet)
/// KID(e, i)         = (e mod 2^48) << 16 | i
/// ```
/// A fresh secret (after a leave or removal, or a periodic rotation) is 32 random bytes
/// from the leader; it is not derived from the previous one.
public enum EpochKeys {
    /// Largest epoch number that fits the KID layout.
    public static let maximumEpoch: UInt64 = (1 << 48) - 1

    public static func keyID(epoch: UInt64, sender: UInt16) -> UInt64 {
        (epoch & maximumEpoch) << 16 | UInt64(sender)
    }

    /// Splits a KID into its epoch (low 48 bits) and sender index.
    public static func split(keyID: UInt64) -> (epoch: UInt64, sender: UInt16) {
        (keyID >> 16, UInt16(truncatingIfNeeded: keyID))
    }

    static func prk(_ epochSecret: SecretKey) -> SecretKey {
        HKDF.extract(.sha256, salt: Array(Labels.epochExtractSalt.utf8), ikm: epochSecret)
    }

    /// The sender base key for participant `sender` in `epoch`.
    public static func senderBaseKey(epochSecret: SecretKey, roomID: RoomID, epoch: UInt64, sender: UInt16) throws -> SecretKey {
        let info = Array(Labels.senderKey.utf8) + roomID.bytes + epoch.bigEndianBytes + sender.bigEndianBytes
        return try HKDF.expand(.sha256, prk: prk(epochSecret), info: info, length: 32)
    }

    /// The join ratchet: the secret of epoch `epoch + 1` from that of `epoch`. Knowing the
    /// new secret does not reveal the old one (HKDF is one-way), so a member admitted at
    /// `epoch + 1` cannot read frames of `epoch`.
    public static func ratchet(epochSecret: SecretKey, roomID: RoomID, epoch: UInt64) throws -> SecretKey {
        guard epoch < maximumEpoch else { throw KeyScheduleError.epochOutOfRange(epoch + 1) }
        let info = Array(Labels.ratchet.utf8) + roomID.bytes + (epoch + 1).bigEndianBytes
        return try HKDF.expand(.sha256, prk: prk(epochSecret), info: info, length: 32)
    }

    /// The SFrame key for a sender in an epoch, in Conclave's suite.
    public static func senderFrameKey(epochSecret: SecretKey, roomID: RoomID, epoch: UInt64, sender: UInt16) throws -> SFrameKey {
        let base = try senderBaseKey(epochSecret: epochSecret, roomID: roomID, epoch: epoch, sender: sender)
        return try SFrameKey(suite: .conclaveXChaCha20Poly1305SHA256, baseKey: base, keyID: keyID(epoch: epoch, sender: sender))
    }
}

/// The 22 bytes of SFrame metadata Conclave binds into every frame's AAD:
/// `room_id (16) || kind (1) || flags (1) || sender (2) || recipient (2)`, that is the
/// room and bytes 2..<8 of the FRAME header. The relay reads the routing fields but
/// cannot change any of them without the frame failing to open.
public struct FrameMetadata: Sendable {
    public static let length = 22

    /// The room's 16 bytes, kept so that per-frame writes do not allocate.
    public let roomBytes: [UInt8]

    public init(roomID: RoomID) { self.roomBytes = roomID.bytes }

    /// Writes the metadata into `out` (at least 22 bytes). No allocation.
    @inlinable
    public func write(kind: UInt8, flags: UInt8, sender: UInt16, recipient: UInt16, into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count >= Self.length)
        roomBytes.withUnsafeBytes { out.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: 16) }
        out[16] = kind
        out[17] = flags
        out[18] = UInt8(sender >> 8); out[19] = UInt8(truncatingIfNeeded: sender)
        out[20] = UInt8(recipient >> 8); out[21] = UInt8(truncatingIfNeeded: recipient)
    }

    /// Writes the metadata for a FRAME whose 8-byte header is `frameHeader` (bytes 2..<8 are used).
    @inlinable
    public func write(frameHeader: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count >= Self.length && frameHeader.count >= 8)
        roomBytes.withUnsafeBytes { out.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: 16) }
        out.baseAddress!.advanced(by: 16).copyMemory(from: frameHeader.baseAddress!.advanced(by: 2), byteCount: 6)
    }

    public func bytes(kind: UInt8, flags: UInt8 = 0, sender: UInt16, recipient: UInt16) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.length)
        out.withUnsafeMutableBytes { write(kind: kind, flags: flags, sender: sender, recipient: recipient, into: $0) }
        return out
    }
}

/// Keys for addressed (private) chat (protocol/PROTOCOL.md section 2.8).
///
/// ```
/// base_key = X25519-HKDF(self, peer, context = "conclave/v2 private-chat " || hex(room_id || u16 sender
///                        || u16 recipient || sender_join_nonce || recipient_join_nonce))
/// KID      = sender index (epoch bits zero; epochs start at 1, so no epoch KID collides)
/// ```
/// The key is directional and bound to the room, both indices and both members' join
/// nonces (4.2): a member who rejoins with the same identity — even at the same index, if
/// a relay seated it there — gets a new key, so restarting its counter at 0 never reuses
/// a (key, nonce) pair.
public enum PrivateChatKeys {
    public enum KeyError: Error { case missingJoinNonce }

    public static func frameKey(
        me: PrivateIdentity, peer: PublicIdentity, roomID: RoomID, sender: UInt16, recipient: UInt16,
        senderJoinNonce: [UInt8], recipientJoinNonce: [UInt8]
    ) throws -> SFrameKey {
        guard senderJoinNonce.count == Knock.joinNonceLength, recipientJoinNonce.count == Knock.joinNonceLength else {
            throw KeyError.missingJoinNonce
        }
        let context =
            Labels.privateChat + " "
            + Hex.encode(
                roomID.bytes + sender.bigEndianBytes + recipient.bigEndianBytes
                    + senderJoinNonce + recipientJoinNonce)
        let base = try me.agreementKey.sharedKey(with: peer.agreementKey, context: context)
        return try SFrameKey(suite: .conclaveXChaCha20Poly1305SHA256, baseKey: base, keyID: UInt64(sender))
    }
}
