import NIOCore
import Synchronization
import ConclaveCrypto

/// A point on the relay's monotonic clock: nanoseconds since the clock's origin. Policy
/// decisions that count in milliseconds take ``milliseconds``; nothing else in the relay
/// passes time as a bare integer.
public struct RelayInstant: Comparable, Hashable, Sendable {
    public var nanoseconds: UInt64

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    public static let origin = RelayInstant(nanoseconds: 0)

    /// Whole milliseconds since the origin (rate limiters, room policy).
    public var milliseconds: RelayMillis { nanoseconds / 1_000_000 }

    /// The time from `earlier` to this instant; zero when `earlier` is not earlier.
    public func since(_ earlier: RelayInstant) -> Duration {
        nanoseconds > earlier.nanoseconds ? .nanoseconds(Int64(clamping: nanoseconds - earlier.nanoseconds)) : .zero
    }

    public static func < (a: RelayInstant, b: RelayInstant) -> Bool { a.nanoseconds < b.nanoseconds }

    public static func + (a: RelayInstant, d: Duration) -> RelayInstant {
        let c = d.components
        let ns = UInt64(max(0, c.seconds)) &* 1_000_000_000 &+ UInt64(max(0, c.attoseconds / 1_000_000_000))
        return RelayInstant(nanoseconds: a.nanoseconds &+ ns)
    }
}

/// Where the relay reads the time: the monotonic clock in production, a clock the test
/// moves by hand where time is what a test is about.
public protocol RelayClock: Sendable {
    var now: RelayInstant { get }
}

/// The process's monotonic clock, from when the relay started.
public struct MonotonicRelayClock: RelayClock {
    private let origin = NIODeadline.now().uptimeNanoseconds
    public init() {}
    public var now: RelayInstant { RelayInstant(nanoseconds: NIODeadline.now().uptimeNanoseconds &- origin) }
}

/// A clock that moves only when told (tests).
public final class ManualRelayClock: RelayClock {
    private let current: Mutex<RelayInstant>
    public init(_ start: RelayInstant = .origin) { current = Mutex(start) }
    public var now: RelayInstant { current.withLock { $0 } }
    public func advance(by d: Duration) { current.withLock { $0 = $0 + d } }
}

/// Where the relay draws random bytes (challenges, session ids, hop keys, path tokens):
/// the system's CSPRNG in production; tests may inject a fixed generator.
public struct RelayRandom: Sendable {
    public let bytes: @Sendable (Int) -> [UInt8]
    public init(bytes: @escaping @Sendable (Int) -> [UInt8]) { self.bytes = bytes }
    public static let system = RelayRandom { SecureRandom.bytes(count: $0) }

    func uint64() -> UInt64 { bytes(8).reduce(0) { $0 << 8 | UInt64($1) } }
    func uint32() -> UInt32 { bytes(4).reduce(0) { $0 << 8 | UInt32($1) } }
}
