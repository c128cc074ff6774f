import ConclaveCrypto

/// Why a recording file cannot be read. None of the cases carries key material or
/// recorded content.
public enum RecordingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file does not start with the recording magic.
    case notARecording
    /// A format version this build does not read.
    case unsupportedVersion(UInt8)
    /// The header or a record is structurally invalid (before any decryption).
    case malformed(String)
    /// No key slot opens with the given identity or passphrase.
    case wrongKey
    /// A record, the order of records or the header failed authentication.
    case tampered(String)
    /// The file ends before its final record.
    case truncated
    /// A length is over a documented limit.
    case tooLarge(what: String, length: Int, limit: Int)
    /// Reading or writing the file failed.
    case io(String)
    /// Recording is not possible (no right, no consent, already running…).
    case refused(String)

    public var description: String {
        switch self {
        case .notARecording: return "not a Conclave recording (bad magic)"
        case let .unsupportedVersion(v): return "unsupported recording format version \(v) (this build reads version \(RecordingFormat.version))"
        case let .malformed(what): return "malformed recording: \(what)"
        case .wrongKey: return "wrong key: no key slot of this recording opens with the given identity or passphrase"
        case let .tampered(what): return "the recording was tampered with: \(what)"
        case .truncated: return "the recording is truncated: it ends before its final record"
        case let .tooLarge(what, length, limit): return "\(what) of \(length) bytes is over the limit of \(limit)"
        case let .io(what): return what
        case let .refused(why): return why
        }
    }
}

/// The recording file format (protocol/RECORDING.md): constants and the header.
public enum RecordingFormat {
    /// `CNCLVREC`.
    public static let magic: [UInt8] = Array("CNCLVREC".utf8)
    public static let version: UInt8 = 1
    /// Bytes of the header before the member slots.
    public static let fixedHeaderLength = 113
    /// At most this many member slots (a roster's limit).
    public static let maximumMembers = 500
    /// Key slots: 1 to 8.
    public static let maximumKeySlots = 8
    /// The longest header: 113 + 32 × 500 + 1 + 8 × 113 + 24.
    public static let maximumHeaderLength = fixedHeaderLength + 32 * maximumMembers + 1 + maximumKeySlots * KeySlot.identityLength + SecretStream.headerLength
    /// The longest record plaintext (64 KiB) and its ciphertext on disk.
    public static let maximumRecordLength = 65_536
    public static let maximumSealedRecordLength = maximumRecordLength + SecretStream.overhead

    /// `SHA-256("conclave/v2 recording-room" || room_id)`: ties a file to a room without
    /// naming it.
    public static func roomHash(_ roomID: RoomID) -> [UInt8] {
        SHA2.sha256(Array(Labels.recordingRoom.utf8) + roomID.bytes)
    }
}

/// A way to obtain the file key: sealed to an identity's X25519 key, or wrapped under a
/// key derived from a passphrase.
public enum KeySlot: Sendable, Hashable {
    /// `u8 kind = 1 || fingerprint (32) || sealed (80)`: `crypto_box_seal(file_key)` to the
    /// identity with that fingerprint.
    case identity(fingerprint: [UInt8], sealed: [UInt8])
    /// `u8 kind = 2 || salt (16) || u32 passes || u32 memory_kib || nonce (24) || wrapped (48)`:
    /// XChaCha20-Poly1305 of the file key under Argon2id(passphrase, salt, passes,
    /// memory_kib × 1024), additional data `"conclave/v2 recording-passphrase" || recording_id`.
    case passphrase(salt: [UInt8], passes: UInt32, memoryKiB: UInt32, nonce: [UInt8], wrapped: [UInt8])

    public static let identityLength = 1 + 32 + 80
    public static let passphraseLength = 1 + 16 + 4 + 4 + 24 + 48

    public var encoded: [UInt8] {
        switch self {
        case let .identity(fingerprint, sealed): return [1] + fingerprint + sealed
        case let .passphrase(salt, passes, memory, nonce, wrapped): return [2] + salt + passes.bigEndianBytes + memory.bigEndianBytes + nonce + wrapped
        }
    }

    /// Seals `fileKey` to `identity`.
    public static func sealed(_ fileKey: SecretKey, to identity: PublicIdentity) throws -> KeySlot {
        let sealed = try fileKey.withUnsafeBytes { try SealedBox.seal($0, to: identity.agreementKey) }
        return .identity(fingerprint: identity.fingerprint.bytes, sealed: sealed)
    }

