import CSodium

/// AES-256-GCM through libsodium, available only on CPUs with AES-NI and PCLMUL.
///
/// Conclave's own suite is XChaCha20-Poly1305; this exists to run RFC 9605's published
/// vector for suite 0x0005 (AES_256_GCM_SHA512_128).
public enum AES256GCM {
    public static let keyByteCount = 32
    public static let nonceByteCount = 12
    public static let tagByteCount = 16

    /// True when libsodium can run AES-256-GCM on this CPU.
    public static var isAvailable: Bool {
        Sodium.ensureInitialized()
        return crypto_aead_aes256gcm_is_available() == 1
    }

    public static func seal(
        inPlace buffer: UnsafeMutableRawBufferPointer, tag: UnsafeMutableRawBufferPointer,
        key: SecretKey, nonce: UnsafeRawBufferPointer, authenticating aad: UnsafeRawBufferPointer
    ) throws {
        try check(key: key, nonceCount: nonce.count, tagCount: tag.count)
        key.withUnsafeBytes { k in
            _ = crypto_aead_aes256gcm_encrypt_detached(
                buffer.u8nn, tag.u8nn, nil, buffer.u8nn, UInt64(buffer.count),
                aad.u8nn, UInt64(aad.count), nil, nonce.u8nn, k.u8nn)
        }
    }

    /// On failure throws ``CryptoError/authenticationFailed`` and zeroes `buffer`.
    public static func open(
        inPlace buffer: UnsafeMutableRawBufferPointer, tag: UnsafeRawBufferPointer,
        key: SecretKey, nonce: UnsafeRawBufferPointer, authenticating aad: UnsafeRawBufferPointer
    ) throws {
        try check(key: key, nonceCount: nonce.count, tagCount: tag.count)
        let rc = key.withUnsafeBytes { k in
            crypto_aead_aes256gcm_decrypt_detached(
                buffer.u8nn, nil, buffer.u8nn, UInt64(buffer.count), tag.u8nn,
                aad.u8nn, UInt64(aad.count), nonce.u8nn, k.u8nn)
        }
        guard rc == 0 else {
            buffer.wipe()
            throw CryptoError.authenticationFailed
        }
    }

    private static func check(key: SecretKey, nonceCount: Int, tagCount: Int) throws {
        guard isAvailable else { throw CryptoError.unsupported("AES-256-GCM needs a CPU with AES-NI and PCLMUL") }
        guard key.count == keyByteCount else { throw CryptoError.invalidKeyLength(expected: keyByteCount, actual: key.count) }
        guard nonceCount == nonceByteCount else { throw CryptoError.invalidNonceLength(expected: nonceByteCount, actual: nonceCount) }
        guard tagCount == tagByteCount else { throw CryptoError.invalidTagLength(expected: tagByteCount, actual: tagCount) }
    }
}
