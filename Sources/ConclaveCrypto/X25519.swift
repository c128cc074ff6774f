import CSodium

/// X25519 key pairs and key agreement.
///
/// **Key agreement is a scalar multiplication followed by HKDF-SHA256**, not
/// `crypto_kx`. Reasons: `crypto_kx` is asymmetric (a "client" and a "server" get
/// swapped rx/tx keys) while Conclave's pairwise keys are between peers with no such
/// roles; its KDF is BLAKE2b with no room for a context label, while every Conclave key
/// comes from HKDF-SHA256 with a label that says what it is for. The construction is:
///
/// ```
/// q      = X25519(sk_self, pk_peer)                 (rejected if all zero)
/// (lo,hi)= the two public keys ordered bytewise
/// key    = HKDF-SHA256(salt = "conclave/v1 x25519", ikm = q,
///                      info = context || lo || hi, L)
/// ```
/// Both peers obtain the same key; binding both public keys prevents key-substitution
/// and small-subgroup games, and the context separates uses.
public enum X25519 {
    public static let keyByteCount = 32

    /// An X25519 public key (32 bytes).
    public struct PublicKey: Sendable, Hashable, CustomStringConvertible {
        public let rawRepresentation: [UInt8]

        public init<Bytes: Collection>(rawRepresentation: Bytes) throws where Bytes.Element == UInt8 {
            guard rawRepresentation.count == X25519.keyByteCount else {
                throw CryptoError.invalidKeyLength(expected: X25519.keyByteCount, actual: rawRepresentation.count)
            }
            self.rawRepresentation = Array(rawRepresentation)
        }

        public var description: String { "X25519.PublicKey(\(Hex.encode(rawRepresentation.prefix(8)))…)" }
    }

    /// An X25519 private key. The scalar lives in ``SecretKey`` storage.
    public struct PrivateKey: Sendable, CustomStringConvertible {
        public let secret: SecretKey
        public let publicKey: PublicKey

        /// A fresh random key pair (`crypto_box_keypair`).
        public init() {
            Sodium.ensureInitialized()
            var pk = [UInt8](repeating: 0, count: X25519.keyByteCount)
            let sk = SecretBytes(count: X25519.keyByteCount) { skBuf in
                pk.withUnsafeMutableBufferPointer { pkBuf in
                    _ = crypto_box_keypair(pkBuf.baseAddress!, skBuf.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
            self.secret = SecretKey(sk)
            self.publicKey = try! PublicKey(rawRepresentation: pk)
        }

        /// Restores a private key from its 32-byte scalar; derives the public key.
        public init(secret: SecretKey) throws {
            guard secret.count == X25519.keyByteCount else {
                throw CryptoError.invalidKeyLength(expected: X25519.keyByteCount, actual: secret.count)
            }
            Sodium.ensureInitialized()
            var pk = [UInt8](repeating: 0, count: X25519.keyByteCount)
            let rc = secret.withUnsafeBytes { sk in
                pk.withUnsafeMutableBufferPointer { pkBuf in
                    crypto_scalarmult_base(pkBuf.baseAddress!, sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
            guard rc == 0 else { throw CryptoError.invalidPublicKey }
            self.secret = secret
            self.publicKey = try PublicKey(rawRepresentation: pk)
        }

        public var description: String { "X25519.PrivateKey(redacted, public \(publicKey))" }

        /// The raw X25519 shared point `X25519(self, peer)`. Throws `invalidPublicKey` when
        /// the result is all zero (a low-order peer key). Prefer ``sharedKey(with:context:length:)``.
        public func rawSharedSecret(with peer: PublicKey) throws -> SecretKey {
            Sodium.ensureInitialized()
            var rc: Int32 = 0
            let q = SecretBytes(count: 32) { out in
                secret.withUnsafeBytes { sk in
                    peer.rawRepresentation.withUnsafeBufferPointer { pk in
                        rc = crypto_scalarmult(
                            out.baseAddress!.assumingMemoryBound(to: UInt8.self),
                            sk.baseAddress!.assumingMemoryBound(to: UInt8.self),
                            pk.baseAddress!)
                    }
                }
            }
            guard rc == 0 else { throw CryptoError.invalidPublicKey }
            return SecretKey(q)
        }

        /// A symmetric key shared with `peer`, bound to both public keys and `context`
        /// (see the type's documentation for the exact construction).
        public func sharedKey(with peer: PublicKey, context: String, length: Int = 32) throws -> SecretKey {
            let q = try rawSharedSecret(with: peer)
            let a = publicKey.rawRepresentation, b = peer.rawRepresentation
            let (lo, hi) = a.lexicographicallyPrecedes(b) ? (a, b) : (b, a)
            let info = Array(context.utf8) + lo + hi
            return try HKDF.deriveKey(.sha256, salt: Array("conclave/v1 x25519".utf8), ikm: q, info: info, length: length)
        }
    }
}