    /// Wraps `fileKey` under `passphrase` (Argon2id with `limits`; random salt and nonce).
    public static func wrapped(
        _ fileKey: SecretKey, passphrase: [UInt8], recordingID: [UInt8], limits: PasswordHash.Limits,
        salt: [UInt8]? = nil, nonce: [UInt8]? = nil
    ) throws -> KeySlot {
        let salt = salt ?? SecureRandom.bytes(count: PasswordHash.saltLength)
        let nonce = nonce ?? SecureRandom.bytes(count: XChaCha20Poly1305.nonceByteCount)
        let memoryKiB = UInt32(clamping: limits.memoryBytes / 1024)
        let kek = try PasswordHash.deriveKey(
            passphrase, salt: salt, limits: PasswordHash.Limits(operations: limits.operations, memoryBytes: Int(memoryKiB) * 1024))
        var box = [UInt8](repeating: 0, count: 32 + XChaCha20Poly1305.tagByteCount)
        let ad = Array(Labels.recordingPassphrase.utf8) + recordingID
        try box.withUnsafeMutableBytes { out in
            fileKey.withUnsafeBytes { out.copyMemory(from: $0) }
            try nonce.withUnsafeBytes { n in
                try ad.withUnsafeBytes { a in
                    try XChaCha20Poly1305.seal(
                        inPlace: UnsafeMutableRawBufferPointer(rebasing: out[0..<32]),
                        tag: UnsafeMutableRawBufferPointer(rebasing: out[32...]), key: kek, nonce: n, authenticating: a)
                }
            }
        }
        return .passphrase(salt: salt, passes: UInt32(clamping: limits.operations), memoryKiB: memoryKiB, nonce: nonce, wrapped: box)
    }

    /// The file key, if this slot opens with `identity`.
    public func open(identity: PrivateIdentity) -> SecretKey? {
        guard case let .identity(fingerprint, sealed) = self, fingerprint == identity.publicIdentity.fingerprint.bytes,
            let key = try? SealedBox.open(sealed, recipient: identity.agreementKey), key.count == 32
        else { return nil }
        return SecretKey(key)
    }

    /// The file key, if this slot opens with `passphrase`. Throws for cost parameters over
    /// ``PasswordHash/maximumDerivationLimits`` (a file cannot make us spend more).
    public func open(passphrase: [UInt8], recordingID: [UInt8]) throws(RecordingError) -> SecretKey? {
        guard case let .passphrase(salt, passes, memoryKiB, nonce, wrapped) = self else { return nil }
        let limits = PasswordHash.Limits(operations: UInt64(passes), memoryBytes: Int(memoryKiB) * 1024)
        let kek: SecretKey
        do { kek = try PasswordHash.deriveKey(passphrase, salt: salt, limits: limits) } catch {
            throw .malformed("passphrase slot: \(error)")
        }
        var box = wrapped
        let ad = Array(Labels.recordingPassphrase.utf8) + recordingID
        let opened: Bool = box.withUnsafeMutableBytes { b in
            nonce.withUnsafeBytes { n in
                ad.withUnsafeBytes { a in
                    (try? XChaCha20Poly1305.open(
                        inPlace: UnsafeMutableRawBufferPointer(rebasing: b[0..<32]),
                        tag: UnsafeRawBufferPointer(rebasing: b[32...]), key: kek, nonce: n, authenticating: a)) != nil
                }
            }
        }
        defer { box.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) } }
        return opened ? SecretKey(copying: box[0..<32]) : nil
    }
}

/// The plaintext header of a recording (protocol/RECORDING.md §2): readable without any
/// key, authenticated by the final record.
public struct RecordingHeader: Sendable, Hashable {
    public var createdAt: UInt64
    public var retainUntil: UInt64
    public var roomHash: [UInt8]
    public var recordingID: [UInt8]
    /// The recorder's fingerprint.
    public var recorder: [UInt8]
    /// Member slots reserved (1–500).
    public var memberCapacity: Int
    /// Fingerprints of the members recorded so far, in the order their consent arrived.
    public var members: [[UInt8]]
    public var slots: [KeySlot]
    public var streamHeader: [UInt8]

    public init(
        createdAt: UInt64, retainUntil: UInt64, roomHash: [UInt8], recordingID: [UInt8], recorder: [UInt8],
        memberCapacity: Int, members: [[UInt8]] = [], slots: [KeySlot], streamHeader: [UInt8]
    ) {
        precondition(roomHash.count == 32 && recordingID.count == 16 && recorder.count == 32 && streamHeader.count == SecretStream.headerLength)
        precondition((1...RecordingFormat.maximumMembers).contains(memberCapacity) && members.count <= memberCapacity)
        precondition((1...RecordingFormat.maximumKeySlots).contains(slots.count))
        self.createdAt = createdAt; self.retainUntil = retainUntil; self.roomHash = roomHash; self.recordingID = recordingID
        self.recorder = recorder; self.memberCapacity = memberCapacity; self.members = members; self.slots = slots
        self.streamHeader = streamHeader
    }

