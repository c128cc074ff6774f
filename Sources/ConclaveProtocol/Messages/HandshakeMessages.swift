// Bodies of the handshake and admission messages (section 5.4). Each decoder reads the
// body after the preamble; each encoder writes it. Encoders trap (precondition) on a
// fixed-size field of the wrong length or an opaque field over its limit — a programming
// error — and otherwise write fields as given; only decoded values are known to be valid.

// MARK: HELLO

/// `HELLO` (`0x01`), 2-byte body: `min_version: u8`, `max_version: u8`, `1 ≤ min ≤ max`.
/// Always sent with preamble version ``ProtocolVersion/handshake``.
public struct HelloMessage: Sendable, Hashable {
    public var minimumVersion: UInt8
    public var maximumVersion: UInt8

    public init(minimumVersion: UInt8 = ProtocolVersion.supported.lowerBound, maximumVersion: UInt8 = ProtocolVersion.supported.upperBound) {
        self.minimumVersion = minimumVersion
        self.maximumVersion = maximumVersion
    }

    static let bodyLength = 2

    init(from reader: inout ByteReader) throws(MessageDecodingError) {
        minimumVersion = try reader.readUInt8("min_version")
        maximumVersion = try reader.readUInt8("max_version")
        guard minimumVersion >= 1 else { throw .invalidValue(field: "min_version", value: UInt64(minimumVersion)) }
        guard maximumVersion >= minimumVersion else { throw .invalidValue(field: "max_version", value: UInt64(maximumVersion)) }
    }

    func write(to writer: inout ByteWriter) {
        writer.writeUInt8(minimumVersion)
        writer.writeUInt8(maximumVersion)
    }
}

// MARK: WELCOME

/// `WELCOME` (`0x81`), 39-byte body: `version: u8`, `challenge: bytes[32]`, `max_message: u16`,
/// `max_frame_per_second: u16`, `reserved: u16`.
///
/// `version` equals the preamble's version; `max_message` is at least
/// ``MessageLimits/minimumAnnouncedMessageLength`` (16 392).
public struct WelcomeMessage: Sendable, Hashable {
    public var version: UInt8
    /// 32 fresh random bytes per connection, signed in `CREATE_ROOM` / `JOIN`.
    public var challenge: [UInt8]
    /// The relay's ``MessageLimits/maximumMessageLength`` (16 392 … 65 535).
    public var maximumMessageLength: UInt16
    public var maximumFramesPerSecond: UInt16

    public init(version: UInt8 = ProtocolVersion.current, challenge: [UInt8], maximumMessageLength: UInt16, maximumFramesPerSecond: UInt16) {
        self.version = version
        self.challenge = challenge
        self.maximumMessageLength = maximumMessageLength
        self.maximumFramesPerSecond = maximumFramesPerSecond
    }

    static let bodyLength = 39

    init(from reader: inout ByteReader) throws(MessageDecodingError) {
        version = try reader.readUInt8("version")
        guard version == ProtocolVersion.current else { throw .invalidValue(field: "version", value: UInt64(version)) }
        challenge = try reader.readBytes(count: MessageLimits.challengeLength, field: "challenge")
        maximumMessageLength = try reader.readUInt16("max_message")
        guard maximumMessageLength >= MessageLimits.minimumAnnouncedMessageLength else {
            throw .invalidValue(field: "max_message", value: UInt64(maximumMessageLength))
        }
        maximumFramesPerSecond = try reader.readUInt16("max_frame_per_second")
        try reader.readReservedUInt16("reserved")
    }

    func write(to writer: inout ByteWriter) {
        precondition(challenge.count == MessageLimits.challengeLength, "WELCOME challenge must be 32 bytes")
        writer.writeUInt8(version)
        writer.writeBytes(challenge)
        writer.writeUInt16(maximumMessageLength)
        writer.writeUInt16(maximumFramesPerSecond)
        writer.writeUInt16(0)
    }
}

