import CSodium

/// XChaCha20-Poly1305 (IETF construction, libsodium `crypto_aead_xchacha20poly1305_ietf_*`).
///
/// The one-shot functions here derive the HChaCha20 subkey on every call, exactly like
/// libsodium's. For per-frame work use ``XChaChaFrameCipher``, which caches the subkey.
public enum XChaCha20Poly1305 {
    public static let keyByteCount = 32
    public static let nonceByteCount = 24
    public static let tagByteCount = 16

    /// Encrypts `buffer` in place and writes the 16-byte tag to `tag`. Does not allocate.
    public static func seal(
        inPlace buffer: UnsafeMutableRawBufferPointer,
        tag: UnsafeMutableRawBufferPointer,
        key: SecretKey,
        nonce: UnsafeRawBufferPointer,
        authenticating aad: UnsafeRawBufferPointer
    ) throws {
        try check(key: key, nonceCount: nonce.count, tagCount: tag.count)
        Sodium.ensureInitialized()
        key.withUnsafeBytes { k in
            _ = crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
                buffer.u8nn, tag.u8nn, nil, buffer.u8nn, UInt64(buffer.count),
                aad.u8nn, UInt64(aad.count), nil, nonce.u8nn, k.u8nn)
        }
    }

    /// Verifies and decrypts `buffer` in place. On failure throws
    /// ``CryptoError/authenticationFailed`` and zeroes `buffer`: nothing decrypted is left.
    public static func open(
        inPlace buffer: UnsafeMutableRawBufferPointer,
        tag: UnsafeRawBufferPointer,
        key: SecretKey,
        nonce: UnsafeRawBufferPointer,
        authenticating aad: UnsafeRawBufferPointer
    ) throws {
        try check(key: key, nonceCount: nonce.count, tagCount: tag.count)
        Sodium.ensureInitialized()
        let rc = key.withUnsafeBytes { k in
            crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
                buffer.u8nn, nil, buffer.u8nn, UInt64(buffer.count), tag.u8nn,
                aad.u8nn, UInt64(aad.count), nonce.u8nn, k.u8nn)
        }
        guard rc == 0 else {
            buffer.wipe()
            throw CryptoError.authenticationFailed
        }
    }

    private static func check(key: SecretKey, nonceCount: Int, tagCount: Int) throws {
        guard key.count == keyByteCount else { throw CryptoError.invalidKeyLength(expected: keyByteCount, actual: key.count) }
        guard nonceCount == nonceByteCount else { throw CryptoError.invalidNonceLength(expected: nonceByteCount, actual: nonceCount) }
        guard tagCount == tagByteCount else { throw CryptoError.invalidTagLength(expected: tagByteCount, actual: tagCount) }
    }
}

/// A per-sender XChaCha20-Poly1305 frame cipher with the HChaCha20 subkey cached.
///
/// XChaCha20-Poly1305 with key `K` and 24-byte nonce `N` is, by definition,
/// IETF ChaCha20-Poly1305 with key `HChaCha20(K, N[0..<16])` and 12-byte nonce
/// `0x00000000 || N[16..<24]`. An SFrame sender's nonce is `salt XOR CTR`; with the
/// counter below 2^64 only the last eight bytes change, so the first sixteen (the
/// *prefix*) are fixed per key and the subkey can be computed once. Each frame then
/// costs one IETF ChaCha20-Poly1305 call and no HChaCha20.
///
/// Output is byte-identical to `crypto_aead_xchacha20poly1305_ietf_encrypt` with the
/// full nonce `prefix || suffix` (tests prove it). `seal` and `open` work in place on
/// caller buffers and never allocate. The type is immutable after init and safe to
/// share between threads.
public final class XChaChaFrameCipher: Sendable {
    public static let noncePrefixByteCount = 16
    public static let nonceSuffixByteCount = 8

    private let subkey: SecretKey

    /// - Parameters:
    ///   - key: the 32-byte XChaCha20-Poly1305 key.
    ///   - noncePrefix: the first 16 bytes of every nonce this cipher will use.
    public init<Prefix: ContiguousBytes>(key: SecretKey, noncePrefix: Prefix) throws {
        guard key.count == XChaCha20Poly1305.keyByteCount else {
            throw CryptoError.invalidKeyLength(expected: XChaCha20Poly1305.keyByteCount, actual: key.count)
        }
        Sodium.ensureInitialized()
        self.subkey = try noncePrefix.withUnsafeBytes { prefix in
            guard prefix.count == Self.noncePrefixByteCount else {
                throw CryptoError.invalidNonceLength(expected: Self.noncePrefixByteCount, actual: prefix.count)
            }
            return SecretKey(
                SecretBytes(count: 32) { out in
                    key.withUnsafeBytes { k in
                        _ = crypto_core_hchacha20(out.u8nn, prefix.u8nn, k.u8nn, nil)
                    }
                })
        }
    }

