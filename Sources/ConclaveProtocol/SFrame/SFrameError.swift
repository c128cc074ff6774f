/// Errors of the SFrame layer. They carry lengths and identifiers, never key material
/// or plaintext.
public enum SFrameError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The frame ends inside the SFrame header.
    case truncatedHeader
    /// The frame is shorter than header plus tag.
    case frameTooShort(length: Int, minimum: Int)
    /// A cipher suite this implementation cannot run (or does not know).
    case unsupportedCipherSuite(UInt16)
    /// The frame's KID is not the one this key was derived for.
    case keyIDMismatch(expected: UInt64, actual: UInt64)
    /// The tag did not verify: tampered header, metadata, ciphertext or tag, or a wrong key.
    case authenticationFailed
    /// The counter is already in the replay window or older than it.
    case replayed(counter: UInt64)
    /// The metadata is longer than ``SFrame/maximumMetadataLength``.
    case metadataTooLong(length: Int, limit: Int)
    /// The plaintext is longer than ``SFrame/maximumPlaintextLength``.
    case plaintextTooLong(length: Int, limit: Int)
    /// The caller's output buffer cannot hold the result.
    case bufferTooSmall(required: Int, available: Int)
    /// The counter reached the limit for this key; the sender must rekey.
    case counterExhausted

    public var description: String {
        switch self {
        case .truncatedHeader: return "SFrame header truncated"
        case let .frameTooShort(l, m): return "SFrame frame of \(l) bytes is shorter than the minimum \(m)"
        case let .unsupportedCipherSuite(s): return "unsupported SFrame cipher suite 0x\(String(s, radix: 16))"
        case let .keyIDMismatch(e, a): return "SFrame KID \(a) does not match this key's KID \(e)"
        case .authenticationFailed: return "SFrame authentication failed"
        case let .replayed(c): return "SFrame counter \(c) was already received or is too old"
        case let .metadataTooLong(l, limit): return "SFrame metadata of \(l) bytes exceeds \(limit)"
        case let .plaintextTooLong(l, limit): return "SFrame plaintext of \(l) bytes exceeds \(limit)"
        case let .bufferTooSmall(r, a): return "output buffer too small: need \(r) bytes, have \(a)"
        case .counterExhausted: return "SFrame counter exhausted for this key"
        }
    }
}

/// Limits of the SFrame layer.
public enum SFrame {
    /// Longest metadata bound into the AAD. Conclave's metadata is 22 bytes (section 2.4).
    public static let maximumMetadataLength = 64
    /// Longest plaintext per frame (the largest frame kind's payload limit).
    public static let maximumPlaintextLength = 16_384
}
