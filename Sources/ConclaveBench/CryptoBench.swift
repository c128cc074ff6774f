import ConclaveCrypto
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Frame-encryption throughput: Conclave's ``XChaChaFrameCipher`` against libsodium in one
/// process; the benchmark package (`Benchmarks/`, `crypto-compare`) adds swift-crypto and
/// an allocating convenience wrapper as further ``Contender``s.
///
/// ## What is measured
/// For each frame size (default 64, 160 and 1200 bytes: a 20 ms Opus packet at about 24
/// and 64 kbit/s, and a full-MTU video packet) and each ``Contender``, frames are sealed and then
/// opened again with a 22-byte AAD (the size of Conclave's SFrame metadata). The figure
/// reported is round trips per second: frames sealed *and* opened, per second of the time
/// spent in seal plus open. Seal-only and open-only rates come from the same run, timed
/// separately.
///
/// ## How
/// - Every path works on a batch of ``Configuration/batchSize`` frames (64 by default):
///   seal all of them, read the clock, open all of them, read the clock. Every frame of a
///   batch gets its own counter nonce. The cost of one clock read (median of back-to-back
///   reads, measured at the start of the run and shown in the report) is subtracted from
///   every interval; without that, the thread CPU clock (a system call, about 0.4 µs on
///   the development VM) would add about 1.5 % to a 64-byte seal.
/// - The clock is, by default, the thread's CPU time (``TimingClock/threadCPUTime``): on a
///   shared machine the time the thread spends descheduled is not charged to whichever path
///   happened to be running. How long a measurement lasts is still wall-clock time, so a
///   loaded machine makes fewer samples, not a longer run.
/// - Everything a path needs (keys, buffers, arrays to hold results) is set up before
///   timing. What is timed is only what that API costs per frame, including, for the
///   swift-crypto and allocating paths, the allocations their APIs make by design.
/// - Before timing, every path and size passes a check: a sealed frame differs from its
///   plaintext, opens back to it, and fails to open after one bit is flipped; the
///   frame-cipher output is byte-identical to libsodium's for the same key and nonce. After
///   every measurement, every frame of the batch must have opened back to the plaintext.
///   A failure throws ``CryptoBenchError``; a broken path never produces a figure.
/// - Each path and size is warmed up for ``Configuration/warmupDuration``, then measured
///   for ``Configuration/measurementDuration`` in each of ``Configuration/rounds`` rounds.
///   Within a round all paths of a size run back to back, and the order of the paths
///   rotates from round to round, so that slow phases of a noisy machine hit every path.
/// - The reported rate is the median over rounds. The ratio to libsodium is the median of
///   the per-round ratios (each path against the libsodium run of the same round), which
///   cancels most of the machine's drift between rounds; it can therefore differ slightly
///   from the quotient of the two medians.
/// - Single thread, the caller's. Build with `-c release`; a debug build is flagged in the report.
/// - What it cannot remove: another process on the same core's SMT sibling, or evicting
///   the caches, slows every path that runs at that moment. The per-round `spread` in the
///   report shows how much that happened.
public enum CryptoBench {
    /// The name of one way of sealing and opening a frame (a report's key).
    public struct Path: Hashable, Sendable, Codable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(rawValue)
        }
        public var description: String { rawValue }

        /// Conclave's ``XChaChaFrameCipher``: HChaCha20 subkey cached per key, in place on
        /// preallocated buffers, counter nonce suffix. Allocates nothing.
        public static let frameCipher = Path("frame-cipher")
        /// `crypto_aead_xchacha20poly1305_ietf_encrypt` / `_decrypt` called directly, in
        /// place on preallocated buffers, 24-byte counter nonce. The C baseline every ratio
        /// refers to. Derives the HChaCha20 subkey on every call.
        public static let libsodium = Path("libsodium")
    }

    /// A path and how to build its runner for one frame size and batch. The product has
    /// ``Contender/frameCipher`` and ``Contender/libsodium``; the benchmark package adds
    /// swift-crypto's `ChaChaPoly` and an allocating wrapper as comparisons.
    public struct Contender: Sendable, Equatable {
        public let path: Path
        let make: @Sendable (BenchInputs, Int) throws(CryptoBenchError) -> any RoundTripPath

        public init(path: Path, make: @escaping @Sendable (BenchInputs, Int) throws(CryptoBenchError) -> any RoundTripPath) {
            self.path = path
            self.make = make
        }

        public func makeRunner(inputs: BenchInputs, batch: Int) throws(CryptoBenchError) -> any RoundTripPath {
            try make(inputs, batch)
        }

        public static func == (a: Contender, b: Contender) -> Bool { a.path == b.path }
    }

    /// What to measure and for how long. The defaults take about 13 seconds.
    public struct Configuration: Sendable, Equatable {
        /// Plaintext sizes in bytes, 1 to 1 MiB. Default: 64, 160, 1200.
        public var sizes: [Int]
        /// Additional authenticated data per frame, in bytes. Default: 22.
        public var aadLength: Int
        /// Timed duration of one measurement (one path, one size, one round). Default: 200 ms.
        public var measurementDuration: Duration
        /// Number of interleaved rounds; the median is reported. Default: 5.
        public var rounds: Int
        /// Untimed warm-up per path and size, before the first round. Default: 50 ms.
        public var warmupDuration: Duration
        /// Frames sealed (then opened) between two clock reads. Default: 64.
        public var batchSize: Int
        /// The clock rates are computed from. Default: ``TimingClock/threadCPUTime``.
        public var timingClock: TimingClock
        /// The paths compared; must include ``Contender/libsodium`` (the baseline).
        /// Default: ``Contender/standard``.
        public var contenders: [Contender]

        public init(
            sizes: [Int] = [64, 160, 1200], aadLength: Int = 22,
            measurementDuration: Duration = .milliseconds(200), rounds: Int = 5,
            warmupDuration: Duration = .milliseconds(50), batchSize: Int = 64,
            timingClock: TimingClock = .threadCPUTime, contenders: [Contender] = Contender.standard
        ) {
            self.sizes = sizes
            self.aadLength = aadLength
            self.measurementDuration = measurementDuration
            self.rounds = rounds
            self.warmupDuration = warmupDuration
            self.batchSize = batchSize
            self.timingClock = timingClock
            self.contenders = contenders
        }

        /// Approximate wall-clock time of a run with this configuration.
        public var estimatedDuration: Duration {
            (warmupDuration + measurementDuration * rounds) * (sizes.count * contenders.count)
        }

        func validate() throws(CryptoBenchError) {
            guard !sizes.isEmpty, sizes.allSatisfy({ (1...1 << 20).contains($0) }) else {
                throw .invalidConfiguration("sizes must be 1 to 1048576 bytes, and at least one")
            }
            guard (0...4096).contains(aadLength) else { throw .invalidConfiguration("aadLength must be 0 to 4096") }
            guard rounds >= 1 else { throw .invalidConfiguration("rounds must be at least 1") }
            guard measurementDuration > .zero else { throw .invalidConfiguration("measurementDuration must be positive") }
            guard warmupDuration >= .zero else { throw .invalidConfiguration("warmupDuration must not be negative") }
            guard (1...4096).contains(batchSize) else { throw .invalidConfiguration("batchSize must be 1 to 4096") }
            guard contenders.contains(.libsodium) else { throw .invalidConfiguration("the libsodium path (the baseline) must be among the contenders") }
            guard Set(contenders.map(\.path)).count == contenders.count else { throw .invalidConfiguration("a path appears twice") }
        }
    }

    /// The clock that seal and open times are read from.
    public enum TimingClock: String, Sendable, Equatable {
        /// CPU time of the measuring thread (`CLOCK_THREAD_CPUTIME_ID`): excludes time the
        /// thread was not running. A system call per read (about 0.1–0.3 µs), two per batch.
        case threadCPUTime = "thread-cpu-time"
        /// Monotonic wall-clock time (`CLOCK_MONOTONIC`). Right on a quiet, dedicated machine.
        case wallClock = "wall-clock"

        /// Nanoseconds since an arbitrary origin.
        @inline(__always)
        func nanoseconds() -> UInt64 {
            var ts = timespec()
            clock_gettime(self == .threadCPUTime ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts)
            return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
        }

        /// What one read costs, as seen between two reads: the median difference of 1000
        /// back-to-back pairs.
        func readCost() -> UInt64 {
            var deltas = [UInt64](repeating: 0, count: 1000)
            for i in deltas.indices {
                let a = nanoseconds()
                let b = nanoseconds()
                deltas[i] = b &- a
            }
            deltas.sort()
            return deltas[deltas.count / 2]
        }
    }

    // MARK: - Running

    /// Runs the whole benchmark on the calling thread and returns the report.
    ///
    /// Throws ``CryptoBenchError`` for an invalid configuration, or when any path fails its
    /// round-trip checks (see the type's documentation); nothing is measured then.
    public static func run(_ configuration: Configuration = Configuration()) throws(CryptoBenchError) -> CryptoBenchReport {
        try configuration.validate()
        Sodium.ensureInitialized()
        let contenders = configuration.contenders
        let paths = contenders.map(\.path)
        let clockReadCost = configuration.timingClock.readCost()

        // Set up, check and warm up every (size, path) before the first timed round.
        var runners: [[any RoundTripPath]] = []
        for size in configuration.sizes {
            let inputs = BenchInputs.random(plaintextLength: size, aadLength: configuration.aadLength)
            try checkAllPaths(contenders, inputs: inputs)
            var row: [any RoundTripPath] = []
            for contender in contenders {
                let path = contender.path
                let runner = try contender.makeRunner(inputs: inputs, batch: configuration.batchSize)
                _ = try measure(
                    runner, path: path, size: size, configuration: configuration,
                    for: configuration.warmupDuration, clockReadCost: clockReadCost)
                row.append(runner)
            }
            runners.append(row)
        }

        // samples[size][path][round]
        var samples = Array(repeating: Array(repeating: [Sample](), count: paths.count), count: configuration.sizes.count)
        for round in 0..<configuration.rounds {
            for (s, size) in configuration.sizes.enumerated() {
                for k in 0..<paths.count {
                    let p = (k + round) % paths.count
                    let sample = try measure(
                        runners[s][p], path: paths[p], size: size, configuration: configuration,
                        for: configuration.measurementDuration, clockReadCost: clockReadCost)
                    samples[s][p].append(sample)
                }
            }
        }

        let baseline = paths.firstIndex(of: .libsodium)!
        let results = configuration.sizes.enumerated().map { s, size in
            CryptoBenchReport.SizeResult(
                plaintextLength: size,
                paths: paths.enumerated().map { p, path in
                    CryptoBenchReport.PathResult(path: path, samples: samples[s][p], baseline: samples[s][baseline])
                })
        }
        return CryptoBenchReport(
            configuration: configuration, machine: .current(clockReadNanoseconds: Int(clockReadCost)),
            sizes: results)
    }

    /// One round trip on every path for each size, with the same checks ``run(_:)`` makes
    /// before it measures: a sealed frame is not the plaintext, opens back to it, does not
    /// open after a one-bit change, and the frame cipher's output equals libsodium's.
    /// Takes a few milliseconds; for tests. Throws ``CryptoBenchError`` on any failure.
    public static func quickSelfCheck(
        sizes: [Int] = [64, 160, 1200], aadLength: Int = 22,
        contenders: [Contender] = Contender.standard
    ) throws(CryptoBenchError) {
        try Configuration(sizes: sizes, aadLength: aadLength, contenders: contenders).validate()
        for size in sizes {
            try checkAllPaths(contenders, inputs: BenchInputs.random(plaintextLength: size, aadLength: aadLength))
        }
    }

    // MARK: - Internals

    /// One measurement: frames round-tripped and the time spent sealing and opening them.
    struct Sample {
        var frames = 0
        var sealSeconds = 0.0
        var openSeconds = 0.0

        var roundTripsPerSecond: Double { Double(frames) / (sealSeconds + openSeconds) }
        var sealsPerSecond: Double { Double(frames) / sealSeconds }
        var opensPerSecond: Double { Double(frames) / openSeconds }
    }

    /// Seals and opens batches until `duration` of wall-clock time has passed, timing seal
    /// and open with the configured clock (less `clockReadCost` per interval); then checks
    /// that every frame of the last batch opened back to the plaintext.
    static func measure(
        _ runner: any RoundTripPath, path: Path, size: Int, configuration: Configuration,
        for duration: Duration, clockReadCost: UInt64
    ) throws(CryptoBenchError) -> Sample {
        let timer = configuration.timingClock
        let deadline = TimingClock.wallClock.nanoseconds() &+ UInt64(duration.seconds * 1e9)
        var sealNanoseconds: UInt64 = 0, openNanoseconds: UInt64 = 0
        var frames = 0
        repeat {
            let t0 = timer.nanoseconds()
            try runner.sealBatch()
            let t1 = timer.nanoseconds()
            try runner.openBatch()
            let t2 = timer.nanoseconds()
            sealNanoseconds &+= (t1 &- t0) - min(clockReadCost, t1 &- t0)
            openNanoseconds &+= (t2 &- t1) - min(clockReadCost, t2 &- t1)
            frames += configuration.batchSize
        } while TimingClock.wallClock.nanoseconds() < deadline
        guard runner.openedMatchReference() else {
            throw .roundTripFailed(path: path, size: size, reason: "opened frames differ from the plaintext")
        }
        return Sample(frames: frames, sealSeconds: Double(sealNanoseconds) * 1e-9, openSeconds: Double(openNanoseconds) * 1e-9)
    }

    /// Runs ``check(_:inputs:)`` on every path and compares frame-cipher with libsodium.
    static func checkAllPaths(_ contenders: [Contender], inputs: BenchInputs) throws(CryptoBenchError) {
        var firstFrames: [Path: [UInt8]] = [:]
        for contender in contenders {
            firstFrames[contender.path] = try check(contender, inputs: inputs)
        }
        guard firstFrames[.frameCipher] == nil || firstFrames[.frameCipher] == firstFrames[.libsodium] else {
            throw .roundTripFailed(
                path: .frameCipher, size: inputs.plaintext.count,
                reason: "output differs from libsodium's XChaCha20-Poly1305 for the same key and nonce")
        }
    }

    /// Seal, open, and a forgery attempt on a one-frame runner. Returns the first sealed frame.
    static func check(_ contender: Contender, inputs: BenchInputs) throws(CryptoBenchError) -> [UInt8] {
        let size = inputs.plaintext.count, path = contender.path
        let runner = try contender.makeRunner(inputs: inputs, batch: 1)
        try runner.sealBatch()
        let sealed = runner.sealedBytes(0)
        guard sealed.count == size + FrameSlots.tagLength else {
            throw .roundTripFailed(path: path, size: size, reason: "sealed frame is \(sealed.count) bytes, expected \(size + FrameSlots.tagLength)")
        }
        guard !sealed.prefix(size).elementsEqual(inputs.plaintext) else {
            throw .roundTripFailed(path: path, size: size, reason: "seal left the plaintext unencrypted")
        }
        try runner.openBatch()
        guard runner.openedMatchReference() else {
            throw .roundTripFailed(path: path, size: size, reason: "opened frame differs from the plaintext")
        }
        try runner.sealBatch()
        runner.corrupt(0)
        do {
            try runner.openBatch()
        } catch {
            return sealed
        }
        throw .roundTripFailed(path: path, size: size, reason: "a frame with a flipped ciphertext bit was accepted")
    }
}

/// Why ``CryptoBench`` could not produce a figure. Carries no key material or plaintext.
public enum CryptoBenchError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidConfiguration(String)
    /// A path could not be set up (e.g. a key was rejected).
    case setupFailed(path: CryptoBench.Path, reason: String)
    /// A path failed a check: wrong output, accepted a forgery, or threw while sealing or opening.
    case roundTripFailed(path: CryptoBench.Path, size: Int, reason: String)

    public var description: String {
        switch self {
        case let .invalidConfiguration(reason): "invalid crypto bench configuration: \(reason)"
        case let .setupFailed(path, reason): "crypto bench path \(path.rawValue) could not be set up: \(reason)"
        case let .roundTripFailed(path, size, reason): "crypto bench path \(path.rawValue) failed at \(size) bytes: \(reason)"
        }
    }
}

extension Duration {
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) * 1e-18
    }
}