    /// Encrypts `buffer` in place; writes the tag to `tag` (16 bytes).
    /// - Parameter nonceSuffix: the nonce's last eight bytes, read as a big-endian integer.
    @inlinable
    public func seal(
        inPlace buffer: UnsafeMutableRawBufferPointer, tag: UnsafeMutableRawBufferPointer,
        nonceSuffix: UInt64, authenticating aad: UnsafeRawBufferPointer
    ) throws {
        guard tag.count == XChaCha20Poly1305.tagByteCount else {
            throw CryptoError.invalidTagLength(expected: XChaCha20Poly1305.tagByteCount, actual: tag.count)
        }
        sealUnchecked(buffer, tag: tag, nonceSuffix: nonceSuffix, aad: aad)
    }

    /// Verifies and decrypts `buffer` in place. On failure throws
    /// ``CryptoError/authenticationFailed`` and zeroes `buffer`.
    @inlinable
    public func open(
        inPlace buffer: UnsafeMutableRawBufferPointer, tag: UnsafeRawBufferPointer,
        nonceSuffix: UInt64, authenticating aad: UnsafeRawBufferPointer
    ) throws {
        guard tag.count == XChaCha20Poly1305.tagByteCount else {
            throw CryptoError.invalidTagLength(expected: XChaCha20Poly1305.tagByteCount, actual: tag.count)
        }
        guard openUnchecked(buffer, tag: tag, nonceSuffix: nonceSuffix, aad: aad) else {
            buffer.wipe()
            throw CryptoError.authenticationFailed
        }
    }

    @usableFromInline
    static func ietfNonce(_ suffix: UInt64) -> (UInt32, UInt32, UInt32) {
        (0, UInt32(truncatingIfNeeded: suffix >> 32).bigEndian, UInt32(truncatingIfNeeded: suffix).bigEndian)
    }

    /// Frames up to this many bytes take the fused path (see ``sealFused``).
    public static let fusedMaximumLength = 192

    @usableFromInline
    func sealUnchecked(
        _ buffer: UnsafeMutableRawBufferPointer, tag: UnsafeMutableRawBufferPointer,
        nonceSuffix: UInt64, aad: UnsafeRawBufferPointer
    ) {
        // 12-byte IETF nonce on the stack: 0x00000000 || suffix (big-endian). Three
        // UInt32s, not (UInt32, UInt64): the latter has four bytes of padding.
        var nonce = Self.ietfNonce(nonceSuffix)
        withUnsafeBytes(of: &nonce) { n in
            subkey.withUnsafeBytes { k in
                if buffer.count <= Self.fusedMaximumLength {
                    Self.sealFused(buffer, tag: tag, aad: aad, nonce: n.u8nn, key: k.u8nn)
                } else {
                    _ = crypto_aead_chacha20poly1305_ietf_encrypt_detached(
                        buffer.u8nn, tag.u8nn, nil, buffer.u8nn, UInt64(buffer.count),
                        aad.u8nn, UInt64(aad.count), nil, n.u8nn, k.u8nn)
                }
            }
        }
    }

    @usableFromInline
    func openUnchecked(
        _ buffer: UnsafeMutableRawBufferPointer, tag: UnsafeRawBufferPointer,
        nonceSuffix: UInt64, aad: UnsafeRawBufferPointer
    ) -> Bool {
        var nonce = Self.ietfNonce(nonceSuffix)
        return withUnsafeBytes(of: &nonce) { n in
            subkey.withUnsafeBytes { k in
                if buffer.count <= Self.fusedMaximumLength {
                    return Self.openFused(buffer, tag: tag, aad: aad, nonce: n.u8nn, key: k.u8nn)
                }
                return crypto_aead_chacha20poly1305_ietf_decrypt_detached(
                    buffer.u8nn, nil, buffer.u8nn, UInt64(buffer.count), tag.u8nn,
                    aad.u8nn, UInt64(aad.count), n.u8nn, k.u8nn) == 0
            }
        }
    }

    // MARK: - Fused small-frame path

    // RFC 8439 ChaCha20-Poly1305, computed exactly as libsodium's
    // `crypto_aead_chacha20poly1305_ietf_encrypt_detached` does (Poly1305 key = keystream
    // block 0, message keystream from block 1, MAC over aad || pad || ct || pad ||
    // le64(aad_len) || le64(ct_len)), with one difference in scheduling: libsodium asks for
    // block 0 and for the message keystream in two calls, each processed one 64-byte block
    // at a time; here one call asks for 256 bytes, which libsodium's SIMD ChaCha20 produces
    // four blocks at a time. For frames up to 192 bytes (audio) that is one pass instead of
    // up to four. Output is byte-identical; the equivalence test covers every length 0…1500.

