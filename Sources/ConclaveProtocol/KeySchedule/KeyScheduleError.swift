/// Errors of the end-to-end key schedule. No case carries key material.
public enum KeyScheduleError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// A structure is shorter or longer than its encoding allows.
    case malformed(String)
    /// A signature by the pinned leader (or by the knocking identity) does not verify.
    case badSignature(String)
    /// A sealed part did not open with our key.
    case sealOpenFailed
    /// A field inside the sealed part disagrees with the signed outer fields, or with us.
    case bindingMismatch(String)
    /// An epoch that does not move forward.
    case staleEpoch(current: UInt64, received: UInt64)
    /// A display name longer than the limit or not valid UTF-8.
    case invalidDisplayName
    /// Epoch number too large for the KID layout (48 bits).
    case epochOutOfRange(UInt64)

    public var description: String {
        switch self {
        case let .malformed(what): return "malformed \(what)"
        case let .badSignature(what): return "\(what) is not signed by the expected key"
        case .sealOpenFailed: return "sealed data does not open with this participant's key"
        case let .bindingMismatch(what): return "\(what) does not match its signed binding"
        case let .staleEpoch(c, r): return "epoch \(r) is not newer than the current epoch \(c)"
        case .invalidDisplayName: return "display name must be 1 to 64 bytes of UTF-8"
        case let .epochOutOfRange(e): return "epoch \(e) exceeds the 48-bit KID space"
        }
    }
}
