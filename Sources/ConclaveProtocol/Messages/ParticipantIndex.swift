/// A participant's index in a room (section 5.2): a `u16` assigned by the relay, unique
/// within the room for its lifetime and never reused.
///
/// Members have indices `0x0001`–`0xFFFE`; ``none`` (`0x0000`) and ``everyone``
/// (`0xFFFF`, broadcast) are only meaningful where the section allows them.
public struct ParticipantIndex: RawRepresentable, Sendable, Hashable, Comparable,
    ExpressibleByIntegerLiteral, CustomStringConvertible
{
    public var rawValue: UInt16

    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }
    public init(integerLiteral value: UInt16) { rawValue = value }

    /// `0x0000`: no participant (e.g. the relay as an event's actor).
    public static let none = ParticipantIndex(0x0000)
    /// `0xFFFF`: every other admitted participant, as a `FRAME` recipient.
    public static let everyone = ParticipantIndex(0xFFFF)
    /// The indices a participant can have.
    public static let memberRange: ClosedRange<UInt16> = 0x0001...0xFFFE

    /// True for `0x0001`–`0xFFFE`, the indices of actual participants.
    public var isMember: Bool { Self.memberRange.contains(rawValue) }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String {
        switch self {
        case .none: "none"
        case .everyone: "everyone"
        default: "#\(rawValue)"
        }
    }
}

extension ByteReader {
    /// Reads an index that must name a participant (`0x0001`–`0xFFFE`).
    mutating func readMemberIndex(_ field: String) throws(MessageDecodingError) -> ParticipantIndex {
        let raw = try readUInt16(field)
        guard ParticipantIndex.memberRange.contains(raw) else { throw .invalidValue(field: field, value: UInt64(raw)) }
        return ParticipantIndex(raw)
    }

    /// Reads a `u8` that must be 0 or 1.
    mutating func readBool(_ field: String) throws(MessageDecodingError) -> Bool {
        let raw = try readUInt8(field)
        guard raw <= 1 else { throw .invalidValue(field: field, value: UInt64(raw)) }
        return raw == 1
    }

    /// Reads a `u8` that must be zero.
    mutating func readReservedUInt8(_ field: String) throws(MessageDecodingError) {
        let raw = try readUInt8(field)
        guard raw == 0 else { throw .reservedBitsSet(field: field, value: UInt64(raw)) }
    }

    /// Reads a `u16` that must be zero.
    mutating func readReservedUInt16(_ field: String) throws(MessageDecodingError) {
        let raw = try readUInt16(field)
        guard raw == 0 else { throw .reservedBitsSet(field: field, value: UInt64(raw)) }
    }
}
