import Foundation
import Testing
@testable import ConclaveClient
import ConclaveCrypto
import ConclaveMedia
import ConclaveProtocol

/// Issue 11: the encrypted recording file (protocol/RECORDING.md) without a network.
@Suite struct RecordingFileTests {
    static let roomID = RoomID(bytes: [UInt8](repeating: 0x42, count: 16))!
    static let recordingID = [UInt8](repeating: 0x5A, count: 16)

    static func identity(_ label: String) -> PrivateIdentity {
        let seed = SHA2.sha256(Array("conclave vector recording \(label) ed25519".utf8))
        let x = SHA2.sha256(Array("conclave vector recording \(label) x25519".utf8))
        return PrivateIdentity(
            signingKey: try! Ed25519.PrivateKey(seed: SecretKey(copying: seed)), agreementKey: try! X25519.PrivateKey(secret: SecretKey(copying: x)))
    }

    static func temporaryDirectory() throws -> String {
        let dir = NSTemporaryDirectory() + "conclave-rec-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func consent(
        _ who: PrivateIdentity, member: UInt16, recorder: UInt16 = 1, id: [UInt8] = recordingID,
        decision: RecordingConsent.Decision = .consent
    ) -> RecordingConsent {
        RecordingConsent.sign(roomID: roomID, recordingID: id, member: member, recorder: recorder, decision: decision, by: who.signingKey)
    }

    /// A small recording: the recorder (#1) and #2 consented; audio from both, a chat line.
    static func writeSample(at path: String, capacity: Int = 4, passphrase: [UInt8]? = nil, retainUntil: UInt64 = 1_900_000_000) throws -> PrivateIdentity {
        let recorder = identity("recorder"), member = identity("member")
        let w = try RecordingWriter(
            path: path, recordingID: recordingID, roomID: roomID, recorder: 1, recorderIdentity: recorder.publicIdentity,
            recipients: .init(identities: [recorder.publicIdentity], passphrase: passphrase, passphraseLimits: .minimum),
            createdAt: 1_700_000_000, retainUntil: retainUntil, startedAtMillis: 1_700_000_000_000, memberCapacity: capacity)
        try w.addMember(index: 1, identity: recorder.publicIdentity, displayName: "Rec", consent: consent(recorder, member: 1), atMillis: 0)
        try w.audio(index: 1, atMillis: 0, opus: [0xF8, 0xFF, 0xFE])
        try w.addMember(index: 2, identity: member.publicIdentity, displayName: "Zoë", consent: consent(member, member: 2), atMillis: 15)
        try w.audio(index: 2, atMillis: 20, opus: [0xF8, 0xFF, 0xFE])
        try w.chat(index: 2, atMillis: 25, isPrivate: false, text: "hello, recorded world")
        try w.audio(index: 1, atMillis: 40, opus: [0xF8, 0xFF, 0xFE])
        try w.finish(atMillis: 60, stoppedAtMillis: 1_700_000_000_060)
        return recorder
    }

