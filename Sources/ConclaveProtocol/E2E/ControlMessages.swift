import ConclaveCrypto

/// How a `ROSTER` moves the epoch (protocol/PROTOCOL.md section 3.6).
public enum EpochChange: UInt8, Sendable, Hashable, CaseIterable {
    /// Same epoch: roles, mute, presenter or names changed; the roster hash is unchanged.
    case none = 0
    /// Members ratchet to `epoch` = current + 1 now (one or more admissions).
    case joinRatchet = 1
    /// A key package for `epoch` follows for each member (leave, rotation, new leader).
    case freshSecret = 2
}

// MARK: - ROSTER

/// A `ROSTER` control message (type `0x01`, section 3.6, roster version 2): the leader's
/// signed list of an epoch's members with their roles, flags, join nonces and display names,
/// and the successor who takes the keys over if the leader falls silent (3.6).
///
/// ```
/// u8 type = 1 || u8 version = 2 || room_id (16) || u64 epoch || u32 roster_version
/// || u8 epoch_change || u16 successor (0 = none) || chain_prev (32) || u16 count
/// || count × entry || signature (64)
/// entry = u16 index || identity (64) || join_nonce (16) || u8 role || u8 flags
///         || u8 name_length (0…64) || name (UTF-8)
/// signature = Ed25519(leader, "conclave/v1 roster", every byte before it)
/// ```
/// Length `131 + Σ (85 + name_length)`, at most 500 members and ``maximumEncodedLength``
/// (74 631) bytes. One longer than a control frame carries (16 351 bytes, more than 108
/// members with 64-byte names) is sent as ``ControlPart``s.
/// `chain_prev` is the chain head before this roster; ``chainHead`` the one after it.
/// A value of this type always satisfies the structural rules that ``decode(_:)``
/// checks; whether the signature, room, epoch and membership are acceptable is the
/// receiver's business (``MemberKeySchedule``).
public struct SignedRoster: Sendable, Hashable {
    /// One member.
    public struct Entry: Sendable, Hashable {
        public var index: UInt16
        public var identity: PublicIdentity
        public var role: Role
        /// Flag bit 0 (informational).
        public var muted: Bool
        /// Flag bit 1: may send screen frames (2.6).
        public var presenter: Bool
        /// Flag bit 2: may record the meeting (3.8); the host may always.
        public var recorder: Bool
        /// 0–64 bytes of UTF-8; empty when the leader knows no name (no knock).
        public var displayName: String
        /// The member's join nonce from its verified knock (4.2); the leader draws its own.
        public var joinNonce: [UInt8]

        /// A member known only by index, identity and a join nonce that may be empty (a new
        /// member's provisional leader entry): for ``MemberTable`` only, never signed.
        init(unchecked index: UInt16, identity: PublicIdentity, joinNonce: [UInt8]) {
            self.index = index; self.identity = identity; self.role = .participant
            self.muted = false; self.presenter = false; self.recorder = false; self.displayName = ""; self.joinNonce = joinNonce
        }

        public init(
            index: UInt16, identity: PublicIdentity, role: Role = .participant, muted: Bool = false,
            presenter: Bool = false, recorder: Bool = false, displayName: String = "", joinNonce: [UInt8]
        ) {
            precondition(joinNonce.count == Knock.joinNonceLength, "join nonces are 16 bytes")
            self.index = index; self.identity = identity; self.role = role
            self.muted = muted; self.presenter = presenter; self.recorder = recorder
            self.displayName = displayName; self.joinNonce = joinNonce
        }

        /// `85 + name_length`.
        public var encodedLength: Int { Self.fixedLength + displayName.utf8.count }
        /// Bytes of an entry without its name.
        public static let fixedLength = 2 + 64 + 16 + 1 + 1 + 1
        public static let maximumNameLength = 64

        var flags: UInt8 { (muted ? 0x01 : 0) | (presenter ? 0x02 : 0) | (recorder ? 0x04 : 0) }

        /// Whether this member may record: the host, or a member the host gave the right (3.8).
        public var mayRecord: Bool { role == .host || recorder }
        public var member: RosterMember { RosterMember(index: index, identity: identity, joinNonce: joinNonce) }
    }

    public static let type: UInt8 = 0x01
    public static let version: UInt8 = 0x02
    /// Bytes before the entries.
    public static let headerLength = 67
    public static let signatureLength = 64
    /// `headerLength + signatureLength`: the length of a roster with no entries.
    public static let fixedLength = headerLength + signatureLength
    /// The control plaintext limit: a 16 384-byte payload less the largest SFrame header
    /// (17) and the tag (16). A longer `ROSTER` travels as ``ControlPart``s.
    public static let maximumSingleFrameLength = 16_384 - 17 - 16
    /// Members that fit one control frame whatever their names: (16 351 − 131) / 149 = 108.
    public static let maximumMembersWithLongestNames =
        (maximumSingleFrameLength - fixedLength)
        / (Entry.fixedLength + Entry.maximumNameLength)
    /// The most members a `ROSTER` lists (a room's size limit end to end).
    public static let maximumMembers = 500
    /// The longest `ROSTER`: 500 members with 64-byte names, 131 + 500 × 149 = 74 631 bytes.
    public static let maximumEncodedLength = fixedLength + maximumMembers * (Entry.fixedLength + Entry.maximumNameLength)

