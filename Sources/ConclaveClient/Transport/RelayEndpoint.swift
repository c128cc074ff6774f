import NIOCore

/// Where a relay listens: a `ws://` or `wss://` URL (section 5.1).
///
/// Accepted forms: `ws://host[:port][/path]` and `wss://host[:port][/path]`, where `host`
/// is a DNS name, an IPv4 address, or an IPv6 address in brackets (`wss://[::1]:8443`).
/// The port defaults to 80 for `ws` and 443 for `wss` (RFC 6455 §3); the path defaults to
/// ``defaultPath``. A query is kept as part of the request target; a fragment, user
/// information, an IPv6 zone id or whitespace is rejected with a ``RelayEndpointParseError``.
public struct RelayEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// `ws` (plain TCP, for loopback) or `wss` (TLS).
    public enum Scheme: String, Sendable, Hashable, CaseIterable {
        case ws
        case wss

        /// The port used when the URL gives none.
        public var defaultPort: Int { self == .ws ? 80 : 443 }
    }

    /// The path used when the URL has none: `"/v1"`.
    public static let defaultPath = "/v1"

    /// The URL scheme; `wss` means TLS.
    public var scheme: Scheme
    /// The host as written, without brackets: a DNS name or an IP address literal.
    public var host: String
    /// The TCP port, 1 to 65 535.
    public var port: Int
    /// The HTTP request target of the upgrade request; starts with `/`.
    public var path: String

    /// Creates an endpoint from its parts. The parts are not validated; use
    /// ``init(parsing:)`` for untrusted input.
    public init(scheme: Scheme, host: String, port: Int? = nil, path: String = RelayEndpoint.defaultPath) {
        self.scheme = scheme
        self.host = host
        self.port = port ?? scheme.defaultPort
        self.path = path
    }

    /// Whether the connection runs over TLS (`wss`).
    public var usesTLS: Bool { scheme == .wss }

    /// Whether ``host`` is an IPv4 or IPv6 address literal rather than a DNS name.
    ///
    /// An IP host is never sent in TLS SNI; its certificate must carry a matching IP SAN.
    public var hostIsIPAddress: Bool { (try? SocketAddress(ipAddress: host, port: 0)) != nil }

    /// The host as it appears in a URL or `Host` header: IPv6 addresses in brackets.
    public var bracketedHost: String { host.contains(":") ? "[\(host)]" : host }

    /// The value of the upgrade request's `Host` header: `host:port`, IPv6 in brackets.
    public var hostHeader: String { "\(bracketedHost):\(port)" }

    /// The URL, e.g. `wss://[::1]:8443/v1`.
    public var description: String { "\(scheme.rawValue)://\(hostHeader)\(path)" }

    /// Parses a `ws://` or `wss://` URL.
    public init(parsing text: String) throws(RelayEndpointParseError) {
        guard let separator = text.firstRange(of: "://") else { throw .missingScheme }
        let schemeText = String(text[..<separator.lowerBound])
        guard let scheme = Scheme(rawValue: schemeText.lowercased()) else {
            throw .unsupportedScheme(schemeText)
        }
        let rest = text[separator.upperBound...]
        guard !rest.contains(where: \.isWhitespace) else { throw .containsWhitespace }
        if rest.contains("#") { throw .fragmentNotAllowed }

        // authority ends at the first "/" or "?"
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var path = String(rest[authorityEnd...])
        if path.isEmpty {
            path = Self.defaultPath
        } else if path.first == "?" {
            path = Self.defaultPath + path
        }
        guard !authority.contains("@") else { throw .userInfoNotAllowed }

        let host: String
        let portText: Substring?
        if authority.first == "[" {
            guard let close = authority.firstIndex(of: "]") else { throw .invalidHost(String(authority)) }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let afterBracket = authority[authority.index(after: close)...]
            if afterBracket.isEmpty {
                portText = nil
            } else if afterBracket.first == ":" {
                portText = afterBracket.dropFirst()
            } else {
                throw .invalidHost(String(authority))
            }
            guard host.contains(":"), (try? SocketAddress(ipAddress: host, port: 0)) != nil else {
                throw .invalidHost(host)
            }
        } else {
            if let colon = authority.firstIndex(of: ":") {
                host = String(authority[..<colon])
                portText = authority[authority.index(after: colon)...]
            } else {
                host = String(authority)
                portText = nil
            }
            guard !host.isEmpty else { throw .missingHost }
            guard host.utf8.allSatisfy(Self.isRegisteredNameByte) else { throw .invalidHost(host) }
        }

        var port = scheme.defaultPort
        if let portText {
            guard !portText.isEmpty, portText.count <= 5, portText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let value = Int(portText), (1...65_535).contains(value)
            else { throw .invalidPort(String(portText)) }
            port = value
        }
        self.init(scheme: scheme, host: host, port: port, path: path)
    }

    /// Letters, digits, `-`, `.` and `_`: enough for DNS names and dotted IPv4 addresses.
    private static func isRegisteredNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"):
            true
        default:
            false
        }
    }
}

/// Why a relay URL was rejected by ``RelayEndpoint/init(parsing:)``.
public enum RelayEndpointParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// No `scheme://` prefix.
    case missingScheme
    /// A scheme other than `ws` or `wss`.
    case unsupportedScheme(String)
    /// Nothing between `://` and the port or path.
    case missingHost
    /// A host that is neither a DNS name, a dotted IPv4 address nor a bracketed IPv6 address.
    case invalidHost(String)
    /// A port that is not a decimal number from 1 to 65 535.
    case invalidPort(String)
    /// `user@host` forms are not supported.
    case userInfoNotAllowed
    /// WebSocket URLs must not carry a fragment (RFC 6455 §3).
    case fragmentNotAllowed
    /// The URL contains whitespace.
    case containsWhitespace

    public var description: String {
        switch self {
        case .missingScheme: "relay URL has no scheme; expected ws://host:port or wss://host:port"
        case let .unsupportedScheme(scheme): "relay URL scheme '\(scheme)' is not ws or wss"
        case .missingHost: "relay URL has no host"
        case let .invalidHost(host): "relay URL host '\(host)' is not a DNS name, IPv4 address or bracketed IPv6 address"
        case let .invalidPort(port): "relay URL port '\(port)' is not a number from 1 to 65535"
        case .userInfoNotAllowed: "relay URL must not contain user information (user@host)"
        case .fragmentNotAllowed: "relay URL must not contain a fragment (#...)"
        case .containsWhitespace: "relay URL contains whitespace"
        }
    }
}
