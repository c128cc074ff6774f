/// `REDIRECT` (`0x8B`), relay → client (protocol 5.10): in a cluster of relays, the room a
/// `CREATE_ROOM` or `JOIN` names is (or is to be) served by another node, or this node is
/// draining. Body: `reason: u8`, `origin: text8<255>`.
///
/// `origin` is a relay origin as in an invite (4.1): `ws://` or `wss://`, a host of 1–253
/// characters from `A–Z a–z 0–9 . - _ :` (an IPv6 literal in brackets), `:`, and a decimal
/// port 1–65 535; no path. The relay closes the connection after sending it.
public struct RedirectMessage: Sendable, Hashable, CustomStringConvertible {
    public enum Reason: UInt8, Sendable, Hashable {
        /// The room lives on the named node, or is placed there.
        case elsewhere = 1
        /// This node is draining: reconnect through the named node.
        case draining = 2
    }

    public var reason: Reason
    public var origin: String

    public static let maximumOriginLength = 255

    public init(reason: Reason, origin: String) {
        self.reason = reason
        self.origin = origin
    }

    var bodyLength: Int { 2 + origin.utf8.count }

    init(from reader: inout ByteReader) throws(MessageDecodingError) {
        let raw = try reader.readUInt8("reason")
        guard let reason = Reason(rawValue: raw) else { throw .invalidValue(field: "reason", value: UInt64(raw)) }
        self.reason = reason
        let length = Int(try reader.readUInt8("origin_length"))
        let text = try reader.readSlice(count: length, field: "origin")
        guard let parts = Self.parseOrigin(text) else { throw .invalidValue(field: "origin", value: UInt64(length)) }
        origin = Invite.relayOrigin(secure: parts.secure, host: parts.host, port: parts.port)
        // Canonical form only: a decoded message re-encodes to the same bytes.
        guard origin.utf8.elementsEqual(text) else { throw .invalidValue(field: "origin", value: UInt64(length)) }
    }

    func write(to writer: inout ByteWriter) {
        precondition(origin.utf8.count <= Self.maximumOriginLength, "REDIRECT origin over 255 bytes")
        writer.writeUInt8(reason.rawValue)
        writer.writeUInt8(UInt8(origin.utf8.count))
        writer.writeBytes(origin.utf8)
    }

    /// The origin's parts, or nil when it is not `ws[s]://HOST:PORT` as 5.10 defines it
    /// (a decimal port without leading zeros or sign).
    public static func parseOrigin(_ text: some Collection<UInt8>) -> (secure: Bool, host: String, port: Int)? {
        let bytes = Array(text)
        guard bytes.count <= maximumOriginLength else { return nil }
        let secure: Bool
        var rest: ArraySlice<UInt8>
        if bytes.starts(with: "wss://".utf8) {
            secure = true; rest = bytes.dropFirst(6)
        } else if bytes.starts(with: "ws://".utf8) {
            secure = false; rest = bytes.dropFirst(5)
        } else {
            return nil
        }
        let host: ArraySlice<UInt8>
        if rest.first == UInt8(ascii: "[") {
            guard let close = rest.firstIndex(of: UInt8(ascii: "]")) else { return nil }
            host = rest[rest.index(after: rest.startIndex)..<close]
            rest = rest[rest.index(after: close)...]
            guard rest.first == UInt8(ascii: ":") else { return nil }
            rest = rest.dropFirst()
        } else {
            guard let colon = rest.lastIndex(of: UInt8(ascii: ":")) else { return nil }
            host = rest[..<colon]
            rest = rest[rest.index(after: colon)...]
            guard !host.contains(UInt8(ascii: ":")) else { return nil }
        }
        let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_:".utf8)
        guard (1...253).contains(host.count), host.allSatisfy(allowed.contains) else { return nil }
        guard (1...5).contains(rest.count), rest.first != UInt8(ascii: "0"),
            rest.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let port = Int(String(decoding: rest, as: UTF8.self)), (1...65_535).contains(port)
        else { return nil }
        return (secure, String(decoding: host, as: UTF8.self), port)
    }

    public var description: String {
        "REDIRECT(\(reason == .elsewhere ? "elsewhere" : "draining") → \(origin))"
    }
}