    public let roomID: RoomID
    public let epoch: UInt64
    /// Strictly increasing across every `ROSTER` of the room (3.6).
    public let rosterVersion: UInt32
    public let epochChange: EpochChange
    /// The member who takes the keys over if the leader's heartbeat falls silent (3.6);
    /// 0 when there is none. When not 0, an entry of the roster other than the host.
    public let successor: UInt16
    /// The roster chain head before this roster (32 zero bytes before the first).
    public let chainPrevious: [UInt8]
    /// In strictly increasing index order, at least one.
    public let entries: [Entry]
    public let signature: [UInt8]
    /// The roster hash of section 3.5 (index and both public keys of every entry), computed
    /// once: a 500-member room's members consult it on every key package and heartbeat.
    public let rosterHash: [UInt8]

    /// Signs a roster. Throws ``E2EControlError/invalidRoster(_:)`` or ``E2EControlError/tooLong(length:limit:)``
    /// when the entries break a rule receivers check structurally: none, out of order,
    /// an index outside `0x0001`–`0xFFFE`, a name over 64 bytes, or over the length limit.
    public static func sign(
        roomID: RoomID, epoch: UInt64, rosterVersion: UInt32, epochChange: EpochChange, successor: UInt16 = 0,
        chainPrevious: [UInt8] = SignedRoster.chainStart,
        entries: [Entry], leader: Ed25519.PrivateKey, rosterHash: [UInt8]? = nil
    ) throws(E2EControlError) -> SignedRoster {
        precondition(chainPrevious.count == 32, "chain heads are 32 bytes")
        try validate(entries: entries, successor: successor)
        let unsigned = signedPart(
            roomID: roomID, epoch: epoch, rosterVersion: rosterVersion, epochChange: epochChange, successor: successor,
            chainPrevious: chainPrevious, entries: entries)
        let signature: [UInt8]
        do { signature = try leader.signature(for: unsigned, context: Labels.rosterSignature) } catch {
            preconditionFailure("fixed Ed25519 context is valid")
        }
        return SignedRoster(
            roomID: roomID, epoch: epoch, rosterVersion: rosterVersion, epochChange: epochChange,
            successor: successor, chainPrevious: chainPrevious, entries: entries, signature: signature, signedPart: unsigned,
            rosterHash: rosterHash)
    }

    /// The structural rules of a roster's entries (3.6), which ``sign(roomID:epoch:rosterVersion:epochChange:successor:chainPrevious:entries:leader:rosterHash:)`` and a leader's
    /// ``RosterDelta`` both check.
    static func validate(entries: [Entry], successor: UInt16) throws(E2EControlError) {
        guard !entries.isEmpty, entries.count <= maximumMembers else { throw .invalidRoster("\(entries.count) entries") }
        var previous: UInt16 = 0
        for e in entries {
            guard ParticipantIndex.memberRange.contains(e.index), e.index > previous else {
                throw .invalidRoster("index \(e.index) out of range or order")
            }
            guard e.displayName.utf8.count <= Entry.maximumNameLength else { throw .invalidRoster("name of #\(e.index) too long") }
            previous = e.index
        }
        if successor != 0 {
            guard let s = entries.first(where: { $0.index == successor }), s.role != .host else { throw .invalidRoster("successor #\(successor)") }
        }
        let length = encodedLength(entries: entries)
        guard length <= maximumEncodedLength else { throw .tooLong(length: length, limit: maximumEncodedLength) }
    }

    init(
        roomID: RoomID, epoch: UInt64, rosterVersion: UInt32, epochChange: EpochChange, successor: UInt16, chainPrevious: [UInt8],
        entries: [Entry], signature: [UInt8], signedPart: [UInt8]? = nil, rosterHash: [UInt8]? = nil
    ) {
        self.roomID = roomID; self.epoch = epoch; self.rosterVersion = rosterVersion
        self.epochChange = epochChange; self.successor = successor; self.chainPrevious = chainPrevious
        self.entries = entries; self.signature = signature
        self.signedPart =
            signedPart
            ?? Self.signedPart(
                roomID: roomID, epoch: epoch, rosterVersion: rosterVersion, epochChange: epochChange,
                successor: successor, chainPrevious: chainPrevious, entries: entries)
        self.rosterHash = rosterHash ?? RosterHash.compute(roomID: roomID, members: entries.map(\.member))
        self.chainHead = SHA2.sha256(Array(Labels.rosterChain.utf8) + chainPrevious + self.rosterHash)
        self.isDerived = false
        self.hashVerified = true
    }

