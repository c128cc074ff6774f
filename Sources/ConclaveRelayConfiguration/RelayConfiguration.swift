import ConclaveCrypto
import ConclaveProtocol

/// Everything an operator can set, with the privacy-friendly and safe defaults.
///
/// The same option names serve the command line (`--max-rooms 10`), the environment
/// (`CONCLAVE_RELAY_MAX_ROOMS=10`) and the config file (`{"max-rooms": 10}`); precedence is
/// defaults < file < environment < flags. ``options`` documents every one.
public struct RelayConfiguration: Sendable, Equatable {
    // MARK: Listening
    public var host: String = "127.0.0.1"
    public var port: Int = 7443
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?
    public var allowPlaintext: Bool = false
    public var logLevel: LogLevel = .info
    /// UDP media path: nil host/port mean the `listen` host and port.
    public var mediaEnabled: Bool = true
    public var mediaHost: String?
    public var mediaPort: Int?
    /// UDP sockets (SO_REUSEPORT, each served by a thread of its own); 0 means one per core.
    public var mediaThreads: Int = 0
    /// A client's UDP path that has been silent this long falls back to its WebSocket.
    public var mediaPathTimeoutSeconds: Int = 6

    // MARK: Capacity
    public var maxRooms: Int = 1000
    public var maxConnections: Int = 5000
    /// TCP connections from one source address that have not yet upgraded to a WebSocket.
    public var maxPendingConnectionsPerAddress: Int = 64
    /// Upper bound on a room's `max_participants` (the host's setting is capped to it).
    public var maxParticipantsPerRoom: Int = 500
    /// Upper bound on a room's `max_waiting`.
    public var maxWaitingPerRoom: Int = 200

    // MARK: Per-connection rates (token buckets: rate per second, burst = 2 s worth)
    public var maxFramesPerSecond: Int = 400
    public var maxBytesPerSecond: Int = 4_000_000
    public var maxControlPerSecond: Int = 20

    // MARK: Frame payload limits per kind (bytes; at most the protocol's limits)
    public var maxAudioFrameBytes: Int = FrameKind.audio.payloadLimit
    public var maxScreenFrameBytes: Int = FrameKind.screen.payloadLimit
    public var maxChatFrameBytes: Int = FrameKind.chat.payloadLimit
    public var maxControlFrameBytes: Int = FrameKind.control.payloadLimit
    public var maxKeysFrameBytes: Int = FrameKind.keys.payloadLimit

    // MARK: Joins and passwords
    /// Join attempts (any outcome) per source address per minute.
    public var joinAttemptsPerAddressPerMinute: Int = 30
    /// Failed password proofs per source address per minute before `rate_limited`.
    public var passwordFailuresPerAddressPerMinute: Int = 5
    /// Failed password proofs per room per minute after which wrong ones are answered late
    /// (the right password is never refused or delayed for it).
    public var passwordFailuresPerRoomPerMinute: Int = 20
    /// `CREATE_ROOM`s per source address per minute (checked before any hashing).
    public var roomCreationsPerAddressPerMinute: Int = 10
    /// Source addresses the per-address limits do not apply to (join attempts, room
    /// creations, wrong passwords, pending connections): a load generator's, say.
    public var exemptAddresses: Set<String> = []
    /// Argon2id cost for stored password proofs.
    public var passwordHashing: PasswordHashing = .interactive

    // MARK: Timeouts and queues
    public var idleTimeoutSeconds: Int = 60
    public var handshakeTimeoutSeconds: Int = 10
    /// Outbound bytes queued for a client above which its audio and screen frames are dropped.
    public var outboundMediaQueueBytes: Int = 256 * 1024
    /// Outbound bytes queued for a client above which it is disconnected with `too_slow`.
    public var outboundQueueBytes: Int = 1024 * 1024
    /// Seconds the relay waits on SIGTERM for clients to receive `shutting_down`.
    public var shutdownGraceSeconds: Int = 2

    // MARK: Cluster (README "Running a cluster"; protocol 5.10)
    /// `redis://HOST:PORT`: run as one node of a cluster sharing this Redis. Nil: a single
    /// relay with everything in its own memory (the default).
    public var clusterRedisURL: String?
    /// This node's id in the cluster; nil: a random one at start.
    public var nodeID: String?
    /// The origin clients are redirected to for this node (`ws[s]://HOST:PORT`); nil: the
    /// `listen` address with `wss` when TLS is configured, else `ws`.
    public var advertise: String?
    /// A file holding the cluster key (at least 32 bytes, the same on every node): room ids
    /// and identities are stored in Redis only as keyed hashes under it.
    public var clusterKeyFile: String?
    /// Seconds after its last heartbeat that a node counts as dead, and its rooms may be re-homed.
    public var clusterNodeTimeoutSeconds: Int = 3
    /// On SIGTERM in a cluster: seconds a draining node waits for its rooms to move before it exits.
    public var drainGraceSeconds: Int = 30

