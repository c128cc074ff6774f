/// The `op` byte of a `COMMAND` (section 5.5). Other values are `malformed`.
public enum CommandOp: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case admit = 0x01
    case deny = 0x02
    case lock = 0x03
    case unlock = 0x04
    case mute = 0x05
    case muteAll = 0x06
    case unmuteSelf = 0x07
    case askUnmute = 0x08
    case raiseHand = 0x09
    case lowerHand = 0x0A
    case remove = 0x0B
    case promoteCohost = 0x0C
    case demoteCohost = 0x0D
    case transferHost = 0x0E
    case grantShare = 0x0F
    case revokeShare = 0x10
    case setRecording = 0x11
    case acknowledgeRecording = 0x12
    case setSetting = 0x13
    case endMeeting = 0x14
    case leave = 0x15
    case muteSelf = 0x16

    /// The snake_case name of table 5.5, e.g. `"mute_all"`.
    public var name: String {
        switch self {
        case .admit: "admit"
        case .deny: "deny"
        case .lock: "lock"
        case .unlock: "unlock"
        case .mute: "mute"
        case .muteAll: "mute_all"
        case .unmuteSelf: "unmute_self"
        case .askUnmute: "ask_unmute"
        case .raiseHand: "raise_hand"
        case .lowerHand: "lower_hand"
        case .remove: "remove"
        case .promoteCohost: "promote_cohost"
        case .demoteCohost: "demote_cohost"
        case .transferHost: "transfer_host"
        case .grantShare: "grant_share"
        case .revokeShare: "revoke_share"
        case .setRecording: "set_recording"
        case .acknowledgeRecording: "ack_recording"
        case .setSetting: "set_setting"
        case .endMeeting: "end_meeting"
        case .leave: "leave"
        case .muteSelf: "mute_self"
        }
    }

    public var description: String { name }
}

/// What a `COMMAND` asks for, with its target and value (table 5.5).
///
/// Decoding enforces the table's shape: a target of 0 where the table says 0, a member
/// index (`0x0001`–`0xFFFE`) where it says index, a setting id and in-range value for
/// `set_setting`, 0/1 for `set_recording`, 0 elsewhere. Anything else is `malformed`.
/// Whether the command fits the room's current state is the relay's decision.
public enum CommandAction: Sendable, Hashable {
    case admit(ParticipantIndex)
    case deny(ParticipantIndex)
    case lock
    case unlock
    case mute(ParticipantIndex)
    case muteAll
    case unmuteSelf
    case askUnmute(ParticipantIndex)
    case raiseHand
    case lowerHand(ParticipantIndex)
    case remove(ParticipantIndex)
    case promoteCohost(ParticipantIndex)
    case demoteCohost(ParticipantIndex)
    case transferHost(ParticipantIndex)
    case grantShare(ParticipantIndex)
    case revokeShare(ParticipantIndex)
    case setRecording(on: Bool)
    case acknowledgeRecording
    case setSetting(SettingChange)
    case endMeeting
    case leave
    case muteSelf

