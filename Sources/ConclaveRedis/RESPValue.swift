/// One RESP2 or RESP3 value, as read from or written to Redis.
///
/// Conclave speaks RESP2 to Redis (it never sends `HELLO 3`), but the parser accepts every
/// RESP3 type, so a server or proxy that answers in RESP3 is still understood. RESP3
/// attributes (`|`) are parsed and discarded.
public enum RESPValue: Sendable, Equatable {
    case simpleString(String)
    case error(String)
    case integer(Int64)
    /// A bulk string; nil is RESP2's null bulk string (`$-1`).
    case bulkString([UInt8]?)
    /// An array; nil is RESP2's null array (`*-1`).
    case array([RESPValue]?)
    /// RESP3 null (`_`).
    case null
    case boolean(Bool)
    case double(Double)
    /// RESP3 big number, as its decimal digits.
    case bigNumber(String)
    /// RESP3 verbatim string, without its three-letter format prefix.
    case verbatim(String)
    case map([RESPPair])
    case set([RESPValue])
    /// RESP3 out-of-band push (`>`).
    case push([RESPValue])

    /// The value as text: simple, bulk and verbatim strings; nil otherwise.
    public var string: String? {
        switch self {
        case .simpleString(let s), .verbatim(let s): return s
        case .bulkString(let b?): return String(decoding: b, as: UTF8.self)
        default: return nil
        }
    }

    /// The value's bytes: bulk, simple and verbatim strings; nil otherwise.
    public var bytes: [UInt8]? {
        switch self {
        case .bulkString(let b?): return b
        case .simpleString(let s), .verbatim(let s): return Array(s.utf8)
        default: return nil
        }
    }

    /// An integer reply, or a string that holds one.
    public var integer: Int64? {
        switch self {
        case .integer(let i): return i
        case .bulkString, .simpleString: return string.flatMap { Int64($0) }
        default: return nil
        }
    }

    /// The elements of an array, set or push; nil otherwise (also for a null array).
    public var elements: [RESPValue]? {
        switch self {
        case .array(let a?), .set(let a), .push(let a): return a
        default: return nil
        }
    }

    /// True for RESP2's null bulk string and null array, and for RESP3's null.
    public var isNull: Bool {
        switch self {
        case .null, .bulkString(nil), .array(nil): return true
        default: return false
        }
    }
}

/// A key and its value in a RESP3 map.
public struct RESPPair: Sendable, Equatable {
    public var key: RESPValue
    public var value: RESPValue
    public init(key: RESPValue, value: RESPValue) { self.key = key; self.value = value }
}

/// A Redis command: its name and arguments, each sent as a bulk string.
public struct RedisCommand: Sendable, Equatable, CustomStringConvertible {
    public var arguments: [[UInt8]]

    public init(_ name: String, _ arguments: [String] = []) {
        self.arguments = [Array(name.utf8)] + arguments.map { Array($0.utf8) }
    }

    public init(_ name: String, bytes arguments: [[UInt8]]) {
        self.arguments = [Array(name.utf8)] + arguments
    }

    /// The command name only: arguments (keys, values) never reach logs or errors.
    public var description: String {
        String(decoding: arguments.first ?? [], as: UTF8.self).uppercased()
    }
}