    /// The roster a verified ``RosterDelta`` makes of its base (section 3.6), or the one the
    /// leader keeps after sending one. It has no signature of its own (``isDerived``; never
    /// sent). Its roster hash is the delta's signed one: ``hashVerified`` says whether it
    /// was recomputed from the entries (the leader does; a member does within one heartbeat).
    init(derivedFrom delta: RosterDelta, entries: [Entry], hashVerified: Bool = false) {
        self.roomID = delta.roomID; self.epoch = delta.epoch; self.rosterVersion = delta.rosterVersion
        self.epochChange = delta.epochChange; self.successor = delta.successor; self.chainPrevious = delta.chainPrevious
        self.entries = entries; self.signature = []; self.signedPart = []
        self.rosterHash = delta.rosterHash
        self.chainHead = SHA2.sha256(Array(Labels.rosterChain.utf8) + delta.chainPrevious + delta.rosterHash)
        self.isDerived = true
        self.hashVerified = hashVerified
    }

    /// True for a roster made from a ``RosterDelta``: it has no signature of its own and is
    /// never encoded.
    public let isDerived: Bool
    /// False while a derived roster's hash is the delta's claim, not yet recomputed.
    public private(set) var hashVerified: Bool

    /// Recomputes the roster hash from the entries (a 500-member roster hashes 33 kB) and
    /// records that it matched; false if it differs from the signed one.
    public mutating func verifyHash() -> Bool {
        guard !hashVerified else { return true }
        guard RosterHash.compute(roomID: roomID, members: members) == rosterHash else { return false }
        hashVerified = true
        return true
    }

    /// The chain head before a room's first roster.
    public static let chainStart = [UInt8](repeating: 0, count: 32)

    /// The roster chain head of this roster (3.6):
    /// `SHA-256("conclave/v2 roster-chain" || chain_prev || roster_hash)`. The chain grows
    /// by one link per membership (roster hash) the leader signs: a `ROSTER` that keeps the
    /// membership (roles, names, mute, a rotation) repeats the `chain_prev` of the one
    /// before it and so keeps the head and the security code.
    public let chainHead: [UInt8]

    /// The `chain_prev` a roster with `entries` must carry after `previous` (3.6).
    public static func chainPrevious(after previous: SignedRoster?, roomID: RoomID, entries: [Entry]) -> [UInt8] {
        guard let previous else { return chainStart }
        return RosterHash.compute(roomID: roomID, members: entries.map(\.member)) == previous.rosterHash
            ? previous.chainPrevious : previous.chainHead
    }

    /// `131 + Σ entry lengths`.
    public static func encodedLength(entries: [Entry]) -> Int {
        entries.reduce(fixedLength) { $0 + $1.encodedLength }
    }

    public var encodedLength: Int { Self.encodedLength(entries: entries) }

    /// Every byte before the signature (kept from signing or decoding: verifying a large
    /// roster does not encode it again).
    public let signedPart: [UInt8]

    static func signedPart(
        roomID: RoomID, epoch: UInt64, rosterVersion: UInt32, epochChange: EpochChange, successor: UInt16,
        chainPrevious: [UInt8], entries: [Entry]
    ) -> [UInt8] {
        var w = ByteWriter(capacity: encodedLength(entries: entries))
        w.writeUInt8(type)
        Header(
            roomID: roomID, epoch: epoch, rosterVersion: rosterVersion, epochChange: epochChange, successor: successor,
            chainPrevious: chainPrevious
        ).write(to: &w)
        w.writeUInt16(UInt16(entries.count))
        for e in entries { write(e, to: &w) }
        return w.bytes
    }

    /// `u16 index || identity (64) || join_nonce (16) || u8 role || u8 flags || u8 name_length || name`.
    static func write(_ e: Entry, to w: inout ByteWriter) {
        w.writeUInt16(e.index)
        w.writeBytes(e.identity.encoded)
        w.writeBytes(e.joinNonce)
        w.writeUInt8(e.role.rawValue)
        w.writeUInt8(e.flags)
        w.writeUInt8(UInt8(e.displayName.utf8.count))
        w.writeBytes(e.displayName.utf8)
    }

    /// The fields `ROSTER` and `ROSTER_DELTA` share after their type byte (3.6):
    /// `u8 version = 2 || room_id (16) || u64 epoch || u32 roster_version || u8 epoch_change
    /// || u16 successor || chain_prev (32)`.
    struct Header {
        var roomID: RoomID
        var epoch: UInt64
        var rosterVersion: UInt32
        var epochChange: EpochChange
        var successor: UInt16
        var chainPrevious: [UInt8]

        func write(to w: inout ByteWriter) {
            w.writeUInt8(SignedRoster.version)
            roomID.write(to: &w)
            w.writeUInt64(epoch)
            w.writeUInt32(rosterVersion)
            w.writeUInt8(epochChange.rawValue)
            w.writeUInt16(successor)
            w.writeBytes(chainPrevious)
        }

