import Testing
import CSodium
import ConclaveCrypto

@Suite struct X25519Tests {
    // RFC 7748 §6.1
    @Test func rfc7748KeyAgreement() throws {
        let alice = try X25519.PrivateKey(secret: SecretKey(copying: hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")))
        let bob = try X25519.PrivateKey(secret: SecretKey(copying: hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")))
        #expect(Hex.encode(alice.publicKey.rawRepresentation) == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        #expect(Hex.encode(bob.publicKey.rawRepresentation) == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        let shared = try alice.rawSharedSecret(with: bob.publicKey)
        #expect(shared.unsafeHexExport() == "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
    }

    @Test func sharedKeyIsSymmetricAndContextBound() throws {
        let a = X25519.PrivateKey(), b = X25519.PrivateKey(), c = X25519.PrivateKey()
        let ab = try a.sharedKey(with: b.publicKey, context: "conclave/v1 private-chat")
        let ba = try b.sharedKey(with: a.publicKey, context: "conclave/v1 private-chat")
        #expect(ab == ba)
        #expect(ab != (try a.sharedKey(with: b.publicKey, context: "conclave/v1 other")))
        #expect(ab != (try a.sharedKey(with: c.publicKey, context: "conclave/v1 private-chat")))
    }

    @Test func lowOrderPointIsRejected() throws {
        let a = X25519.PrivateKey()
        let zero = try X25519.PublicKey(rawRepresentation: [UInt8](repeating: 0, count: 32))
        #expect(throws: CryptoError.invalidPublicKey) { try a.sharedKey(with: zero, context: "x") }
        #expect(throws: CryptoError.invalidKeyLength(expected: 32, actual: 31)) {
            try X25519.PublicKey(rawRepresentation: [UInt8](repeating: 9, count: 31))
        }
    }
}

@Suite struct Ed25519Tests {
    // RFC 8032 §7.1 test 1: the seed gives the published public key.
    @Test func rfc8032PublicKey() throws {
        let key = try Ed25519.PrivateKey(seed: SecretKey(copying: hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")))
        #expect(Hex.encode(key.publicKey.rawRepresentation) == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    }

    @Test func signatureIsPureEd25519OverContextPrefixedInput() throws {
        let key = try Ed25519.PrivateKey(seed: SecretKey(copying: hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")))
        let message = Array("hello".utf8)
        let sig = try key.signature(for: message, context: "conclave/v1 test")
        let input: [UInt8] = [16] + Array("conclave/v1 test".utf8) + message
        #expect(try Ed25519.signingInput(message, context: "conclave/v1 test") == input)
        let pk = key.publicKey.rawRepresentation
        #expect(crypto_sign_verify_detached(sig, input, UInt64(input.count), pk) == 0)
    }

    @Test func tamperedSignatureMessageContextOrKeyFails() throws {
        let key = Ed25519.PrivateKey(), other = Ed25519.PrivateKey()
        let message: [UInt8] = Array(0..<100)
        let sig = try key.signature(for: message, context: "conclave/v1 a")
        #expect(key.publicKey.isValidSignature(sig, for: message, context: "conclave/v1 a"))
        #expect(!key.publicKey.isValidSignature(sig, for: message, context: "conclave/v1 b"))
        #expect(!other.publicKey.isValidSignature(sig, for: message, context: "conclave/v1 a"))
        for i in 0..<message.count * 8 where i % 7 == 0 {
            var m = message; m[i / 8] ^= 1 << (i % 8)
            #expect(!key.publicKey.isValidSignature(sig, for: m, context: "conclave/v1 a"))
        }
        for i in 0..<(64 * 8) {
            var s = sig; s[i / 8] ^= 1 << (i % 8)
            #expect(!key.publicKey.isValidSignature(s, for: message, context: "conclave/v1 a"))
        }
        #expect(!key.publicKey.isValidSignature(Array(sig.prefix(63)), for: message, context: "conclave/v1 a"))
        #expect(throws: CryptoError.invalidContext(length: 0)) { try key.signature(for: message, context: "") }
        #expect(throws: CryptoError.invalidSignature) { try other.publicKey.verify(sig, for: message, context: "conclave/v1 a") }
    }
}

@Suite struct SealedBoxTests {
    @Test func roundTripAndTampering() throws {
        let recipient = X25519.PrivateKey(), stranger = X25519.PrivateKey()
        let message = Array("knock: Alice".utf8)
        let box = try SealedBox.seal(message, to: recipient.publicKey)
        #expect(box.count == message.count + 48)
        let opened = try SealedBox.open(box, recipient: recipient)
        #expect(opened.withUnsafeBytes { Array($0) } == message)
        #expect(throws: CryptoError.authenticationFailed) { try SealedBox.open(box, recipient: stranger) }
        for i in 0..<box.count {
            var t = box; t[i] ^= 0x01
            #expect(throws: CryptoError.authenticationFailed) { try SealedBox.open(t, recipient: recipient) }
        }
        #expect(throws: CryptoError.authenticationFailed) { try SealedBox.open(Array(box.prefix(47)), recipient: recipient) }
        #expect(throws: CryptoError.authenticationFailed) { try SealedBox.open(Array(box.dropLast()), recipient: recipient) }
    }

    @Test func limitsAreEnforcedBeforeWork() {
        let r = X25519.PrivateKey()
        #expect(throws: CryptoError.inputTooLong(length: 65_537, limit: 65_536)) {
            try SealedBox.seal([UInt8](repeating: 0, count: 65_537), to: r.publicKey)
        }
        #expect(throws: CryptoError.inputTooLong(length: 65_537, limit: 65_536)) {
            try SealedBox.open([UInt8](repeating: 0, count: 65_537 + 48), recipient: r)
        }
    }
}