    /// Validates a wire (op, target, value) triple against table 5.5.
    public init(op rawOp: UInt8, target: UInt16, value: UInt32) throws(MessageDecodingError) {
        guard let op = CommandOp(rawValue: rawOp) else { throw .invalidValue(field: "op", value: UInt64(rawOp)) }
        func member() throws(MessageDecodingError) -> ParticipantIndex {
            guard ParticipantIndex.memberRange.contains(target) else {
                throw .invalidValue(field: "target", value: UInt64(target))
            }
            return ParticipantIndex(target)
        }
        func noTarget() throws(MessageDecodingError) {
            guard target == 0 else { throw .invalidValue(field: "target", value: UInt64(target)) }
        }
        if op != .setSetting, op != .setRecording, value != 0 {
            throw .invalidValue(field: "value", value: UInt64(value))
        }
        switch op {
        case .admit: self = .admit(try member())
        case .deny: self = .deny(try member())
        case .lock: try noTarget(); self = .lock
        case .unlock: try noTarget(); self = .unlock
        case .mute: self = .mute(try member())
        case .muteAll: try noTarget(); self = .muteAll
        case .unmuteSelf: try noTarget(); self = .unmuteSelf
        case .askUnmute: self = .askUnmute(try member())
        case .raiseHand: try noTarget(); self = .raiseHand
        case .lowerHand: self = .lowerHand(try member())
        case .remove: self = .remove(try member())
        case .promoteCohost: self = .promoteCohost(try member())
        case .demoteCohost: self = .demoteCohost(try member())
        case .transferHost: self = .transferHost(try member())
        case .grantShare: self = .grantShare(try member())
        case .revokeShare: self = .revokeShare(try member())
        case .setRecording:
            try noTarget()
            guard value <= 1 else { throw .invalidValue(field: "value", value: UInt64(value)) }
            self = .setRecording(on: value == 1)
        case .acknowledgeRecording: try noTarget(); self = .acknowledgeRecording
        case .setSetting: self = .setSetting(try SettingChange(id: target, value: value, idField: "target"))
        case .endMeeting: try noTarget(); self = .endMeeting
        case .leave: try noTarget(); self = .leave
        case .muteSelf: try noTarget(); self = .muteSelf
        }
    }

    /// The op byte.
    public var op: CommandOp {
        switch self {
        case .admit: .admit
        case .deny: .deny
        case .lock: .lock
        case .unlock: .unlock
        case .mute: .mute
        case .muteAll: .muteAll
        case .unmuteSelf: .unmuteSelf
        case .askUnmute: .askUnmute
        case .raiseHand: .raiseHand
        case .lowerHand: .lowerHand
        case .remove: .remove
        case .promoteCohost: .promoteCohost
        case .demoteCohost: .demoteCohost
        case .transferHost: .transferHost
        case .grantShare: .grantShare
        case .revokeShare: .revokeShare
        case .setRecording: .setRecording
        case .acknowledgeRecording: .acknowledgeRecording
        case .setSetting: .setSetting
        case .endMeeting: .endMeeting
        case .leave: .leave
        case .muteSelf: .muteSelf
        }
    }

    /// The wire `target`: a participant index, a setting id, or 0.
    public var target: UInt16 {
        switch self {
        case let .admit(index), let .deny(index), let .mute(index), let .askUnmute(index), let .lowerHand(index),
            let .remove(index), let .promoteCohost(index), let .demoteCohost(index), let .transferHost(index),
            let .grantShare(index), let .revokeShare(index):
            index.rawValue
        case let .setSetting(change): change.id.rawValue
        case .lock, .unlock, .muteAll, .unmuteSelf, .raiseHand, .setRecording, .acknowledgeRecording, .endMeeting,
            .leave, .muteSelf:
            0
        }
    }

    /// The wire `value`.
    public var value: UInt32 {
        switch self {
        case let .setRecording(on): on ? 1 : 0
        case let .setSetting(change): change.value
        default: 0
        }
    }
}

/// `COMMAND` (`0x04`), 9-byte body: `op: u8`, `request_id: u16`, `target: u16`, `value: u32`.
public struct CommandMessage: Sendable, Hashable {
    /// Chosen by the client; echoed in `COMMAND_OK` or `ERROR`.
    public var requestID: UInt16
    public var action: CommandAction

    public init(requestID: UInt16, action: CommandAction) {
        self.requestID = requestID
        self.action = action
    }

    static let bodyLength = 9

    init(from reader: inout ByteReader) throws(MessageDecodingError) {
        let op = try reader.readUInt8("op")
        requestID = try reader.readUInt16("request_id")
        let target = try reader.readUInt16("target")
        let value = try reader.readUInt32("value")
        action = try CommandAction(op: op, target: target, value: value)
    }

    func write(to writer: inout ByteWriter) {
        writer.writeUInt8(action.op.rawValue)
        writer.writeUInt16(requestID)
        writer.writeUInt16(action.target)
        writer.writeUInt32(action.value)
    }
}