        static func read(_ reader: inout ByteReader) throws -> Header {
            let version = try reader.readUInt8("version")
            guard version == SignedRoster.version else { throw E2EControlError.malformed("version \(version)") }
            let room = try RoomID(from: &reader)
            let epoch = try reader.readUInt64("epoch")
            let rosterVersion = try reader.readUInt32("roster_version")
            let rawChange = try reader.readUInt8("epoch_change")
            guard let change = EpochChange(rawValue: rawChange) else { throw E2EControlError.malformed("epoch_change \(rawChange)") }
            let successor = try reader.readUInt16("successor")
            let chainPrevious = try reader.readBytes(count: 32, field: "chain_prev")
            return Header(
                roomID: room, epoch: epoch, rosterVersion: rosterVersion, epochChange: change, successor: successor,
                chainPrevious: chainPrevious)
        }
    }

    /// Reads one entry whose index must exceed `previous` (strictly increasing order).
    static func readEntry(_ reader: inout ByteReader, after previous: UInt16) throws -> Entry {
        let index = try reader.readUInt16("entry.index")
        guard ParticipantIndex.memberRange.contains(index), index > previous else {
            throw E2EControlError.malformed("entry index \(index) out of range or order")
        }
        let identityBytes = try reader.readSlice(count: PublicIdentity.encodedLength, field: "entry.identity")
        let identity: PublicIdentity
        do { identity = try PublicIdentity(encoded: identityBytes) } catch { throw E2EControlError.malformed("entry.identity") }
        let nonce = try reader.readBytes(count: Knock.joinNonceLength, field: "entry.join_nonce")
        let rawRole = try reader.readUInt8("entry.role")
        guard let role = Role(rawValue: rawRole) else { throw E2EControlError.malformed("entry role \(rawRole)") }
        let flags = try reader.readUInt8("entry.flags")
        guard flags & ~0x07 == 0 else { throw E2EControlError.malformed("entry flags 0x\(String(flags, radix: 16))") }
        let nameLength = Int(try reader.readUInt8("entry.name_length"))
        guard nameLength <= Entry.maximumNameLength else { throw E2EControlError.malformed("entry name_length \(nameLength)") }
        let nameBytes = try reader.readSlice(count: nameLength, field: "entry.name")
        guard let name = String(validating: nameBytes, as: UTF8.self) else { throw E2EControlError.malformed("entry name is not UTF-8") }
        return Entry(
            index: index, identity: identity, role: role, muted: flags & 0x01 != 0,
            presenter: flags & 0x02 != 0, recorder: flags & 0x04 != 0, displayName: name, joinNonce: nonce)
    }

    /// The whole message: signed part and signature (never of a derived roster).
    public var encoded: [UInt8] {
        precondition(!isDerived, "a roster derived from a ROSTER_DELTA has no signature of its own")
        return signedPart + signature
    }

    /// True when `signature` is `key`'s over ``signedPart`` with context `conclave/v1 roster`.
    public func isSigned(by key: Ed25519.PublicKey) -> Bool {
        key.isValidSignature(signature, for: signedPart, context: Labels.rosterSignature)
    }

    /// The members (index, identity, join nonce), for the roster hash and key packages.
    public var members: [RosterMember] { entries.map(\.member) }

    /// The members for the key ring and send state: the entries themselves, not copied.
    public var memberTable: MemberTable { MemberTable(entries: entries) }

    /// The entry with this index, if any (binary search; entries are sorted).
    public func entry(for index: UInt16) -> Entry? {
        var lo = 0, hi = entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if entries[mid].index < index { lo = mid + 1 } else { hi = mid }
        }
        return lo < entries.count && entries[lo].index == index ? entries[lo] : nil
    }

    /// Parses a `ROSTER` from `reader`, whose type byte has already been read.
    static func decode(body reader: inout ByteReader, whole: UnsafeRawBufferPointer) throws(E2EControlError) -> SignedRoster {
        let totalLength = whole.count
        guard totalLength <= maximumEncodedLength else { throw .tooLong(length: totalLength, limit: maximumEncodedLength) }
        do {
            let h = try Header.read(&reader)
            let (room, epoch, rosterVersion, change, successor, chainPrevious) = (
                h.roomID, h.epoch, h.rosterVersion, h.epochChange, h.successor, h.chainPrevious
            )
            let count = Int(try reader.readUInt16("count"))
            guard count >= 1, count <= maximumMembers else { throw E2EControlError.malformed("count \(count)") }
            // Each entry needs at least 85 bytes, and the signature 64 more: checked before
            // reserving anything for `count` entries.
            guard count <= (reader.remainingCount - signatureLength) / Entry.fixedLength else {
                throw E2EControlError.malformed("count \(count) exceeds the bytes present")
            }
            var entries: [Entry] = []
            entries.reserveCapacity(count)
            var previous: UInt16 = 0
            for _ in 0..<count {
                let entry = try readEntry(&reader, after: previous)
                previous = entry.index
                entries.append(entry)
            }
            let signature = try reader.readBytes(count: signatureLength, field: "signature")
            guard reader.isAtEnd else { throw E2EControlError.malformed("\(reader.remainingCount) bytes after the signature") }
            if successor != 0 {
                guard let s = entries.first(where: { $0.index == successor }), s.role != .host else {
                    throw E2EControlError.malformed("successor #\(successor) is not a non-host entry")
                }
            }
            return SignedRoster(
                roomID: room, epoch: epoch, rosterVersion: rosterVersion, epochChange: change,
                successor: successor, chainPrevious: chainPrevious, entries: entries, signature: signature,
                signedPart: Array(whole.prefix(totalLength - signatureLength)))
        } catch let error as E2EControlError {
            throw error
        } catch let error as MessageDecodingError {
            throw .malformed(Self.field(of: error))
        } catch {
            throw .malformed("roster")
        }
    }

    static func field(of error: MessageDecodingError) -> String {
        if case let .truncated(field) = error { return "truncated at \(field)" }
        return error.description
    }
}

