import NIOCore
import ConclaveProtocol

/// Observes a participant's audio and keys for a load run (`conclave load`).
///
/// With a probe set, received audio is decrypted (all of it, or the frames
/// ``audioArrived(from:)`` selects) and its send timestamp reported, instead of being
/// decoded and mixed: a load runner measures the network and the crypto, not Opus.
/// Methods are called from the participant's actor; implementations must be cheap and
/// thread-safe.
public protocol ParticipantProbe: Sendable {
    /// Whether the participant may send audio now (the runner's measurement gate).
    var mayTalk: Bool { get }
    /// One audio frame went out.
    func audioSent()
    /// An audio `FRAME` arrived. Return false to count it without decrypting it.
    func audioArrived(from sender: UInt16) -> Bool
    /// An audio frame decrypted; `sendTimeMicros` is its sender's ``Participant/monotonicMicros()``.
    func audioDecrypted(from sender: UInt16, sendTimeMicros: UInt64)
    /// An audio frame was dropped by the key ring (a duplicate, a decrypt failure…).
    func audioDropped(from sender: UInt16, reason: ReceiveDrop)
    /// An audio frame sealed under an epoch from before this participant was admitted: not
    /// a failure (a late joiner must not read it, 3.6), but not heard either.
    func audioBeforeJoin(from sender: UInt16)
    /// Keys for `epoch` were installed.
    func epochInstalled(_ epoch: UInt64)
    /// An audio frame decrypted but was dropped as stale: it arrived more than 1 s later
    /// than its sender's frames usually do (``AudioAgeEstimator``).
    func audioStale(from sender: UInt16)
    /// An audio frame dropped as `unknownEpoch` after admission, with the epochs involved
    /// (in addition to ``audioDropped(from:reason:)``).
    func audioUnknownEpoch(from sender: UInt16, _ drop: ParticipantSession.UnknownEpochDrop)
}

extension ParticipantProbe {
    public func audioStale(from sender: UInt16) {}
    public func audioUnknownEpoch(from sender: UInt16, _ drop: ParticipantSession.UnknownEpochDrop) {}
    public func audioBeforeJoin(from sender: UInt16) {}
}

extension Participant {
    /// The system's monotonic clock in microseconds (CLOCK_MONOTONIC on Linux), which every
    /// process on the host shares: audio packets carry it as `send_time_us`, so a receiver
    /// on the same host measures end-to-end latency directly.
    public static func monotonicMicros() -> UInt64 {
        NIODeadline.now().uptimeNanoseconds / 1_000
    }
}
