import ConclaveCrypto

// MARK: - ROSTER_DELTA

/// A `ROSTER_DELTA` control message (type `0x07`, section 3.6): the leader's signed change
/// from one roster version (the base) to the next, for members that hold the base. It
/// replaces a broadcast `ROSTER` when it is shorter than one control frame: a removal from
/// a 500-member room is 235 bytes instead of 74 631, and a member applies it without
/// hashing the whole roster again.
///
/// ```
/// u8 type = 7 || u8 version = 2 || room_id (16) || u64 epoch || u32 roster_version
/// || u8 epoch_change || u16 successor || chain_prev (32)
/// || u32 base_version || base_hash (32) || roster_hash (32) || secret_commit (32)
/// || u16 removed_count || removed_count × u16 index
/// || u16 changed_count || changed_count × entry          (entry as in ROSTER)
/// || signature (64) = Ed25519(leader, "conclave/v2 roster-delta", every byte before it)
/// secret_commit = SHA-256("conclave/v2 epoch-commit" || room_id || u64 epoch || epoch_secret)
///                 for epoch_change 1 and 2; 32 zero bytes for 0
/// ```
/// `removed` and `changed` are in strictly increasing index order, and no index is in
/// both. The result is the base without the removed entries, with each changed entry
/// replacing the base's entry of its index or inserted as a new member. It must satisfy
/// every rule of a `ROSTER` (3.6) and have the roster hash `roster_hash`.
public struct RosterDelta: Sendable, Hashable {
    public static let type: UInt8 = 0x07
    /// The roster version: `ROSTER_DELTA` shares `ROSTER`'s header (3.6).
    public static let version: UInt8 = SignedRoster.version
    /// Bytes of a delta that removes and changes nothing (233): 165 before the lists, 4 of list
    /// counts, 64 of signature.
    public static let fixedLength = 1 + 1 + 16 + 8 + 4 + 1 + 2 + 32 + 4 + 32 + 32 + 32 + 2 + 2 + 64
    /// A delta always fits one control frame (16 351 bytes); the leader sends a full
    /// `ROSTER` when it would not.
    public static let maximumEncodedLength = SignedRoster.maximumSingleFrameLength

    public let roomID: RoomID
    public let epoch: UInt64
    public let rosterVersion: UInt32
    public let epochChange: EpochChange
    public let successor: UInt16
    public let chainPrevious: [UInt8]
    /// The roster version and roster hash the delta applies to.
    public let baseVersion: UInt32
    public let baseHash: [UInt8]
    /// The roster hash of the result (3.5).
    public let rosterHash: [UInt8]
    /// A commitment to the new epoch secret (zeros when the epoch does not change): a
    /// member checks the secret it ratchets or unwraps against it.
    public let secretCommit: [UInt8]
    public let removed: [UInt16]
    public let changed: [SignedRoster.Entry]
    public let signature: [UInt8]
    /// Every byte before the signature.
    public let signedPart: [UInt8]

    /// `SHA-256("conclave/v2 epoch-commit" || room_id || u64 epoch || epoch_secret)`.
    public static func commitment(roomID: RoomID, epoch: UInt64, secret: SecretKey) -> [UInt8] {
        var input = Array(Labels.epochCommit.utf8) + roomID.bytes + epoch.bigEndianBytes
        secret.withUnsafeBytes { input.append(contentsOf: $0) }
        defer { input.withUnsafeMutableBytes { $0.initializeMemory(as: UInt8.self, repeating: 0) } }
        return SHA2.sha256(input)
    }

    public static let noCommitment = [UInt8](repeating: 0, count: 32)

    /// The delta from `base` to `entries` (sorted, each satisfying the `ROSTER` rules),
    /// signed; nil when it would not fit one control frame (send a full `ROSTER`).
    public static func make(
        base: SignedRoster, epoch: UInt64, rosterVersion: UInt32, epochChange: EpochChange, successor: UInt16,
        chainPrevious: [UInt8], entries: [SignedRoster.Entry], rosterHash: [UInt8], secretCommit: [UInt8],
        leader: Ed25519.PrivateKey
    ) -> RosterDelta? {
        var removed: [UInt16] = [], changed: [SignedRoster.Entry] = []
        var b = base.entries.startIndex
        for e in entries {
            while b < base.entries.endIndex, base.entries[b].index < e.index { removed.append(base.entries[b].index); b += 1 }
            if b < base.entries.endIndex, base.entries[b].index == e.index {
                if base.entries[b] != e { changed.append(e) }
                b += 1
            } else {
                changed.append(e)
            }
        }
        while b < base.entries.endIndex { removed.append(base.entries[b].index); b += 1 }
        let length = fixedLength + 2 * removed.count + changed.reduce(0) { $0 + $1.encodedLength }
        guard length <= maximumEncodedLength else { return nil }
        let part = signedPart(
            roomID: base.roomID, epoch: epoch, rosterVersion: rosterVersion, epochChange: epochChange, successor: successor,
            chainPrevious: chainPrevious, baseVersion: base.rosterVersion, baseHash: base.rosterHash,
            rosterHash: rosterHash, secretCommit: secretCommit, removed: removed, changed: changed, capacity: length)
        let signature: [UInt8]
        do { signature = try leader.signature(for: part, context: Labels.rosterDeltaSignature) } catch {
            preconditionFailure("fixed Ed25519 context is valid")
        }
        return RosterDelta(
            roomID: base.roomID, epoch: epoch, rosterVersion: rosterVersion, epochChange: epochChange, successor: successor,
            chainPrevious: chainPrevious, baseVersion: base.rosterVersion, baseHash: base.rosterHash, rosterHash: rosterHash,
            secretCommit: secretCommit, removed: removed, changed: changed, signature: signature, signedPart: part)
    }

