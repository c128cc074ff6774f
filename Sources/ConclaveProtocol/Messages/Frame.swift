/// The `kind` of a `FRAME` (section 5.6): its payload limit and who may receive it.
public enum FrameKind: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// SFrame-encrypted audio; always broadcast; payload ≤ 1 500 bytes.
    case audio = 1
    /// SFrame-encrypted screen share; always broadcast; payload ≤ 16 384 bytes.
    case screen = 2
    /// SFrame-encrypted chat; broadcast or addressed; payload ≤ 4 096 bytes.
    case chat = 3
    /// SFrame-encrypted control data; broadcast or addressed; payload ≤ 16 384 bytes.
    case control = 4
    /// A key package (section 3.4); always addressed to one participant; payload ≤ 4 096 bytes.
    case keys = 5

    /// Who a frame of this kind may be sent to.
    public enum Addressing: Sendable, Hashable {
        /// Recipient must be ``ParticipantIndex/everyone``.
        case broadcastOnly
        /// Recipient must be one member other than the sender.
        case addressedOnly
        /// Either of the above.
        case broadcastOrAddressed
    }

    /// The largest payload, in bytes (`L` of `rest<L>`). Payloads are never empty.
    public var payloadLimit: Int {
        switch self {
        case .audio: 1_500
        case .screen: 16_384
        case .chat: 4_096
        case .control: 16_384
        case .keys: 4_096
        }
    }

    public var addressing: Addressing {
        switch self {
        case .audio, .screen: .broadcastOnly
        case .keys: .addressedOnly
        case .chat, .control: .broadcastOrAddressed
        }
    }

    /// Lower-case name: `audio`, `screen`, `chat`, `control`, `keys`.
    public var name: String {
        switch self {
        case .audio: "audio"
        case .screen: "screen"
        case .chat: "chat"
        case .control: "control"
        case .keys: "keys"
        }
    }

    public var description: String { name }
}

/// The 8-byte routing header of a `FRAME`, preamble included:
/// `version: u8 = 0x01`, `type: u8 = 0x30`, `kind: u8`, `flags: u8 = 0`, `sender: u16`,
/// `recipient: u16`.
///
/// A value of this type always satisfies section 5.6's rules: `sender` is a member
/// (`0x0001`–`0xFFFE`); audio and screen go to ``ParticipantIndex/everyone``; keys go to
/// one member; chat and control to either; an addressed frame never names its sender.
/// `flags` is not stored: it is zero in version 1, and non-zero flags are rejected.
public struct FrameHeader: Sendable, Hashable {
    public let kind: FrameKind
    public let sender: ParticipantIndex
    public let recipient: ParticipantIndex

    /// Length of the header, preamble included.
    public static let length = MessageLimits.frameHeaderLength

    /// Creates a header after checking the sender and the kind's recipient rule.
    public init(kind: FrameKind, sender: ParticipantIndex, recipient: ParticipantIndex) throws(MessageDecodingError) {
        guard sender.isMember else { throw .invalidValue(field: "sender", value: UInt64(sender.rawValue)) }
        let addressedOK = recipient.isMember && recipient != sender
        let allowed =
            switch kind.addressing {
            case .broadcastOnly: recipient == .everyone
            case .addressedOnly: addressedOK
            case .broadcastOrAddressed: recipient == .everyone || addressedOK
            }
        guard allowed else { throw .invalidValue(field: "recipient", value: UInt64(recipient.rawValue)) }
        self.kind = kind
        self.sender = sender
        self.recipient = recipient
    }

    /// True when addressed to ``ParticipantIndex/everyone``.
    public var isBroadcast: Bool { recipient == .everyone }

    /// Checks that `length` bytes of payload are allowed for this header's kind.
    public func validatePayloadLength(_ length: Int) throws(MessageDecodingError) {
        guard length >= 1 else { throw .truncated(field: "payload") }
        guard length <= kind.payloadLimit else {
            throw .payloadTooLarge(kind: kind, length: length, limit: kind.payloadLimit)
        }
    }

