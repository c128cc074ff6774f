import NIOCore

/// Why a byte stream from Redis is not valid RESP, or is over one of ``RESPParser/Limits``.
/// Either way the connection is closed: the reply stream cannot be resynchronised.
public enum RESPParseError: Error, Equatable, CustomStringConvertible {
    case unknownType(UInt8)
    case lineTooLong(limit: Int)
    case badInteger
    case badLength
    case bulkTooLong(length: Int64, limit: Int)
    case tooManyElements(count: Int64, limit: Int)
    case tooDeep(limit: Int)
    case missingTerminator
    case badBoolean
    case badDouble
    case replyTooLarge(limit: Int)

    public var description: String {
        switch self {
        case .unknownType(let b): return "RESP: unknown type byte 0x\(String(b, radix: 16))"
        case .lineTooLong(let l): return "RESP: a line is longer than \(l) bytes"
        case .badInteger: return "RESP: malformed integer"
        case .badLength: return "RESP: malformed or negative length"
        case .bulkTooLong(let n, let l): return "RESP: bulk string of \(n) bytes exceeds the limit of \(l)"
        case .tooManyElements(let n, let l): return "RESP: aggregate of \(n) elements exceeds the limit of \(l)"
        case .tooDeep(let l): return "RESP: aggregates nested deeper than \(l)"
        case .missingTerminator: return "RESP: a bulk value is not followed by CRLF"
        case .badBoolean: return "RESP: malformed boolean"
        case .badDouble: return "RESP: malformed double"
        case .replyTooLarge(let l): return "RESP: a reply is larger than \(l) bytes"
        }
    }
}

/// Decodes RESP2 and RESP3 values (https://redis.io/docs/latest/develop/reference/protocol-spec/).
///
/// Every length is checked against ``Limits`` before anything is allocated for it. An
/// incomplete value returns nil and leaves the buffer's reader index where it was (the
/// `ByteToMessageDecoder` contract), so the caller can retry once more bytes arrive.
public struct RESPParser: Sendable {
    /// The parser's bounds. A server that exceeds one is treated as broken, not trusted.
    public struct Limits: Sendable, Equatable {
        /// Longest simple string, error, number or length line, without its CRLF.
        public var maximumLineLength: Int
        /// Longest bulk string, bulk error or verbatim string.
        public var maximumBulkLength: Int
        /// Most elements of one array, set or push (pairs for a map).
        public var maximumElements: Int
        /// Deepest nesting of aggregates.
        public var maximumDepth: Int
        /// Most bytes one reply may hold while incomplete (bounds what is buffered).
        public var maximumReplyBytes: Int

        public init(
            maximumLineLength: Int = 65_536, maximumBulkLength: Int = 1 << 20,
            maximumElements: Int = 65_536, maximumDepth: Int = 16, maximumReplyBytes: Int = 8 << 20
        ) {
            self.maximumLineLength = maximumLineLength
            self.maximumBulkLength = maximumBulkLength
            self.maximumElements = maximumElements
            self.maximumDepth = maximumDepth
            self.maximumReplyBytes = maximumReplyBytes
        }

        /// 64 KiB lines, 1 MiB bulk strings, 65,536 elements, depth 16, 8 MiB per reply:
        /// far above anything the cluster stores, far below what would hurt a relay.
        public static let `default` = Limits()
    }

    public let limits: Limits

    public init(limits: Limits = .default) { self.limits = limits }

    /// Parses one value from the front of `buffer`. Nil: incomplete (the buffer is untouched).
    public func parse(_ buffer: inout ByteBuffer) throws -> RESPValue? {
        var copy = buffer
        guard let value = try parseValue(&copy, depth: 0) else {
            if buffer.readableBytes > limits.maximumReplyBytes { throw RESPParseError.replyTooLarge(limit: limits.maximumReplyBytes) }
            return nil
        }
        buffer = copy
        return value
    }

