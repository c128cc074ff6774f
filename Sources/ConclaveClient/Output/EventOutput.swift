/// One line per event, for people or for scripts.
///
/// JSON mode prints one object per line with `"event"` and `"t"` (seconds since start,
/// three decimals) first, then the event's fields in a fixed order. Strings are escaped per
/// RFC 8259, so a participant's chat text or name can never break the line structure.
public struct EventOutput: Sendable {
    public enum Value: Sendable, Equatable {
        case string(String)
        case int(Int)
        case double(Double)
        case bool(Bool)
    }

    public let json: Bool
    private let start: ContinuousClock.Instant
    private let write: @Sendable (String) -> Void

    public init(json: Bool, start: ContinuousClock.Instant = .now, write: @escaping @Sendable (String) -> Void) {
        self.json = json
        self.start = start
        self.write = write
    }

    public var elapsed: Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// Emits an event. `human` is the line shown without `--json`.
    public func emit(_ event: String, _ fields: [(String, Value)] = [], human: String) {
        if json {
            write(Self.jsonLine(event: event, t: elapsed, fields: fields))
        } else {
            write(human)
        }
    }

    public static func jsonLine(event: String, t: Double, fields: [(String, Value)]) -> String {
        var out = "{\"event\":\(quote(event)),\"t\":\(format(t))"
        for (k, v) in fields {
            out += ",\(quote(k)):"
            switch v {
            case .string(let s): out += quote(s)
            case .int(let i): out += "\(i)"
            case .double(let d): out += d.isFinite ? format(d) : "null"
            case .bool(let b): out += b ? "true" : "false"
            }
        }
        return out + "}"
    }

    static func format(_ d: Double) -> String {
        let scaled = (d * 1000).rounded() / 1000
        return "\(scaled)"
    }

    public static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20 || c.value == 0x2028 || c.value == 0x2029:
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
