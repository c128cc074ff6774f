import Testing
import ConclaveCrypto

@Suite struct HKDFTests {
    // RFC 5869 Appendix A.1
    @Test func rfc5869Case1() throws {
        let prk = HKDF.extract(.sha256, salt: hex("000102030405060708090a0b0c"), ikm: [UInt8](repeating: 0x0b, count: 22))
        #expect(prk.unsafeHexExport() == "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5")
        let okm = try HKDF.expand(.sha256, prk: prk, info: hex("f0f1f2f3f4f5f6f7f8f9"), length: 42)
        #expect(okm.unsafeHexExport() == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
    }

    // RFC 5869 Appendix A.2 (long inputs, multi-block output)
    @Test func rfc5869Case2() throws {
        let okm = try HKDF.deriveKey(
            .sha256, salt: Array(0x60...0xaf).map { UInt8($0) },
            ikm: Array(0x00...0x4f).map { UInt8($0) },
            info: Array(0xb0...0xff).map { UInt8($0) }, length: 82)
        #expect(
            okm.unsafeHexExport()
                == "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87"
        )
    }

    // RFC 5869 Appendix A.3 (empty salt and info)
    @Test func rfc5869Case3() throws {
        let prk = HKDF.extract(.sha256, salt: [UInt8](), ikm: [UInt8](repeating: 0x0b, count: 22))
        #expect(prk.unsafeHexExport() == "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04")
        let okm = try HKDF.expand(.sha256, prk: prk, info: [UInt8](), length: 42)
        #expect(okm.unsafeHexExport() == "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
    }

    @Test func outputLengthIsBounded() {
        let prk = SecretKey.random()
        #expect(throws: CryptoError.invalidOutputLength(requested: 0, maximum: 255 * 32)) {
            try HKDF.expand(.sha256, prk: prk, info: [UInt8](), length: 0)
        }
        #expect(throws: CryptoError.invalidOutputLength(requested: 255 * 64 + 1, maximum: 255 * 64)) {
            try HKDF.expand(.sha512, prk: prk, info: [UInt8](), length: 255 * 64 + 1)
        }
        #expect((try? HKDF.expand(.sha512, prk: prk, info: [UInt8](), length: 255 * 64))?.count == 255 * 64)
    }

    @Test func sha2KnownAnswers() {
        #expect(Hex.encode(SHA2.sha256(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Hex.encode(SHA2.sha512(Array("abc".utf8))).hasPrefix("ddaf35a193617abacc417349ae204131"))
        // RFC 4231 test case 2 for HMAC-SHA256
        #expect(
            Hex.encode(HMAC.authenticate(.sha256, key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8)))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }
}

@Suite struct PasswordHashTests {
    @Test func hashAndVerify() throws {
        let h = try PasswordHash.hash(Array("correct horse".utf8), limits: .minimum)
        #expect(h.hasPrefix("$argon2id$"))
        #expect(!h.contains("correct"))
        #expect(PasswordHash.verify(Array("correct horse".utf8), against: h))
        #expect(!PasswordHash.verify(Array("correct horsf".utf8), against: h))
        #expect(!PasswordHash.verify(Array("".utf8), against: h))
        #expect(!PasswordHash.verify(Array("correct horse".utf8), against: "$argon2id$garbage"))
        #expect(!PasswordHash.verify(Array("correct horse".utf8), against: String(repeating: "x", count: 500)))
        // Two hashes of the same password differ (random salt).
        #expect(try PasswordHash.hash(Array("correct horse".utf8), limits: .minimum) != h)
    }

    @Test func overlongPasswordIsRejected() {
        #expect(throws: CryptoError.inputTooLong(length: 5000, limit: 4096)) {
            try PasswordHash.hash([UInt8](repeating: 0x41, count: 5000), limits: .minimum)
        }
    }
}
