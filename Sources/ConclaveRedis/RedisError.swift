/// What went wrong talking to Redis. No case carries a command's arguments or a value:
/// keys and values never reach logs or error text.
public enum RedisError: Error, Equatable, CustomStringConvertible {
    /// Redis answered with an error reply (its text, e.g. `WRONGTYPE ...`).
    case server(String)
    /// No reply within the command timeout. The connection is closed, since its replies
    /// can no longer be matched to commands.
    case timeout(command: String)
    /// No connection could be made (or remade) within the timeout.
    case notConnected(reason: String)
    /// The connection closed before the reply arrived. The command may or may not have run.
    case connectionClosed
    /// Redis sent something that is not RESP, or is over a parser limit.
    case protocolViolation(String)
    /// The client was shut down.
    case shutdown
    /// A `redis://` URL that cannot be used.
    case badURL(String)
    /// A reply of a type the caller did not expect.
    case unexpectedReply(command: String)

    public var description: String {
        switch self {
        case .server(let text): return "redis error reply: \(text)"
        case .timeout(let c): return "redis \(c): no reply within the timeout"
        case .notConnected(let reason): return "redis unreachable: \(reason)"
        case .connectionClosed: return "redis connection closed before the reply"
        case .protocolViolation(let what): return "redis protocol violation: \(what)"
        case .shutdown: return "redis client shut down"
        case .badURL(let why): return "bad redis URL: \(why)"
        case .unexpectedReply(let c): return "redis \(c): unexpected reply type"
        }
    }
}
