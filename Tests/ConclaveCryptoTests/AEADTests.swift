import Testing
import CSodium
import ConclaveCrypto

@Suite struct XChaChaFrameCipherTests {
    /// The cached-subkey cipher is byte-identical to libsodium's XChaCha20-Poly1305 for
    /// random keys, nonces, AAD and every length 0…1500.
    @Test func cachedSubkeyMatchesLibsodiumForAllLengths() throws {
        var rng = SplitMix64(seed: 0xC0C1A7E)
        for length in 0...1500 {
            let key = rng.bytes(32), nonce = rng.bytes(24)
            let aad = rng.bytes(Int.random(in: 0...64, using: &rng))
            let plaintext = rng.bytes(length)
            var expected = [UInt8](repeating: 0, count: length + 16)
            var expectedLength: UInt64 = 0
            _ = crypto_aead_xchacha20poly1305_ietf_encrypt(
                &expected, &expectedLength, plaintext, UInt64(length),
                aad, UInt64(aad.count), nil, nonce, key)
            #expect(Int(expectedLength) == length + 16)

            let cipher = try XChaChaFrameCipher(key: SecretKey(copying: key), noncePrefix: Array(nonce[0..<16]))
            let suffix = nonce[16..<24].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            var buffer = plaintext + [UInt8](repeating: 0, count: 16)
            try buffer.withUnsafeMutableBytes { b in
                try aad.withUnsafeBytes { a in
                    try cipher.seal(
                        inPlace: UnsafeMutableRawBufferPointer(rebasing: b[0..<length]),
                        tag: UnsafeMutableRawBufferPointer(rebasing: b[length...]),
                        nonceSuffix: suffix, authenticating: a)
                }
            }
            #expect(buffer == expected, "length \(length)")

            // And it opens what libsodium sealed.
            try buffer.withUnsafeMutableBytes { b in
                try aad.withUnsafeBytes { a in
                    try cipher.open(
                        inPlace: UnsafeMutableRawBufferPointer(rebasing: b[0..<length]),
                        tag: UnsafeRawBufferPointer(rebasing: b[length...]), nonceSuffix: suffix, authenticating: a)
                }
            }
            #expect(Array(buffer[0..<length]) == plaintext)
        }
    }

    @Test func oneShotMatchesLibsodium() throws {
        var rng = SplitMix64(seed: 7)
        let key = rng.bytes(32), nonce = rng.bytes(24), aad = rng.bytes(10), pt = rng.bytes(160)
        var expected = [UInt8](repeating: 0, count: 176)
        _ = crypto_aead_xchacha20poly1305_ietf_encrypt(&expected, nil, pt, 160, aad, 10, nil, nonce, key)
        var body = pt, tag = [UInt8](repeating: 0, count: 16)
        try body.withUnsafeMutableBytes { b in
            try tag.withUnsafeMutableBytes { t in
                try nonce.withUnsafeBytes { n in
                    try aad.withUnsafeBytes { a in
                        try XChaCha20Poly1305.seal(inPlace: b, tag: t, key: SecretKey(copying: key), nonce: n, authenticating: a)
                    }
                }
            }
        }
        #expect(body + tag == expected)
    }

    /// A single flipped bit in ciphertext, tag or AAD fails, and leaves no plaintext.
    @Test func everySingleBitFlipFailsAndLeavesNoPlaintext() throws {
        var rng = SplitMix64(seed: 42)
        let key = SecretKey(copying: rng.bytes(32)), prefix = rng.bytes(16)
        let cipher = try XChaChaFrameCipher(key: key, noncePrefix: prefix)
        let plaintext = rng.bytes(40), aad = rng.bytes(12)
        var sealed = plaintext + [UInt8](repeating: 0, count: 16)
        try sealed.withUnsafeMutableBytes { b in
            try aad.withUnsafeBytes { a in
                try cipher.seal(
                    inPlace: UnsafeMutableRawBufferPointer(rebasing: b[0..<40]),
                    tag: UnsafeMutableRawBufferPointer(rebasing: b[40...]), nonceSuffix: 99, authenticating: a)
            }
        }
        func attempt(_ frame: [UInt8], _ aad: [UInt8], suffix: UInt64 = 99) -> (ok: Bool, body: [UInt8]) {
            var f = frame
            let ok = f.withUnsafeMutableBytes { b in
                aad.withUnsafeBytes { a in
                    (try? cipher.open(
                        inPlace: UnsafeMutableRawBufferPointer(rebasing: b[0..<40]),
                        tag: UnsafeRawBufferPointer(rebasing: b[40...]), nonceSuffix: suffix, authenticating: a)) != nil
                }
            }
            return (ok, Array(f[0..<40]))
        }
        #expect(attempt(sealed, aad).ok)
        for bit in 0..<(sealed.count * 8) {
            var t = sealed; t[bit / 8] ^= 1 << (bit % 8)
            let r = attempt(t, aad)
            #expect(!r.ok)
            #expect(r.body == [UInt8](repeating: 0, count: 40))
        }
        for bit in 0..<(aad.count * 8) {
            var a = aad; a[bit / 8] ^= 1 << (bit % 8)
            #expect(!attempt(sealed, a).ok)
        }
        #expect(!attempt(sealed, aad, suffix: 98).ok)
    }

    @Test func badLengthsAreTypedErrors() throws {
        #expect(throws: CryptoError.invalidKeyLength(expected: 32, actual: 16)) {
            try XChaChaFrameCipher(key: SecretKey(copying: [UInt8](repeating: 0, count: 16)), noncePrefix: [UInt8](repeating: 0, count: 16))
        }
        #expect(throws: CryptoError.invalidNonceLength(expected: 16, actual: 24)) {
            try XChaChaFrameCipher(key: .random(), noncePrefix: [UInt8](repeating: 0, count: 24))
        }
    }
}

@Suite struct AES256GCMTests {
    @Test(.enabled(if: AES256GCM.isAvailable)) func roundTripAndTamper() throws {
        let key = SecretKey.random()
        let nonce = [UInt8](repeating: 3, count: 12)
        var body = Array("frame".utf8), tag = [UInt8](repeating: 0, count: 16)
        try body.withUnsafeMutableBytes { b in
            try tag.withUnsafeMutableBytes { t in
                try nonce.withUnsafeBytes { n in
                    try AES256GCM.seal(inPlace: b, tag: t, key: key, nonce: n, authenticating: UnsafeRawBufferPointer(start: nil, count: 0))
                }
            }
        }
        #expect(body != Array("frame".utf8))
        var tampered = body; tampered[0] ^= 1
        #expect(throws: CryptoError.authenticationFailed) {
            try tampered.withUnsafeMutableBytes { b in
                try tag.withUnsafeBytes { t in
                    try nonce.withUnsafeBytes { n in
                        try AES256GCM.open(inPlace: b, tag: t, key: key, nonce: n, authenticating: UnsafeRawBufferPointer(start: nil, count: 0))
                    }
                }
            }
        }
        try body.withUnsafeMutableBytes { b in
            try tag.withUnsafeBytes { t in
                try nonce.withUnsafeBytes { n in
                    try AES256GCM.open(inPlace: b, tag: t, key: key, nonce: n, authenticating: UnsafeRawBufferPointer(start: nil, count: 0))
                }
            }
        }
        #expect(body == Array("frame".utf8))
    }
}
