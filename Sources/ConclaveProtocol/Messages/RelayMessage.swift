/// A message from the relay to a client (section 5.3): one binary WebSocket message.
///
/// ``decode(_:)-(UnsafeRawBufferPointer)`` accepts exactly the messages section 5 allows and
/// never traps: it checks the whole size (≤ 65 535), the version, the type, every length
/// against its limit before allocating, every value against its table, and that no byte is
/// left over. A decoded message re-encodes to the same bytes.
public enum RelayMessage: Sendable, Hashable {
    case welcome(WelcomeMessage)
    case roomCreated(RoomCreatedMessage)
    case waiting(WaitingMessage)
    case admitted(AdmittedMessage)
    case knock(KnockMessage)
    case event(EventMessage)
    /// `COMMAND_OK` (`0x87`), 2-byte body `request_id: u16`.
    case commandOK(requestID: UInt16)
    case error(ErrorMessage)
    /// `PONG` (`0x89`), 8-byte body: the `nonce` of the `PING` it answers.
    case pong(nonce: UInt64)
    case frame(FrameMessage)
    /// The UDP media path's session (6.2).
    case mediaSession(MediaSessionMessage)
    /// In a cluster: the room is on another node, or this node is draining (5.10).
    case redirect(RedirectMessage)

    /// The preamble's type.
    public var type: MessageType {
        switch self {
        case .welcome: .welcome
        case .roomCreated: .roomCreated
        case .waiting: .waiting
        case .admitted: .admitted
        case .knock: .knock
        case .event: .event
        case .commandOK: .commandOK
        case .error: .error
        case .pong: .pong
        case .frame: .frame
        case .mediaSession: .mediaSession
        case .redirect: .redirect
        }
    }

    /// Length of ``encoded()``, preamble included.
    public var encodedLength: Int {
        let body =
            switch self {
            case .welcome: WelcomeMessage.bodyLength
            case .roomCreated: RoomCreatedMessage.bodyLength
            case .waiting: WaitingMessage.bodyLength
            case let .admitted(message): message.bodyLength
            case let .knock(message): message.bodyLength
            case let .event(message): message.bodyLength
            case .commandOK: 2
            case let .error(message): message.bodyLength
            case .pong: 8
            case let .frame(message): message.bodyLength
            case let .mediaSession(message): message.bodyLength
            case let .redirect(message): message.bodyLength
            }
        return MessageLimits.preambleLength + body
    }

    /// Appends the encoded message to `bytes`.
    ///
    /// Traps if the challenge is not 32 bytes, a knock is over 2 048 bytes, the roster over
    /// 900 entries or the error text over 200 UTF-8 bytes. Other fields are written as given;
    /// a value outside its documented range yields bytes that the decoder rejects.
    public func encode(into bytes: inout [UInt8]) {
        ByteWriter.withWriter(appendingTo: &bytes) { writer in
            MessagePreamble.write(type, to: &writer)
            switch self {
            case let .welcome(message): message.write(to: &writer)
            case let .roomCreated(message): message.write(to: &writer)
            case let .waiting(message): message.write(to: &writer)
            case let .admitted(message): message.write(to: &writer)
            case let .knock(message): message.write(to: &writer)
            case let .event(message): message.write(to: &writer)
            case let .commandOK(requestID): writer.writeUInt16(requestID)
            case let .error(message): message.write(to: &writer)
            case let .pong(nonce): writer.writeUInt64(nonce)
            case let .frame(message): message.write(to: &writer)
            case let .mediaSession(message): message.write(to: &writer)
            case let .redirect(message): message.write(to: &writer)
            }
        }
    }

    /// The encoded message, allocated once at its exact length.
    public func encoded() -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(encodedLength)
        encode(into: &bytes)
        return bytes
    }

    /// Decodes one whole message. Client → relay types are rejected as ``MessageDecodingError/unknownType(_:)``.
    public static func decode(_ message: UnsafeRawBufferPointer) throws(MessageDecodingError) -> RelayMessage {
        var reader = try MessagePreamble.reader(for: message)
        let decoded: RelayMessage
        switch try MessagePreamble.readType(&reader, direction: .relayToClient) {
        case .welcome: decoded = .welcome(try WelcomeMessage(from: &reader))
        case .roomCreated: decoded = .roomCreated(try RoomCreatedMessage(from: &reader))
        case .waiting: decoded = .waiting(try WaitingMessage(from: &reader))
        case .admitted: decoded = .admitted(try AdmittedMessage(from: &reader))
        case .knock: decoded = .knock(try KnockMessage(from: &reader))
        case .event: decoded = .event(try EventMessage(from: &reader))
        case .commandOK: decoded = .commandOK(requestID: try reader.readUInt16("request_id"))
        case .error: decoded = .error(try ErrorMessage(from: &reader))
        case .pong: decoded = .pong(nonce: try reader.readUInt64("nonce"))
        case .frame: decoded = .frame(try FrameMessage(from: &reader))
        case .mediaSession: decoded = .mediaSession(try MediaSessionMessage(from: &reader))
        case .redirect: decoded = .redirect(try RedirectMessage(from: &reader))
        case .hello, .createRoom, .join, .command, .ping:
            preconditionFailure("readType returned a client → relay type for .relayToClient")
        }
        try reader.expectEnd()
        return decoded
    }

    /// Decodes one whole message from any byte collection, without copying it when its
    /// storage is contiguous.
    public static func decode(_ message: some Collection<UInt8>) throws(MessageDecodingError) -> RelayMessage {
        try MessagePreamble.withContiguousBytes(message) { (raw) throws(MessageDecodingError) in try decode(raw) }
    }
}
