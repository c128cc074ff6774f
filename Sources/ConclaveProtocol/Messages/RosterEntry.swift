/// A participant's role (section 5.2). Other values are `malformed`.
public enum Role: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case participant = 0
    case cohost = 1
    case host = 2

    /// snake_case name: `participant`, `co_host`, `host`.
    public var name: String {
        switch self {
        case .participant: "participant"
        case .cohost: "co_host"
        case .host: "host"
        }
    }

    public var description: String { name }
}

extension ByteReader {
    mutating func readRole(_ field: String) throws(MessageDecodingError) -> Role {
        let raw = try readUInt8(field)
        guard let role = Role(rawValue: raw) else { throw .invalidValue(field: field, value: UInt64(raw)) }
        return role
    }
}

/// A roster entry's `state` bits (section 5.2). Bits 4–7 are reserved and rejected.
public struct ParticipantState: OptionSet, Sendable, Hashable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Bit 0.
    public static let muted = ParticipantState(rawValue: 0x01)
    /// Bit 1: may share the screen even when sharing is limited to hosts.
    public static let presenter = ParticipantState(rawValue: 0x02)
    /// Bit 2.
    public static let handRaised = ParticipantState(rawValue: 0x04)
    /// Bit 3: has acknowledged that the meeting is being recorded.
    public static let recordingAcknowledged = ParticipantState(rawValue: 0x08)

    /// Bits with a meaning in version 1.
    public static let definedBits: UInt8 = 0x0F
}

/// One admitted participant in an `ADMITTED` roster (section 5.2), 69 bytes on the wire:
/// `index: u16`, `identity: Identity`, `role: u8`, `state: u8`, `reserved: u8`.
public struct RosterEntry: Sendable, Hashable {
    /// `0x0001`–`0xFFFE`.
    public var index: ParticipantIndex
    public var identity: Identity
    public var role: Role
    public var state: ParticipantState

    public init(index: ParticipantIndex, identity: Identity, role: Role, state: ParticipantState = []) {
        self.index = index
        self.identity = identity
        self.role = role
        self.state = state
    }

    // MARK: Wire

    init(from reader: inout ByteReader) throws(MessageDecodingError) {
        guard reader.remainingCount >= MessageLimits.rosterEntryLength else { throw .truncated(field: "roster_entry") }
        index = try reader.readMemberIndex("roster_entry.index")
        identity = try Identity(from: &reader)
        role = try reader.readRole("roster_entry.role")
        let state = try reader.readUInt8("roster_entry.state")
        guard state & ~ParticipantState.definedBits == 0 else {
            throw .reservedBitsSet(field: "roster_entry.state", value: UInt64(state))
        }
        self.state = ParticipantState(rawValue: state)
        try reader.readReservedUInt8("roster_entry.reserved")
    }

    func write(to writer: inout ByteWriter) {
        writer.writeUInt16(index.rawValue)
        identity.write(to: &writer)
        writer.writeUInt8(role.rawValue)
        writer.writeUInt8(state.rawValue)
        writer.writeUInt8(0)
    }
}
