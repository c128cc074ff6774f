import CSodium

/// Ed25519 signatures with explicit context strings.
///
/// Ed25519 (RFC 8032, "pure" variant, libsodium `crypto_sign_detached`) has no context
/// parameter, so Conclave domain-separates every signature by signing
///
/// ```
/// u8(len(context)) || context || message
/// ```
/// where `context` is an ASCII label of 1 to 255 bytes such as
/// `conclave/v1 key-package`. A signature made for one purpose therefore never verifies
/// for another.
public enum Ed25519 {
    public static let publicKeyByteCount = 32
    public static let seedByteCount = 32
    public static let signatureByteCount = 64

    public struct PublicKey: Sendable, Hashable, CustomStringConvertible {
        public let rawRepresentation: [UInt8]

        public init<Bytes: Collection>(rawRepresentation: Bytes) throws where Bytes.Element == UInt8 {
            guard rawRepresentation.count == Ed25519.publicKeyByteCount else {
                throw CryptoError.invalidKeyLength(expected: Ed25519.publicKeyByteCount, actual: rawRepresentation.count)
            }
            self.rawRepresentation = Array(rawRepresentation)
        }

        /// True when `signature` is a valid signature by this key over `message` under `context`.
        public func isValidSignature<Sig: ContiguousBytes, Message: ContiguousBytes>(
            _ signature: Sig, for message: Message, context: String
        ) -> Bool {
            Sodium.ensureInitialized()
            guard let input = try? Ed25519.signingInput(message, context: context) else { return false }
            return signature.withUnsafeBytes { sig in
                guard sig.count == Ed25519.signatureByteCount else { return false }
                return rawRepresentation.withUnsafeBufferPointer { pk in
                    input.withUnsafeBufferPointer { m in
                        crypto_sign_verify_detached(
                            sig.baseAddress!.assumingMemoryBound(to: UInt8.self),
                            m.baseAddress, UInt64(m.count), pk.baseAddress!) == 0
                    }
                }
            }
        }

        /// Throws ``CryptoError/invalidSignature`` unless the signature verifies.
        public func verify<Sig: ContiguousBytes, Message: ContiguousBytes>(
            _ signature: Sig, for message: Message, context: String
        ) throws {
            guard isValidSignature(signature, for: message, context: context) else { throw CryptoError.invalidSignature }
        }

        public var description: String { "Ed25519.PublicKey(\(Hex.encode(rawRepresentation.prefix(8)))…)" }
    }

    public struct PrivateKey: Sendable, CustomStringConvertible {
        /// The 32-byte seed (RFC 8032 private key).
        public let seed: SecretKey
        /// libsodium's 64-byte expanded secret key (seed || public key).
        let expanded: SecretKey
        public let publicKey: PublicKey

        /// A fresh random key.
        public init() {
            try! self.init(seed: .random(count: Ed25519.seedByteCount))
        }

        /// Restores a key from its 32-byte seed.
        public init(seed: SecretKey) throws {
            guard seed.count == Ed25519.seedByteCount else {
                throw CryptoError.invalidKeyLength(expected: Ed25519.seedByteCount, actual: seed.count)
            }
            Sodium.ensureInitialized()
            var pk = [UInt8](repeating: 0, count: Ed25519.publicKeyByteCount)
            let sk = SecretBytes(count: 64) { skBuf in
                seed.withUnsafeBytes { s in
                    pk.withUnsafeMutableBufferPointer { pkBuf in
                        _ = crypto_sign_seed_keypair(
                            pkBuf.baseAddress!, skBuf.baseAddress!.assumingMemoryBound(to: UInt8.self),
                            s.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    }
                }
            }
            self.seed = seed
            self.expanded = SecretKey(sk)
            self.publicKey = try PublicKey(rawRepresentation: pk)
        }

        /// Signs `message` under `context`; returns the 64-byte signature.
        public func signature<Message: ContiguousBytes>(for message: Message, context: String) throws -> [UInt8] {
            let input = try Ed25519.signingInput(message, context: context)
            var sig = [UInt8](repeating: 0, count: Ed25519.signatureByteCount)
            expanded.withUnsafeBytes { sk in
                sig.withUnsafeMutableBufferPointer { s in
                    input.withUnsafeBufferPointer { m in
                        _ = crypto_sign_detached(
                            s.baseAddress!, nil, m.baseAddress, UInt64(m.count),
                            sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    }
                }
            }
            return sig
        }

        public var description: String { "Ed25519.PrivateKey(redacted, public \(publicKey))" }
    }

    /// `u8(len(context)) || context || message`.
    public static func signingInput<Message: ContiguousBytes>(_ message: Message, context: String) throws -> [UInt8] {
        let ctx = Array(context.utf8)
        guard (1...255).contains(ctx.count) else { throw CryptoError.invalidContext(length: ctx.count) }
        return message.withUnsafeBytes { m in
            var input = [UInt8]()
            input.reserveCapacity(1 + ctx.count + m.count)
            input.append(UInt8(ctx.count))
            input.append(contentsOf: ctx)
            input.append(contentsOf: m)
            return input
        }
    }
}