    public init() {}

    /// How much the relay logs (swift-log's levels).
    public enum LogLevel: String, CaseIterable, Sendable {
        case trace, debug, info, notice, warning, error, critical
    }

    /// The Argon2id cost of stored password proofs.
    public enum PasswordHashing: String, CaseIterable, Sendable {
        case interactive, moderate
        /// The smallest cost libsodium allows: tests and load runs only.
        case minimum
    }

    /// `a, b or c`: the values an enumerated option takes, for its help and its errors.
    static func choices<E: CaseIterable & RawRepresentable>(_: E.Type) -> String where E.RawValue == String {
        let names = E.allCases.map(\.rawValue)
        return names.count > 1 ? names.dropLast().joined(separator: ", ") + " or " + names.last! : names.joined()
    }

    /// Parses an enumerated option; the error lists every valid value.
    static func choice<E: CaseIterable & RawRepresentable>(_ value: String, _ option: String, _: E.Type) throws(RelayConfigurationError) -> E
    where E.RawValue == String {
        guard let e = E(rawValue: value) else { throw .invalidValue(option: option, value: value, expected: "one of " + choices(E.self)) }
        return e
    }

    /// The origin this node advertises in a cluster (``advertise`` or its default).
    public var advertisedOrigin: String {
        if let advertise { return advertise }
        return "\(isTLS ? "wss" : "ws")://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }

    // MARK: - Options table

    public struct Option: Sendable {
        public let name: String
        public let help: String
        let apply: @Sendable (inout RelayConfiguration, String) throws(RelayConfigurationError) -> Void
        let current: @Sendable (RelayConfiguration) -> String
    }

    public static let options: [Option] = [
        .init(
            name: "listen", help: "HOST:PORT to listen on for WebSocket, /healthz and /metrics",
            apply: { c, v throws(RelayConfigurationError) in
                let (h, p) = try parseHostPort(v, option: "listen"); c.host = h; c.port = p
            }, current: { "\($0.host.contains(":") ? "[\($0.host)]" : $0.host):\($0.port)" }),
        .init(
            name: "media-listen", help: "HOST:PORT for UDP media; same (the listen host and port, the default) or off",
            apply: { c, v throws(RelayConfigurationError) in
                switch v {
                case "off": c.mediaEnabled = false; c.mediaHost = nil; c.mediaPort = nil
                case "same": c.mediaEnabled = true; c.mediaHost = nil; c.mediaPort = nil
                default:
                    let (h, p) = try parseHostPort(v, option: "media-listen"); c.mediaEnabled = true; c.mediaHost = h; c.mediaPort = p
                }
            },
            current: { c in
                guard c.mediaEnabled else { return "off" }
                guard let h = c.mediaHost, let p = c.mediaPort else { return "same" }
                return "\(h.contains(":") ? "[\(h)]" : h):\(p)"
            }),
        int("media-threads", "UDP media sockets, each with a thread of its own; 0 = one per core", 0...64, \.mediaThreads),
        int("media-path-timeout-seconds", "a client's UDP path silent this long falls back to its WebSocket", 2...120, \.mediaPathTimeoutSeconds),
        .init(
            name: "tls-cert", help: "PEM certificate chain; with --tls-key, serve wss://", apply: { c, v in c.tlsCertificatePath = v },
            current: { $0.tlsCertificatePath ?? "none" }),
        .init(name: "tls-key", help: "PEM private key for --tls-cert", apply: { c, v in c.tlsKeyPath = v }, current: { $0.tlsKeyPath ?? "none" }),
        .init(
            name: "allow-plaintext", help: "allow plaintext ws:// on a non-loopback address (true/false)",
            apply: { c, v throws(RelayConfigurationError) in c.allowPlaintext = try bool(v, "allow-plaintext") }, current: { "\($0.allowPlaintext)" }),
        .init(
            name: "log-level", help: choices(LogLevel.self),
            apply: { c, v throws(RelayConfigurationError) in
                c.logLevel = try choice(v, "log-level", LogLevel.self)
            }, current: { $0.logLevel.rawValue }),
        int("max-rooms", "rooms open at once", 1...100_000, \.maxRooms),
        int("max-connections", "connections at once, counted from TCP accept (before the WebSocket upgrade too)", 1...1_000_000, \.maxConnections),
        int(
            "max-pending-connections-per-address", "connections from one address not yet upgraded to a WebSocket", 1...100_000,
            \.maxPendingConnectionsPerAddress),
        int("max-participants-per-room", "cap on a room's max participants", 1...Int(MessageLimits.maximumParticipants), \.maxParticipantsPerRoom),
        int("max-waiting-per-room", "cap on a room's waiting room", 0...Int(MessageLimits.maximumWaiting), \.maxWaitingPerRoom),
        int("max-frames-per-second", "frames per second per connection", 1...1_000_000, \.maxFramesPerSecond),
        int("max-bytes-per-second", "frame bytes per second per connection", 1_000...1_000_000_000, \.maxBytesPerSecond),
        int("max-control-per-second", "control messages per second per connection", 1...10_000, \.maxControlPerSecond),
        int("max-audio-frame-bytes", "audio frame payload limit", 1...FrameKind.audio.payloadLimit, \.maxAudioFrameBytes),
        int("max-screen-frame-bytes", "screen frame payload limit", 1...FrameKind.screen.payloadLimit, \.maxScreenFrameBytes),
        int("max-chat-frame-bytes", "chat frame payload limit", 1...FrameKind.chat.payloadLimit, \.maxChatFrameBytes),
        int("max-control-frame-bytes", "control frame payload limit", 1...FrameKind.control.payloadLimit, \.maxControlFrameBytes),
        int("max-keys-frame-bytes", "key package frame payload limit", 1...FrameKind.keys.payloadLimit, \.maxKeysFrameBytes),
        int("join-attempts-per-address-per-minute", "join attempts per source address per minute", 1...100_000, \.joinAttemptsPerAddressPerMinute),
        int(
            "password-failures-per-address-per-minute", "wrong passwords per address per minute before rate_limited", 1...10_000,
            \.passwordFailuresPerAddressPerMinute),
        int(
            "password-failures-per-room-per-minute", "wrong passwords per room per minute after which wrong ones are answered 2 s late", 1...100_000,
            \.passwordFailuresPerRoomPerMinute),
        int("room-creations-per-address-per-minute", "CREATE_ROOM messages per source address per minute", 1...100_000, \.roomCreationsPerAddressPerMinute),
        .init(
            name: "exempt-addresses", help: "comma-separated source addresses the per-address limits skip (e.g. a load generator's 127.0.0.1); none by default",
            apply: { c, v throws(RelayConfigurationError) in
                let list = v.split(separator: ",").map { String($0.filter { $0 != " " }) }.filter { !$0.isEmpty && $0 != "none" }
                for a in list where !a.allSatisfy({ $0.isHexDigit || $0 == "." || $0 == ":" }) {
                    throw .invalidValue(option: "exempt-addresses", value: a, expected: "IPv4 or IPv6 addresses, comma-separated")
                }
                c.exemptAddresses = Set(list)
            }, current: { $0.exemptAddresses.isEmpty ? "none" : $0.exemptAddresses.sorted().joined(separator: ",") }),
        .init(
            name: "password-hashing", help: "Argon2id cost: \(choices(PasswordHashing.self)) (tests only)",
            apply: { c, v throws(RelayConfigurationError) in
                c.passwordHashing = try choice(v, "password-hashing", PasswordHashing.self)
            }, current: { $0.passwordHashing.rawValue }),
        .init(
            name: "cluster", help: "redis://HOST:PORT of the Redis a cluster of relays shares; off (the default) runs a single relay",
            apply: { c, v throws(RelayConfigurationError) in
                if v == "off" { c.clusterRedisURL = nil; return }
                guard v.hasPrefix("redis://"), v.utf8.count <= 1024, v.count > 8, !v.contains(where: { $0.isWhitespace }) else {
                    throw .invalidValue(option: "cluster", value: v, expected: "redis://HOST:PORT or off")
                }
                c.clusterRedisURL = v
            }, current: { $0.clusterRedisURL.map(redactRedisURL) ?? "off" }),
        .init(
            name: "node-id", help: "this node's id in the cluster: 1-64 of A-Z a-z 0-9 . _ -; random (the default) when unset",
            apply: { c, v throws(RelayConfigurationError) in
                if v == "random" { c.nodeID = nil; return }
                guard (1...64).contains(v.utf8.count),
                    v.utf8.allSatisfy({
                        $0 < 0x80 && (Character(UnicodeScalar($0)).isLetter || Character(UnicodeScalar($0)).isNumber || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D)
                    })
                else {
                    throw .invalidValue(option: "node-id", value: v, expected: "1-64 characters from A-Z a-z 0-9 . _ -")
                }
                c.nodeID = v
            }, current: { $0.nodeID ?? "random" }),
        .init(
            name: "advertise", help: "ws[s]://HOST:PORT clients are redirected to for this node; default: the listen address",
            apply: { c, v throws(RelayConfigurationError) in
                if v == "listen" { c.advertise = nil; return }
                guard let parts = RedirectMessage.parseOrigin(v.utf8) else {
                    throw .invalidValue(option: "advertise", value: v, expected: "ws://HOST:PORT or wss://HOST:PORT")
                }
                c.advertise = Invite.relayOrigin(secure: parts.secure, host: parts.host, port: parts.port)
            }, current: { $0.advertise ?? "listen" }),
        .init(
            name: "cluster-key-file", help: "file with the cluster key (32+ bytes, the same on every node); required with --cluster",
            apply: { c, v in
                c.clusterKeyFile = v == "none" ? nil : v
            }, current: { $0.clusterKeyFile ?? "none" }),
        int("cluster-node-timeout-seconds", "a node silent this long is dead to the others and its rooms may move", 2...60, \.clusterNodeTimeoutSeconds),
        int("drain-grace-seconds", "in a cluster, how long SIGTERM waits for the node's rooms to move before exiting", 0...3600, \.drainGraceSeconds),
        int("idle-timeout-seconds", "close a connection that sends nothing for this long", 1...86_400, \.idleTimeoutSeconds),
        int(
            "handshake-timeout-seconds", "close a connection that has not joined or created a room this long after TCP accept", 1...600,
            \.handshakeTimeoutSeconds),
        int(
            "outbound-media-queue-bytes", "queued bytes per client above which its audio/screen frames are dropped", 1_024...1_073_741_824,
            \.outboundMediaQueueBytes),
        int("outbound-queue-bytes", "queued bytes per client above which it is disconnected (too_slow)", 4_096...1_073_741_824, \.outboundQueueBytes),
        int("shutdown-grace-seconds", "time clients get to receive shutting_down on SIGTERM", 0...60, \.shutdownGraceSeconds),
    ]

    private static func int(_ name: String, _ help: String, _ range: ClosedRange<Int>, _ path: WritableKeyPath<RelayConfiguration, Int> & Sendable) -> Option {
        Option(
            name: name, help: "\(help) (\(range.lowerBound)…\(range.upperBound))",
            apply: { c, v throws(RelayConfigurationError) in
                guard let n = Int(v), range.contains(n) else {
                    throw .invalidValue(option: name, value: v, expected: "an integer in \(range.lowerBound)…\(range.upperBound)")
                }
                c[keyPath: path] = n
            }, current: { "\($0[keyPath: path])" })
    }

    /// Sets one option by name.
    public mutating func set(_ name: String, to value: String) throws(RelayConfigurationError) {
        guard let option = Self.options.first(where: { $0.name == name }) else { throw .unknownOption(name) }
        try option.apply(&self, value)
    }

    /// The current value of every option, for `--help` and the startup log.
    public var summary: [(name: String, value: String)] { Self.options.map { ($0.name, $0.current(self)) } }

    /// Applies `CONCLAVE_RELAY_*` variables (e.g. `CONCLAVE_RELAY_MAX_ROOMS`).
    public mutating func applyEnvironment(_ environment: [String: String]) throws(RelayConfigurationError) {
        for option in Self.options {
            let key = "CONCLAVE_RELAY_" + option.name.uppercased().replacingHyphens()
            if let value = environment[key] { try option.apply(&self, value) }
        }
    }

    /// The largest config file read (1 MiB).
    public static let maximumFileBytes = 1_048_576

    /// Applies a JSON config file's flat object of option names to strings, numbers or booleans.
    public mutating func applyJSONFile(contents: [UInt8], path: String) throws(RelayConfigurationError) {
        guard contents.count <= Self.maximumFileBytes else { throw .badFile(path: path, reason: "larger than 1 MiB") }
        let object: [(String, String)]
        do { object = try FlatJSON.parseObject(contents) } catch { throw .badFile(path: path, reason: error.description) }
        for (key, value) in object { try set(key, to: value) }
    }

    // MARK: - Derived values

    public var isTLS: Bool { tlsCertificatePath != nil && tlsKeyPath != nil }

    public var isLoopbackHost: Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// Checks combinations that single options cannot.
    public func validate() throws(RelayConfigurationError) {
        if (tlsCertificatePath == nil) != (tlsKeyPath == nil) { throw .tlsIncomplete }
        if !isTLS && !isLoopbackHost && !allowPlaintext {
            throw .plaintextRefused(host: host, port: port)
        }
        if clusterRedisURL != nil {
            guard clusterKeyFile != nil else {
                throw .invalidValue(option: "cluster-key-file", value: "none", expected: "a key file: every node of a cluster needs the same one")
            }
            if advertise == nil, host == "0.0.0.0" || host == "::" {
                throw .invalidValue(option: "advertise", value: "listen", expected: "an address clients can reach; \(host) is a wildcard")
            }
        }
        if outboundMediaQueueBytes > outboundQueueBytes {
            throw .invalidValue(
                option: "outbound-media-queue-bytes", value: "\(outboundMediaQueueBytes)", expected: "at most outbound-queue-bytes (\(outboundQueueBytes))")
        }
    }

    public var passwordLimits: PasswordHash.Limits {
        switch passwordHashing {
        case .interactive: return .interactive
        case .moderate: return .moderate
        case .minimum: return .minimum
        }
    }

    package func payloadLimit(_ kind: FrameKind) -> Int {
        switch kind {
        case .audio: return maxAudioFrameBytes
        case .screen: return maxScreenFrameBytes
        case .chat: return maxChatFrameBytes
        case .control: return maxControlFrameBytes
        case .keys: return maxKeysFrameBytes
        }
    }

    static func bool(_ v: String, _ name: String) throws(RelayConfigurationError) -> Bool {
        switch v.lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: throw .invalidValue(option: name, value: v, expected: "true or false")
        }
    }