    @usableFromInline
    static func sealFused(
        _ buffer: UnsafeMutableRawBufferPointer, tag: UnsafeMutableRawBufferPointer,
        aad: UnsafeRawBufferPointer, nonce: UnsafePointer<UInt8>, key: UnsafePointer<UInt8>
    ) {
        withUnsafeTemporaryAllocation(byteCount: 256, alignment: 16) { keystream in
            let ks = keystream.baseAddress!.assumingMemoryBound(to: UInt8.self)
            crypto_stream_chacha20_ietf(ks, 256, nonce, key)
            xor(buffer, with: UnsafeRawPointer(ks + 64))
            var state = crypto_onetimeauth_poly1305_state()
            crypto_onetimeauth_poly1305_init(&state, ks)
            mac(&state, aad: aad, ciphertext: UnsafeRawBufferPointer(buffer))
            crypto_onetimeauth_poly1305_final(&state, tag.u8nn)
            sodium_memzero(&state, MemoryLayout<crypto_onetimeauth_poly1305_state>.size)
            sodium_memzero(keystream.baseAddress!, 256)
        }
    }

    @usableFromInline
    static func openFused(
        _ buffer: UnsafeMutableRawBufferPointer, tag: UnsafeRawBufferPointer,
        aad: UnsafeRawBufferPointer, nonce: UnsafePointer<UInt8>, key: UnsafePointer<UInt8>
    ) -> Bool {
        withUnsafeTemporaryAllocation(byteCount: 256 + 16, alignment: 16) { scratch in
            let ks = scratch.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let computed = ks + 256
            crypto_stream_chacha20_ietf(ks, 256, nonce, key)
            var state = crypto_onetimeauth_poly1305_state()
            crypto_onetimeauth_poly1305_init(&state, ks)
            mac(&state, aad: aad, ciphertext: UnsafeRawBufferPointer(buffer))
            crypto_onetimeauth_poly1305_final(&state, computed)
            sodium_memzero(&state, MemoryLayout<crypto_onetimeauth_poly1305_state>.size)
            // Verify before decrypting (constant time); nothing is decrypted on failure.
            let ok = crypto_verify_16(computed, tag.u8nn) == 0
            if ok { xor(buffer, with: UnsafeRawPointer(ks + 64)) }
            sodium_memzero(scratch.baseAddress!, 256 + 16)
            return ok
        }
    }

    /// Poly1305 over `aad || pad16 || ciphertext || pad16 || le64(|aad|) || le64(|ct|)`.
    @inline(__always)
    static func mac(_ state: inout crypto_onetimeauth_poly1305_state, aad: UnsafeRawBufferPointer, ciphertext: UnsafeRawBufferPointer) {
        var zeros: (UInt64, UInt64) = (0, 0)
        withUnsafeBytes(of: &zeros) { pad in
            let padBase = pad.u8nn
            if aad.count > 0 { crypto_onetimeauth_poly1305_update(&state, aad.u8nn, UInt64(aad.count)) }
            crypto_onetimeauth_poly1305_update(&state, padBase, UInt64((16 - aad.count % 16) % 16))
            if ciphertext.count > 0 { crypto_onetimeauth_poly1305_update(&state, ciphertext.u8nn, UInt64(ciphertext.count)) }
            crypto_onetimeauth_poly1305_update(&state, padBase, UInt64((16 - ciphertext.count % 16) % 16))
        }
        var lengths: (UInt64, UInt64) = (UInt64(aad.count).littleEndian, UInt64(ciphertext.count).littleEndian)
        withUnsafeBytes(of: &lengths) { l in crypto_onetimeauth_poly1305_update(&state, l.u8nn, 16) }
    }

    /// `buffer ^= keystream[0 ..< buffer.count]`, eight bytes at a time.
    @inline(__always)
    static func xor(_ buffer: UnsafeMutableRawBufferPointer, with keystream: UnsafeRawPointer) {
        guard let base = buffer.baseAddress else { return }
        let count = buffer.count
        var i = 0
        while i + 8 <= count {
            let v = base.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ keystream.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            base.storeBytes(of: v, toByteOffset: i, as: UInt64.self)
            i += 8
        }
        while i < count {
            base.storeBytes(
                of: base.load(fromByteOffset: i, as: UInt8.self) ^ keystream.load(fromByteOffset: i, as: UInt8.self),
                toByteOffset: i, as: UInt8.self)
            i += 1
        }
    }
}

extension XChaChaFrameCipher: CustomStringConvertible {
    public var description: String { "XChaChaFrameCipher(redacted)" }
}