// MARK: Password proof (shared by CREATE_ROOM and JOIN)

/// Reads `flags: u8` (bit 0: proof follows; other bits zero) and the optional `relay_auth`.
private func readRelayAuth(_ reader: inout ByteReader) throws(MessageDecodingError) -> [UInt8]? {
    let flags = try reader.readUInt8("flags")
    guard flags & 0xFE == 0 else { throw .reservedBitsSet(field: "flags", value: UInt64(flags)) }
    guard flags & 0x01 != 0 else { return nil }
    return try reader.readBytes(count: MessageLimits.relayAuthLength, field: "relay_auth")
}

private func writeRelayAuth(_ relayAuth: [UInt8]?, to writer: inout ByteWriter) {
    if let relayAuth {
        precondition(relayAuth.count == MessageLimits.relayAuthLength, "relay_auth must be 32 bytes")
        writer.writeUInt8(0x01)
        writer.writeBytes(relayAuth)
    } else {
        writer.writeUInt8(0x00)
    }
}

private func writeSignature(_ signature: [UInt8], to writer: inout ByteWriter) {
    precondition(signature.count == MessageLimits.signatureLength, "signature must be 64 bytes")
    writer.writeBytes(signature)
}

// MARK: CREATE_ROOM

/// `CREATE_ROOM` (`0x02`): `identity: Identity`, `signature: bytes[64]`, `flags: u8`,
/// `relay_auth: bytes[32]` (when flags bit 0), `settings: Settings`. 138 or 170 bytes of body.
public struct CreateRoomMessage: Sendable, Hashable {
    /// The room id the host proposes: 16 random bytes, not all zero. The relay creates the
    /// room under it or refuses with `room_exists` (5.4). Known before the room exists, so
    /// the identity proof and `relay_auth` (4.1) are bound to it.
    public var roomID: RoomID
    public var identity: Identity
    /// Ed25519 signature (64 bytes) over the challenge, the proposed room id and the identity.
    public var signature: [UInt8]
    /// The 32-byte password proof, or `nil` for a room without a password.
    public var relayAuth: [UInt8]?
    public var settings: RoomSettings

    public init(roomID: RoomID, identity: Identity, signature: [UInt8], relayAuth: [UInt8]?, settings: RoomSettings) {
        self.roomID = roomID
        self.identity = identity
        self.signature = signature
        self.relayAuth = relayAuth
        self.settings = settings
    }

    var bodyLength: Int {
        MessageLimits.roomIDLength + MessageLimits.identityLength + MessageLimits.signatureLength + 1
            + (relayAuth == nil ? 0 : MessageLimits.relayAuthLength) + MessageLimits.settingsLength
    }

    init(from reader: inout ByteReader) throws(MessageDecodingError) {
        roomID = try RoomID(from: &reader)
        guard roomID != .zero else { throw .invalidValue(field: "room_id", value: 0) }
        identity = try Identity(from: &reader)
        signature = try reader.readBytes(count: MessageLimits.signatureLength, field: "signature")
        relayAuth = try readRelayAuth(&reader)
        settings = try RoomSettings(from: &reader)
    }

    func write(to writer: inout ByteWriter) {
        roomID.write(to: &writer)
        identity.write(to: &writer)
        writeSignature(signature, to: &writer)
        writeRelayAuth(relayAuth, to: &writer)
        settings.write(to: &writer)
    }
}

// MARK: ROOM_CREATED

/// `ROOM_CREATED` (`0x82`), 27-byte body: `room_id: bytes[16]`, `index: u16` (the host's),
/// `settings: Settings`.
public struct RoomCreatedMessage: Sendable, Hashable {
    public var roomID: RoomID
    public var index: ParticipantIndex
    public var settings: RoomSettings

    public init(roomID: RoomID, index: ParticipantIndex, settings: RoomSettings) {
        self.roomID = roomID
        self.index = index
        self.settings = settings
    }

