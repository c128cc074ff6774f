import ConclaveCrypto

// MARK: - RECORDING_NOTICE

/// A recorder announces, end to end and signed, that it starts or stops recording (type
/// `0x08`, section 3.8). Broadcast when the recording starts and stops, and sent addressed
/// to each member who joins while it runs. Exactly 1 + 16 + 16 + 2 + 1 + 8 + 4 + 64 = 112
/// bytes:
///
/// ```
/// u8 type (0x08) || room_id (16) || recording_id (16) || u16 recorder || u8 state
/// || u64 retain_until || u32 sequence
/// || signature (64) = Ed25519(recorder, "conclave/v2 recording-notice", bytes 0–47)
/// ```
/// `state` is 1 (recording) or 2 (stopped); `retain_until` is the Unix time (seconds) after
/// which the recording is to be deleted, 0 in a stop notice. `sequence` strictly increases
/// across one recorder's notices, so a relay cannot replay an old start after a stop.
public struct RecordingNotice: Sendable, Hashable {
    public static let type: UInt8 = 0x08
    public static let encodedLength = 1 + 16 + 16 + 2 + 1 + 8 + 4 + 64
    public static let recordingIDLength = 16

    public enum State: UInt8, Sendable, Hashable {
        case recording = 1
        case stopped = 2
    }

    public let roomID: RoomID
    public let recordingID: [UInt8]
    public let recorder: UInt16
    public let state: State
    public let retainUntil: UInt64
    public let sequence: UInt32
    public let signature: [UInt8]

    public static func sign(
        roomID: RoomID, recordingID: [UInt8], recorder: UInt16, state: State, retainUntil: UInt64,
        sequence: UInt32, by key: Ed25519.PrivateKey
    ) -> RecordingNotice {
        precondition(recordingID.count == recordingIDLength, "recording ids are 16 bytes")
        let part = signedPart(roomID: roomID, recordingID: recordingID, recorder: recorder, state: state, retainUntil: retainUntil, sequence: sequence)
        let signature: [UInt8]
        do { signature = try key.signature(for: part, context: Labels.recordingNoticeSignature) } catch {
            preconditionFailure("fixed Ed25519 context is valid")
        }
        return RecordingNotice(
            roomID: roomID, recordingID: recordingID, recorder: recorder, state: state,
            retainUntil: retainUntil, sequence: sequence, signature: signature)
    }

    init(roomID: RoomID, recordingID: [UInt8], recorder: UInt16, state: State, retainUntil: UInt64, sequence: UInt32, signature: [UInt8]) {
        self.roomID = roomID; self.recordingID = recordingID; self.recorder = recorder; self.state = state
        self.retainUntil = retainUntil; self.sequence = sequence; self.signature = signature
    }

    static func signedPart(roomID: RoomID, recordingID: [UInt8], recorder: UInt16, state: State, retainUntil: UInt64, sequence: UInt32) -> [UInt8] {
        [type] + roomID.bytes + recordingID + recorder.bigEndianBytes + [state.rawValue] + retainUntil.bigEndianBytes + sequence.bigEndianBytes
    }

    public var signedPart: [UInt8] {
        Self.signedPart(roomID: roomID, recordingID: recordingID, recorder: recorder, state: state, retainUntil: retainUntil, sequence: sequence)
    }

    public var encoded: [UInt8] { signedPart + signature }

    public func isSigned(by key: Ed25519.PublicKey) -> Bool {
        key.isValidSignature(signature, for: signedPart, context: Labels.recordingNoticeSignature)
    }

    static func decode(body reader: inout ByteReader, totalLength: Int) throws(E2EControlError) -> RecordingNotice {
        guard totalLength == encodedLength else { throw .malformed("recording notice of \(totalLength) bytes, expected \(encodedLength)") }
        do {
            let room = try RoomID(from: &reader)
            let id = try reader.readBytes(count: recordingIDLength, field: "recording_id")
            let recorder = try reader.readUInt16("recorder")
            let rawState = try reader.readUInt8("state")
            guard let state = State(rawValue: rawState) else { throw E2EControlError.malformed("recording state \(rawState)") }
            let retain = try reader.readUInt64("retain_until")
            let sequence = try reader.readUInt32("sequence")
            guard ParticipantIndex.memberRange.contains(recorder) else { throw E2EControlError.malformed("recorder out of range") }
            guard state == .recording || retain == 0 else { throw E2EControlError.malformed("a stop notice with a retention time") }
            let signature = try reader.readBytes(count: 64, field: "signature")
            return RecordingNotice(
                roomID: room, recordingID: id, recorder: recorder, state: state, retainUntil: retain,
                sequence: sequence, signature: signature)
        } catch let error as E2EControlError {
            throw error
        } catch let error as MessageDecodingError {
            throw .malformed(SignedRoster.field(of: error))
        } catch {
            throw .malformed("recording notice")
        }
    }
}

