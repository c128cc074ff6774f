#if canImport(Glibc)
import Glibc
#endif
import ConclaveCrypto
import ConclaveProtocol

/// Writes an encrypted recording while it happens (protocol/RECORDING.md).
///
/// The file is created with mode 0600 and never holds recorded content in plaintext: each
/// record is one message of a `crypto_secretstream_xchacha20poly1305` stream under a
/// random file key, which is sealed to the recorder's identity (and to any further
/// recipients) or wrapped under a passphrase in the header. Members are added only with
/// their signed consent; the caller writes a member's media only after ``addMember``.
/// ``finish(atMillis:stoppedAtMillis:)`` writes the final record, which authenticates the
/// header as it then stands; a file without it reads as truncated.
public final class RecordingWriter {
    public let path: String
    public let recordingID: [UInt8]
    public private(set) var header: RecordingHeader
    /// Members recorded so far (index → identity).
    public private(set) var members: [UInt16: PublicIdentity] = [:]
    /// Bytes written so far.
    public private(set) var bytesWritten = 0
    public private(set) var isFinished = false
    private let push: SecretStream.Push
    private var descriptor: Int32

    /// What to seal the file key to.
    public struct Recipients {
        public var identities: [PublicIdentity]
        public var passphrase: [UInt8]?
        public var passphraseLimits: PasswordHash.Limits

        public init(identities: [PublicIdentity], passphrase: [UInt8]? = nil, passphraseLimits: PasswordHash.Limits = .interactive) {
            self.identities = identities
            self.passphrase = passphrase
            self.passphraseLimits = passphraseLimits
        }
    }

    /// Creates the file (it must not exist) and writes the header and the first record.
    ///
    /// - Parameters:
    ///   - recipients: the recorder's own identity first; at most 8 slots in all.
    ///   - createdAt, retainUntil: Unix seconds.
    ///   - startedAtMillis: Unix milliseconds, the origin of every record's `t_ms`.
    public init(
        path: String, recordingID: [UInt8], roomID: RoomID, recorder: UInt16, recorderIdentity: PublicIdentity,
        recipients: Recipients, createdAt: UInt64, retainUntil: UInt64, startedAtMillis: UInt64,
        memberCapacity: Int = RecordingFormat.maximumMembers
    ) throws(RecordingError) {
        precondition(recordingID.count == RecordingNotice.recordingIDLength)
        let slotCount = recipients.identities.count + (recipients.passphrase == nil ? 0 : 1)
        guard (1...RecordingFormat.maximumKeySlots).contains(slotCount) else {
            throw .refused("a recording needs 1 to \(RecordingFormat.maximumKeySlots) key slots, not \(slotCount)")
        }
        let fileKey = SecretKey.random(count: SecretStream.keyLength)
        var slots: [KeySlot] = []
        do {
            for identity in recipients.identities { slots.append(try KeySlot.sealed(fileKey, to: identity)) }
            if let passphrase = recipients.passphrase {
                slots.append(try KeySlot.wrapped(fileKey, passphrase: passphrase, recordingID: recordingID, limits: recipients.passphraseLimits))
            }
            push = try SecretStream.Push(key: fileKey)
        } catch {
            throw .refused("cannot seal the recording's key: \(error)")
        }
        header = RecordingHeader(
            createdAt: createdAt, retainUntil: retainUntil, roomHash: RecordingFormat.roomHash(roomID),
            recordingID: recordingID, recorder: recorderIdentity.fingerprint.bytes,
            memberCapacity: memberCapacity, slots: slots, streamHeader: push.header)
        self.path = path
        self.recordingID = recordingID
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io("cannot create \(path): \(String(cString: strerror(errno)))") }
        descriptor = fd
        do throws(RecordingError) {
            try writeAll(header.encoded)
            try append(
                .start(
                    recordingID: recordingID, roomID: roomID, startedAtMillis: startedAtMillis, recorder: recorder,
                    recorderIdentity: recorderIdentity), tag: .message)
        } catch {
            close(fd)
            descriptor = -1
            isFinished = true
            throw error
        }
    }

    deinit {
        // Unfinished: the file stays without its final record and reads as truncated.
        if descriptor >= 0 { close(descriptor) }
    }

    /// Adds a member whose signed consent arrived; from now on its media may be written.
    /// The header's member list is updated in place (fingerprints only).
    public func addMember(index: UInt16, identity: PublicIdentity, displayName: String, consent: RecordingConsent, atMillis: UInt32) throws(RecordingError) {
        guard members[index] == nil else { return }
        guard consent.decision == .consent, consent.member == index, consent.recordingID == recordingID,
            consent.isSigned(by: identity.signingKey)
        else { throw .refused("no valid consent from #\(index)") }
        guard header.members.count < header.memberCapacity else { throw .refused("the recording's \(header.memberCapacity) member slots are full") }
        try append(.member(index: index, atMillis: atMillis, identity: identity, displayName: displayName, consent: consent), tag: .message)
        let slot = header.members.count
        header.members.append(identity.fingerprint.bytes)
        members[index] = identity
        try writeAll(identity.fingerprint.bytes, at: RecordingHeader.memberSlotOffset(slot))
        try writeAll(UInt16(header.members.count).bigEndianBytes, at: RecordingHeader.memberCountOffset)
    }

    /// One Opus packet of a recorded member.
    public func audio(index: UInt16, atMillis: UInt32, opus: [UInt8]) throws(RecordingError) {
        guard members[index] != nil else { throw .refused("#\(index) has not consented") }
        guard (1...RecordingRecord.maximumOpusLength).contains(opus.count) else { return }
        try append(.audio(index: index, atMillis: atMillis, opus: opus), tag: .message)
    }

    /// One chat line of a recorded member.
    public func chat(index: UInt16, atMillis: UInt32, isPrivate: Bool, text: String) throws(RecordingError) {
        guard members[index] != nil else { throw .refused("#\(index) has not consented") }
        let n = text.utf8.count
        guard (1...RecordingRecord.maximumChatLength).contains(n) else { return }
        try append(.chat(index: index, atMillis: atMillis, isPrivate: isPrivate, text: text), tag: .message)
    }

    /// Writes the final record (authenticating the header as it stands), syncs and closes.
    public func finish(atMillis: UInt32, stoppedAtMillis: UInt64) throws(RecordingError) {
        guard !isFinished else { return }
        try append(.end(atMillis: atMillis, stoppedAtMillis: stoppedAtMillis), tag: .final, additionalData: header.encoded)
        isFinished = true
        let synced = fsync(descriptor) == 0
        close(descriptor)
        descriptor = -1
        guard synced else { throw .io("cannot sync \(path): \(String(cString: strerror(errno)))") }
    }

    private func append(_ record: RecordingRecord, tag: SecretStream.Tag, additionalData: [UInt8] = []) throws(RecordingError) {
        guard !isFinished, descriptor >= 0 else { throw .refused("the recording is finished") }
        let sealed: [UInt8]
        do { sealed = try push.seal(record.encoded, additionalData: additionalData, tag: tag) } catch {
            throw .io("cannot encrypt a record: \(error)")
        }
        try writeAll(UInt32(sealed.count).bigEndianBytes + sealed)
    }

    private func writeAll(_ bytes: [UInt8], at offset: Int? = nil) throws(RecordingError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { raw -> Int in
                let base = raw.baseAddress! + done
                if let offset { return pwrite(descriptor, base, raw.count - done, off_t(offset + done)) }
                return write(descriptor, base, raw.count - done)
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io("cannot write \(path): \(String(cString: strerror(errno)))")
            }
            done += n
        }
        if offset == nil { bytesWritten += bytes.count }
    }
}