    private func parseValue(_ b: inout ByteBuffer, depth: Int) throws -> RESPValue? {
        guard let type = b.readInteger(as: UInt8.self) else { return nil }
        switch type {
        case UInt8(ascii: "+"):
            return try line(&b).map { .simpleString(String(decoding: $0, as: UTF8.self)) }
        case UInt8(ascii: "-"):
            return try line(&b).map { .error(String(decoding: $0, as: UTF8.self)) }
        case UInt8(ascii: ":"):
            return try line(&b).map { .integer(try Self.integer($0)) }
        case UInt8(ascii: "$"):
            guard let length = try lengthLine(&b) else { return nil }
            if length < 0 { return .bulkString(nil) }
            return try bulk(&b, length: length).map { .bulkString($0) }
        case UInt8(ascii: "!"):
            guard let length = try lengthLine(&b) else { return nil }
            guard length >= 0 else { throw RESPParseError.badLength }
            return try bulk(&b, length: length).map { .error(String(decoding: $0, as: UTF8.self)) }
        case UInt8(ascii: "="):
            guard let length = try lengthLine(&b) else { return nil }
            guard length >= 4 else { throw RESPParseError.badLength }
            return try bulk(&b, length: length).map { .verbatim(String(decoding: $0.dropFirst(4), as: UTF8.self)) }
        case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"):
            guard let count = try lengthLine(&b) else { return nil }
            if count < 0 {
                guard type == UInt8(ascii: "*") else { throw RESPParseError.badLength }
                return .array(nil)
            }
            guard count <= limits.maximumElements else { throw RESPParseError.tooManyElements(count: count, limit: limits.maximumElements) }
            guard let elements = try aggregate(&b, count: count, depth: depth) else { return nil }
            switch type {
            case UInt8(ascii: "~"): return .set(elements)
            case UInt8(ascii: ">"): return .push(elements)
            default: return .array(elements)
            }
        case UInt8(ascii: "%"), UInt8(ascii: "|"):
            guard let count = try lengthLine(&b) else { return nil }
            guard count >= 0 else { throw RESPParseError.badLength }
            guard count <= limits.maximumElements else { throw RESPParseError.tooManyElements(count: count, limit: limits.maximumElements) }
            guard let flat = try aggregate(&b, count: count * 2, depth: depth) else { return nil }
            if type == UInt8(ascii: "|") {
                // An attribute annotates the value that follows it: return that value.
                return try parseValue(&b, depth: depth)
            }
            return .map(stride(from: 0, to: flat.count, by: 2).map { RESPPair(key: flat[$0], value: flat[$0 + 1]) })
        case UInt8(ascii: "_"):
            guard let l = try line(&b) else { return nil }
            guard l.isEmpty else { throw RESPParseError.badLength }
            return .null
        case UInt8(ascii: "#"):
            guard let l = try line(&b) else { return nil }
            switch l {
            case [UInt8(ascii: "t")]: return .boolean(true)
            case [UInt8(ascii: "f")]: return .boolean(false)
            default: throw RESPParseError.badBoolean
            }
        case UInt8(ascii: ","):
            guard let l = try line(&b) else { return nil }
            let text = String(decoding: l, as: UTF8.self)
            switch text {
            case "inf": return .double(.infinity)
            case "-inf": return .double(-.infinity)
            case "nan": return .double(.nan)
            default:
                guard !text.isEmpty, text.utf8.allSatisfy({ "0123456789+-.eE".utf8.contains($0) }), let d = Double(text) else {
                    throw RESPParseError.badDouble
                }
                return .double(d)
            }
        case UInt8(ascii: "("):
            guard let l = try line(&b) else { return nil }
            let digits = l.first == UInt8(ascii: "-") ? l.dropFirst() : l[...]
            guard !digits.isEmpty, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { throw RESPParseError.badInteger }
            return .bigNumber(String(decoding: l, as: UTF8.self))
        default:
            throw RESPParseError.unknownType(type)
        }
    }

    /// The bytes up to the next CRLF, which is consumed. Nil: no CRLF yet.
    private func line(_ b: inout ByteBuffer) throws -> [UInt8]? {
        let view = b.readableBytesView
        let scan = view.prefix(limits.maximumLineLength + 2)
        guard let cr = scan.firstIndex(of: UInt8(ascii: "\r")) else {
            if view.count > limits.maximumLineLength + 1 { throw RESPParseError.lineTooLong(limit: limits.maximumLineLength) }
            return nil
        }
        let length = cr - view.startIndex
        guard view.count >= length + 2 else { return nil }
        guard view[cr + 1] == UInt8(ascii: "\n") else { throw RESPParseError.missingTerminator }
        let bytes = b.readBytes(length: length)!
        b.moveReaderIndex(forwardBy: 2)
        return bytes
    }

    private func lengthLine(_ b: inout ByteBuffer) throws -> Int64? {
        guard let l = try line(&b) else { return nil }
        let n = try Self.integer(l)
        guard n >= -1 else { throw RESPParseError.badLength }
        return n
    }