    init(
        roomID: RoomID, epoch: UInt64, rosterVersion: UInt32, epochChange: EpochChange, successor: UInt16, chainPrevious: [UInt8],
        baseVersion: UInt32, baseHash: [UInt8], rosterHash: [UInt8], secretCommit: [UInt8], removed: [UInt16],
        changed: [SignedRoster.Entry], signature: [UInt8], signedPart: [UInt8]
    ) {
        self.roomID = roomID; self.epoch = epoch; self.rosterVersion = rosterVersion; self.epochChange = epochChange
        self.successor = successor; self.chainPrevious = chainPrevious; self.baseVersion = baseVersion; self.baseHash = baseHash
        self.rosterHash = rosterHash; self.secretCommit = secretCommit; self.removed = removed; self.changed = changed
        self.signature = signature; self.signedPart = signedPart
    }

    static func signedPart(
        roomID: RoomID, epoch: UInt64, rosterVersion: UInt32, epochChange: EpochChange, successor: UInt16,
        chainPrevious: [UInt8], baseVersion: UInt32, baseHash: [UInt8], rosterHash: [UInt8], secretCommit: [UInt8],
        removed: [UInt16], changed: [SignedRoster.Entry], capacity: Int
    ) -> [UInt8] {
        var w = ByteWriter(capacity: capacity)
        w.writeUInt8(type)
        SignedRoster.Header(
            roomID: roomID, epoch: epoch, rosterVersion: rosterVersion, epochChange: epochChange, successor: successor,
            chainPrevious: chainPrevious
        ).write(to: &w)
        w.writeUInt32(baseVersion)
        w.writeBytes(baseHash)
        w.writeBytes(rosterHash)
        w.writeBytes(secretCommit)
        w.writeUInt16(UInt16(removed.count))
        for i in removed { w.writeUInt16(i) }
        w.writeUInt16(UInt16(changed.count))
        for e in changed { SignedRoster.write(e, to: &w) }
        return w.bytes
    }

    public var encoded: [UInt8] { signedPart + signature }

    public func isSigned(by key: Ed25519.PublicKey) -> Bool {
        key.isValidSignature(signature, for: signedPart, context: Labels.rosterDeltaSignature)
    }

    /// Why a verified delta does not apply to a base.
    public enum ApplyError: Error, Sendable, Hashable, CustomStringConvertible {
        /// The base is another roster than the one the delta names.
        case baseMismatch(have: UInt32, needs: UInt32)
        /// A removed index is not in the base, a changed entry gives an index another
        /// identity or join nonce, or the result breaks a `ROSTER` rule.
        case invalid(String)

        public var description: String {
            switch self {
            case let .baseMismatch(have, needs): return "the delta applies to roster_version \(needs), this member holds \(have)"
            case let .invalid(what): return "the delta does not apply: \(what)"
            }
        }
    }

    /// The roster this delta makes of `base`. The result's roster hash is the delta's
    /// signed `roster_hash`; ``SignedRoster/derivedHashVerified`` is false until a caller
    /// recomputes it (``SignedRoster/recomputedHashMatches``).
    public func apply(to base: SignedRoster) throws(ApplyError) -> SignedRoster {
        guard base.rosterVersion == baseVersion, base.rosterHash == baseHash else {
            throw .baseMismatch(have: base.rosterVersion, needs: baseVersion)
        }
        var result: [SignedRoster.Entry] = []
        result.reserveCapacity(base.entries.count - removed.count + changed.count)
        var r = 0, c = 0
        for e in base.entries {
            while c < changed.count, changed[c].index < e.index {
                result.append(changed[c]); c += 1
            }
            if r < removed.count, removed[r] == e.index { r += 1; continue }
            if r < removed.count, removed[r] < e.index { throw .invalid("#\(removed[r]) is removed but not in the base") }
            if c < changed.count, changed[c].index == e.index {
                guard changed[c].identity == e.identity, changed[c].joinNonce == e.joinNonce else {
                    throw .invalid("#\(e.index) would change hands")
                }
                result.append(changed[c]); c += 1
            } else {
                result.append(e)
            }
        }
        guard r == removed.count else { throw .invalid("#\(removed[r]) is removed but not in the base") }
        while c < changed.count { result.append(changed[c]); c += 1 }
        // Without an epoch change the membership stays (ROSTER check 7): no one is added.
        guard epochChange != .none || result.count == base.entries.count else { throw .invalid("members added without an epoch change") }
        guard !result.isEmpty, result.count <= SignedRoster.maximumMembers else { throw .invalid("\(result.count) members") }
        let length = SignedRoster.encodedLength(entries: result)
        guard length <= SignedRoster.maximumEncodedLength else { throw .invalid("\(length) bytes as a ROSTER") }
        if successor != 0 {
            guard let s = result.first(where: { $0.index == successor }), s.role != .host else { throw .invalid("successor #\(successor)") }
        }
        return SignedRoster(derivedFrom: self, entries: result)
    }

