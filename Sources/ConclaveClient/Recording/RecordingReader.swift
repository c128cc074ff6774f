#if canImport(Glibc)
import Glibc
#endif
import ConclaveCrypto
import ConclaveProtocol

/// Reads a recording (protocol/RECORDING.md): the header without a key; the records only
/// with a key slot opened, each verified in order.
///
/// Verification, in the order records are read: the stream authenticates every record and
/// its position (a changed byte, a reordered, repeated or dropped record fails); the first
/// record is `START` with the header's recording id and room hash; each `MEMBER` carries a
/// consent signed by that member's identity for this recording and recorder; every `AUDIO`
/// and `CHAT` comes from a member recorded before it; the last record is `END` with the
/// final tag, authenticating the header (its member list must match the `MEMBER`
/// records); nothing follows it. A file that ends earlier is ``RecordingError/truncated``.
public enum RecordingReader {
    /// Reads and parses the header (at most ``RecordingFormat/maximumHeaderLength`` bytes).
    /// Unauthenticated until the records are verified with a key.
    public static func header(path: String) throws(RecordingError) -> RecordingHeader {
        let file = try RecordingInput(path: path)
        let bytes = try file.read(upTo: RecordingFormat.maximumHeaderLength)
        return try RecordingHeader.decode(bytes)
    }

    /// The file key, from the first slot that opens with `identity` or `passphrase`.
    public static func unlock(_ header: RecordingHeader, identity: PrivateIdentity?, passphrase: [UInt8]?) throws(RecordingError) -> SecretKey {
        for slot in header.slots {
            if let identity, let key = slot.open(identity: identity) { return key }
            if let passphrase, let key = try slot.open(passphrase: passphrase, recordingID: header.recordingID) { return key }
        }
        throw .wrongKey
    }

    /// What a verified recording holds (for `info` after export and for tests).
    public struct Summary: Sendable, Equatable {
        public struct Member: Sendable, Equatable {
            public var index: UInt16
            public var identity: PublicIdentity
            public var displayName: String
            public var audioPackets = 0
            public var chatLines = 0
        }
        public var recordingID: [UInt8] = []
        public var roomID: RoomID?
        public var recorder: UInt16 = 0
        public var startedAtMillis: UInt64 = 0
        public var durationMillis: UInt32 = 0
        public var members: [Member] = []
        public var records = 0
        public var bytes = 0
    }

