import Testing
import ConclaveCrypto

@Suite struct SecretKeyTests {
    @Test func descriptionsNeverContainKeyBytes() throws {
        let raw: [UInt8] = Array(0xA0...0xBF)
        let key = SecretKey(copying: raw)
        let hexText = Hex.encode(raw)
        var dumped = ""
        dump(key, to: &dumped)
        let renderings = [
            key.description, key.debugDescription, "\(key)", String(describing: key),
            String(reflecting: key), dumped, "\(key.bytes)", String(reflecting: key.bytes),
        ]
        for text in renderings {
            #expect(!text.contains(hexText.prefix(8)), "leaked: \(text)")
            #expect(!text.contains("160"), "decimal bytes leaked: \(text)")  // 0xA0
            #expect(text.contains("redacted") || text.contains("SecretKey"), "unexpected rendering: \(text)")
        }
    }

    @Test func privateKeysDoNotLeakInDescription() throws {
        let seed = SecretKey(copying: hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
        let ed = try Ed25519.PrivateKey(seed: seed)
        let x = try X25519.PrivateKey(secret: SecretKey(copying: hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")))
        var dumped = ""
        dump(ed, to: &dumped); dump(x, to: &dumped)
        for text in [ed.description, x.description, "\(ed)", "\(x)", String(reflecting: ed), String(reflecting: x), dumped] {
            #expect(!text.contains("9d61b19d"))
            #expect(!text.contains("77076d0a"))
        }
        let cipher = try XChaChaFrameCipher(key: seed, noncePrefix: [UInt8](repeating: 1, count: 16))
        #expect(!"\(cipher)".contains("9d61"))
    }

    @Test func equalityIsByValue() {
        let a = SecretKey(copying: [1, 2, 3, 4])
        #expect(a == SecretKey(copying: [1, 2, 3, 4]))
        #expect(a != SecretKey(copying: [1, 2, 3, 5]))
        #expect(a != SecretKey(copying: [1, 2, 3]))
        #expect(SecretKey.random() != SecretKey.random())
        #expect(SecretKey.random().count == 32)
    }
}