// MARK: - RECORDING_CONSENT

/// A member's signed answer to a recording notice (type `0x09`, section 3.8), sent
/// addressed to the recorder. Consent and refusal have the same length, so the relay,
/// which sees that a member sent the recorder a control frame, cannot tell which it was.
/// Exactly 1 + 16 + 16 + 2 + 2 + 1 + 64 = 102 bytes:
///
/// ```
/// u8 type (0x09) || room_id (16) || recording_id (16) || u16 member || u16 recorder
/// || u8 decision || signature (64) = Ed25519(member, "conclave/v2 recording-consent", bytes 0–37)
/// ```
/// `decision` is 1 (consent) or 2 (decline). A recording file keeps each recorded member's
/// consent (protocol/RECORDING.md), so an export can prove it.
public struct RecordingConsent: Sendable, Hashable {
    public static let type: UInt8 = 0x09
    public static let encodedLength = 1 + 16 + 16 + 2 + 2 + 1 + 64

    public enum Decision: UInt8, Sendable, Hashable {
        case consent = 1
        case decline = 2
    }

    public let roomID: RoomID
    public let recordingID: [UInt8]
    public let member: UInt16
    public let recorder: UInt16
    public let decision: Decision
    public let signature: [UInt8]

    public static func sign(
        roomID: RoomID, recordingID: [UInt8], member: UInt16, recorder: UInt16, decision: Decision,
        by key: Ed25519.PrivateKey
    ) -> RecordingConsent {
        precondition(recordingID.count == RecordingNotice.recordingIDLength, "recording ids are 16 bytes")
        let part = signedPart(roomID: roomID, recordingID: recordingID, member: member, recorder: recorder, decision: decision)
        let signature: [UInt8]
        do { signature = try key.signature(for: part, context: Labels.recordingConsentSignature) } catch {
            preconditionFailure("fixed Ed25519 context is valid")
        }
        return RecordingConsent(roomID: roomID, recordingID: recordingID, member: member, recorder: recorder, decision: decision, signature: signature)
    }

    init(roomID: RoomID, recordingID: [UInt8], member: UInt16, recorder: UInt16, decision: Decision, signature: [UInt8]) {
        self.roomID = roomID; self.recordingID = recordingID; self.member = member; self.recorder = recorder
        self.decision = decision; self.signature = signature
    }

    static func signedPart(roomID: RoomID, recordingID: [UInt8], member: UInt16, recorder: UInt16, decision: Decision) -> [UInt8] {
        [type] + roomID.bytes + recordingID + member.bigEndianBytes + recorder.bigEndianBytes + [decision.rawValue]
    }

    public var signedPart: [UInt8] {
        Self.signedPart(roomID: roomID, recordingID: recordingID, member: member, recorder: recorder, decision: decision)
    }

    public var encoded: [UInt8] { signedPart + signature }

    public func isSigned(by key: Ed25519.PublicKey) -> Bool {
        key.isValidSignature(signature, for: signedPart, context: Labels.recordingConsentSignature)
    }

    /// Parses a consent on its own (as a recording file stores it).
    public static func decode(_ bytes: [UInt8]) throws(E2EControlError) -> RecordingConsent {
        guard case let .recordingConsent(c) = try E2EControlMessage.decode(bytes) else { throw .malformed("not a recording consent") }
        return c
    }

    static func decode(body reader: inout ByteReader, totalLength: Int) throws(E2EControlError) -> RecordingConsent {
        guard totalLength == encodedLength else { throw .malformed("recording consent of \(totalLength) bytes, expected \(encodedLength)") }
        do {
            let room = try RoomID(from: &reader)
            let id = try reader.readBytes(count: RecordingNotice.recordingIDLength, field: "recording_id")
            let member = try reader.readUInt16("member")
            let recorder = try reader.readUInt16("recorder")
            let rawDecision = try reader.readUInt8("decision")
            guard let decision = Decision(rawValue: rawDecision) else { throw E2EControlError.malformed("recording decision \(rawDecision)") }
            guard ParticipantIndex.memberRange.contains(member), ParticipantIndex.memberRange.contains(recorder) else {
                throw E2EControlError.malformed("member or recorder out of range")
            }
            let signature = try reader.readBytes(count: 64, field: "signature")
            return RecordingConsent(roomID: room, recordingID: id, member: member, recorder: recorder, decision: decision, signature: signature)
        } catch let error as E2EControlError {
            throw error
        } catch let error as MessageDecodingError {
            throw .malformed(SignedRoster.field(of: error))
        } catch {
            throw .malformed("recording consent")
        }
    }
}
