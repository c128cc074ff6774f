import ConclaveCrypto

/// A meeting invite (protocol/PROTOCOL.md section 4.1):
///
/// ```
/// ws[s]://HOST:PORT/r/ROOM_ID#k=HOST_IDENTITY&s=INVITE_SECRET[&p=PASSWORD]
/// ```
/// `INVITE_SECRET` is 32 random bytes the host draws for the room (43 base64url
/// characters). Only its holders can make a knock the host accepts (4.2): the relay never
/// sees it.
/// `ROOM_ID` is the 22-character base64url room id, `HOST_IDENTITY` the host's 64-byte
/// public identity (Ed25519 || X25519) in base64url (86 characters, no padding): joiners
/// pin the Ed25519 key and seal their knock to the X25519 key. `PASSWORD` the password
/// percent-encoded (RFC 3986 unreserved characters stay as they are). Everything after
/// `#` is the secret part: a URL fragment is never sent in an HTTP request, and clients
/// never send it to the relay (they send only the `relay_auth` proof of section 5.4).
public struct Invite: Sendable, Equatable, CustomStringConvertible {
    public var secure: Bool
    public var host: String
    public var port: Int
    public var roomID: RoomID
    public var hostIdentity: PublicIdentity
    public var password: String?
    /// The invite secret (32 bytes): keys the knock's invite proof (4.2).
    public var secret: [UInt8]

    public static let secretLength = 32

    /// The pinned host identity's fingerprint, for people to compare.
    public var hostFingerprint: Fingerprint { hostIdentity.fingerprint }

    public static let maximumLength = 1024
    public static let maximumPasswordLength = 256

    public init(secure: Bool, host: String, port: Int, roomID: RoomID, hostIdentity: PublicIdentity, secret: [UInt8], password: String?) {
        precondition(secret.count == Self.secretLength, "invite secrets are 32 bytes")
        self.secure = secure; self.host = host; self.port = port
        self.roomID = roomID; self.hostIdentity = hostIdentity; self.secret = secret; self.password = password
    }

    /// Draws a fresh invite secret (`randombytes_buf`).
    public static func randomSecret() -> [UInt8] {
        SecureRandom.bytes(count: secretLength)
    }

    /// The relay's WebSocket URL (no secret part).
    public var relayURL: String { Self.relayOrigin(secure: secure, host: host, port: port) }

    /// The relay origin that `relay_auth` is bound to (4.1): `ws://` or `wss://`, the host
    /// as in the invite (an IPv6 address in brackets), `:` and the port in decimal, e.g.
    /// `wss://relay.example.org:443`: the invite's text before `/r/`.
    public static func relayOrigin(secure: Bool, host: String, port: Int) -> String {
        "\(secure ? "wss" : "ws")://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }

    public var text: String {
        var s = "\(relayURL)/r/\(roomID.base64URL)#k=\(Base64URL.encode(hostIdentity.encoded))&s=\(Base64URL.encode(secret))"
        if let password { s += "&p=" + PercentEncoding.encode(password) }
        return s
    }

    /// Redacts the secret part.
    public var description: String { "\(relayURL)/r/\(roomID.base64URL)#…" }

    /// `relay_auth` (section 4.1): what the relay gets instead of the password, bound to
    /// the room and the relay, so a proof seen by one relay or for one room is worthless
    /// for any other, and no table of guesses serves two rooms:
    /// `HKDF-SHA256(salt = room_id, ikm = password, info = "conclave/v2 relay-auth" || relay_origin, L = 32)`.
    public static func relayAuth(password: String, roomID: RoomID, relayOrigin: String) throws -> [UInt8] {
        try HKDF.deriveKey(
            .sha256, salt: roomID.bytes, ikm: Array(password.utf8),
            info: Array(Labels.relayAuthV2.utf8) + Array(relayOrigin.utf8), length: 32
        )
        .withUnsafeBytes { Array($0) }
    }

    public enum ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        case tooLong(Int)
        case badScheme
        case badHost
        case badPort
        case badPath
        case badRoomID
        case missingFingerprint
        case badFingerprint
        case missingSecret
        case badSecret
        case badPassword
        case unknownParameter(String)

        public var description: String {
            switch self {
            case let .tooLong(n): return "invite is \(n) characters; the limit is \(Invite.maximumLength)"
            case .badScheme: return "invite must start with ws:// or wss://"
            case .badHost: return "invite has no valid relay host"
            case .badPort: return "invite port must be a number from 1 to 65535"
            case .badPath: return "invite path must be /r/ROOM_ID"
            case .badRoomID: return "invite room id is not 22 base64url characters"
            case .missingFingerprint: return "invite has no host key (#k=…)"
            case .badFingerprint: return "invite host key is not 86 base64url characters of a valid identity"
            case .missingSecret: return "invite has no invite secret (&s=…); it may be from protocol version 1"
            case .badSecret: return "invite secret is not 43 base64url characters (32 bytes)"
            case .badPassword: return "invite password is not valid percent-encoded UTF-8 (at most 256 bytes)"
            case let .unknownParameter(p): return "invite has an unknown parameter '\(p.prefix(16))'"
            }
        }
    }