    @Test func writtenFileReadsBackVerifiedAndIsPrivate() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/r.crec"
        let recorder = try Self.writeSample(at: path)
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600, "a recording is created with mode 0600")
        let bytes = try #require(FileManager.default.contents(atPath: path))
        // Nothing recorded appears in the clear.
        for secret in ["hello, recorded world", "Zoë", "Rec"] {
            #expect(bytes.range(of: Data(secret.utf8)) == nil, "\(secret) is on disk in plaintext")
        }
        let header = try RecordingReader.header(path: path)
        #expect(header.members == [Self.identity("recorder").publicIdentity.fingerprint.bytes, Self.identity("member").publicIdentity.fingerprint.bytes])
        #expect(header.retainUntil == 1_900_000_000 && header.roomHash == RecordingFormat.roomHash(Self.roomID))
        let key = try RecordingReader.unlock(header, identity: recorder, passphrase: nil)
        var records: [RecordingRecord] = []
        let summary = try RecordingReader.read(path: path, key: key) { records.append($0) }
        #expect(records.count == 8 && summary.members.map(\.index) == [1, 2] && summary.members[1].displayName == "Zoë")
        #expect(summary.members[0].audioPackets == 2 && summary.members[1].audioPackets == 1 && summary.members[1].chatLines == 1)
        #expect(records.contains(.chat(index: 2, atMillis: 25, isPrivate: false, text: "hello, recorded world")))
        #expect(throws: RecordingError.wrongKey) { try RecordingReader.unlock(header, identity: Self.identity("stranger"), passphrase: nil) }
    }

    @Test func passphraseSlotOpensWithThePassphraseOnly() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/p.crec"
        let recorder = try Self.writeSample(at: path, passphrase: Array("correct horse battery staple".utf8))
        let header = try RecordingReader.header(path: path)
        #expect(header.slots.count == 2)
        let byPassphrase = try RecordingReader.unlock(header, identity: nil, passphrase: Array("correct horse battery staple".utf8))
        #expect(byPassphrase == (try RecordingReader.unlock(header, identity: recorder, passphrase: nil)))
        #expect(throws: RecordingError.wrongKey) { try RecordingReader.unlock(header, identity: nil, passphrase: Array("wrong".utf8)) }
    }

    /// Must show: every single-byte change, every truncation, a reorder and a wrong key are
    /// detected, and an export of a damaged file writes nothing.
    @Test func everyChangeTruncationAndReorderIsDetected() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/t.crec"
        let recorder = try Self.writeSample(at: path, capacity: 2)
        let original = Array(try #require(FileManager.default.contents(atPath: path)))
        let key = try RecordingReader.unlock(try RecordingReader.header(path: path), identity: recorder, passphrase: nil)
        let damaged = "\(dir)/damaged.crec"
        func reads(_ bytes: [UInt8]) -> Bool {
            FileManager.default.createFile(atPath: damaged, contents: Data(bytes))
            // With the key of the intact file, or with whatever the damaged header's slots give.
            if (try? RecordingReader.read(path: damaged, key: key)) != nil { return true }
            if let h = try? RecordingReader.header(path: damaged), let k = try? RecordingReader.unlock(h, identity: recorder, passphrase: nil),
                (try? RecordingReader.read(path: damaged, key: k)) != nil
            {
                return true
            }
            return false
        }
        #expect(reads(original))
        var undetected: [Int] = []
        for i in original.indices {
            var b = original
            b[i] ^= 0x01
            if reads(b) { undetected.append(i) }
        }
        #expect(undetected.isEmpty, "single-byte changes at offsets \(undetected.prefix(10)) of \(original.count) went undetected")
        var truncations: [Int] = []
        for n in 0..<original.count where reads(Array(original[0..<n])) { truncations.append(n) }
        #expect(truncations.isEmpty, "truncations to \(truncations.prefix(10)) bytes went undetected")
        #expect(!reads(original + [0]), "trailing bytes are detected")
        // Reorder: swap the second and third records.
        let header = try RecordingHeader.decode(original)
        var offsets: [Int] = []
        var at = header.encodedLength
        while at < original.count {
            offsets.append(at)
            at += 4 + Int(original[at..<at + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        }
        let r1 = Array(original[offsets[1]..<offsets[2]]), r2 = Array(original[offsets[2]..<offsets[3]])
        let swapped = Array(original[0..<offsets[1]]) + r2 + r1 + Array(original[offsets[3]...])
        #expect(!reads(swapped), "a reorder is detected")
        // A dropped record.
        #expect(!reads(Array(original[0..<offsets[2]]) + Array(original[offsets[3]...])), "a dropped record is detected")
        // Wrong key.
        #expect(throws: RecordingError.wrongKey) { try RecordingReader.read(path: path, key: SecretKey.random(count: 32)) }
        // An export of a damaged file writes nothing.
        var flipped = original
        flipped[original.count - 5] ^= 0x80
        FileManager.default.createFile(atPath: damaged, contents: Data(flipped))
        let out = "\(dir)/out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        #expect(throws: RecordingError.self) { try RecordingExport.export(path: damaged, key: key, to: out) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: out).isEmpty, "a failed export leaves no plaintext behind")
    }

    @Test func truncatedAndForeignFilesGiveTypedErrors() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/x.crec"
        let recorder = try Self.writeSample(at: path, capacity: 2)
        let bytes = Array(try #require(FileManager.default.contents(atPath: path)))
        let key = try RecordingReader.unlock(try RecordingReader.header(path: path), identity: recorder, passphrase: nil)
        FileManager.default.createFile(atPath: path, contents: Data(bytes.dropLast(10)))
        #expect(throws: RecordingError.truncated) { try RecordingReader.read(path: path, key: key) }
        FileManager.default.createFile(atPath: path, contents: Data("RIFF....WAVE".utf8))
        #expect(throws: RecordingError.notARecording) { try RecordingReader.header(path: path) }
        var future = bytes
        future[8] = 9
        FileManager.default.createFile(atPath: path, contents: Data(future))
        #expect(throws: RecordingError.unsupportedVersion(9)) { try RecordingReader.header(path: path) }
        #expect(RecordingError.wrongKey.description.contains("wrong key"))
    }

    @Test func exportWritesOneWAVPerMemberAndTheChat() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/e.crec"
        // Real Opus: 1 s of 440 Hz from #1 and 660 Hz from #2.
        let recorder = Self.identity("recorder"), member = Self.identity("member")
        let w = try RecordingWriter(
            path: path, recordingID: Self.recordingID, roomID: Self.roomID, recorder: 1, recorderIdentity: recorder.publicIdentity,
            recipients: .init(identities: [recorder.publicIdentity]), createdAt: 1, retainUntil: 2, startedAtMillis: 0)
        try w.addMember(index: 1, identity: recorder.publicIdentity, displayName: "Rec", consent: Self.consent(recorder, member: 1), atMillis: 0)
        try w.addMember(index: 2, identity: member.publicIdentity, displayName: "Zoë", consent: Self.consent(member, member: 2), atMillis: 0)
        for (index, frequency) in [(UInt16(1), 440.0), (2, 660.0)] {
            let pipeline = try AudioSendPipeline(source: try AudioSource(spec: .tone(frequency: frequency), loop: true))
            for n in 0..<100 {
                let packet = try #require(try pipeline.nextPacket(nowMicros: UInt64(n) * 20_000))
                try w.audio(index: index, atMillis: UInt32(n * 20), opus: Array(try AudioPacket.decode(packet).opus))
            }
        }
        try w.chat(index: 2, atMillis: 1_500, isPrivate: true, text: "line one\nline two")
        try w.finish(atMillis: 2_000, stoppedAtMillis: 2_000)
        let out = "\(dir)/out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let key = try RecordingReader.unlock(try RecordingReader.header(path: path), identity: recorder, passphrase: nil)
        let result = try RecordingExport.export(path: path, key: key, to: out)
        #expect(result.files.map { ($0 as NSString).lastPathComponent } == ["participant-1.wav", "participant-2.wav", "chat.txt", "chat.jsonl"])
        for (index, frequency) in [(1, 440.0), (2, 660.0)] {
            let audio = try WAVFile.read(path: "\(out)/participant-\(index).wav")
            let f = DominantFrequency.estimate(samples: Array(audio.samples.dropFirst(9_600)), sampleRate: 48_000, channels: 1) ?? 0
            #expect(abs(f - frequency) / frequency < 0.02, "participant \(index) peaks at \(f) Hz")
            var st = stat()
            #expect(stat("\(out)/participant-\(index).wav", &st) == 0 && st.st_mode & 0o777 == 0o600)
        }
        let text = try String(contentsOfFile: "\(out)/chat.txt", encoding: .utf8)
        #expect(text == "[00:01.500] Zoë (#2) (private): line one line two\n")
        // A second export into the same directory refuses to overwrite.
        #expect(throws: RecordingError.self) { try RecordingExport.export(path: path, key: key, to: out) }
    }

    /// Must show: purge deletes only expired recordings.
    @Test func purgeDeletesOnlyExpiredRecordings() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try Self.writeSample(at: "\(dir)/old.crec", capacity: 2, retainUntil: 1_000)
        _ = try Self.writeSample(at: "\(dir)/new.crec", capacity: 2, retainUntil: 5_000)
        FileManager.default.createFile(atPath: "\(dir)/notes.txt", contents: Data("not a recording".utf8))
        let outcome = try RecordingPurge.purge(directory: dir, now: 2_000)
        #expect(outcome.deleted == ["\(dir)/old.crec"] && outcome.kept == ["\(dir)/new.crec"] && outcome.skipped.count == 1)
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/old.crec") && FileManager.default.fileExists(atPath: "\(dir)/new.crec"))
        #expect(FileManager.default.fileExists(atPath: "\(dir)/notes.txt"))
    }

    @Test func writerRefusesMediaOfMembersWithoutConsent() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let recorder = Self.identity("recorder"), member = Self.identity("member")
        let w = try RecordingWriter(
            path: "\(dir)/c.crec", recordingID: Self.recordingID, roomID: Self.roomID, recorder: 1,
            recorderIdentity: recorder.publicIdentity, recipients: .init(identities: [recorder.publicIdentity]),
            createdAt: 1, retainUntil: 2, startedAtMillis: 0)
        #expect(throws: RecordingError.self) { try w.audio(index: 2, atMillis: 0, opus: [1]) }
        #expect(throws: RecordingError.self) { try w.chat(index: 2, atMillis: 0, isPrivate: false, text: "x") }
        // A decline, a consent for another recording or signed by someone else does not count.
        for bad in [
            Self.consent(member, member: 2, decision: .decline), Self.consent(member, member: 2, id: [UInt8](repeating: 1, count: 16)),
            Self.consent(recorder, member: 2),
        ] {
            #expect(throws: RecordingError.self) { try w.addMember(index: 2, identity: member.publicIdentity, displayName: "", consent: bad, atMillis: 0) }
        }
        #expect(throws: RecordingError.self) {
            try RecordingWriter(
                path: "\(dir)/c.crec", recordingID: Self.recordingID, roomID: Self.roomID, recorder: 1,
                recorderIdentity: recorder.publicIdentity, recipients: .init(identities: [recorder.publicIdentity]),
                createdAt: 1, retainUntil: 2, startedAtMillis: 0)
        }
    }
}