// MARK: - HANDOVER

/// A `HANDOVER` control message (type `0x02`, section 3.6): the old leader names its
/// successor. Exactly 123 bytes:
///
/// ```
/// u8 type = 2 || room_id (16) || u64 epoch || u16 new_leader_index || new_leader_ed25519 (32)
/// || signature (64) = Ed25519(old leader, "conclave/v1 handover", bytes 0–58)
/// ```
public struct Handover: Sendable, Hashable {
    public static let type: UInt8 = 0x02
    public static let encodedLength = 1 + 16 + 8 + 2 + 32 + 64

    public let roomID: RoomID
    /// The current epoch.
    public let epoch: UInt64
    public let newLeaderIndex: UInt16
    public let newLeaderKey: Ed25519.PublicKey
    public let signature: [UInt8]

    public static func sign(
        roomID: RoomID, epoch: UInt64, newLeaderIndex: UInt16, newLeaderKey: Ed25519.PublicKey,
        oldLeader: Ed25519.PrivateKey
    ) -> Handover {
        let unsigned = signedPart(roomID: roomID, epoch: epoch, newLeaderIndex: newLeaderIndex, newLeaderKey: newLeaderKey)
        let signature: [UInt8]
        do { signature = try oldLeader.signature(for: unsigned, context: Labels.handoverSignature) } catch {
            preconditionFailure("fixed Ed25519 context is valid")
        }
        return Handover(roomID: roomID, epoch: epoch, newLeaderIndex: newLeaderIndex, newLeaderKey: newLeaderKey, signature: signature)
    }

    init(roomID: RoomID, epoch: UInt64, newLeaderIndex: UInt16, newLeaderKey: Ed25519.PublicKey, signature: [UInt8]) {
        self.roomID = roomID; self.epoch = epoch; self.newLeaderIndex = newLeaderIndex
        self.newLeaderKey = newLeaderKey; self.signature = signature
    }

    static func signedPart(roomID: RoomID, epoch: UInt64, newLeaderIndex: UInt16, newLeaderKey: Ed25519.PublicKey) -> [UInt8] {
        var w = ByteWriter(capacity: encodedLength)
        w.writeUInt8(type)
        roomID.write(to: &w)
        w.writeUInt64(epoch)
        w.writeUInt16(newLeaderIndex)
        w.writeBytes(newLeaderKey.rawRepresentation)
        return w.bytes
    }

    /// Bytes 0–58.
    public var signedPart: [UInt8] {
        Self.signedPart(roomID: roomID, epoch: epoch, newLeaderIndex: newLeaderIndex, newLeaderKey: newLeaderKey)
    }

    public var encoded: [UInt8] { signedPart + signature }

    /// True when `signature` is `key`'s over ``signedPart`` with context `conclave/v1 handover`.
    public func isSigned(by key: Ed25519.PublicKey) -> Bool {
        key.isValidSignature(signature, for: signedPart, context: Labels.handoverSignature)
    }

    static func decode(body reader: inout ByteReader, totalLength: Int) throws(E2EControlError) -> Handover {
        guard totalLength == encodedLength else { throw .malformed("handover of \(totalLength) bytes, expected \(encodedLength)") }
        do {
            let room = try RoomID(from: &reader)
            let epoch = try reader.readUInt64("epoch")
            let index = try reader.readUInt16("new_leader_index")
            let key = try Ed25519.PublicKey(rawRepresentation: reader.readSlice(count: 32, field: "new_leader_ed25519"))
            let signature = try reader.readBytes(count: 64, field: "signature")
            return Handover(roomID: room, epoch: epoch, newLeaderIndex: index, newLeaderKey: key, signature: signature)
        } catch let error as MessageDecodingError {
            throw .malformed(SignedRoster.field(of: error))
        } catch {
            throw .malformed("handover")
        }
    }
}

// MARK: - KNOCK_NOTICE

/// The leader tells co-hosts who is knocking (3.6): the waiting index, the identity and the
/// display name it verified in the sealed knock, which only the host can open. Signed by
/// the leader (context `conclave/v1 knock-notice`), sent addressed to each co-host.
///
/// ```
/// u8 type (0x03) || room_id (16) || u16 waiting_index || identity (64) || u8 name_length (1–64)
/// || name || signature (64) over all preceding bytes
/// ```
public struct KnockNotice: Sendable, Hashable {
    public static let type: UInt8 = 0x03
    public let roomID: RoomID
    public let waitingIndex: UInt16
    public let identity: PublicIdentity
    public let displayName: String
    public let signature: [UInt8]