    /// Parses a `ROSTER_DELTA` from `reader`, whose type byte has already been read.
    static func decode(body reader: inout ByteReader, whole: UnsafeRawBufferPointer) throws(E2EControlError) -> RosterDelta {
        let totalLength = whole.count
        guard totalLength <= maximumEncodedLength else { throw .tooLong(length: totalLength, limit: maximumEncodedLength) }
        do {
            let h = try SignedRoster.Header.read(&reader)
            let (room, epoch, rosterVersion, change, successor, chainPrevious) = (
                h.roomID, h.epoch, h.rosterVersion, h.epochChange, h.successor, h.chainPrevious
            )
            let baseVersion = try reader.readUInt32("base_version")
            guard baseVersion < rosterVersion else { throw E2EControlError.malformed("base_version \(baseVersion) not below \(rosterVersion)") }
            let baseHash = try reader.readBytes(count: 32, field: "base_hash")
            let rosterHash = try reader.readBytes(count: 32, field: "roster_hash")
            let commit = try reader.readBytes(count: 32, field: "secret_commit")
            guard (change == .none) == (commit == noCommitment) else {
                throw E2EControlError.malformed("secret_commit must be zero exactly when epoch_change is 0")
            }
            let removedCount = Int(try reader.readUInt16("removed_count"))
            // Each removal takes 2 bytes, and the changed count and signature 66 more.
            guard removedCount < SignedRoster.maximumMembers, removedCount <= (reader.remainingCount - 66) / 2 else {
                throw E2EControlError.malformed("removed_count \(removedCount)")
            }
            var removed: [UInt16] = []
            removed.reserveCapacity(removedCount)
            for _ in 0..<removedCount {
                let index = try reader.readUInt16("removed.index")
                guard ParticipantIndex.memberRange.contains(index), index > (removed.last ?? 0) else {
                    throw E2EControlError.malformed("removed index \(index) out of range or order")
                }
                removed.append(index)
            }
            let changedCount = Int(try reader.readUInt16("changed_count"))
            guard changedCount <= SignedRoster.maximumMembers,
                changedCount <= (reader.remainingCount - SignedRoster.signatureLength) / SignedRoster.Entry.fixedLength
            else {
                throw E2EControlError.malformed("changed_count \(changedCount)")
            }
            var changed: [SignedRoster.Entry] = []
            changed.reserveCapacity(changedCount)
            var previous: UInt16 = 0
            for _ in 0..<changedCount {
                let entry = try SignedRoster.readEntry(&reader, after: previous)
                previous = entry.index
                guard removed.isEmpty || !Self.sortedContains(removed, entry.index) else {
                    throw E2EControlError.malformed("#\(entry.index) is both removed and changed")
                }
                changed.append(entry)
            }
            if change == .none, !removed.isEmpty { throw E2EControlError.malformed("members removed without an epoch change") }
            let signature = try reader.readBytes(count: SignedRoster.signatureLength, field: "signature")
            guard reader.isAtEnd else { throw E2EControlError.malformed("\(reader.remainingCount) bytes after the signature") }
            return RosterDelta(
                roomID: room, epoch: epoch, rosterVersion: rosterVersion, epochChange: change, successor: successor,
                chainPrevious: chainPrevious, baseVersion: baseVersion, baseHash: baseHash, rosterHash: rosterHash,
                secretCommit: commit, removed: removed, changed: changed, signature: signature,
                signedPart: Array(whole.prefix(totalLength - SignedRoster.signatureLength)))
        } catch let error as E2EControlError {
            throw error
        } catch let error as MessageDecodingError {
            throw .malformed(SignedRoster.field(of: error))
        } catch {
            throw .malformed("roster delta")
        }
    }

    static func sortedContains(_ sorted: [UInt16], _ value: UInt16) -> Bool {
        var lo = 0, hi = sorted.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if sorted[mid] < value { lo = mid + 1 } else { hi = mid }
        }
        return lo < sorted.count && sorted[lo] == value
    }
}
