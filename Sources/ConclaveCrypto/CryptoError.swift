/// Errors thrown by ConclaveCrypto. None of them carries key material or plaintext:
/// the cases hold only lengths and fixed descriptions.
public enum CryptoError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// An AEAD tag, a sealed box or a MAC did not verify. Nothing was decrypted.
    case authenticationFailed
    /// An Ed25519 signature did not verify.
    case invalidSignature
    /// A key had the wrong length.
    case invalidKeyLength(expected: Int, actual: Int)
    /// A nonce had the wrong length.
    case invalidNonceLength(expected: Int, actual: Int)
    /// A tag buffer had the wrong length.
    case invalidTagLength(expected: Int, actual: Int)
    /// An output buffer is too small for the result.
    case bufferTooSmall(required: Int, available: Int)
    /// An input is longer than the operation's documented limit.
    case inputTooLong(length: Int, limit: Int)
    /// A public key was rejected (low order point, or all-zero shared secret).
    case invalidPublicKey
    /// A requested output length is outside the function's range.
    case invalidOutputLength(requested: Int, maximum: Int)
    /// A context string is empty or longer than 255 bytes.
    case invalidContext(length: Int)
    /// The operation is not available on this machine (e.g. AES-256-GCM without AES-NI).
    case unsupported(String)
    /// libsodium could not complete an operation for lack of memory or resources.
    case resourceFailure(String)

    public var description: String {
        switch self {
        case .authenticationFailed: return "authentication failed: the data was tampered with or the key is wrong"
        case .invalidSignature: return "the signature does not verify"
        case let .invalidKeyLength(e, a): return "invalid key length: expected \(e) bytes, got \(a)"
        case let .invalidNonceLength(e, a): return "invalid nonce length: expected \(e) bytes, got \(a)"
        case let .invalidTagLength(e, a): return "invalid tag length: expected \(e) bytes, got \(a)"
        case let .bufferTooSmall(r, a): return "output buffer too small: need \(r) bytes, have \(a)"
        case let .inputTooLong(l, limit): return "input of \(l) bytes exceeds the limit of \(limit) bytes"
        case .invalidPublicKey: return "the public key is invalid (low-order point)"
        case let .invalidOutputLength(r, m): return "requested output length \(r) is outside 1...\(m)"
        case let .invalidContext(l): return "a context string must be 1 to 255 bytes, got \(l)"
        case let .unsupported(what): return "not supported on this machine: \(what)"
        case let .resourceFailure(what): return "crypto resource failure: \(what)"
        }
    }
}
