/// Tells, from the send time each sender stamps on its audio (its own monotonic clock),
/// whether a frame waited too long on its way: in a kernel socket buffer, a relay queue,
/// or a client that fell behind. The clocks of two machines differ by an unknown offset,
/// so the estimator compares each frame's `arrival − send` with the smallest seen from
/// that sender over the last one to two windows (the offset plus the fastest path). A
/// frame more than the limit above that minimum is stale: playing it would only add delay.
///
/// Windows are 30 s: long enough that a standing queue of seconds does not become the new
/// minimum before it is noticed, short enough that clock drift (tens of parts per million)
/// stays far below the limit. The default limit, 1 s, catches standing queues (a full
/// kernel buffer holds seconds) without dropping what a busy machine's scheduling delays;
/// the inbound queue's own 200 ms check handles the rest. Pure value; times are microseconds.
struct AudioAgeEstimator: Sendable {
    let limitMicros: Int64
    let windowMicros: UInt64

    private struct Sender: Sendable {
        var previousMinimum: Int64
        var currentMinimum: Int64
        var windowStart: UInt64
    }

    private var senders: [UInt16: Sender] = [:]

    init(limitMicros: Int64 = 1_000_000, windowMicros: UInt64 = 30_000_000) {
        self.limitMicros = limitMicros
        self.windowMicros = windowMicros
    }

    /// Records the frame and says whether it is stale. The first frames of a sender set
    /// its minimum and are never stale.
    mutating func isStale(sender: UInt16, sendTimeMicros: UInt64, nowMicros: UInt64) -> Bool {
        let delay = Int64(bitPattern: nowMicros &- sendTimeMicros)
        guard var s = senders[sender] else {
            senders[sender] = Sender(previousMinimum: delay, currentMinimum: delay, windowStart: nowMicros)
            return false
        }
        if nowMicros &- s.windowStart >= windowMicros {
            s.previousMinimum = s.currentMinimum
            s.currentMinimum = delay
            s.windowStart = nowMicros
        } else {
            s.currentMinimum = min(s.currentMinimum, delay)
        }
        senders[sender] = s
        let base = min(s.previousMinimum, s.currentMinimum)
        return delay &- base > limitMicros
    }

    /// Forgets a sender (it left).
    mutating func forget(_ sender: UInt16) { senders[sender] = nil }
}
