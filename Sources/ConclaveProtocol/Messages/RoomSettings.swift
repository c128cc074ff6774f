/// A room's settings (section 5.2), 9 bytes on the wire:
/// `flags: u8`, `max_participants: u16`, `max_waiting: u16`, `recording_ack_timeout_s: u16`,
/// `reserved: u16`.
///
/// Decoding rejects flag bits 5–7, a non-zero reserved field and values outside the ranges
/// below as `malformed`. Encoding writes the fields as they are; call ``validate()`` on
/// settings that did not come from a decoder.
public struct RoomSettings: Sendable, Hashable {
    /// Flag bit 0: joiners wait until a host or co-host admits them.
    public var waitingRoom: Bool
    /// Flag bit 1: participants enter muted.
    public var muteOnEntry: Bool
    /// Flag bit 2: participants may unmute themselves.
    public var selfUnmuteAllowed: Bool
    /// Flag bit 3: only the host, co-hosts and presenters may share their screen.
    public var hostsOnlySharing: Bool
    /// Flag bit 4: nobody new may join.
    public var locked: Bool
    /// 1 to ``MessageLimits/maximumParticipants`` (900).
    public var maxParticipants: UInt16
    /// 0 to ``MessageLimits/maximumWaiting`` (1000).
    public var maxWaiting: UInt16
    /// Seconds a participant has to acknowledge recording, 1 to 3600.
    public var recordingAcknowledgementTimeoutSeconds: UInt16

    public init(
        waitingRoom: Bool, muteOnEntry: Bool, selfUnmuteAllowed: Bool, hostsOnlySharing: Bool, locked: Bool,
        maxParticipants: UInt16, maxWaiting: UInt16, recordingAcknowledgementTimeoutSeconds: UInt16
    ) {
        self.waitingRoom = waitingRoom
        self.muteOnEntry = muteOnEntry
        self.selfUnmuteAllowed = selfUnmuteAllowed
        self.hostsOnlySharing = hostsOnlySharing
        self.locked = locked
        self.maxParticipants = maxParticipants
        self.maxWaiting = maxWaiting
        self.recordingAcknowledgementTimeoutSeconds = recordingAcknowledgementTimeoutSeconds
    }

    /// The privacy-friendly defaults: waiting room, mute on entry, self-unmute allowed,
    /// hosts-only sharing, unlocked; 100 participants, 50 waiting, 30 s to acknowledge recording.
    /// Flags byte `0x0F`.
    public static let privacyDefaults = RoomSettings(
        waitingRoom: true, muteOnEntry: true, selfUnmuteAllowed: true, hostsOnlySharing: true, locked: false,
        maxParticipants: 100, maxWaiting: 50, recordingAcknowledgementTimeoutSeconds: 30
    )

    /// The flags byte.
    public var flags: UInt8 {
        (waitingRoom ? 0x01 : 0) | (muteOnEntry ? 0x02 : 0) | (selfUnmuteAllowed ? 0x04 : 0)
            | (hostsOnlySharing ? 0x08 : 0) | (locked ? 0x10 : 0)
    }

    /// Throws `invalidValue` naming the first field outside its range.
    public func validate() throws(MessageDecodingError) {
        guard (1...MessageLimits.maximumParticipants).contains(maxParticipants) else {
            throw .invalidValue(field: "max_participants", value: UInt64(maxParticipants))
        }
        guard maxWaiting <= MessageLimits.maximumWaiting else {
            throw .invalidValue(field: "max_waiting", value: UInt64(maxWaiting))
        }
        guard MessageLimits.recordingAcknowledgementTimeoutRange.contains(recordingAcknowledgementTimeoutSeconds) else {
            throw .invalidValue(field: "recording_ack_timeout_s", value: UInt64(recordingAcknowledgementTimeoutSeconds))
        }
    }

    // MARK: Wire

    init(from reader: inout ByteReader) throws(MessageDecodingError) {
        guard reader.remainingCount >= MessageLimits.settingsLength else { throw .truncated(field: "settings") }
        let flags = try reader.readUInt8("settings.flags")
        guard flags & 0xE0 == 0 else { throw .reservedBitsSet(field: "settings.flags", value: UInt64(flags)) }
        self.init(
            waitingRoom: flags & 0x01 != 0, muteOnEntry: flags & 0x02 != 0, selfUnmuteAllowed: flags & 0x04 != 0,
            hostsOnlySharing: flags & 0x08 != 0, locked: flags & 0x10 != 0,
            maxParticipants: try reader.readUInt16("max_participants"),
            maxWaiting: try reader.readUInt16("max_waiting"),
            recordingAcknowledgementTimeoutSeconds: try reader.readUInt16("recording_ack_timeout_s")
        )
        try reader.readReservedUInt16("settings.reserved")
        try validate()
    }

