import CSodium

/// Anonymous sealed boxes (`crypto_box_seal`): X25519 with an ephemeral key,
/// XSalsa20-Poly1305. Used for waiting-room knocks and key packages: only the holder of
/// the recipient's X25519 private key can open one, and the sender stays anonymous (the
/// knock and the key package carry their own identity and signature inside).
public enum SealedBox {
    /// Bytes added to the plaintext: ephemeral public key (32) + Poly1305 tag (16).
    public static let overhead = Int(crypto_box_sealbytes())
    /// The longest plaintext this module seals or opens (64 KiB); bounds what a peer
    /// can make us allocate.
    public static let maximumPlaintextLength = 65_536

    public static func seal<Plaintext: ContiguousBytes>(_ plaintext: Plaintext, to recipient: X25519.PublicKey) throws -> [UInt8] {
        Sodium.ensureInitialized()
        return try plaintext.withUnsafeBytes { m in
            guard m.count <= maximumPlaintextLength else {
                throw CryptoError.inputTooLong(length: m.count, limit: maximumPlaintextLength)
            }
            var out = [UInt8](repeating: 0, count: m.count + overhead)
            let rc = out.withUnsafeMutableBufferPointer { o in
                recipient.rawRepresentation.withUnsafeBufferPointer { pk in
                    crypto_box_seal(
                        o.baseAddress!, m.baseAddress?.assumingMemoryBound(to: UInt8.self),
                        UInt64(m.count), pk.baseAddress!)
                }
            }
            guard rc == 0 else { throw CryptoError.invalidPublicKey }
            return out
        }
    }

    /// Opens a sealed box. Throws ``CryptoError/authenticationFailed`` for anything that
    /// does not open (tampered, wrong recipient, too short); the output is then not returned.
    public static func open<Ciphertext: ContiguousBytes>(_ ciphertext: Ciphertext, recipient: X25519.PrivateKey) throws -> SecretBytes {
        Sodium.ensureInitialized()
        return try ciphertext.withUnsafeBytes { c in
            guard c.count >= overhead else { throw CryptoError.authenticationFailed }
            guard c.count - overhead <= maximumPlaintextLength else {
                throw CryptoError.inputTooLong(length: c.count - overhead, limit: maximumPlaintextLength)
            }
            var rc: Int32 = 0
            let plain = SecretBytes(count: c.count - overhead) { out in
                recipient.secret.withUnsafeBytes { sk in
                    recipient.publicKey.rawRepresentation.withUnsafeBufferPointer { pk in
                        rc = crypto_box_seal_open(
                            out.baseAddress!.assumingMemoryBound(to: UInt8.self),
                            c.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(c.count),
                            pk.baseAddress!, sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    }
                }
            }
            guard rc == 0 else { throw CryptoError.authenticationFailed }
            return plain
        }
    }
}