    public static func sign(
        roomID: RoomID, waitingIndex: UInt16, identity: PublicIdentity, displayName: String,
        leader: Ed25519.PrivateKey
    ) throws(E2EControlError) -> KnockNotice {
        let name = Array(displayName.utf8)
        guard (1...Knock.maximumNameLength).contains(name.count) else { throw .malformed("knock notice name") }
        let part = signedPart(roomID: roomID, waitingIndex: waitingIndex, identity: identity, name: name)
        guard let signature = try? leader.signature(for: part, context: Labels.knockNoticeSignature) else { throw .malformed("knock notice signature") }
        return KnockNotice(roomID: roomID, waitingIndex: waitingIndex, identity: identity, displayName: displayName, signature: signature)
    }

    static func signedPart(roomID: RoomID, waitingIndex: UInt16, identity: PublicIdentity, name: [UInt8]) -> [UInt8] {
        [type] + roomID.bytes + waitingIndex.bigEndianBytes + identity.encoded + [UInt8(name.count)] + name
    }

    public var signedPart: [UInt8] {
        Self.signedPart(roomID: roomID, waitingIndex: waitingIndex, identity: identity, name: Array(displayName.utf8))
    }

    public var encoded: [UInt8] { signedPart + signature }

    public func isSigned(by key: Ed25519.PublicKey) -> Bool {
        key.isValidSignature(signature, for: signedPart, context: Labels.knockNoticeSignature)
    }

    static func decode(body reader: inout ByteReader, totalLength: Int) throws(E2EControlError) -> KnockNotice {
        guard totalLength >= 1 + 16 + 2 + 64 + 1 + 1 + 64, totalLength <= 1 + 16 + 2 + 64 + 1 + Knock.maximumNameLength + 64 else {
            throw .malformed("knock notice of \(totalLength) bytes")
        }
        do {
            let room = try RoomID(from: &reader)
            let index = try reader.readUInt16("waiting_index")
            let identity = try PublicIdentity(encoded: reader.readSlice(count: 64, field: "identity"))
            let length = Int(try reader.readUInt8("name_length"))
            guard (1...Knock.maximumNameLength).contains(length), totalLength == 1 + 16 + 2 + 64 + 1 + length + 64 else {
                throw E2EControlError.malformed("knock notice name length")
            }
            guard let name = String(validating: try reader.readSlice(count: length, field: "name"), as: UTF8.self) else {
                throw E2EControlError.malformed("knock notice name is not UTF-8")
            }
            let signature = try reader.readBytes(count: 64, field: "signature")
            return KnockNotice(roomID: room, waitingIndex: index, identity: identity, displayName: name, signature: signature)
        } catch let error as E2EControlError {
            throw error
        } catch let error as MessageDecodingError {
            throw .malformed(SignedRoster.field(of: error))
        } catch {
            throw .malformed("knock notice")
        }
    }
}

// MARK: - HEARTBEAT

/// The leader's signed heartbeat (type `0x04`, section 3.6): sent to everyone every
/// ``interval`` milliseconds. A member that hears none for ``silenceTimeout`` treats the
/// leader as lost: the successor of the last verified `ROSTER` takes the keys over. Exactly
/// 1 + 16 + 8 + 4 + 32 + 8 + 64 = 133 bytes:
///
/// ```
/// u8 type (0x04) || room_id (16) || u64 epoch || u32 roster_version || chain_head (32)
/// || u64 sequence || signature (64) = Ed25519(leader, "conclave/v2 heartbeat", bytes 0–68)
/// ```
/// `sequence` strictly increases across one leader's heartbeats: a replayed heartbeat is
/// refused, so a relay cannot keep a dead leader alive with old ones.
public struct Heartbeat: Sendable, Hashable {
    public static let type: UInt8 = 0x04
    public static let encodedLength = 1 + 16 + 8 + 4 + 32 + 8 + 64
    /// The leader's sending interval by default (milliseconds).
    public static let interval: UInt64 = 2_000
    /// Silence after which members treat the leader as lost (milliseconds).
    public static let silenceTimeout: UInt64 = 7_000

    public let roomID: RoomID
    public let epoch: UInt64
    public let rosterVersion: UInt32
    /// The leader's roster chain head after its latest roster.
    public let chainHead: [UInt8]
    public let sequence: UInt64
    public let signature: [UInt8]

    public static func sign(
        roomID: RoomID, epoch: UInt64, rosterVersion: UInt32, chainHead: [UInt8], sequence: UInt64,
        leader: Ed25519.PrivateKey
    ) -> Heartbeat {
        precondition(chainHead.count == 32)
        let part = signedPart(roomID: roomID, epoch: epoch, rosterVersion: rosterVersion, chainHead: chainHead, sequence: sequence)
        let signature: [UInt8]
        do { signature = try leader.signature(for: part, context: Labels.heartbeatSignature) } catch {
            preconditionFailure("fixed Ed25519 context is valid")
        }
        return Heartbeat(roomID: roomID, epoch: epoch, rosterVersion: rosterVersion, chainHead: chainHead, sequence: sequence, signature: signature)
    }

