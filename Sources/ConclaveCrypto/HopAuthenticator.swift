import CSodium

/// The hop tag of the UDP media path (protocol 6.3): a ChaCha20-Poly1305 (RFC 8439) tag
/// over the datagram's bytes with an empty plaintext.
///
/// With an empty plaintext the AEAD is a one-time-keyed Poly1305 MAC whose key is the
/// first ChaCha20 block for `(key, nonce)`; its nonce is `direction (u32) || sequence (u64)`,
/// so a key never authenticates two datagrams with the same nonce as long as each
/// direction's sequence number never repeats. The key lives only in this value and in the
/// relay's session table; it is not the end-to-end content key, which the relay never holds.
public struct HopAuthenticator: Sendable {
    public static let keyByteCount = 32
    public static let tagByteCount = 16

    /// Which side sealed a datagram (the first four bytes of the nonce).
    public enum Direction: UInt32, Sendable {
        case clientToRelay = 0
        case relayToClient = 1
    }

    private let key: SecretKey

    public init(key: SecretKey) throws {
        guard key.count == Self.keyByteCount else {
            throw CryptoError.invalidKeyLength(expected: Self.keyByteCount, actual: key.count)
        }
        Sodium.ensureInitialized()
        self.key = key
    }

    /// Writes the 16-byte tag over `authenticated` to `tag`. Does not allocate.
    public func tag(
        _ authenticated: UnsafeRawBufferPointer, direction: Direction, sequence: UInt64,
        into tag: UnsafeMutableRawBufferPointer
    ) {
        precondition(tag.count == Self.tagByteCount, "a hop tag is 16 bytes")
        withNonce(direction, sequence) { nonce in
            // An empty plaintext: libsodium reads and writes no byte through `empty`.
            var output: UInt8 = 0
            let input: UInt8 = 0
            key.withUnsafeBytes { k in
                _ = withUnsafePointer(to: input) { inputPointer in
                    crypto_aead_chacha20poly1305_ietf_encrypt_detached(
                        &output, tag.u8nn, nil, inputPointer, 0,
                        authenticated.u8nn, UInt64(authenticated.count), nil, nonce, k.u8nn)
                }
            }
        }
    }

    /// Whether `tag` is the tag of `authenticated` (constant time). Does not allocate.
    public func verify(
        _ authenticated: UnsafeRawBufferPointer, direction: Direction, sequence: UInt64,
        tag: UnsafeRawBufferPointer
    ) -> Bool {
        guard tag.count == Self.tagByteCount else { return false }
        return withNonce(direction, sequence) { nonce in
            var output: UInt8 = 0
            let input: UInt8 = 0
            return key.withUnsafeBytes { k in
                withUnsafePointer(to: input) { inputPointer in
                    crypto_aead_chacha20poly1305_ietf_decrypt_detached(
                        &output, nil, inputPointer, 0, tag.u8nn,
                        authenticated.u8nn, UInt64(authenticated.count), nonce, k.u8nn) == 0
                }
            }
        }
    }

    /// The 12-byte nonce `direction (u32 BE) || sequence (u64 BE)`; three `UInt32`s have no padding.
    private func withNonce<R>(_ direction: Direction, _ sequence: UInt64, _ body: (UnsafePointer<UInt8>) -> R) -> R {
        var nonce = (
            direction.rawValue.bigEndian, UInt32(truncatingIfNeeded: sequence >> 32).bigEndian,
            UInt32(truncatingIfNeeded: sequence).bigEndian
        )
        return withUnsafeBytes(of: &nonce) { body($0.baseAddress!.assumingMemoryBound(to: UInt8.self)) }
    }
}
