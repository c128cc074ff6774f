/// Where Redis listens: parsed from `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`.
///
/// The password is kept for `AUTH` and never appears in `description`.
public struct RedisEndpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var username: String?
    public var password: String?
    public var database: Int

    public init(host: String, port: Int = 6379, username: String? = nil, password: String? = nil, database: Int = 0) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
    }

    /// Parses a `redis://` URL. TLS (`rediss://`) is not supported: run Redis on a trusted
    /// network or loopback (what the cluster stores is listed in the README's PRIVACY section).
    public init(url: String) throws {
        guard url.hasPrefix("redis://") else {
            throw RedisError.badURL(url.hasPrefix("rediss://") ? "rediss:// (TLS) is not supported" : "it must start with redis://")
        }
        guard url.utf8.count <= 1024 else { throw RedisError.badURL("longer than 1024 bytes") }
        var rest = Substring(url.dropFirst("redis://".count))
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            let db = rest[rest.index(after: slash)...]
            if !db.isEmpty {
                guard let n = Int(db), (0...65_535).contains(n) else { throw RedisError.badURL("the database must be a number 0-65535") }
                database = n
            }
            rest = rest[..<slash]
        }
        var username: String?, password: String?
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userinfo.firstIndex(of: ":") {
                let user = userinfo[..<colon]
                username = user.isEmpty ? nil : String(user)
                password = String(userinfo[userinfo.index(after: colon)...])
            } else {
                password = String(userinfo)
            }
        }
        var host = String(rest), port = 6379
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw RedisError.badURL("unterminated [IPv6] host") }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let tail = rest[rest.index(after: close)...]
            if !tail.isEmpty {
                guard tail.hasPrefix(":"), let p = Int(tail.dropFirst()), (1...65_535).contains(p) else { throw RedisError.badURL("bad port") }
                port = p
            }
        } else if let colon = rest.lastIndex(of: ":") {
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65_535).contains(p) else { throw RedisError.badURL("bad port") }
            port = p
            host = String(rest[..<colon])
        }
        guard !host.isEmpty, host.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") }) else {
            throw RedisError.badURL("missing or malformed host")
        }
        self.init(host: host, port: port, username: username, password: password, database: database)
    }

    public var description: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return "redis://\(password == nil ? "" : "***@")\(h):\(port)\(database == 0 ? "" : "/\(database)")"
    }
}

/// Exponential backoff with full jitter between reconnection attempts.
public struct ReconnectBackoff: Sendable, Equatable {
    public var initial: Duration
    public var maximum: Duration

    public init(initial: Duration = .milliseconds(50), maximum: Duration = .seconds(2)) {
        self.initial = initial
        self.maximum = maximum
    }

    /// The wait before attempt `attempt` (0 is the first retry): uniform in
    /// [ceiling / 2, ceiling], where ceiling = min(maximum, initial · 2^attempt). `unit` is
    /// a random number in [0, 1), injected so that tests can fix it.
    public func delay(attempt: Int, unit: Double) -> Duration {
        let shift = min(attempt, 30)
        let ceilingNanos = min(Double(maximum.nanoseconds), Double(initial.nanoseconds) * Double(1 << shift))
        let jittered = ceilingNanos / 2 + ceilingNanos / 2 * min(max(unit, 0), 1)
        return .nanoseconds(Int64(jittered))
    }
}

extension Duration {
    /// Whole nanoseconds (saturating). Shared with the relay's cluster code (`package`).
    package var nanoseconds: Int64 {
        let c = components
        let (s, o) = c.seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return o ? .max : s &+ c.attoseconds / 1_000_000_000
    }
}