    /// `HOST:PORT` where HOST is a host name (letters, digits, `-`, `.`, `_`; at most 253
    /// characters), an IPv4 address, or an IPv6 address in brackets (with an optional
    /// `%zone`), and PORT is 0–65535. Anything else is refused, so what `summary` prints
    /// reads back to the same value.
    static func parseHostPort(_ v: String, option: String) throws(RelayConfigurationError) -> (String, Int) {
        let invalid = RelayConfigurationError.invalidValue(
            option: option, value: v,
            expected: "HOST:PORT: a host name, an IPv4 address or a bracketed IPv6 address, and a port from 0 to 65535")
        let host: Substring, port: Substring
        if v.hasPrefix("[") {
            guard let close = v.firstIndex(of: "]") else { throw invalid }
            host = v[v.index(after: v.startIndex)..<close]
            let rest = v[v.index(after: close)...]
            guard rest.hasPrefix(":") else { throw invalid }
            port = rest.dropFirst()
            let parts = host.split(separator: "%", maxSplits: 1, omittingEmptySubsequences: false)
            guard host.contains(":"), parts[0].allSatisfy({ $0.isASCII && ($0.isHexDigit || $0 == ":" || $0 == ".") }),
                parts.count == 1 || (!parts[1].isEmpty && parts[1].allSatisfy(isHostNameCharacter))
            else { throw invalid }
        } else {
            guard let colon = v.lastIndex(of: ":") else { throw invalid }
            host = v[..<colon]; port = v[v.index(after: colon)...]
            guard host.count <= 253, host.allSatisfy(isHostNameCharacter) else { throw invalid }
        }
        guard !host.isEmpty, port.allSatisfy({ $0.isASCII && $0.isNumber }), let p = Int(port), (0...65535).contains(p) else {
            throw invalid
        }
        return (String(host), p)
    }

