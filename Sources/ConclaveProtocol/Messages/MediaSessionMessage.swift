import ConclaveCrypto

/// `MEDIA_SESSION` (`0x8A`), relay → client, sent right after `ROOM_CREATED` or `ADMITTED`
/// when the relay runs a UDP media path (protocol 6.2): `session_id: u32` (non-zero),
/// `hop_key: bytes[32]`, `port: u16` (non-zero), `host: text8<255>` (empty: the host the
/// control connection was made to).
///
/// The hop key authenticates the client's datagrams to the relay. It is a secret of the
/// hop, not of the content: `description` and the mirror never show it.
public struct MediaSessionMessage: Sendable, Hashable, CustomStringConvertible, CustomReflectable {
    public var sessionID: UInt32
    public var hopKey: SecretKey
    public var port: UInt16
    public var host: String

    public static let maximumHostLength = 255

    public init(sessionID: UInt32, hopKey: SecretKey, port: UInt16, host: String) {
        self.sessionID = sessionID
        self.hopKey = hopKey
        self.port = port
        self.host = host
    }

    var bodyLength: Int { 4 + HopAuthenticator.keyByteCount + 2 + 1 + host.utf8.count }

    init(from reader: inout ByteReader) throws(MessageDecodingError) {
        sessionID = try reader.readUInt32("session_id")
        guard sessionID != 0 else { throw .invalidValue(field: "session_id", value: 0) }
        hopKey = SecretKey(copying: try reader.readSlice(count: HopAuthenticator.keyByteCount, field: "hop_key"))
        port = try reader.readUInt16("port")
        guard port != 0 else { throw .invalidValue(field: "port", value: 0) }
        let length = Int(try reader.readUInt8("host_length"))
        let text = try reader.readSlice(count: length, field: "host")
        let decoded = String(decoding: text, as: UTF8.self)
        guard decoded.utf8.elementsEqual(text) else { throw .invalidUTF8(field: "host") }
        host = decoded
    }

    func write(to writer: inout ByteWriter) {
        precondition(host.utf8.count <= Self.maximumHostLength, "MEDIA_SESSION host over 255 UTF-8 bytes")
        writer.writeUInt32(sessionID)
        hopKey.withUnsafeBytes { writer.writeBytes($0) }
        writer.writeUInt16(port)
        writer.writeUInt8(UInt8(host.utf8.count))
        writer.writeBytes(host.utf8)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(sessionID)
        hasher.combine(port)
        hasher.combine(host)
    }

    public var description: String {
        "MEDIA_SESSION(session \(sessionID), port \(port), host \(host.isEmpty ? "(control host)" : host), hop key redacted)"
    }

    public var customMirror: Mirror {
        Mirror(self, children: ["sessionID": sessionID, "port": port, "host": host], displayStyle: .struct)
    }
}
