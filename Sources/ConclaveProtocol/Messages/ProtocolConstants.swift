/// Protocol versions this implementation speaks (section 5.1, 5.4).
public enum ProtocolVersion {
    /// The version described by section 5 and the only one this codec reads and writes
    /// (version 2: the end-to-end membership authority of sections 3.6 and 4.2).
    public static let current: UInt8 = 2
    /// Every version this implementation supports, for `HELLO` and version selection.
    /// Version 1 is refused: its knocks, key packages and rosters lack what version 2's
    /// membership authority needs.
    public static let supported: ClosedRange<UInt8> = 2...2
    /// The preamble version of `HELLO` and `ERROR`, which a peer of any version must be
    /// able to read (an `ERROR unsupported_version` answers a `HELLO` of another version).
    /// Always `0x01`, whatever versions the sender speaks.
    public static let handshake: UInt8 = 1
}

/// Sizes and limits of section 5, in bytes unless stated otherwise.
///
/// Decoders check every length against these limits before reserving memory for it.
public enum MessageLimits {
    /// The largest whole message (section 5.1). Larger input is `too_large`.
    public static let maximumMessageLength = 65_535
    /// The smallest `max_message` a relay may announce in `WELCOME`: the largest `FRAME`.
    public static let minimumAnnouncedMessageLength = frameHeaderLength + FrameKind.screen.payloadLimit
    /// `version` and `type`.
    public static let preambleLength = 2

    /// One public key of an ``Identity``.
    public static let publicKeyLength = 32
    /// An ``Identity``: Ed25519 public key then X25519 public key.
    public static let identityLength = 64
    /// An Ed25519 signature (`CREATE_ROOM`, `JOIN`).
    public static let signatureLength = 64
    /// A relay password proof, `relay_auth`.
    public static let relayAuthLength = 32
    /// The `WELCOME` challenge.
    public static let challengeLength = 32
    /// A ``RoomID``.
    public static let roomIDLength = 16
    /// Encoded ``RoomSettings``.
    public static let settingsLength = 9
    /// Encoded ``RosterEntry``.
    public static let rosterEntryLength = 69
    /// The `FRAME` routing header, preamble included.
    public static let frameHeaderLength = 8

    /// `knock: opaque16<2048>` in `JOIN` and `KNOCK`.
    public static let maximumKnockLength = 2_048
    /// `message: text8<200>` in `ERROR`, in UTF-8 bytes.
    public static let maximumErrorTextLength = 200
    /// Largest `max_participants`, hence the largest `ADMITTED` roster. 900 entries keep
    /// `ADMITTED` (17 + 69 × count bytes) under ``maximumMessageLength``.
    public static let maximumParticipants: UInt16 = 900
    /// Largest `max_waiting`.
    public static let maximumWaiting: UInt16 = 1_000
    /// Allowed `recording_ack_timeout_s`.
    public static let recordingAcknowledgementTimeoutRange: ClosedRange<UInt16> = 1...3_600
}

/// The `type` byte of the preamble (table 5.3).
public enum MessageType: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case hello = 0x01
    case createRoom = 0x02
    case join = 0x03
    case command = 0x04
    case ping = 0x05
    case frame = 0x30
    case welcome = 0x81
    case roomCreated = 0x82
    case waiting = 0x83
    case admitted = 0x84
    case knock = 0x85
    case event = 0x86
    case commandOK = 0x87
    case error = 0x88
    case pong = 0x89
    case mediaSession = 0x8A
    case redirect = 0x8B

    /// Who sends a message type.
    public enum Direction: Sendable, Hashable {
        case clientToRelay, relayToClient, both
    }

    /// The upper-case name used in section 5, e.g. `"CREATE_ROOM"`.
    public var name: String {
        switch self {
        case .hello: "HELLO"
        case .createRoom: "CREATE_ROOM"
        case .join: "JOIN"
        case .command: "COMMAND"
        case .ping: "PING"
        case .frame: "FRAME"
        case .welcome: "WELCOME"
        case .roomCreated: "ROOM_CREATED"
        case .waiting: "WAITING"
        case .admitted: "ADMITTED"
        case .knock: "KNOCK"
        case .event: "EVENT"
        case .commandOK: "COMMAND_OK"
        case .error: "ERROR"
        case .pong: "PONG"
        case .mediaSession: "MEDIA_SESSION"
        case .redirect: "REDIRECT"
        }
    }

    /// Who may send this type.
    public var direction: Direction {
        switch self {
        case .frame: .both
        case .hello, .createRoom, .join, .command, .ping: .clientToRelay
        default: .relayToClient
        }
    }

    public var description: String { name }

    /// Checks a whole message's size, version and type without decoding its body.
    ///
    /// Throws what the full decoders would throw for the preamble: `messageTooLarge`,
    /// `truncated`, `unsupportedVersion` or `unknownType` (types of either direction are
    /// accepted). Cheap: reads two bytes.
    public static func peek(_ message: UnsafeRawBufferPointer) throws(MessageDecodingError) -> MessageType {
        var reader = try MessagePreamble.reader(for: message)
        let raw = try reader.readUInt8("type")
        guard let type = MessageType(rawValue: raw) else { throw .unknownType(raw) }
        return type
    }
}

