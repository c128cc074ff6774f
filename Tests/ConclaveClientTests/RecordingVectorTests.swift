import Foundation
import Testing
@testable import ConclaveClient
import ConclaveCrypto
import ConclaveProtocol

/// protocol/test-vectors/recording.json (protocol/RECORDING.md §7): a complete recording
/// with the keys that open it and the records it holds. The stream header is random
/// (libsodium draws it), so the file is not reproduced byte for byte from the keys; a
/// reader reproduces the header fields, the file key (from either slot) and every record.
/// Regenerate with `CONCLAVE_WRITE_VECTORS=1 swift test --filter RecordingVectorTests`.
@Suite struct RecordingVectorTests {
    static let vectorURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("protocol/test-vectors/recording.json")
    static let passphrase = "correct horse battery staple"

    static func kind(_ r: RecordingRecord) -> String {
        switch r {
        case .start: "start"
        case .member: "member"
        case .audio: "audio"
        case .chat: "chat"
        case .end: "end"
        }
    }

    static func generate() throws -> [String: Any] {
        let dir = try RecordingFileTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/vector.crec"
        let recorder = try RecordingFileTests.writeSample(at: path, capacity: 2, passphrase: Array(passphrase.utf8))
        let file = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let header = try RecordingHeader.decode(file)
        let key = try RecordingReader.unlock(header, identity: recorder, passphrase: nil)
        var records: [[String: Any]] = []
        try RecordingReader.read(path: path, key: key) { r in records.append(["type": Self.kind(r), "plaintext": Hex.encode(r.encoded)]) }
        guard case let .passphrase(salt, passes, memory, _, _) = header.slots[1] else { throw RecordingError.malformed("slot") }
        let kek = try PasswordHash.deriveKey(Array(passphrase.utf8), salt: salt, limits: .init(operations: UInt64(passes), memoryBytes: Int(memory) * 1024))
        return [
            "description":
                "A recording (RECORDING.md) by #1 of room 16 × 0x42, recording id 16 × 0x5a: #1 and #2 consented; three Opus packets (F8 FF FE), one chat line, the END. Identities: SHA-256('conclave vector recording <who> ed25519' | 'x25519') as the Ed25519 seed and X25519 secret. Slot 1 seals the file key to the recorder; slot 2 wraps it under Argon2id(passphrase, salt, passes, memory_kib) with libsodium's minimum limits.",
            "recorder_ed25519_seed": Hex.encode(SHA2.sha256(Array("conclave vector recording recorder ed25519".utf8))),
            "recorder_x25519_secret": Hex.encode(SHA2.sha256(Array("conclave vector recording recorder x25519".utf8))),
            "passphrase": passphrase,
            "passphrase_kek": kek.unsafeHexExport(),
            "file_key": key.unsafeHexExport(),
            "file": Hex.encode(file),
            "header_length": header.encodedLength,
            "created_at": Int(header.createdAt),
            "retain_until": Int(header.retainUntil),
            "room_hash": Hex.encode(header.roomHash),
            "members": header.members.map(Hex.encode),
            "records": records,
        ]
    }

    @Test func vectorsAreReproduced() throws {
        if ProcessInfo.processInfo.environment["CONCLAVE_WRITE_VECTORS"] == "1" {
            let data = try JSONSerialization.data(withJSONObject: try Self.generate(), options: [.prettyPrinted, .sortedKeys])
            try (data + Data("\n".utf8)).write(to: Self.vectorURL)
        }
        let v = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.vectorURL)) as! [String: Any]
        func hex(_ k: String) -> [UInt8] { Hex.decode(v[k] as! String)! }
        let dir = try RecordingFileTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/vector.crec"
        FileManager.default.createFile(atPath: path, contents: Data(hex("file")))
        let header = try RecordingReader.header(path: path)
        #expect(header.encodedLength == v["header_length"] as? Int && Int(header.createdAt) == v["created_at"] as? Int)
        #expect(Int(header.retainUntil) == v["retain_until"] as? Int && Hex.encode(header.roomHash) == v["room_hash"] as? String)
        #expect(header.roomHash == RecordingFormat.roomHash(RecordingFileTests.roomID))
        #expect(header.members.map(Hex.encode) == v["members"] as? [String])
        let recorder = PrivateIdentity(
            signingKey: try Ed25519.PrivateKey(seed: SecretKey(copying: hex("recorder_ed25519_seed"))),
            agreementKey: try X25519.PrivateKey(secret: SecretKey(copying: hex("recorder_x25519_secret"))))
        let byIdentity = try RecordingReader.unlock(header, identity: recorder, passphrase: nil)
        let byPassphrase = try RecordingReader.unlock(header, identity: nil, passphrase: Array((v["passphrase"] as! String).utf8))
        #expect(byIdentity.unsafeHexExport() == v["file_key"] as? String && byPassphrase == byIdentity)
        guard case let .passphrase(salt, passes, memory, _, _) = header.slots[1] else { Issue.record("no passphrase slot"); return }
        let kek = try PasswordHash.deriveKey(
            Array((v["passphrase"] as! String).utf8), salt: salt,
            limits: .init(operations: UInt64(passes), memoryBytes: Int(memory) * 1024))
        #expect(kek.unsafeHexExport() == v["passphrase_kek"] as? String)
        var records: [String] = []
        try RecordingReader.read(path: path, key: byIdentity) { records.append(Hex.encode($0.encoded)) }
        #expect(records == (v["records"] as! [[String: Any]]).map { $0["plaintext"] as! String })
    }
}
