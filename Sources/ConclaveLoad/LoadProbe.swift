import Histogram
import Synchronization
import NIOCore
import ConclaveClient
import ConclaveProtocol

/// A gate every virtual participant checks before sending: the runner opens it when the
/// measurement starts and closes it when it ends.
final class LoadGate: Sendable {
    let open = Atomic<Bool>(false)
}

/// One room's counters and latency histograms, shared by its participants' probes.
final class RoomStats: Sendable {
    let sent = Atomic<Int>(0)
    let arrived = Atomic<Int>(0)
    let decrypted = Atomic<Int>(0)
    let duplicates = Atomic<Int>(0)
    let failures = Atomic<Int>(0)
    /// ``failures`` by reason (rare: updated under a lock).
    let failureReasons = Mutex<[String: Int]>([:])
    /// `unknown_epoch` failures by what the receiver held (``UnknownEpochCase``; rare).
    let unknownEpochCases = Mutex<[String: Int]>([:])
    /// Sealed under an epoch from before the receiver's admission: not failures, not heard.
    let beforeJoin = Atomic<Int>(0)
    /// Decrypted, then dropped as stale (``AudioAgeEstimator``): counted as lost.
    let stale = Atomic<Int>(0)
    /// End-to-end latency in microseconds: since the last progress line, and in total.
    let latency = Mutex<(interval: Histogram<UInt64>, total: Histogram<UInt64>)>(
        (LoadLatency.makeHistogram(), LoadLatency.makeHistogram()))

    /// Takes the interval histogram (and starts a new one).
    func takeInterval() -> Histogram<UInt64> {
        latency.withLock { pair in
            let taken = pair.interval
            pair.interval = LoadLatency.makeHistogram()
            return taken
        }
    }

    func reset() {
        sent.store(0, ordering: .relaxed)
        arrived.store(0, ordering: .relaxed)
        decrypted.store(0, ordering: .relaxed)
        duplicates.store(0, ordering: .relaxed)
        failureReasons.withLock { $0 = [:] }
        unknownEpochCases.withLock { $0 = [:] }
        beforeJoin.store(0, ordering: .relaxed)
        failures.store(0, ordering: .relaxed)
        stale.store(0, ordering: .relaxed)
        latency.withLock { $0 = (LoadLatency.makeHistogram(), LoadLatency.makeHistogram()) }
    }
}

enum LoadLatency {
    /// 1 µs to 60 s, three significant digits.
    static func makeHistogram() -> Histogram<UInt64> {
        Histogram(lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    }

    static func percentiles(_ h: Histogram<UInt64>) -> LatencyPercentiles {
        guard h.totalCount > 0 else { return .empty }
        func ms(_ v: UInt64) -> Double { Double(v) / 1_000 }
        return LatencyPercentiles(
            count: h.totalCount, p50Ms: ms(h.valueAtPercentile(50)), p90Ms: ms(h.valueAtPercentile(90)),
            p99Ms: ms(h.valueAtPercentile(99)), p999Ms: ms(h.valueAtPercentile(99.9)), maxMs: ms(h.max))
    }
}

/// A virtual participant's ``ParticipantProbe``: counts into its room's stats, samples
/// decryption, paces sending to the requested frame rate, and records when keys arrive.
final class VirtualProbe: ParticipantProbe {
    let room: RoomStats
    let gate: LoadGate
    /// Send on one 20 ms tick in `tickDivisor` (50 frames/s → 1, 25 → 2, …).
    let tickDivisor: Int
    /// Decrypt one arriving frame in `decryptEvery`.
    let decryptEvery: Int
    private let ticks = Atomic<Int>(0)
    private let arrivals = Atomic<Int>(0)
    /// The newest epoch installed and when (monotonic ns); epoch 0 means none yet.
    let keys = Mutex<(epoch: UInt64, at: UInt64, count: Int)>((0, 0, 0))

    init(room: RoomStats, gate: LoadGate, tickDivisor: Int, decryptEvery: Int) {
        self.room = room
        self.gate = gate
        self.tickDivisor = tickDivisor
        self.decryptEvery = decryptEvery
    }

    var mayTalk: Bool {
        guard gate.open.load(ordering: .relaxed) else { return false }
        return ticks.wrappingAdd(1, ordering: .relaxed).oldValue % tickDivisor == 0
    }

    func audioSent() { room.sent.wrappingAdd(1, ordering: .relaxed) }

    func audioArrived(from sender: UInt16) -> Bool {
        room.arrived.wrappingAdd(1, ordering: .relaxed)
        return arrivals.wrappingAdd(1, ordering: .relaxed).oldValue % decryptEvery == 0
    }

    func audioDecrypted(from sender: UInt16, sendTimeMicros: UInt64) {
        room.decrypted.wrappingAdd(1, ordering: .relaxed)
        let now = Participant.monotonicMicros()
        let latency = now > sendTimeMicros ? now - sendTimeMicros : 1
        room.latency.withLock { pair in
            _ = pair.interval.record(latency)
            _ = pair.total.record(latency)
        }
    }

    func audioDropped(from sender: UInt16, reason: ReceiveDrop) {
        switch reason {
        case .replayed: room.duplicates.wrappingAdd(1, ordering: .relaxed)
        default:
            room.failures.wrappingAdd(1, ordering: .relaxed)
            room.failureReasons.withLock { $0["\(reason)", default: 0] += 1 }
        }
    }

    func audioStale(from sender: UInt16) { room.stale.wrappingAdd(1, ordering: .relaxed) }

    func audioUnknownEpoch(from sender: UInt16, _ drop: ParticipantSession.UnknownEpochDrop) {
        let key = UnknownEpochCase(drop).description
        room.unknownEpochCases.withLock { $0[key, default: 0] += 1 }
    }

    func audioBeforeJoin(from sender: UInt16) { room.beforeJoin.wrappingAdd(1, ordering: .relaxed) }

    func epochInstalled(_ epoch: UInt64) {
        let now = NIODeadline.now().uptimeNanoseconds
        keys.withLock { k in
            if epoch > k.epoch || k.count == 0 { k = (epoch, now, k.count + 1) }
        }
    }

    var hasKeys: Bool { keys.withLock { $0.epoch != 0 || $0.count > 0 } }
    var epoch: (epoch: UInt64, at: UInt64) { keys.withLock { ($0.epoch, $0.at) } }
}

/// Why a frame's epoch was unknown to its receiver, as the load summary reports it: the
/// epochs relative to the receiver's current one, and whether the receiver ever held it.
struct UnknownEpochCase: CustomStringConvertible {
    let drop: ParticipantSession.UnknownEpochDrop
    init(_ drop: ParticipantSession.UnknownEpochDrop) { self.drop = drop }

    var description: String {
        let behind = drop.currentEpoch >= drop.frameEpoch ? drop.currentEpoch - drop.frameEpoch : 0
        let held: String
        if let oldest = drop.oldestRetained {
            held =
                drop.frameEpoch < oldest
                ? "older than the oldest it retains (\(drop.currentEpoch - oldest) behind)" : "within its retained range but not held (never installed)"
        } else {
            held = "it retains no previous epoch"
        }
        return "frame epoch \(behind) behind the receiver's current, \(drop.frameEpoch - min(drop.frameEpoch, drop.firstEpoch)) after its first; \(held)"
    }
}