    /// Parses and validates the header of a whole `FRAME` message without reading or copying
    /// its payload, and returns the payload's byte offsets within `message`.
    ///
    /// Checks, in order: message size, version, type `0x30`, kind, flags, sender, recipient,
    /// payload length (1 … the kind's limit). This is everything the relay must check before
    /// forwarding the message byte for byte (except that `sender` is the connection's index).
    public static func decode(message: UnsafeRawBufferPointer) throws(MessageDecodingError) -> (header: FrameHeader, payloadRange: Range<Int>) {
        var reader = try MessagePreamble.reader(for: message)
        let type = try reader.readUInt8("type")
        guard type == MessageType.frame.rawValue else { throw .unknownType(type) }
        let header = try FrameHeader(from: &reader)
        try header.validatePayloadLength(reader.remainingCount)
        return (header, reader.readerIndex..<message.count)
    }

    /// ``decode(message:)`` for any byte collection; `payloadRange` counts from its first byte
    /// (for an `Array`, slice it with `bytes[payloadRange]` to avoid a copy).
    public static func decode(message: some Collection<UInt8>) throws(MessageDecodingError) -> (header: FrameHeader, payloadRange: Range<Int>) {
        try MessagePreamble.withContiguousBytes(message) { (raw) throws(MessageDecodingError) in try decode(message: raw) }
    }

    /// Appends the 8 header bytes; the payload must follow.
    public func encode(into bytes: inout [UInt8]) {
        ByteWriter.withWriter(appendingTo: &bytes) { writer in
            MessagePreamble.write(.frame, to: &writer)
            write(to: &writer)
        }
    }

    // MARK: Wire (after the preamble)

    init(from reader: inout ByteReader) throws(MessageDecodingError) {
        let rawKind = try reader.readUInt8("kind")
        guard let kind = FrameKind(rawValue: rawKind) else { throw .invalidValue(field: "kind", value: UInt64(rawKind)) }
        let flags = try reader.readUInt8("flags")
        guard flags == 0 else { throw .reservedBitsSet(field: "flags", value: UInt64(flags)) }
        let sender = try reader.readUInt16("sender")
        let recipient = try reader.readUInt16("recipient")
        try self.init(kind: kind, sender: ParticipantIndex(sender), recipient: ParticipantIndex(recipient))
    }

    func write(to writer: inout ByteWriter) {
        writer.writeUInt8(kind.rawValue)
        writer.writeUInt8(0)
        writer.writeUInt16(sender.rawValue)
        writer.writeUInt16(recipient.rawValue)
    }
}

/// A whole `FRAME` with its payload copied out (clients; the relay uses
/// ``FrameHeader/decode(message:)`` and forwards the original bytes).
///
/// Always valid: the header obeys its rules and the payload is 1 … the kind's limit bytes.
public struct FrameMessage: Sendable, Hashable {
    public let header: FrameHeader
    /// An SFrame ciphertext (kinds 1–4) or a key package (kind 5); opaque to this codec.
    public let payload: [UInt8]

    /// Throws `truncated(payload)` for an empty payload and `payloadTooLarge` over the limit.
    public init(header: FrameHeader, payload: [UInt8]) throws(MessageDecodingError) {
        try header.validatePayloadLength(payload.count)
        self.header = header
        self.payload = payload
    }

    /// Validates header and payload together.
    public init(kind: FrameKind, sender: ParticipantIndex, recipient: ParticipantIndex, payload: [UInt8]) throws(MessageDecodingError) {
        try self.init(header: FrameHeader(kind: kind, sender: sender, recipient: recipient), payload: payload)
    }

    var bodyLength: Int { MessageLimits.frameHeaderLength - MessageLimits.preambleLength + payload.count }

    init(from reader: inout ByteReader) throws(MessageDecodingError) {
        let header = try FrameHeader(from: &reader)
        try header.validatePayloadLength(reader.remainingCount)
        self.header = header
        payload = Array(reader.readRemaining())
    }

    func write(to writer: inout ByteWriter) {
        header.write(to: &writer)
        writer.writeBytes(payload)
    }
}