    public init(parsing text: String) throws(ParseError) {
        let text = text.trimmingWhitespace()
        guard text.utf8.count <= Self.maximumLength else { throw .tooLong(text.utf8.count) }
        let secure: Bool
        var rest: Substring
        if text.hasPrefix("wss://") {
            secure = true; rest = text.dropFirst(6)
        } else if text.hasPrefix("ws://") {
            secure = false; rest = text.dropFirst(5)
        } else {
            throw .badScheme
        }
        guard let hashIndex = rest.firstIndex(of: "#") else { throw .missingFingerprint }
        let fragment = rest[rest.index(after: hashIndex)...]
        rest = rest[..<hashIndex]
        guard let slash = rest.firstIndex(of: "/") else { throw .badPath }
        let authority = rest[..<slash]
        let path = rest[slash...]
        // Host and port.
        let host: String, portText: Substring
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .badHost }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            guard after.hasPrefix(":") else { throw .badPort }
            portText = after.dropFirst()
        } else {
            guard let colon = authority.lastIndex(of: ":") else { throw .badPort }
            host = String(authority[..<colon]); portText = authority[authority.index(after: colon)...]
        }
        guard !host.isEmpty, host.utf8.count <= 253,
            host.unicodeScalars.allSatisfy({
                $0.isASCII && ($0.properties.isAlphabetic || $0.properties.numericType != nil || ".-:_".unicodeScalars.contains($0))
            })
        else { throw .badHost }
        guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy(\.isASCII), portText.allSatisfy(\.isNumber),
            let port = Int(portText), (1...65535).contains(port)
        else { throw .badPort }
        guard path.hasPrefix("/r/") else { throw .badPath }
        guard let room = try? RoomID(base64URL: path.dropFirst(3)) else { throw .badRoomID }
        // Fragment parameters.
        var identity: PublicIdentity?
        var password: String?
        var secret: [UInt8]?
        for pair in fragment.split(separator: "&", omittingEmptySubsequences: true) {
            if pair.hasPrefix("k=") {
                guard let bytes = Base64URL.decode(pair.dropFirst(2)), bytes.count == PublicIdentity.encodedLength,
                    let parsed = try? PublicIdentity(encoded: bytes)
                else { throw .badFingerprint }
                identity = parsed
            } else if pair.hasPrefix("s=") {
                guard let bytes = Base64URL.decode(pair.dropFirst(2)), bytes.count == Self.secretLength else { throw .badSecret }
                secret = bytes
            } else if pair.hasPrefix("p=") {
                guard let pw = PercentEncoding.decode(pair.dropFirst(2)), !pw.isEmpty, pw.utf8.count <= Self.maximumPasswordLength else { throw .badPassword }
                password = pw
            } else {
                throw .unknownParameter(String(pair.prefix(while: { $0 != "=" })))
            }
        }
        guard let identity else { throw .missingFingerprint }
        guard let secret else { throw .missingSecret }
        self.init(secure: secure, host: host, port: port, roomID: room, hostIdentity: identity, secret: secret, password: password)
    }
}

/// base64url without padding (RFC 4648 §5).
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        var i = 0
        while i + 3 <= bytes.count {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [alphabet[Int(v >> 18)], alphabet[Int(v >> 12 & 63)], alphabet[Int(v >> 6 & 63)], alphabet[Int(v & 63)]]
            i += 3
        }
        let r = bytes.count - i
        if r == 1 {
            let v = UInt32(bytes[i]) << 16
            out += [alphabet[Int(v >> 18)], alphabet[Int(v >> 12 & 63)]]
        } else if r == 2 {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [alphabet[Int(v >> 18)], alphabet[Int(v >> 12 & 63)], alphabet[Int(v >> 6 & 63)]]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Strict decoding: no padding, no other characters, canonical trailing bits.
    public static func decode<S: StringProtocol>(_ text: S) -> [UInt8]? {
        var values = [UInt8]()
        for c in text.utf8 {
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): values.append(c - 65)
            case UInt8(ascii: "a")...UInt8(ascii: "z"): values.append(c - 97 + 26)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): values.append(c - 48 + 52)
            case UInt8(ascii: "-"): values.append(62)
            case UInt8(ascii: "_"): values.append(63)
            default: return nil
            }
        }
        if values.count % 4 == 1 { return nil }
        var out = [UInt8]()
        var i = 0
        while i < values.count {
            let chunk = values[i..<min(i + 4, values.count)]
            var v: UInt32 = 0
            for x in chunk { v = v << 6 | UInt32(x) }
            v <<= UInt32(6 * (4 - chunk.count))
            let bytes = [UInt8(v >> 16), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
            let n = chunk.count - 1
            // Reject non-zero leftover bits (non-canonical encodings).
            if n < 3, bytes[n] != 0 { return nil }
            out += bytes[0..<n]
            i += 4
        }
        return out
    }
}

/// Percent-encoding of UTF-8 text for invite parameters (RFC 3986).
public enum PercentEncoding {
    public static func encode(_ text: String) -> String {
        var out = ""
        for b in text.utf8 {
            let c = Character(Unicode.Scalar(b))
            if b < 128, c.isLetter || c.isNumber || "-._~".contains(c) {
                out.append(c)
            } else {
                out += "%" + (b < 16 ? "0" : "") + String(b, radix: 16, uppercase: true)
            }
        }
        return out
    }

    public static func decode<S: StringProtocol>(_ text: S) -> String? {
        var bytes = [UInt8]()
        var it = Array(text.utf8)[...]
        while let c = it.popFirst() {
            if c == UInt8(ascii: "%") {
                let digits = Array(it.prefix(2))
                guard digits.count == 2, digits.allSatisfy({ Character(Unicode.Scalar($0)).isHexDigit }),
                    let v = UInt8(String(decoding: digits, as: UTF8.self), radix: 16)
                else { return nil }
                bytes.append(v); it = it.dropFirst(2)
            } else {
                bytes.append(c)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}

extension String {
    func trimmingWhitespace() -> String {
        String(self.drop(while: { $0.isWhitespace }).reversed().drop(while: { $0.isWhitespace }).reversed())
    }
}
