import CSodium

/// Argon2id password hashing (`crypto_pwhash_str` / `crypto_pwhash_str_verify`).
///
/// The output is libsodium's self-describing string
/// (`$argon2id$v=19$m=…,t=…,p=1$salt$hash`), which carries its own random salt and cost.
public enum PasswordHash {
    /// Argon2id cost parameters.
    public struct Limits: Sendable, Equatable {
        public var operations: UInt64
        public var memoryBytes: Int

        public init(operations: UInt64, memoryBytes: Int) {
            self.operations = operations
            self.memoryBytes = memoryBytes
        }

        /// libsodium's INTERACTIVE limits (2 passes, 64 MiB): the relay's default.
        public static let interactive = Limits(
            operations: UInt64(crypto_pwhash_OPSLIMIT_INTERACTIVE),
            memoryBytes: Int(crypto_pwhash_MEMLIMIT_INTERACTIVE))
        /// libsodium's MODERATE limits (3 passes, 256 MiB).
        public static let moderate = Limits(
            operations: UInt64(crypto_pwhash_OPSLIMIT_MODERATE),
            memoryBytes: Int(crypto_pwhash_MEMLIMIT_MODERATE))
        /// The smallest limits libsodium allows. For tests and load runs only.
        public static let minimum = Limits(
            operations: UInt64(crypto_pwhash_OPSLIMIT_MIN),
            memoryBytes: Int(crypto_pwhash_MEMLIMIT_MIN))
    }

    /// Longest password accepted (bytes). Bounds hashing work on untrusted input.
    public static let maximumPasswordLength = 4096

    public static func hash<Password: ContiguousBytes>(_ password: Password, limits: Limits = .interactive) throws -> String {
        Sodium.ensureInitialized()
        var out = [CChar](repeating: 0, count: Int(crypto_pwhash_STRBYTES))
        let rc = password.withUnsafeBytes { p -> Int32 in
            guard p.count <= maximumPasswordLength else { return -2 }
            return crypto_pwhash_str(
                &out, UnsafeRawPointer(p.u8nn).assumingMemoryBound(to: CChar.self),
                UInt64(p.count), limits.operations, limits.memoryBytes)
        }
        if rc == -2 {
            throw CryptoError.inputTooLong(length: password.withUnsafeBytes { $0.count }, limit: maximumPasswordLength)
        }
        guard rc == 0 else { throw CryptoError.resourceFailure("Argon2id hashing ran out of memory") }
        let end = out.firstIndex(of: 0) ?? out.count
        return String(decoding: out[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Salt bytes for ``deriveKey(_:salt:limits:)`` (16).
    public static let saltLength = Int(crypto_pwhash_SALTBYTES)

    /// The most costly limits ``deriveKey(_:salt:limits:)`` accepts (16 passes, 1 GiB):
    /// parameters read from a file cannot make us spend more.
    public static let maximumDerivationLimits = Limits(operations: 16, memoryBytes: 1 << 30)

    /// Derives a 32-byte key from a passphrase with Argon2id (`crypto_pwhash`, algorithm
    /// `ARGON2ID13`). The same passphrase, salt and limits always give the same key.
    /// Throws ``CryptoError/inputTooLong(length:limit:)`` for a passphrase over
    /// ``maximumPasswordLength``, ``CryptoError/invalidKeyLength(expected:actual:)`` for a
    /// salt that is not ``saltLength`` bytes, and ``CryptoError/unsupported(_:)`` for
    /// limits below libsodium's minimum or above ``maximumDerivationLimits``.
    public static func deriveKey<Password: ContiguousBytes>(_ password: Password, salt: [UInt8], limits: Limits) throws -> SecretKey {
        Sodium.ensureInitialized()
        guard salt.count == saltLength else { throw CryptoError.invalidKeyLength(expected: saltLength, actual: salt.count) }
        guard limits.operations >= UInt64(crypto_pwhash_OPSLIMIT_MIN), limits.memoryBytes >= Int(crypto_pwhash_MEMLIMIT_MIN),
            limits.operations <= maximumDerivationLimits.operations, limits.memoryBytes <= maximumDerivationLimits.memoryBytes
        else {
            throw CryptoError.unsupported("Argon2id limits of \(limits.operations) passes and \(limits.memoryBytes) bytes")
        }
        return try password.withUnsafeBytes { p in
            guard p.count <= maximumPasswordLength else { throw CryptoError.inputTooLong(length: p.count, limit: maximumPasswordLength) }
            var rc: Int32 = 0
            let key = SecretBytes(count: 32) { out in
                salt.withUnsafeBufferPointer { s in
                    rc = crypto_pwhash(
                        out.u8nn, 32, UnsafeRawPointer(p.u8nn).assumingMemoryBound(to: CChar.self), UInt64(p.count),
                        s.baseAddress!, limits.operations, limits.memoryBytes, crypto_pwhash_ALG_ARGON2ID13)
                }
            }
            guard rc == 0 else { throw CryptoError.resourceFailure("Argon2id key derivation ran out of memory") }
            return SecretKey(key)
        }
    }

    /// True when `password` matches `hash`. False for a malformed hash string too.
    public static func verify<Password: ContiguousBytes>(_ password: Password, against hash: String) -> Bool {
        Sodium.ensureInitialized()
        let encoded = Array(hash.utf8CString)
        guard encoded.count <= Int(crypto_pwhash_STRBYTES) else { return false }
        var buffer = [CChar](repeating: 0, count: Int(crypto_pwhash_STRBYTES))
        for (i, c) in encoded.enumerated() { buffer[i] = c }
        return password.withUnsafeBytes { p in
            guard p.count <= maximumPasswordLength else { return false }
            return crypto_pwhash_str_verify(
                &buffer, UnsafeRawPointer(p.u8nn).assumingMemoryBound(to: CChar.self),
                UInt64(p.count)) == 0
        }
    }
}