    func write(to writer: inout ByteWriter) {
        writer.writeUInt8(flags)
        writer.writeUInt16(maxParticipants)
        writer.writeUInt16(maxWaiting)
        writer.writeUInt16(recordingAcknowledgementTimeoutSeconds)
        writer.writeUInt16(0)
    }
}

/// Setting ids of `set_setting` and `setting_changed` (section 5.5).
public enum SettingID: UInt16, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case waitingRoom = 1
    case muteOnEntry = 2
    case selfUnmuteAllowed = 3
    case hostsOnlySharing = 4
    case maxParticipants = 5
    case maxWaiting = 6
    case recordingAcknowledgementTimeout = 7

    /// snake_case name, e.g. `"max_participants"`.
    public var name: String {
        switch self {
        case .waitingRoom: "waiting_room"
        case .muteOnEntry: "mute_on_entry"
        case .selfUnmuteAllowed: "self_unmute_allowed"
        case .hostsOnlySharing: "hosts_only_sharing"
        case .maxParticipants: "max_participants"
        case .maxWaiting: "max_waiting"
        case .recordingAcknowledgementTimeout: "recording_ack_timeout_s"
        }
    }

    /// The values the setting accepts.
    public var valueRange: ClosedRange<UInt32> {
        switch self {
        case .waitingRoom, .muteOnEntry, .selfUnmuteAllowed, .hostsOnlySharing: 0...1
        case .maxParticipants: 1...UInt32(MessageLimits.maximumParticipants)
        case .maxWaiting: 0...UInt32(MessageLimits.maximumWaiting)
        case .recordingAcknowledgementTimeout:
            UInt32(MessageLimits.recordingAcknowledgementTimeoutRange.lowerBound)...UInt32(MessageLimits.recordingAcknowledgementTimeoutRange.upperBound)
        }
    }

    public var description: String { name }
}

/// One setting and its new value, as carried by `set_setting` (target = id, value) and
/// `setting_changed` (subject = id, value). Only values in ``SettingID/valueRange`` decode.
public enum SettingChange: Sendable, Hashable {
    case waitingRoom(Bool)
    case muteOnEntry(Bool)
    case selfUnmuteAllowed(Bool)
    case hostsOnlySharing(Bool)
    case maxParticipants(UInt16)
    case maxWaiting(UInt16)
    case recordingAcknowledgementTimeout(seconds: UInt16)

    /// Validates a wire (id, value) pair. `idField`/`valueField` name the fields in errors.
    public init(id: UInt16, value: UInt32, idField: String = "setting_id", valueField: String = "value") throws(MessageDecodingError) {
        guard let setting = SettingID(rawValue: id) else { throw .invalidValue(field: idField, value: UInt64(id)) }
        guard setting.valueRange.contains(value) else { throw .invalidValue(field: valueField, value: UInt64(value)) }
        switch setting {
        case .waitingRoom: self = .waitingRoom(value == 1)
        case .muteOnEntry: self = .muteOnEntry(value == 1)
        case .selfUnmuteAllowed: self = .selfUnmuteAllowed(value == 1)
        case .hostsOnlySharing: self = .hostsOnlySharing(value == 1)
        case .maxParticipants: self = .maxParticipants(UInt16(value))
        case .maxWaiting: self = .maxWaiting(UInt16(value))
        case .recordingAcknowledgementTimeout: self = .recordingAcknowledgementTimeout(seconds: UInt16(value))
        }
    }

    /// The setting changed.
    public var id: SettingID {
        switch self {
        case .waitingRoom: .waitingRoom
        case .muteOnEntry: .muteOnEntry
        case .selfUnmuteAllowed: .selfUnmuteAllowed
        case .hostsOnlySharing: .hostsOnlySharing
        case .maxParticipants: .maxParticipants
        case .maxWaiting: .maxWaiting
        case .recordingAcknowledgementTimeout: .recordingAcknowledgementTimeout
        }
    }

    /// The wire value.
    public var value: UInt32 {
        switch self {
        case let .waitingRoom(on), let .muteOnEntry(on), let .selfUnmuteAllowed(on), let .hostsOnlySharing(on):
            on ? 1 : 0
        case let .maxParticipants(count), let .maxWaiting(count): UInt32(count)
        case let .recordingAcknowledgementTimeout(seconds): UInt32(seconds)
        }
    }

    /// Applies the change to `settings`.
    public func apply(to settings: inout RoomSettings) {
        switch self {
        case let .waitingRoom(on): settings.waitingRoom = on
        case let .muteOnEntry(on): settings.muteOnEntry = on
        case let .selfUnmuteAllowed(on): settings.selfUnmuteAllowed = on
        case let .hostsOnlySharing(on): settings.hostsOnlySharing = on
        case let .maxParticipants(count): settings.maxParticipants = count
        case let .maxWaiting(count): settings.maxWaiting = count
        case let .recordingAcknowledgementTimeout(seconds): settings.recordingAcknowledgementTimeoutSeconds = seconds
        }
    }
}