    private static func isHostNameCharacter(_ c: Character) -> Bool {
        c.isASCII && (c.isLetter || c.isNumber || c == "-" || c == "." || c == "_")
    }
}

public enum RelayConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    case unknownOption(String)
    case invalidValue(option: String, value: String, expected: String)
    case badFile(path: String, reason: String)
    case tlsIncomplete
    case plaintextRefused(host: String, port: Int)

    public var description: String {
        switch self {
        case let .unknownOption(n): return "unknown option '\(n)'"
        case let .invalidValue(o, v, e): return "invalid value '\(v.prefix(64))' for \(o): expected \(e)"
        case let .badFile(p, r): return "cannot use config file \(p): \(r)"
        case .tlsIncomplete: return "--tls-cert and --tls-key must be given together"
        case let .plaintextRefused(h, p):
            return
                "refusing to listen in plaintext on \(h):\(p): anyone on the network could read room ids and metadata and impersonate the relay; give --tls-cert and --tls-key, or --allow-plaintext if a TLS proxy sits in front"
        }
    }
}

/// A Redis URL with its password replaced by `***`.
func redactRedisURL(_ url: String) -> String {
    guard let at = url.lastIndex(of: "@") else { return url }
    return "redis://***" + url[at...]
}

extension String {
    func replacingHyphens() -> String { String(map { $0 == "-" ? "_" : $0 }) }
}
