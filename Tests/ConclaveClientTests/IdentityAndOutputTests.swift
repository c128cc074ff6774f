import Foundation
import Testing
import ConclaveClient
import ConclaveProtocol

@Suite struct IdentityFileTests {
    func tempPath() -> String { NSTemporaryDirectory() + "conclave-id-\(UUID().uuidString)" }

    @Test func generateLoadAndPermissions() throws {
        let path = tempPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let written = try IdentityFile.generate(at: path)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let loaded = try IdentityFile.load(from: path)
        #expect(loaded.publicIdentity == written.publicIdentity)
        #expect(throws: IdentityFile.Error.exists(path: path)) { try IdentityFile.generate(at: path) }
        #expect(try IdentityFile.load(from: path).publicIdentity == written.publicIdentity, "a refused overwrite must leave the file intact")
        chmod(path, 0o644)
        #expect(throws: IdentityFile.Error.tooPermissive(path: path, mode: 0o644)) { try IdentityFile.load(from: path) }
    }

    @Test func malformedFilesAreClearErrors() throws {
        let cases = [
            "", "conclave-identity-v1\n", "something else\ned25519-seed 00\n",
            "conclave-identity-v1\ned25519-seed zz\nx25519-secret 00\n",
            "conclave-identity-v1\ned25519-seed \(String(repeating: "00", count: 32))\n",
            String(repeating: "x", count: 2000),
        ]
        for text in cases {
            let path = tempPath()
            defer { try? FileManager.default.removeItem(atPath: path) }
            FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
            #expect(throws: IdentityFile.Error.self) { try IdentityFile.load(from: path) }
        }
        #expect(throws: IdentityFile.Error.self) { try IdentityFile.load(from: "/nonexistent/id") }
    }
}

@Suite struct EventOutputTests {
    @Test func jsonLinesAreWellFormedWhateverTheText() throws {
        let nasty = "a\"b\\c\nd\u{0}e\u{2028}f ✓"
        let line = EventOutput.jsonLine(event: "chat", t: 1.23456, fields: [("from", .int(2)), ("text", .string(nasty)), ("private", .bool(false))])
        #expect(!line.contains("\n"))
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        #expect(object["event"] as? String == "chat")
        #expect(object["t"] as? Double == 1.235)
        #expect(object["text"] as? String == nasty)
        #expect(object["from"] as? Int == 2)
        #expect(object["private"] as? Bool == false)
        #expect(line.hasPrefix("{\"event\":\"chat\",\"t\":"))
    }
}