    init(roomID: RoomID, epoch: UInt64, rosterVersion: UInt32, chainHead: [UInt8], sequence: UInt64, signature: [UInt8]) {
        self.roomID = roomID; self.epoch = epoch; self.rosterVersion = rosterVersion; self.chainHead = chainHead
        self.sequence = sequence; self.signature = signature
    }

    static func signedPart(roomID: RoomID, epoch: UInt64, rosterVersion: UInt32, chainHead: [UInt8], sequence: UInt64) -> [UInt8] {
        [type] + roomID.bytes + epoch.bigEndianBytes + rosterVersion.bigEndianBytes + chainHead + sequence.bigEndianBytes
    }

    public var signedPart: [UInt8] {
        Self.signedPart(roomID: roomID, epoch: epoch, rosterVersion: rosterVersion, chainHead: chainHead, sequence: sequence)
    }
    public var encoded: [UInt8] { signedPart + signature }

    public func isSigned(by key: Ed25519.PublicKey) -> Bool {
        key.isValidSignature(signature, for: signedPart, context: Labels.heartbeatSignature)
    }

    static func decode(body reader: inout ByteReader, totalLength: Int) throws(E2EControlError) -> Heartbeat {
        guard totalLength == encodedLength else { throw .malformed("heartbeat of \(totalLength) bytes, expected \(encodedLength)") }
        do {
            let room = try RoomID(from: &reader)
            let epoch = try reader.readUInt64("epoch")
            let version = try reader.readUInt32("roster_version")
            let head = try reader.readBytes(count: 32, field: "chain_head")
            let sequence = try reader.readUInt64("sequence")
            let signature = try reader.readBytes(count: 64, field: "signature")
            return Heartbeat(roomID: room, epoch: epoch, rosterVersion: version, chainHead: head, sequence: sequence, signature: signature)
        } catch let error as MessageDecodingError {
            throw .malformed(SignedRoster.field(of: error))
        } catch {
            throw .malformed("heartbeat")
        }
    }
}

// MARK: - MODERATION_REQUEST

/// A co-host asks the leader, end to end and signed, to carry out a moderation decision
/// the signed roster reflects (type `0x05`, section 3.6): admit a knocker, remove a member,
/// grant or revoke screen sharing. Sent addressed to the leader under the co-host's epoch
/// key, alongside the relay command. Exactly 1 + 16 + 2 + 4 + 1 + 2 + 64 + 64 = 154 bytes:
///
/// ```
/// u8 type (0x05) || room_id (16) || u16 requester || u32 sequence || u8 action
/// || u16 target || target_identity (64)
/// || signature (64) = Ed25519(requester, "conclave/v2 moderation-request", bytes 0–89)
/// ```
public struct ModerationRequest: Sendable, Hashable {
    public static let type: UInt8 = 0x05
    public static let encodedLength = 1 + 16 + 2 + 4 + 1 + 2 + 64 + 64

    public enum Action: UInt8, Sendable, Hashable, CaseIterable {
        case admit = 1
        case remove = 2
        case grantShare = 3
        case revokeShare = 4

        public var name: String {
            switch self {
            case .admit: "admit"
            case .remove: "remove"
            case .grantShare: "grant_share"
            case .revokeShare: "revoke_share"
            }
        }
    }

    public let roomID: RoomID
    public let requester: UInt16
    /// Strictly increasing across one requester's requests: a replay is refused.
    public let sequence: UInt32
    public let action: Action
    public let target: UInt16
    /// The identity the co-host means: the knocker's (from `KNOCK` and the leader's
    /// `KNOCK_NOTICE`) for `admit`, the member's roster identity otherwise.
    public let targetIdentity: PublicIdentity
    public let signature: [UInt8]

    public static func sign(
        roomID: RoomID, requester: UInt16, sequence: UInt32, action: Action, target: UInt16,
        targetIdentity: PublicIdentity, by key: Ed25519.PrivateKey
    ) -> ModerationRequest {
        let part = signedPart(roomID: roomID, requester: requester, sequence: sequence, action: action, target: target, targetIdentity: targetIdentity)
        let signature: [UInt8]
        do { signature = try key.signature(for: part, context: Labels.moderationRequestSignature) } catch {
            preconditionFailure("fixed Ed25519 context is valid")
        }
        return ModerationRequest(
            roomID: roomID, requester: requester, sequence: sequence, action: action, target: target,
            targetIdentity: targetIdentity, signature: signature)
    }

    init(roomID: RoomID, requester: UInt16, sequence: UInt32, action: Action, target: UInt16, targetIdentity: PublicIdentity, signature: [UInt8]) {
        self.roomID = roomID; self.requester = requester; self.sequence = sequence; self.action = action
        self.target = target; self.targetIdentity = targetIdentity; self.signature = signature
    }

