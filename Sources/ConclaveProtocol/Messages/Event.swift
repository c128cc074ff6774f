/// The `event` byte of an `EVENT` (section 5.7). Other values are `malformed`.
public enum EventKind: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case joined = 0x01
    case left = 0x02
    case removed = 0x03
    case muted = 0x04
    case unmuted = 0x05
    case roleChanged = 0x06
    case presenterChanged = 0x07
    case locked = 0x08
    case unlocked = 0x09
    case recording = 0x0A
    case handRaised = 0x0B
    case handLowered = 0x0C
    case unmuteRequested = 0x0D
    case settingChanged = 0x0E
    case recordingUnacknowledged = 0x0F
    case waitingLeft = 0x10
    case waitingDecided = 0x11
    case recordingAcknowledged = 0x12

    /// The snake_case name of table 5.7, e.g. `"role_changed"`.
    public var name: String {
        switch self {
        case .joined: "joined"
        case .left: "left"
        case .removed: "removed"
        case .muted: "muted"
        case .unmuted: "unmuted"
        case .roleChanged: "role_changed"
        case .presenterChanged: "presenter_changed"
        case .locked: "locked"
        case .unlocked: "unlocked"
        case .recording: "recording"
        case .handRaised: "hand_raised"
        case .handLowered: "hand_lowered"
        case .unmuteRequested: "unmute_requested"
        case .settingChanged: "setting_changed"
        case .recordingUnacknowledged: "recording_unacknowledged"
        case .waitingLeft: "waiting_left"
        case .waitingDecided: "waiting_decided"
        case .recordingAcknowledged: "recording_acknowledged"
        }
    }

    public var description: String { name }
}

/// Why a participant left (value of the `left` event). Other values are `malformed`.
public enum LeaveReason: UInt32, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case left = 1
    case disconnected = 2
    case timedOut = 3
    case tooSlow = 4

    /// snake_case name.
    public var name: String {
        switch self {
        case .left: "left"
        case .disconnected: "disconnected"
        case .timedOut: "timed_out"
        case .tooSlow: "too_slow"
        }
    }

    public var description: String { name }
}

/// A roster or room event with its subject and value (table 5.7).
///
/// Decoding enforces the table's shape: a member index (`0x0001`–`0xFFFE`) where the
/// subject is a member, a waiting index or the receiver; 0 for room-wide events; a setting
/// id for `setting_changed`; the listed values; `has_identity` 1 exactly for `joined`.
public enum RoomEvent: Sendable, Hashable {
    case joined(ParticipantIndex, identity: Identity, role: Role)
    case left(ParticipantIndex, reason: LeaveReason)
    case removed(ParticipantIndex)
    case muted(ParticipantIndex)
    case unmuted(ParticipantIndex)
    case roleChanged(ParticipantIndex, role: Role)
    case presenterChanged(ParticipantIndex, granted: Bool)
    case locked
    case unlocked
    case recording(on: Bool)
    case handRaised(ParticipantIndex)
    case handLowered(ParticipantIndex)
    /// Subject: the receiver.
    case unmuteRequested(ParticipantIndex)
    case settingChanged(SettingChange)
    case recordingUnacknowledged(ParticipantIndex, seconds: UInt32)
    /// Subject: a waiting index.
    case waitingLeft(ParticipantIndex)
    /// Subject: a waiting index.
    case waitingDecided(ParticipantIndex, admitted: Bool)
    case recordingAcknowledged(ParticipantIndex)

    /// Validates wire fields against table 5.7. `identity` must be non-nil exactly for `joined`.
    public init(event rawEvent: UInt8, subject: UInt16, value: UInt32, identity: Identity?) throws(MessageDecodingError) {
        guard let kind = EventKind(rawValue: rawEvent) else { throw .invalidValue(field: "event", value: UInt64(rawEvent)) }
        guard (identity != nil) == (kind == .joined) else {
            throw .invalidValue(field: "has_identity", value: identity == nil ? 0 : 1)
        }
        func member() throws(MessageDecodingError) -> ParticipantIndex {
            guard ParticipantIndex.memberRange.contains(subject) else {
                throw .invalidValue(field: "subject", value: UInt64(subject))
            }
            return ParticipantIndex(subject)
        }
        func zeroValue() throws(MessageDecodingError) {
            guard value == 0 else { throw .invalidValue(field: "value", value: UInt64(value)) }
        }
        func bool() throws(MessageDecodingError) -> Bool {
            guard value <= 1 else { throw .invalidValue(field: "value", value: UInt64(value)) }
            return value == 1
        }
        func role() throws(MessageDecodingError) -> Role {
            guard value <= UInt32(UInt8.max), let role = Role(rawValue: UInt8(value)) else {
                throw .invalidValue(field: "value", value: UInt64(value))
            }
            return role
        }
        func roomWide() throws(MessageDecodingError) {
            guard subject == 0 else { throw .invalidValue(field: "subject", value: UInt64(subject)) }
        }
        switch kind {
        case .joined:
            guard let identity else { throw .invalidValue(field: "has_identity", value: 0) }
            self = .joined(try member(), identity: identity, role: try role())
        case .left:
            let index = try member()
            guard let reason = LeaveReason(rawValue: value) else { throw .invalidValue(field: "value", value: UInt64(value)) }
            self = .left(index, reason: reason)
        case .removed: let index = try member(); try zeroValue(); self = .removed(index)
        case .muted: let index = try member(); try zeroValue(); self = .muted(index)
        case .unmuted: let index = try member(); try zeroValue(); self = .unmuted(index)
        case .roleChanged: self = .roleChanged(try member(), role: try role())
        case .presenterChanged: self = .presenterChanged(try member(), granted: try bool())
        case .locked: try roomWide(); try zeroValue(); self = .locked
        case .unlocked: try roomWide(); try zeroValue(); self = .unlocked
        case .recording: try roomWide(); self = .recording(on: try bool())
        case .handRaised: let index = try member(); try zeroValue(); self = .handRaised(index)
        case .handLowered: let index = try member(); try zeroValue(); self = .handLowered(index)
        case .unmuteRequested: let index = try member(); try zeroValue(); self = .unmuteRequested(index)
        case .settingChanged: self = .settingChanged(try SettingChange(id: subject, value: value, idField: "subject"))
        case .recordingUnacknowledged: self = .recordingUnacknowledged(try member(), seconds: value)
        case .waitingLeft: let index = try member(); try zeroValue(); self = .waitingLeft(index)
        case .waitingDecided: self = .waitingDecided(try member(), admitted: try bool())
        case .recordingAcknowledged: let index = try member(); try zeroValue(); self = .recordingAcknowledged(index)
        }
    }

