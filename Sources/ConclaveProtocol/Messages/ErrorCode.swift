/// Error codes of section 5.8.
///
/// Codes 1–26 travel in `ERROR` messages. Codes 1000 and above are client-side only:
/// they are never sent, and a decoder rejects them in an `ERROR` as `malformed`.
public enum ErrorCode: UInt16, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case malformed = 1
    case unsupportedVersion = 2
    case unexpectedMessage = 3
    case tooLarge = 4
    case rateLimited = 5
    case badPassword = 6
    case roomNotFound = 7
    case roomLocked = 8
    case roomFull = 9
    case waitingRoomFull = 10
    case banned = 11
    case notAllowed = 12
    case denied = 13
    case removed = 14
    case ended = 15
    case tooSlow = 16
    case badSignature = 17
    case idleTimeout = 18
    case handshakeTimeout = 19
    case `internal` = 20
    case shuttingDown = 21
    case unknownParticipant = 22
    case tooManyRooms = 23
    case invalidCommand = 24
    case roomExists = 25
    case atCapacity = 26

    // Client-side only.
    case keyRejected = 1000
    case badInvite = 1001
    case decryptFailed = 1002
    case relayUnreachable = 1003
    case badAudioSource = 1004

    /// Codes that may appear in an `ERROR` message.
    public static let wireCodes: [ErrorCode] = allCases.filter(\.isWireCode)

    /// True for codes sent by the relay (below 1000).
    public var isWireCode: Bool { rawValue < 1000 }

    /// The snake_case name of section 5.8, e.g. `"bad_password"`.
    public var name: String {
        switch self {
        case .malformed: "malformed"
        case .unsupportedVersion: "unsupported_version"
        case .unexpectedMessage: "unexpected_message"
        case .tooLarge: "too_large"
        case .rateLimited: "rate_limited"
        case .badPassword: "bad_password"
        case .roomNotFound: "room_not_found"
        case .roomLocked: "room_locked"
        case .roomFull: "room_full"
        case .waitingRoomFull: "waiting_room_full"
        case .banned: "banned"
        case .notAllowed: "not_allowed"
        case .denied: "denied"
        case .removed: "removed"
        case .ended: "ended"
        case .tooSlow: "too_slow"
        case .badSignature: "bad_signature"
        case .idleTimeout: "idle_timeout"
        case .handshakeTimeout: "handshake_timeout"
        case .internal: "internal"
        case .shuttingDown: "shutting_down"
        case .unknownParticipant: "unknown_participant"
        case .tooManyRooms: "too_many_rooms"
        case .invalidCommand: "invalid_command"
        case .roomExists: "room_exists"
        case .atCapacity: "at_capacity"
        case .keyRejected: "key_rejected"
        case .badInvite: "bad_invite"
        case .decryptFailed: "decrypt_failed"
        case .relayUnreachable: "relay_unreachable"
        case .badAudioSource: "bad_audio_source"
        }
    }

    /// One line saying what the code means (section 5.8).
    public var meaning: String {
        switch self {
        case .malformed: "the message does not follow the protocol"
        case .unsupportedVersion: "no common protocol version"
        case .unexpectedMessage: "valid message in the wrong state"
        case .tooLarge: "message or frame over its limit"
        case .rateLimited: "too many attempts or messages; retry later"
        case .badPassword: "the password proof is wrong or missing"
        case .roomNotFound: "no such room"
        case .roomLocked: "the room is locked"
        case .roomFull: "the room is full"
        case .waitingRoomFull: "the waiting room is full"
        case .banned: "this identity or connection was removed from the room"
        case .notAllowed: "the sender's role may not do this"
        case .denied: "the host denied admission"
        case .removed: "the host or a co-host removed this participant"
        case .ended: "the host ended the meeting for all"
        case .tooSlow: "the client did not read fast enough"
        case .badSignature: "the identity proof does not verify"
        case .idleTimeout: "nothing received for the idle timeout"
        case .handshakeTimeout: "no JOIN or CREATE_ROOM in time"
        case .internal: "the relay failed; nothing the client did"
        case .shuttingDown: "the relay is stopping"
        case .unknownParticipant: "the target index is not in the room"
        case .tooManyRooms: "the relay's room limit is reached"
        case .invalidCommand: "a command's target does not fit its op in the room's current state"
        case .roomExists: "a room with the proposed id exists; propose another"
        case .atCapacity: "the relay is at its connection limit; try again later"
        case .keyRejected: "a key package or roster fails its signature or binding"
        case .badInvite: "the invite cannot be read"
        case .decryptFailed: "a frame could not be decrypted"
        case .relayUnreachable: "the relay cannot be reached"
        case .badAudioSource: "the audio source cannot be used"
        }
    }

    /// `name (code)`, e.g. `bad_password (6)`.
    public var description: String { "\(name) (\(rawValue))" }
}