    /// Reads every record in order, verifying as described above, and hands each to `body`
    /// once it and everything before it verified. Returns the summary once the final record
    /// verified. `body` sees records of a file that may still fail later: to act only on a
    /// wholly verified file, call this twice (``RecordingExport`` does).
    @discardableResult
    public static func read(
        path: String, key: SecretKey, _ body: (RecordingRecord) throws(RecordingError) -> Void = { _ throws(RecordingError) in }
    ) throws(RecordingError) -> Summary {
        let file = try RecordingInput(path: path)
        let headerBytes = try file.read(upTo: RecordingFormat.maximumHeaderLength)
        let header = try RecordingHeader.decode(headerBytes)
        try file.seek(to: header.encodedLength)
        let pull: SecretStream.Pull
        do { pull = try SecretStream.Pull(key: key, header: header.streamHeader) } catch { throw .wrongKey }
        var summary = Summary()
        summary.bytes = header.encodedLength
        var memberOrder: [[UInt8]] = []
        var memberIndex: [UInt16: Int] = [:]
        while true {
            guard let lengthBytes = try file.readExactly(4) else { throw .truncated }
            let length = Int(lengthBytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
            guard length >= SecretStream.overhead + 1, length <= RecordingFormat.maximumSealedRecordLength else {
                throw .tampered("record \(summary.records + 1) has an impossible length \(length)")
            }
            guard let sealed = try file.readExactly(length) else { throw .truncated }
            summary.bytes += 4 + length
            // The final record authenticates the header as it is on disk; the others have no
            // additional data. A failed open leaves the stream's state unchanged (libsodium
            // updates it only after the MAC verified), so the second attempt is sound.
            let opened: (plaintext: SecretBytes, tag: SecretStream.Tag)
            if let o = try? pull.open(sealed) {
                // The final record must authenticate the header (§5.3).
                guard o.tag != .final else { throw .tampered("the final record does not authenticate the header") }
                opened = o
            } else if let o = try? pull.open(sealed, additionalData: Array(headerBytes[0..<header.encodedLength])), o.tag == .final {
                opened = o
            } else {
                throw summary.records == 0
                    ? .wrongKey : .tampered("record \(summary.records + 1) does not authenticate (altered, reordered or from another recording)")
            }
            let plaintext = opened.plaintext.withUnsafeBytes { Array($0) }
            let record = try RecordingRecord.decode(plaintext)
            summary.records += 1
            switch record {
            case let .start(id, room, started, recorder, recorderIdentity):
                guard summary.records == 1, opened.tag == .message else { throw .tampered("a second START record") }
                guard id == header.recordingID, RecordingFormat.roomHash(room) == header.roomHash,
                    recorderIdentity.fingerprint.bytes == header.recorder
                else {
                    throw .tampered("the START record does not match the header")
                }
                summary.recordingID = id; summary.roomID = room; summary.recorder = recorder; summary.startedAtMillis = started
            case let .member(index, _, identity, name, consent):
                guard summary.records > 1, opened.tag == .message else { throw .tampered("the first record is not START") }
                guard memberIndex[index] == nil else { throw .tampered("member #\(index) recorded twice") }
                guard consent.decision == .consent, consent.member == index, consent.recorder == summary.recorder,
                    consent.recordingID == header.recordingID, consent.roomID == summary.roomID,
                    consent.isSigned(by: identity.signingKey)
                else {
                    throw .tampered("member #\(index) has no valid signed consent")
                }
                memberIndex[index] = summary.members.count
                memberOrder.append(identity.fingerprint.bytes)
                summary.members.append(Summary.Member(index: index, identity: identity, displayName: name))
            case let .audio(index, _, _):
                guard summary.records > 1, opened.tag == .message, let i = memberIndex[index] else {
                    throw .tampered("audio from #\(index), who had not consented")
                }
                summary.members[i].audioPackets += 1
            case let .chat(index, _, _, _):
                guard summary.records > 1, opened.tag == .message, let i = memberIndex[index] else {
                    throw .tampered("chat from #\(index), who had not consented")
                }
                summary.members[i].chatLines += 1
            case let .end(at, _):
                guard summary.records > 1 else { throw .tampered("the first record is not START") }
                guard opened.tag == .final else { throw .tampered("an END record without the final tag") }
                guard memberOrder == header.members else { throw .tampered("the header's member list differs from the recorded members") }
                summary.durationMillis = at
            }
            if opened.tag == .final, case .end = record {
            } else if opened.tag != .message {
                throw .tampered("record \(summary.records) carries the wrong tag")
            }
            try body(record)
            if opened.tag == .final {
                guard try file.readExactly(1) == nil else { throw .tampered("data after the final record") }
                return summary
            }
        }
    }

}

/// A file read sequentially with bounded reads.
final class RecordingInput {
    let path: String
    private let descriptor: Int32

    init(path: String) throws(RecordingError) {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io("cannot open \(path): \(String(cString: strerror(errno)))") }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw .io("\(path) is not a regular file")
        }
        descriptor = fd
    }

    deinit { close(descriptor) }

    func seek(to offset: Int) throws(RecordingError) {
        guard lseek(descriptor, off_t(offset), SEEK_SET) == off_t(offset) else { throw .io("cannot seek in \(path)") }
    }

    /// Up to `count` bytes (fewer at the end of the file).
    func read(upTo count: Int) throws(RecordingError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress! + done, count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io("cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            done += n
        }
        out.removeLast(count - done)
        return out
    }

    /// Exactly `count` bytes; nil at a clean end of file (nothing read); ``RecordingError/truncated``
    /// for a partial read.
    func readExactly(_ count: Int) throws(RecordingError) -> [UInt8]? {
        let bytes = try read(upTo: count)
        if bytes.isEmpty, count > 0 { return nil }
        guard bytes.count == count else { throw .truncated }
        return bytes
    }
}