    /// Where the member count sits (it and the slots are rewritten in place as members consent).
    public static let memberCountOffset = 111
    public static func memberSlotOffset(_ i: Int) -> Int { RecordingFormat.fixedHeaderLength + 32 * i }

    public var encodedLength: Int {
        RecordingFormat.fixedHeaderLength + 32 * memberCapacity + 1 + slots.reduce(0) { $0 + $1.encoded.count } + SecretStream.headerLength
    }

    public var encoded: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(encodedLength)
        out += RecordingFormat.magic
        out.append(RecordingFormat.version)
        out += UInt32(encodedLength).bigEndianBytes
        out += createdAt.bigEndianBytes + retainUntil.bigEndianBytes + roomHash + recordingID + recorder
        out += UInt16(memberCapacity).bigEndianBytes + UInt16(members.count).bigEndianBytes
        for m in members { out += m }
        out += [UInt8](repeating: 0, count: 32 * (memberCapacity - members.count))
        out.append(UInt8(slots.count))
        for s in slots { out += s.encoded }
        out += streamHeader
        return out
    }

    /// Parses a header from the start of `bytes` (which may hold more of the file).
    /// Checks every length against its limit before reading it.
    public static func decode(_ bytes: [UInt8]) throws(RecordingError) -> RecordingHeader {
        guard bytes.count >= 8 else { throw bytes.isEmpty ? .notARecording : .truncated }
        guard Array(bytes[0..<8]) == RecordingFormat.magic else { throw .notARecording }
        guard bytes.count >= 13 else { throw .truncated }
        guard bytes[8] == RecordingFormat.version else { throw .unsupportedVersion(bytes[8]) }
        let length = Int(bytes[9..<13].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        guard length <= RecordingFormat.maximumHeaderLength else {
            throw .tooLarge(what: "recording header", length: length, limit: RecordingFormat.maximumHeaderLength)
        }
        guard length >= RecordingFormat.fixedHeaderLength + 32 + 1 + KeySlot.passphraseLength + SecretStream.headerLength else {
            throw .malformed("header length \(length)")
        }
        guard bytes.count >= length else { throw .truncated }
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(MessageDecodingError) -> RecordingHeader? in
                var r = ByteReader(UnsafeRawBufferPointer(rebasing: raw[13..<length]))
                let created = try r.readUInt64("created_at")
                let retain = try r.readUInt64("retain_until")
                let room = try r.readBytes(count: 32, field: "room_hash")
                let id = try r.readBytes(count: 16, field: "recording_id")
                let recorder = try r.readBytes(count: 32, field: "recorder")
                let capacity = Int(try r.readUInt16("member_capacity"))
                let count = Int(try r.readUInt16("member_count"))
                guard (1...RecordingFormat.maximumMembers).contains(capacity), count <= capacity else { return nil }
                var members: [[UInt8]] = []
                for i in 0..<capacity {
                    let slot = try r.readBytes(count: 32, field: "members")
                    if i < count { members.append(slot) } else if slot.contains(where: { $0 != 0 }) { return nil }
                }
                let slotCount = Int(try r.readUInt8("slot_count"))
                guard (1...RecordingFormat.maximumKeySlots).contains(slotCount) else { return nil }
                var slots: [KeySlot] = []
                for _ in 0..<slotCount {
                    switch try r.readUInt8("slot kind") {
                    case 1:
                        slots.append(
                            .identity(
                                fingerprint: try r.readBytes(count: 32, field: "slot fingerprint"),
                                sealed: try r.readBytes(count: 80, field: "slot sealed")))
                    case 2:
                        slots.append(
                            .passphrase(
                                salt: try r.readBytes(count: 16, field: "slot salt"), passes: try r.readUInt32("slot passes"),
                                memoryKiB: try r.readUInt32("slot memory"), nonce: try r.readBytes(count: 24, field: "slot nonce"),
                                wrapped: try r.readBytes(count: 48, field: "slot wrapped")))
                    default:
                        return nil
                    }
                }
                // At most one passphrase slot: each costs an Argon2id derivation to try.
                guard
                    slots.filter({
                        if case .passphrase = $0 { return true }; return false
                    }).count <= 1
                else { return nil }
                let stream = try r.readBytes(count: SecretStream.headerLength, field: "stream_header")
                try r.expectEnd()
                return RecordingHeader(
                    createdAt: created, retainUntil: retain, roomHash: room, recordingID: id, recorder: recorder,
                    memberCapacity: capacity, members: members, slots: slots, streamHeader: stream)
            }
        }
        switch result {
        case let .success(header?): return header
        case .success(nil): throw .malformed("header: member or key slot fields out of range")
        case let .failure(error): throw .malformed("header: \(error)")
        }
    }
}