    /// The event byte.
    public var kind: EventKind {
        switch self {
        case .joined: .joined
        case .left: .left
        case .removed: .removed
        case .muted: .muted
        case .unmuted: .unmuted
        case .roleChanged: .roleChanged
        case .presenterChanged: .presenterChanged
        case .locked: .locked
        case .unlocked: .unlocked
        case .recording: .recording
        case .handRaised: .handRaised
        case .handLowered: .handLowered
        case .unmuteRequested: .unmuteRequested
        case .settingChanged: .settingChanged
        case .recordingUnacknowledged: .recordingUnacknowledged
        case .waitingLeft: .waitingLeft
        case .waitingDecided: .waitingDecided
        case .recordingAcknowledged: .recordingAcknowledged
        }
    }

    /// The wire `subject`: a participant index, a setting id, or 0.
    public var subject: UInt16 {
        switch self {
        case let .joined(index, _, _), let .left(index, _), let .removed(index), let .muted(index),
            let .unmuted(index), let .roleChanged(index, _), let .presenterChanged(index, _),
            let .handRaised(index), let .handLowered(index), let .unmuteRequested(index),
            let .recordingUnacknowledged(index, _), let .waitingLeft(index), let .waitingDecided(index, _),
            let .recordingAcknowledged(index):
            index.rawValue
        case let .settingChanged(change): change.id.rawValue
        case .locked, .unlocked, .recording: 0
        }
    }

    /// The wire `value`.
    public var value: UInt32 {
        switch self {
        case let .joined(_, _, role), let .roleChanged(_, role): UInt32(role.rawValue)
        case let .left(_, reason): reason.rawValue
        case let .presenterChanged(_, flag), let .recording(flag), let .waitingDecided(_, flag): flag ? 1 : 0
        case let .settingChanged(change): change.value
        case let .recordingUnacknowledged(_, seconds): seconds
        case .removed, .muted, .unmuted, .locked, .unlocked, .handRaised, .handLowered, .unmuteRequested,
            .waitingLeft, .recordingAcknowledged:
            0
        }
    }

    /// The identity carried by `joined`; `nil` for every other event.
    public var identity: Identity? {
        if case let .joined(_, identity, _) = self { return identity }
        return nil
    }
}

/// `EVENT` (`0x86`): `event: u8`, `subject: u16`, `actor: u16`, `value: u32`,
/// `has_identity: u8`, then `identity: Identity` when `has_identity` is 1. 10 or 74 bytes.
public struct EventMessage: Sendable, Hashable {
    /// The index that caused the event, or ``ParticipantIndex/none`` for the relay.
    /// Never ``ParticipantIndex/everyone`` (rejected as `malformed`).
    public var actor: ParticipantIndex
    public var event: RoomEvent

    public init(actor: ParticipantIndex, event: RoomEvent) {
        self.actor = actor
        self.event = event
    }

    var bodyLength: Int { 10 + (event.identity == nil ? 0 : MessageLimits.identityLength) }

    init(from reader: inout ByteReader) throws(MessageDecodingError) {
        let kind = try reader.readUInt8("event")
        let subject = try reader.readUInt16("subject")
        let actor = try reader.readUInt16("actor")
        guard actor != ParticipantIndex.everyone.rawValue else { throw .invalidValue(field: "actor", value: UInt64(actor)) }
        let value = try reader.readUInt32("value")
        let hasIdentity = try reader.readBool("has_identity")
        let identity = hasIdentity ? try Identity(from: &reader) : nil
        self.actor = ParticipantIndex(actor)
        event = try RoomEvent(event: kind, subject: subject, value: value, identity: identity)
    }

    func write(to writer: inout ByteWriter) {
        writer.writeUInt8(event.kind.rawValue)
        writer.writeUInt16(event.subject)
        writer.writeUInt16(actor.rawValue)
        writer.writeUInt32(event.value)
        if let identity = event.identity {
            writer.writeUInt8(1)
            identity.write(to: &writer)
        } else {
            writer.writeUInt8(0)
        }
    }
}