/// Shared preamble handling of the decoders.
enum MessagePreamble {
    /// Checks the size and version and returns a reader positioned on the `type` byte.
    static func reader(for message: UnsafeRawBufferPointer) throws(MessageDecodingError) -> ByteReader {
        guard message.count <= MessageLimits.maximumMessageLength else {
            throw .messageTooLarge(length: message.count, limit: MessageLimits.maximumMessageLength)
        }
        var reader = ByteReader(message)
        let version = try reader.readUInt8("version")
        guard message.count >= 2 else {
            guard version == ProtocolVersion.current || version == ProtocolVersion.handshake else { throw .unsupportedVersion(version) }
            throw .truncated(field: "type")
        }
        // HELLO and ERROR carry the handshake preamble, readable by every version; every
        // other type (known or not) the negotiated one. Anything else is refused, so each
        // message has exactly one encoding.
        let isHandshakeType = message[1] == MessageType.hello.rawValue || message[1] == MessageType.error.rawValue
        guard version == (isHandshakeType ? ProtocolVersion.handshake : ProtocolVersion.current) else { throw .unsupportedVersion(version) }
        return reader
    }

    /// The preamble version a message of `type` carries: ``ProtocolVersion/handshake`` for
    /// `HELLO` and `ERROR`, the negotiated ``ProtocolVersion/current`` for every other.
    static func version(for type: MessageType) -> UInt8 {
        type == .hello || type == .error ? ProtocolVersion.handshake : ProtocolVersion.current
    }

    /// Reads the preamble and returns the message type if it is valid in `direction`.
    static func readType(
        _ reader: inout ByteReader, direction: MessageType.Direction
    ) throws(MessageDecodingError) -> MessageType {
        let raw = try reader.readUInt8("type")
        guard let type = MessageType(rawValue: raw), type.direction == direction || type.direction == .both else {
            throw .unknownType(raw)
        }
        return type
    }

    static func write(_ type: MessageType, to writer: inout ByteWriter) {
        writer.writeUInt8(version(for: type))
        writer.writeUInt8(type.rawValue)
    }

    /// Decodes from any byte collection: uses its contiguous storage when it has one,
    /// otherwise copies it once (after checking its size against the message limit).
    static func withContiguousBytes<Bytes: Collection<UInt8>, R>(
        _ bytes: Bytes, _ body: (UnsafeRawBufferPointer) throws(MessageDecodingError) -> R
    ) throws(MessageDecodingError) -> R {
        let count = bytes.count
        guard count <= MessageLimits.maximumMessageLength else {
            throw .messageTooLarge(length: count, limit: MessageLimits.maximumMessageLength)
        }
        let direct: Result<R, MessageDecodingError>? = bytes.withContiguousStorageIfAvailable { typed in
            Result { () throws(MessageDecodingError) -> R in try body(UnsafeRawBufferPointer(typed)) }
        }
        if let direct { return try direct.get() }
        let copy = Array(bytes)
        let result = copy.withUnsafeBytes { raw in
            Result { () throws(MessageDecodingError) -> R in try body(raw) }
        }
        return try result.get()
    }
}