    private func bulk(_ b: inout ByteBuffer, length: Int64) throws -> [UInt8]? {
        guard length <= Int64(limits.maximumBulkLength) else {
            throw RESPParseError.bulkTooLong(length: length, limit: limits.maximumBulkLength)
        }
        let n = Int(length)
        guard b.readableBytes >= n + 2 else { return nil }
        let bytes = b.readBytes(length: n)!
        guard b.readInteger(as: UInt16.self) == 0x0D0A else { throw RESPParseError.missingTerminator }
        return bytes
    }

    private func aggregate(_ b: inout ByteBuffer, count: Int64, depth: Int) throws -> [RESPValue]? {
        guard depth < limits.maximumDepth else { throw RESPParseError.tooDeep(limit: limits.maximumDepth) }
        var out: [RESPValue] = []
        // Every element takes at least three bytes: reserve no more than the input can fill.
        out.reserveCapacity(min(Int(count), b.readableBytes / 3))
        for _ in 0..<count {
            guard let v = try parseValue(&b, depth: depth + 1) else { return nil }
            out.append(v)
        }
        return out
    }

    /// A decimal Int64: an optional minus sign and 1 to 19 digits, nothing else.
    static func integer(_ bytes: [UInt8]) throws -> Int64 {
        var digits = bytes[...]
        let negative = digits.first == UInt8(ascii: "-")
        if negative { digits = digits.dropFirst() }
        guard !digits.isEmpty, digits.count <= 19 else { throw RESPParseError.badInteger }
        var value: Int64 = 0
        for d in digits {
            guard d >= 0x30, d <= 0x39 else { throw RESPParseError.badInteger }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int64(d - 0x30))
            guard !o1, !o2 else { throw RESPParseError.badInteger }
            value = s
        }
        return negative ? -value : value
    }
}

/// Encodes commands as RESP arrays of bulk strings (what every Redis accepts).
public enum RESPEncoder {
    public static func encode(_ command: RedisCommand, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("*")
        buffer.writeString(String(command.arguments.count))
        buffer.writeStaticString("\r\n")
        for argument in command.arguments {
            buffer.writeStaticString("$")
            buffer.writeString(String(argument.count))
            buffer.writeStaticString("\r\n")
            buffer.writeBytes(argument)
            buffer.writeStaticString("\r\n")
        }
    }

    /// Encodes a value (the tests' fake server and round trips use this).
    public static func encode(_ value: RESPValue, into buffer: inout ByteBuffer) {
        func line(_ type: String, _ text: String) { buffer.writeString(type + text + "\r\n") }
        func bulk(_ type: String, _ bytes: [UInt8]) {
            line(type, String(bytes.count)); buffer.writeBytes(bytes); buffer.writeStaticString("\r\n")
        }
        switch value {
        case .simpleString(let s): line("+", s)
        case .error(let s):
            // A bulk error (RESP3 `!`) may hold CR and LF; a simple error line may not.
            if s.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A }) { bulk("!", Array(s.utf8)) } else { line("-", s) }
        case .integer(let i): line(":", String(i))
        case .bulkString(nil): line("$", "-1")
        case .bulkString(let b?): bulk("$", b)
        case .array(nil): line("*", "-1")
        case .array(let a?): line("*", String(a.count)); a.forEach { encode($0, into: &buffer) }
        case .null: line("_", "")
        case .boolean(let v): line("#", v ? "t" : "f")
        case .double(let d): line(",", d.isNaN ? "nan" : d == .infinity ? "inf" : d == -.infinity ? "-inf" : String(d))
        case .bigNumber(let s): line("(", s)
        case .verbatim(let s): bulk("=", Array(("txt:" + s).utf8))
        case .map(let pairs):
            line("%", String(pairs.count));
            pairs.forEach {
                encode($0.key, into: &buffer); encode($0.value, into: &buffer)
            }
        case .set(let a): line("~", String(a.count)); a.forEach { encode($0, into: &buffer) }
        case .push(let a): line(">", String(a.count)); a.forEach { encode($0, into: &buffer) }
        }
    }
}

/// `ByteToMessageDecoder` over ``RESPParser``.
struct RESPDecoder: ByteToMessageDecoder {
    typealias InboundOut = RESPValue
    let parser: RESPParser

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let value = try parser.parse(&buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(value))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}