    static let bodyLength = 27

    init(from reader: inout ByteReader) throws(MessageDecodingError) {
        roomID = try RoomID(from: &reader)
        index = try reader.readMemberIndex("index")
        settings = try RoomSettings(from: &reader)
    }

    func write(to writer: inout ByteWriter) {
        roomID.write(to: &writer)
        writer.writeUInt16(index.rawValue)
        settings.write(to: &writer)
    }
}

// MARK: JOIN

/// `JOIN` (`0x03`): `room_id: bytes[16]`, `identity: Identity`, `signature: bytes[64]`,
/// `flags: u8`, `relay_auth: bytes[32]` (when flags bit 0), `knock: opaque16<2048>`.
public struct JoinMessage: Sendable, Hashable {
    public var roomID: RoomID
    public var identity: Identity
    /// Ed25519 signature (64 bytes) over the challenge, the room id and the identity.
    public var signature: [UInt8]
    /// The 32-byte password proof, or `nil`.
    public var relayAuth: [UInt8]?
    /// The sealed knock (section 4.2), 0 … 2 048 bytes, opaque to the relay.
    public var knock: [UInt8]

    public init(roomID: RoomID, identity: Identity, signature: [UInt8], relayAuth: [UInt8]?, knock: [UInt8]) {
        self.roomID = roomID
        self.identity = identity
        self.signature = signature
        self.relayAuth = relayAuth
        self.knock = knock
    }

    var bodyLength: Int {
        MessageLimits.roomIDLength + MessageLimits.identityLength + MessageLimits.signatureLength + 1
            + (relayAuth == nil ? 0 : MessageLimits.relayAuthLength) + 2 + knock.count
    }

    init(from reader: inout ByteReader) throws(MessageDecodingError) {
        roomID = try RoomID(from: &reader)
        identity = try Identity(from: &reader)
        signature = try reader.readBytes(count: MessageLimits.signatureLength, field: "signature")
        relayAuth = try readRelayAuth(&reader)
        knock = try reader.readKnock()
    }

    func write(to writer: inout ByteWriter) {
        roomID.write(to: &writer)
        identity.write(to: &writer)
        writeSignature(signature, to: &writer)
        writeRelayAuth(relayAuth, to: &writer)
        writer.writeKnock(knock)
    }
}

extension ByteReader {
    /// `knock: opaque16<2048>`: the length is checked against the limit, then against the
    /// bytes present, before anything is allocated.
    mutating func readKnock() throws(MessageDecodingError) -> [UInt8] {
        let length = Int(try readUInt16("knock_length"))
        guard length <= MessageLimits.maximumKnockLength else {
            throw .lengthOverLimit(field: "knock", length: length, limit: MessageLimits.maximumKnockLength)
        }
        return try readBytes(count: length, field: "knock")
    }
}

extension ByteWriter {
    mutating func writeKnock(_ knock: [UInt8]) {
        precondition(knock.count <= MessageLimits.maximumKnockLength, "knock over 2048 bytes")
        writeUInt16(UInt16(knock.count))
        writeBytes(knock)
    }
}

// MARK: WAITING

/// `WAITING` (`0x83`), 20-byte body: `room_id: bytes[16]`, `index: u16`, `position: u16`
/// (1-based; 0 is `malformed`).
public struct WaitingMessage: Sendable, Hashable {
    public var roomID: RoomID
    /// The index the joiner keeps if admitted.
    public var index: ParticipantIndex
    /// 1-based place in the queue.
    public var position: UInt16

    public init(roomID: RoomID, index: ParticipantIndex, position: UInt16) {
        self.roomID = roomID
        self.index = index
        self.position = position
    }

    static let bodyLength = 20

