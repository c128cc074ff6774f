/// Identifies one client connection to the relay for as long as the relay runs.
///
/// Chosen by the caller (the network layer), never reused while the relay runs, and
/// meaningless outside this process: it never travels on the wire.
public struct ConnectionID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(_ rawValue: UInt64) {
        self.rawValue = rawValue
    }

    public static func < (lhs: ConnectionID, rhs: ConnectionID) -> Bool { lhs.rawValue < rhs.rawValue }

    /// `conn#42`.
    public var description: String { "conn#\(rawValue)" }
}

/// Milliseconds on a monotonic clock, supplied by the caller.
///
/// The policy types in this folder never read a clock: every method that depends on time
/// takes `now` as an argument, so tests drive time explicitly. Only differences between
/// readings are meaningful; the origin is the caller's.
public typealias RelayMillis = UInt64