/// One record of a recording, before encryption (protocol/RECORDING.md §4).
public enum RecordingRecord: Sendable, Hashable {
    /// First record: `u8 1 || recording_id (16) || room_id (16) || u64 started_at_ms
    /// || u16 recorder || recorder identity (64)`.
    case start(recordingID: [UInt8], roomID: RoomID, startedAtMillis: UInt64, recorder: UInt16, recorderIdentity: PublicIdentity)
    /// A member whose consent arrived: `u8 2 || u16 index || u32 t_ms || identity (64)
    /// || u8 name_length || name || consent (102)`. Written before any of its media.
    case member(index: UInt16, atMillis: UInt32, identity: PublicIdentity, displayName: String, consent: RecordingConsent)
    /// `u8 3 || u16 index || u32 t_ms || opus packet (1–1 275 bytes)`.
    case audio(index: UInt16, atMillis: UInt32, opus: [UInt8])
    /// `u8 4 || u16 index || u32 t_ms || u8 flags (bit 0: private) || text (UTF-8, 1–16 000 bytes)`.
    case chat(index: UInt16, atMillis: UInt32, isPrivate: Bool, text: String)
    /// Last record, with the final tag: `u8 5 || u32 t_ms || u64 stopped_at_ms`.
    case end(atMillis: UInt32, stoppedAtMillis: UInt64)

    public static let maximumOpusLength = 1_275
    public static let maximumChatLength = 16_000

    public var encoded: [UInt8] {
        switch self {
        case let .start(id, room, started, recorder, identity):
            return [1] + id + room.bytes + started.bigEndianBytes + recorder.bigEndianBytes + identity.encoded
        case let .member(index, at, identity, name, consent):
            let n = Array(name.utf8.prefix(64))
            return [2] + index.bigEndianBytes + at.bigEndianBytes + identity.encoded + [UInt8(n.count)] + n + consent.encoded
        case let .audio(index, at, opus):
            return [3] + index.bigEndianBytes + at.bigEndianBytes + opus
        case let .chat(index, at, isPrivate, text):
            return [4] + index.bigEndianBytes + at.bigEndianBytes + [isPrivate ? 1 : 0] + Array(text.utf8)
        case let .end(at, stopped):
            return [5] + at.bigEndianBytes + stopped.bigEndianBytes
        }
    }

    public static func decode(_ bytes: [UInt8]) throws(RecordingError) -> RecordingRecord {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(MessageDecodingError) -> RecordingRecord? in
                var r = ByteReader(raw)
                switch try r.readUInt8("record type") {
                case 1:
                    let id = try r.readBytes(count: 16, field: "recording_id")
                    let room = try RoomID(from: &r)
                    let started = try r.readUInt64("started_at_ms")
                    let recorder = try r.readUInt16("recorder")
                    guard let identity = try? PublicIdentity(encoded: r.readSlice(count: 64, field: "identity")) else { return nil }
                    try r.expectEnd()
                    return .start(recordingID: id, roomID: room, startedAtMillis: started, recorder: recorder, recorderIdentity: identity)
                case 2:
                    let index = try r.readUInt16("index")
                    let at = try r.readUInt32("t_ms")
                    guard let identity = try? PublicIdentity(encoded: r.readSlice(count: 64, field: "identity")) else { return nil }
                    let n = Int(try r.readUInt8("name_length"))
                    guard n <= 64, let name = String(validating: try r.readSlice(count: n, field: "name"), as: UTF8.self) else { return nil }
                    let consentBytes = try r.readBytes(count: RecordingConsent.encodedLength, field: "consent")
                    try r.expectEnd()
                    guard let consent = try? RecordingConsent.decode(consentBytes) else { return nil }
                    return .member(index: index, atMillis: at, identity: identity, displayName: name, consent: consent)
                case 3:
                    let index = try r.readUInt16("index")
                    let at = try r.readUInt32("t_ms")
                    let opus = r.readRemaining()
                    guard (1...maximumOpusLength).contains(opus.count) else { return nil }
                    return .audio(index: index, atMillis: at, opus: Array(opus))
                case 4:
                    let index = try r.readUInt16("index")
                    let at = try r.readUInt32("t_ms")
                    let flags = try r.readUInt8("flags")
                    let text = r.readRemaining()
                    guard flags & ~1 == 0, (1...maximumChatLength).contains(text.count),
                        let string = String(validating: text, as: UTF8.self)
                    else { return nil }
                    return .chat(index: index, atMillis: at, isPrivate: flags & 1 != 0, text: string)
                case 5:
                    let at = try r.readUInt32("t_ms")
                    let stopped = try r.readUInt64("stopped_at_ms")
                    try r.expectEnd()
                    return .end(atMillis: at, stoppedAtMillis: stopped)
                default:
                    return nil
                }
            }
        }
        switch result {
        case let .success(record?): return record
        case .success(nil): throw .malformed("a record with an invalid type or field")
        case let .failure(error): throw .malformed("record: \(error)")
        }
    }
}
