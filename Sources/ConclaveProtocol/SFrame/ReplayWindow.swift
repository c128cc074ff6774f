/// A sliding replay window over SFrame counters (RFC 9605 §7.5 leaves the policy to the
/// application; this is the IPsec-style bitmap of RFC 4303 §3.4.3).
///
/// Accepts a counter once, and only if it is within ``size`` of the highest counter
/// accepted so far. `check` is separate from `accept` so a frame is only marked after it
/// authenticates: a forged frame must not burn a counter. Fixed size, no allocation.
public struct ReplayWindow: Sendable, Equatable {
    /// Counters older than `highest - size + 1` are rejected as too old.
    public static let size: UInt64 = 1024
    private static let words = 16  // 1024 / 64

    private var highest: UInt64 = 0
    private var started = false
    private var bitmap = InlineArray<16, UInt64>(repeating: 0)

    public init() {}

    public enum Verdict: Sendable, Equatable {
        case fresh
        case duplicate
        case tooOld
    }

    /// Whether `counter` would be accepted. Does not change the window.
    public func check(_ counter: UInt64) -> Verdict {
        guard started else { return .fresh }
        if counter > highest { return .fresh }
        let age = highest - counter
        if age >= Self.size { return .tooOld }
        return bit(counter) ? .duplicate : .fresh
    }

    /// Marks `counter` as received. Call only after the frame authenticated and only if
    /// ``check(_:)`` said `.fresh`.
    public mutating func accept(_ counter: UInt64) {
        if !started {
            started = true
            highest = counter
            setBit(counter)
            return
        }
        if counter > highest {
            let shift = counter - highest
            if shift >= Self.size {
                for i in 0..<Self.words { bitmap[i] = 0 }
            } else {
                // Exactly `shift` (< 1024) bits: counting up to `counter` would wrap and
                // never end when `counter` is 2^64 − 1.
                var c = highest
                for _ in 0..<shift { c &+= 1; clearBit(c) }
            }
            highest = counter
        }
        setBit(counter)
    }

    /// The highest counter accepted so far (nil before the first).
    public var highestAccepted: UInt64? { started ? highest : nil }

    private func bit(_ c: UInt64) -> Bool {
        let i = Int((c % Self.size) / 64), b = c % 64
        return bitmap[i] & (1 << b) != 0
    }

    private mutating func setBit(_ c: UInt64) {
        let i = Int((c % Self.size) / 64), b = c % 64
        bitmap[i] |= 1 << b
    }

    private mutating func clearBit(_ c: UInt64) {
        let i = Int((c % Self.size) / 64), b = c % 64
        bitmap[i] &= ~(1 << b)
    }

    public static func == (lhs: ReplayWindow, rhs: ReplayWindow) -> Bool {
        guard lhs.started == rhs.started, lhs.highest == rhs.highest else { return false }
        for i in 0..<words where lhs.bitmap[i] != rhs.bitmap[i] { return false }
        return true
    }
}
