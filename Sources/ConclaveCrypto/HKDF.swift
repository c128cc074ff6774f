import CSodium

/// HKDF (RFC 5869) over libsodium's HMAC-SHA256 and HMAC-SHA512.
///
/// libsodium 1.0.18 has no HKDF of its own, so it is built here from the incremental
/// `crypto_auth_hmacsha{256,512}_init/update/final` calls, which accept keys of any
/// length as HMAC requires. Outputs that are keys come back as ``SecretKey``.
public enum HKDF {
    /// The hash function under HMAC.
    public enum Hash: Sendable, Equatable {
        case sha256, sha512

        /// HashLen in RFC 5869.
        public var outputByteCount: Int { self == .sha256 ? 32 : 64 }
        /// The longest HKDF-Expand output: 255 × HashLen.
        public var maximumExpandByteCount: Int { 255 * outputByteCount }
    }

    /// HKDF-Extract(salt, IKM) → PRK. An empty salt means HashLen zero bytes (RFC 5869
    /// §2.2), which HMAC treats identically.
    public static func extract<Salt: ContiguousBytes, IKM: ContiguousBytes>(
        _ hash: Hash, salt: Salt, ikm: IKM
    ) -> SecretKey {
        Sodium.ensureInitialized()
        return SecretKey(
            SecretBytes(count: hash.outputByteCount) { out in
                salt.withUnsafeBytes { s in
                    ikm.withUnsafeBytes { i in
                        hmac(hash, key: s, parts: [i], into: out)
                    }
                }
            })
    }

    /// HKDF-Expand(PRK, info, L) → OKM of `length` bytes (1 … 255 × HashLen).
    public static func expand<Info: ContiguousBytes>(
        _ hash: Hash, prk: SecretKey, info: Info, length: Int
    ) throws -> SecretKey {
        guard length >= 1, length <= hash.maximumExpandByteCount else {
            throw CryptoError.invalidOutputLength(requested: length, maximum: hash.maximumExpandByteCount)
        }
        Sodium.ensureInitialized()
        let n = hash.outputByteCount
        return SecretKey(
            SecretBytes(count: length) { out in
                prk.withUnsafeBytes { key in
                    info.withUnsafeBytes { infoBytes in
                        // T(0) = empty; T(i) = HMAC(PRK, T(i-1) | info | i)
                        withUnsafeTemporaryAllocation(byteCount: n, alignment: 16) { t in
                            defer { sodium_memzero(t.baseAddress!, n) }
                            var written = 0
                            var counter: UInt8 = 1
                            var previous = UnsafeRawBufferPointer(start: t.baseAddress, count: 0)
                            while written < length {
                                withUnsafeBytes(of: counter) { c in
                                    hmac(hash, key: key, parts: [previous, infoBytes, c], into: t)
                                }
                                let take = min(n, length - written)
                                out.baseAddress!.advanced(by: written).copyMemory(from: t.baseAddress!, byteCount: take)
                                written += take
                                previous = UnsafeRawBufferPointer(t)
                                counter &+= 1
                            }
                        }
                    }
                }
            })
    }

    /// Extract then expand.
    public static func deriveKey<Salt: ContiguousBytes, IKM: ContiguousBytes, Info: ContiguousBytes>(
        _ hash: Hash, salt: Salt, ikm: IKM, info: Info, length: Int
    ) throws -> SecretKey {
        try expand(hash, prk: extract(hash, salt: salt, ikm: ikm), info: info, length: length)
    }

    /// HMAC over the concatenation of `parts`, written to `out` (HashLen bytes).
    static func hmac(
        _ hash: Hash, key: UnsafeRawBufferPointer, parts: [UnsafeRawBufferPointer],
        into out: UnsafeMutableRawBufferPointer
    ) {
        precondition(out.count >= hash.outputByteCount)
        let keyPtr = key.u8nn
        let outPtr = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
        switch hash {
        case .sha256:
            var state = crypto_auth_hmacsha256_state()
            crypto_auth_hmacsha256_init(&state, keyPtr, key.count)
            for part in parts where part.count > 0 {
                crypto_auth_hmacsha256_update(&state, part.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(part.count))
            }
            crypto_auth_hmacsha256_final(&state, outPtr)
            sodium_memzero(&state, MemoryLayout<crypto_auth_hmacsha256_state>.size)
        case .sha512:
            var state = crypto_auth_hmacsha512_state()
            crypto_auth_hmacsha512_init(&state, keyPtr, key.count)
            for part in parts where part.count > 0 {
                crypto_auth_hmacsha512_update(&state, part.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(part.count))
            }
            crypto_auth_hmacsha512_final(&state, outPtr)
            sodium_memzero(&state, MemoryLayout<crypto_auth_hmacsha512_state>.size)
        }
    }
}

/// HMAC-SHA256 / HMAC-SHA512 as a one-shot function (used for MACs such as UDP hop
/// authentication, and by HKDF).
public enum HMAC {
    public static func authenticate<Key: ContiguousBytes, Message: ContiguousBytes>(
        _ hash: HKDF.Hash, key: Key, message: Message
    ) -> [UInt8] {
        Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: hash.outputByteCount)
        key.withUnsafeBytes { k in
            message.withUnsafeBytes { m in
                out.withUnsafeMutableBytes { o in HKDF.hmac(hash, key: k, parts: [m], into: o) }
            }
        }
        return out
    }
}