    init(from reader: inout ByteReader) throws(MessageDecodingError) {
        roomID = try RoomID(from: &reader)
        index = try reader.readMemberIndex("index")
        position = try reader.readUInt16("position")
        guard position >= 1 else { throw .invalidValue(field: "position", value: 0) }
    }

    func write(to writer: inout ByteWriter) {
        roomID.write(to: &writer)
        writer.writeUInt16(index.rawValue)
        writer.writeUInt16(position)
    }
}

// MARK: ADMITTED

/// `ADMITTED` (`0x84`): `index: u16`, `role: u8`, `settings: Settings`, `recording: u8`,
/// `count: u16` (1 … 900), then `count` × `RosterEntry` (69 bytes each).
///
/// The decoder checks `count` against 900 and against the bytes present before
/// allocating the roster.
public struct AdmittedMessage: Sendable, Hashable {
    /// The receiver's index.
    public var index: ParticipantIndex
    /// The receiver's role.
    public var role: Role
    public var settings: RoomSettings
    /// Whether the meeting is being recorded.
    public var recording: Bool
    /// Every admitted participant, the receiver included: 1 … 900 entries.
    public var roster: [RosterEntry]

    public init(index: ParticipantIndex, role: Role, settings: RoomSettings, recording: Bool, roster: [RosterEntry]) {
        self.index = index
        self.role = role
        self.settings = settings
        self.recording = recording
        self.roster = roster
    }

    /// Body bytes before the roster entries.
    static let fixedBodyLength = 15

    var bodyLength: Int { Self.fixedBodyLength + roster.count * MessageLimits.rosterEntryLength }

    init(from reader: inout ByteReader) throws(MessageDecodingError) {
        index = try reader.readMemberIndex("index")
        role = try reader.readRole("role")
        settings = try RoomSettings(from: &reader)
        recording = try reader.readBool("recording")
        let count = Int(try reader.readUInt16("count"))
        guard count <= Int(MessageLimits.maximumParticipants) else {
            throw .lengthOverLimit(field: "count", length: count, limit: Int(MessageLimits.maximumParticipants))
        }
        guard count >= 1 else { throw .invalidValue(field: "count", value: 0) }
        guard reader.remainingCount >= count * MessageLimits.rosterEntryLength else { throw .truncated(field: "roster") }
        var roster = [RosterEntry]()
        roster.reserveCapacity(count)
        for _ in 0..<count { roster.append(try RosterEntry(from: &reader)) }
        self.roster = roster
    }

    func write(to writer: inout ByteWriter) {
        precondition(roster.count <= Int(MessageLimits.maximumParticipants), "ADMITTED roster over 900 entries")
        writer.writeUInt16(index.rawValue)
        writer.writeUInt8(role.rawValue)
        settings.write(to: &writer)
        writer.writeUInt8(recording ? 1 : 0)
        writer.writeUInt16(UInt16(roster.count))
        for entry in roster { entry.write(to: &writer) }
    }
}

// MARK: KNOCK

/// `KNOCK` (`0x85`): `index: u16`, `identity: Identity`, `knock: opaque16<2048>`.
public struct KnockMessage: Sendable, Hashable {
    /// The waiting joiner's index.
    public var index: ParticipantIndex
    public var identity: Identity
    /// The joiner's sealed knock, 0 … 2 048 bytes, as received in its `JOIN`.
    public var knock: [UInt8]

    public init(index: ParticipantIndex, identity: Identity, knock: [UInt8]) {
        self.index = index
        self.identity = identity
        self.knock = knock
    }

    var bodyLength: Int { 2 + MessageLimits.identityLength + 2 + knock.count }

    init(from reader: inout ByteReader) throws(MessageDecodingError) {
        index = try reader.readMemberIndex("index")
        identity = try Identity(from: &reader)
        knock = try reader.readKnock()
    }

    func write(to writer: inout ByteWriter) {
        writer.writeUInt16(index.rawValue)
        identity.write(to: &writer)
        writer.writeKnock(knock)
    }
}
