import ConclaveProtocol

/// Why a participant session ended or could not start. Each maps to one clear line and a
/// protocol error code (`bad_invite`, `relay_unreachable`, `bad_password`, …).
public enum SessionError: Error, Equatable, CustomStringConvertible {
    case badInvite(String)
    case relayUnreachable(String)
    case refused(ErrorCode, String)
    case protocolViolation(String)
    case timeout(String)

    public var code: ErrorCode {
        switch self {
        case .badInvite: return .badInvite
        case .relayUnreachable: return .relayUnreachable
        case .refused(let c, _): return c
        case .protocolViolation: return .malformed
        case .timeout: return .relayUnreachable
        }
    }

    public var description: String {
        switch self {
        case let .badInvite(r): return "bad invite: \(r)"
        case let .relayUnreachable(r): return "cannot reach the relay: \(r)"
        case let .refused(c, m): return "\(c.name): \(m)"
        case let .protocolViolation(r): return "the relay broke the protocol: \(r)"
        case let .timeout(what): return "timed out waiting for \(what)"
        }
    }
}
