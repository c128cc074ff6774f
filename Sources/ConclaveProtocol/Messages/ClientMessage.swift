/// A message from a client to the relay (section 5.3): one binary WebSocket message.
///
/// ``decode(_:)-(UnsafeRawBufferPointer)`` accepts exactly the messages section 5 allows and
/// never traps: it checks the whole size (≤ 65 535), the version, the type, every length
/// against its limit before allocating, every value against its table, and that no byte is
/// left over. Anything else throws a ``MessageDecodingError`` whose ``MessageDecodingError/wireCode``
/// is the `ERROR` to answer with. A decoded message re-encodes to the same bytes.
public enum ClientMessage: Sendable, Hashable {
    case hello(HelloMessage)
    case createRoom(CreateRoomMessage)
    case join(JoinMessage)
    case command(CommandMessage)
    /// `PING` (`0x05`), 8-byte body `nonce: u64`, echoed in `PONG`.
    case ping(nonce: UInt64)
    case frame(FrameMessage)

    /// The preamble's type.
    public var type: MessageType {
        switch self {
        case .hello: .hello
        case .createRoom: .createRoom
        case .join: .join
        case .command: .command
        case .ping: .ping
        case .frame: .frame
        }
    }

    /// Length of ``encoded()``, preamble included.
    public var encodedLength: Int {
        let body =
            switch self {
            case .hello: HelloMessage.bodyLength
            case let .createRoom(message): message.bodyLength
            case let .join(message): message.bodyLength
            case .command: CommandMessage.bodyLength
            case .ping: 8
            case let .frame(message): message.bodyLength
            }
        return MessageLimits.preambleLength + body
    }

    /// Appends the encoded message to `bytes`.
    ///
    /// Traps if a fixed-size field (signature, relay_auth) has the wrong length or the knock
    /// is over 2 048 bytes. Other fields are written as given; a value outside its documented
    /// range yields bytes that ``decode(_:)-(UnsafeRawBufferPointer)`` rejects.
    public func encode(into bytes: inout [UInt8]) {
        ByteWriter.withWriter(appendingTo: &bytes) { writer in
            MessagePreamble.write(type, to: &writer)
            switch self {
            case let .hello(message): message.write(to: &writer)
            case let .createRoom(message): message.write(to: &writer)
            case let .join(message): message.write(to: &writer)
            case let .command(message): message.write(to: &writer)
            case let .ping(nonce): writer.writeUInt64(nonce)
            case let .frame(message): message.write(to: &writer)
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

    /// Decodes one whole message. Relay → client types are rejected as ``MessageDecodingError/unknownType(_:)``.
    public static func decode(_ message: UnsafeRawBufferPointer) throws(MessageDecodingError) -> ClientMessage {
        var reader = try MessagePreamble.reader(for: message)
        let decoded: ClientMessage
        switch try MessagePreamble.readType(&reader, direction: .clientToRelay) {
        case .hello: decoded = .hello(try HelloMessage(from: &reader))
        case .createRoom: decoded = .createRoom(try CreateRoomMessage(from: &reader))
        case .join: decoded = .join(try JoinMessage(from: &reader))
        case .command: decoded = .command(try CommandMessage(from: &reader))
        case .ping: decoded = .ping(nonce: try reader.readUInt64("nonce"))
        case .frame: decoded = .frame(try FrameMessage(from: &reader))
        case .welcome, .roomCreated, .waiting, .admitted, .knock, .event, .commandOK, .error, .pong, .mediaSession, .redirect:
            preconditionFailure("readType returned a relay → client type for .clientToRelay")
        }
        try reader.expectEnd()
        return decoded
    }

    /// Decodes one whole message from any byte collection (`[UInt8]`, `ArraySlice`, `Data`…),
    /// without copying it when its storage is contiguous.
    public static func decode(_ message: some Collection<UInt8>) throws(MessageDecodingError) -> ClientMessage {
        try MessagePreamble.withContiguousBytes(message) { (raw) throws(MessageDecodingError) in try decode(raw) }
    }
}