    static func signedPart(roomID: RoomID, requester: UInt16, sequence: UInt32, action: Action, target: UInt16, targetIdentity: PublicIdentity) -> [UInt8] {
        [type] + roomID.bytes + requester.bigEndianBytes + sequence.bigEndianBytes + [action.rawValue] + target.bigEndianBytes + targetIdentity.encoded
    }

    public var signedPart: [UInt8] {
        Self.signedPart(roomID: roomID, requester: requester, sequence: sequence, action: action, target: target, targetIdentity: targetIdentity)
    }

    public var encoded: [UInt8] { signedPart + signature }

    public func isSigned(by key: Ed25519.PublicKey) -> Bool {
        key.isValidSignature(signature, for: signedPart, context: Labels.moderationRequestSignature)
    }

    static func decode(body reader: inout ByteReader, totalLength: Int) throws(E2EControlError) -> ModerationRequest {
        guard totalLength == encodedLength else { throw .malformed("moderation request of \(totalLength) bytes, expected \(encodedLength)") }
        do {
            let room = try RoomID(from: &reader)
            let requester = try reader.readUInt16("requester")
            let sequence = try reader.readUInt32("sequence")
            let rawAction = try reader.readUInt8("action")
            guard let action = Action(rawValue: rawAction) else { throw E2EControlError.malformed("action \(rawAction)") }
            let target = try reader.readUInt16("target")
            guard ParticipantIndex.memberRange.contains(requester), ParticipantIndex.memberRange.contains(target) else {
                throw E2EControlError.malformed("requester or target out of range")
            }
            let identity = try PublicIdentity(encoded: reader.readSlice(count: 64, field: "target_identity"))
            let signature = try reader.readBytes(count: 64, field: "signature")
            return ModerationRequest(
                roomID: room, requester: requester, sequence: sequence, action: action, target: target,
                targetIdentity: identity, signature: signature)
        } catch let error as E2EControlError {
            throw error
        } catch let error as MessageDecodingError {
            throw .malformed(SignedRoster.field(of: error))
        } catch {
            throw .malformed("moderation request")
        }
    }
}

// MARK: - Codec

/// The plaintext of a control frame (kind 4, section 3.6): its first byte is its type.
public enum E2EControlMessage: Sendable, Hashable {
    case roster(SignedRoster)
    case handover(Handover)
    case knockNotice(KnockNotice)
    case heartbeat(Heartbeat)
    case moderationRequest(ModerationRequest)
    case rosterDelta(RosterDelta)
    case recordingNotice(RecordingNotice)
    case recordingConsent(RecordingConsent)
    /// A piece of a longer message: reassemble with ``ControlReassembly``.
    case part(ControlPart)

    public var encoded: [UInt8] {
        switch self {
        case let .roster(r): return r.encoded
        case let .handover(h): return h.encoded
        case let .knockNotice(n): return n.encoded
        case let .heartbeat(b): return b.encoded
        case let .moderationRequest(r): return r.encoded
        case let .rosterDelta(d): return d.encoded
        case let .recordingNotice(n): return n.encoded
        case let .recordingConsent(c): return c.encoded
        case let .part(p): return p.encoded
        }
    }

    /// Parses a control plaintext. Never traps and never allocates from a length it has
    /// not checked against the bytes present. Throws ``E2EControlError/unknownType(_:)``
    /// for reserved types (drop silently) and ``E2EControlError/malformed(_:)`` or
    /// ``E2EControlError/tooLong(length:limit:)`` otherwise. Signatures are not checked here.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(E2EControlError) -> E2EControlMessage {
        var reader = ByteReader(bytes)
        guard let type = try? reader.readUInt8("type") else { throw .malformed("empty") }
        switch type {
        case SignedRoster.type: return .roster(try SignedRoster.decode(body: &reader, whole: bytes))
        case Handover.type: return .handover(try Handover.decode(body: &reader, totalLength: bytes.count))
        case KnockNotice.type: return .knockNotice(try KnockNotice.decode(body: &reader, totalLength: bytes.count))
        case Heartbeat.type: return .heartbeat(try Heartbeat.decode(body: &reader, totalLength: bytes.count))
        case ModerationRequest.type: return .moderationRequest(try ModerationRequest.decode(body: &reader, totalLength: bytes.count))
        case RosterDelta.type: return .rosterDelta(try RosterDelta.decode(body: &reader, whole: bytes))
        case RecordingNotice.type: return .recordingNotice(try RecordingNotice.decode(body: &reader, totalLength: bytes.count))
        case RecordingConsent.type: return .recordingConsent(try RecordingConsent.decode(body: &reader, totalLength: bytes.count))
        case ControlPart.type: return .part(try ControlPart.decode(body: &reader, totalLength: bytes.count))
        default: throw .unknownType(type)
        }
    }

    public static func decode(_ bytes: [UInt8]) throws(E2EControlError) -> E2EControlMessage {
        let result = bytes.withUnsafeBytes { raw in Result { () throws(E2EControlError) in try decode(raw) } }
        return try result.get()
    }
}
