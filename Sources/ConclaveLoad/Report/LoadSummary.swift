// The values a load run produces. They are plain data: the runner fills them in, and
// `LoadReport` turns them into a progress line, a text table, JSON and an HTML page.

/// What a load run was asked to do.
public struct LoadConfiguration: Sendable, Equatable {
    /// The relay URL the participants connect to.
    public var relay: String
    /// Number of rooms.
    public var rooms: Int
    /// Virtual participants per room.
    public var perRoom: Int
    /// Length of the measured run, in seconds.
    public var durationSeconds: Double
    /// Time over which participants are started, in seconds.
    public var rampSeconds: Double
    /// Media transport: `"udp"` or `"ws"`.
    public var transport: String
    /// Audio frames each participant sends per second.
    public var audioFPS: Int
    /// Payload bytes per audio frame.
    public var frameBytes: Int
    /// Which received frames are decrypted: `"all"` or `"sample:N"`.
    public var decrypt: String
    /// Members per room that send audio (the others only listen).
    public var talkers: Int

    public init(
        relay: String,
        rooms: Int,
        perRoom: Int,
        durationSeconds: Double,
        rampSeconds: Double,
        transport: String,
        audioFPS: Int,
        frameBytes: Int,
        decrypt: String,
        talkers: Int? = nil
    ) {
        self.relay = relay
        self.rooms = rooms
        self.perRoom = perRoom
        self.durationSeconds = durationSeconds
        self.rampSeconds = rampSeconds
        self.transport = transport
        self.audioFPS = audioFPS
        self.frameBytes = frameBytes
        self.decrypt = decrypt
        self.talkers = talkers ?? perRoom
    }
}

/// Percentiles of a latency distribution, in milliseconds.
public struct LatencyPercentiles: Sendable, Equatable {
    /// Number of recorded values.
    public var count: UInt64
    public var p50Ms: Double
    public var p90Ms: Double
    public var p99Ms: Double
    public var p999Ms: Double
    public var maxMs: Double

    public init(count: UInt64, p50Ms: Double, p90Ms: Double, p99Ms: Double, p999Ms: Double, maxMs: Double) {
        self.count = count
        self.p50Ms = p50Ms
        self.p90Ms = p90Ms
        self.p99Ms = p99Ms
        self.p999Ms = p999Ms
        self.maxMs = maxMs
    }

    /// No values recorded: count and every percentile are zero.
    public static let empty = LatencyPercentiles(count: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, p999Ms: 0, maxMs: 0)
}

/// One second of a run, as shown by the progress line and the timeline charts.
public struct LoadSample: Sendable, Equatable {
    /// Seconds since the run started.
    public var tSeconds: Double
    /// Participants connected at that moment.
    public var connected: Int
    /// Frames sent per second, over all participants.
    public var sentPerSecond: Double
    /// Frames received per second, over all participants.
    public var receivedPerSecond: Double
    /// Frames lost in this second, as a percentage of those expected.
    public var lossPercent: Double
    /// End-to-end latency percentiles of the frames received in this second.
    public var p50Ms: Double
    public var p99Ms: Double
    /// The relay's resident memory and open descriptors, on the seconds they were
    /// sampled (every `--relay-sample-seconds`); nil otherwise.
    public var relayRSSBytes: UInt64?
    public var relayOpenFDs: Int?

    public init(
        tSeconds: Double,
        connected: Int,
        sentPerSecond: Double,
        receivedPerSecond: Double,
        lossPercent: Double,
        p50Ms: Double,
        p99Ms: Double
    ) {
        self.tSeconds = tSeconds
        self.connected = connected
        self.sentPerSecond = sentPerSecond
        self.receivedPerSecond = receivedPerSecond
        self.lossPercent = lossPercent
        self.p50Ms = p50Ms
        self.p99Ms = p99Ms
    }
}

/// The participants' inbound queues over a run (``InboundStatistics`` summed and maxed):
/// what a client that fell behind skipped, and how close the queues came to their limits.
public struct ClientQueueSummary: Sendable, Equatable {
    /// Audio frames dropped for waiting longer than the stale limit, over all participants.
    public var staleAudioDropped: UInt64 = 0
    /// Media frames dropped because a queue already held its limit.
    public var mediaOverflowDropped: UInt64 = 0
    /// Audio frames decrypted and then dropped because they arrived more than 1 s
    /// later than their sender's usually do (they waited before the queue: in kernel
    /// buffers or at the relay).
    public var lateAudioDropped: UInt64 = 0
    /// The deepest any participant's media queue got, and its limit.
    public var peakQueuedMedia = 0
    public var mediaLimit = 0
    /// The deepest any participant's control queue got, and the watermark at which it
    /// stops reading (it may pass it by the rest of one socket read).
    public var peakQueuedControl = 0
    public var controlHighWatermark = 0

    public init() {}
}

/// Everything a finished load run measured.
public struct LoadSummary: Sendable, Equatable {
    public var configuration: LoadConfiguration
    /// When the run started, ISO-8601 UTC (supplied by the caller).
    public var date: String
    /// A short description of the machine, e.g. `"2 vCPU, Linux"`.
    public var machine: String

    public var participantsTarget: Int
    public var participantsConnected: Int
    public var udpParticipants: Int
    public var wsParticipants: Int

    public var framesSent: UInt64
    /// Frames that should have arrived: each sent frame times the other members of its room.
    public var framesExpected: UInt64
    public var framesReceived: UInt64
    public var lossPercent: Double
    public var duplicates: UInt64
    public var decryptFailures: UInt64
    public var framesDecrypted: UInt64

    /// End-to-end latency, in milliseconds.
    public var latency: LatencyPercentiles
    public var joinP50Ms: Double
    public var joinP99Ms: Double
    /// Time from removing a participant until the room has rekeyed; nil when not measured.
    public var rekeyAfterRemovalMs: Double?

    /// CPU used by the runner itself; 100 means one core.
    public var runnerCPUPercent: Double
    /// CPU used by the relay process; 100 means one core. Nil when not measured.
    public var relayCPUPercent: Double?
    public var relayRSSBytes: UInt64?
    public var relayRSSPerParticipantBytes: UInt64?

    /// The participants' inbound queues: drops and peak depths.
    public var clientQueues = ClientQueueSummary()

    /// The runner's CPU per frame against the bare crypto, measured in the same run.
    public var clientCPU: ClientCPUPerFrame?

    /// One sample per second of the run.
    public var timeline: [LoadSample]
    /// Whether the run met its thresholds (computed and stored by the caller).
    public var passed: Bool
    /// Problems the run hit, e.g. `"12 participants failed to join: ..."`. May be empty.
    public var errors: [String]

    public init(
        configuration: LoadConfiguration,
        date: String,
        machine: String,
        participantsTarget: Int,
        participantsConnected: Int,
        udpParticipants: Int,
        wsParticipants: Int,
        framesSent: UInt64,
        framesExpected: UInt64,
        framesReceived: UInt64,
        lossPercent: Double,
        duplicates: UInt64,
        decryptFailures: UInt64,
        framesDecrypted: UInt64,
        latency: LatencyPercentiles,
        joinP50Ms: Double,
        joinP99Ms: Double,
        rekeyAfterRemovalMs: Double?,
        runnerCPUPercent: Double,
        relayCPUPercent: Double?,
        relayRSSBytes: UInt64?,
        relayRSSPerParticipantBytes: UInt64?,
        timeline: [LoadSample],
        passed: Bool,
        errors: [String]
    ) {
        self.configuration = configuration
        self.date = date
        self.machine = machine
        self.participantsTarget = participantsTarget
        self.participantsConnected = participantsConnected
        self.udpParticipants = udpParticipants
        self.wsParticipants = wsParticipants
        self.framesSent = framesSent
        self.framesExpected = framesExpected
        self.framesReceived = framesReceived
        self.lossPercent = lossPercent
        self.duplicates = duplicates
        self.decryptFailures = decryptFailures
        self.framesDecrypted = framesDecrypted
        self.latency = latency
        self.joinP50Ms = joinP50Ms
        self.joinP99Ms = joinP99Ms
        self.rekeyAfterRemovalMs = rekeyAfterRemovalMs
        self.runnerCPUPercent = runnerCPUPercent
        self.relayCPUPercent = relayCPUPercent
        self.relayRSSBytes = relayRSSBytes
        self.relayRSSPerParticipantBytes = relayRSSPerParticipantBytes
        self.timeline = timeline
        self.passed = passed
        self.errors = errors
    }
}

/// The load runner's CPU per frame (seal and send; receive and open) set against the cost
/// of the bare crypto on this machine, measured by ``CryptoBench`` (libsodium's
/// XChaCha20-Poly1305 seal and open of one frame, thread CPU time) in the same run.
public struct ClientCPUPerFrame: Sendable, Equatable {
    /// Runner CPU over the measurement, in seconds: user and system together...
    public var runnerCPUSeconds: Double
    /// ...and user space alone (the rest is the kernel: socket calls, the UDP stack).
    public var runnerUserCPUSeconds: Double
    public var framesSealed: UInt64
    public var framesOpened: UInt64
    /// The bare seal and open of one frame, in microseconds.
    public var bareSealMicros: Double
    public var bareOpenMicros: Double

    public init(
        runnerCPUSeconds: Double, runnerUserCPUSeconds: Double, framesSealed: UInt64, framesOpened: UInt64, bareSealMicros: Double, bareOpenMicros: Double
    ) {
        self.runnerCPUSeconds = runnerCPUSeconds
        self.runnerUserCPUSeconds = runnerUserCPUSeconds
        self.framesSealed = framesSealed
        self.framesOpened = framesOpened
        self.bareSealMicros = bareSealMicros
        self.bareOpenMicros = bareOpenMicros
    }

    /// What the bare crypto of the same frames would cost, in seconds.
    public var bareCPUSeconds: Double { (Double(framesSealed) * bareSealMicros + Double(framesOpened) * bareOpenMicros) / 1e6 }
    /// Runner CPU per frame operation (a seal or an open), in microseconds.
    public var runnerMicrosPerOperation: Double {
        let ops = framesSealed + framesOpened
        return ops > 0 ? runnerCPUSeconds * 1e6 / Double(ops) : 0
    }
    /// Runner CPU ÷ the bare crypto's (the target is at most 3).
    public var ratio: Double { bareCPUSeconds > 0 ? runnerCPUSeconds / bareCPUSeconds : 0 }
    /// The same with user-space CPU alone: what the runner's own code costs, without the
    /// kernel's share of each datagram sent and received.
    public var userRatio: Double { bareCPUSeconds > 0 ? runnerUserCPUSeconds / bareCPUSeconds : 0 }
}

/// The outcome of `--find-capacity`: one summary per load step.
public struct CapacityResult: Sendable, Equatable {
    /// Every step that ran, in the order it ran (increasing load).
    public var steps: [LoadSummary]
    /// The highest passing step, or nil when none passed.
    public var best: LoadSummary?
    /// A step passes when its loss is at most this percentage...
    public var lossThresholdPercent: Double
    /// ...and its end-to-end p99 latency at most this many milliseconds.
    public var p99ThresholdMs: Double

    public init(steps: [LoadSummary], best: LoadSummary?, lossThresholdPercent: Double, p99ThresholdMs: Double) {
        self.steps = steps
        self.best = best
        self.lossThresholdPercent = lossThresholdPercent
        self.p99ThresholdMs = p99ThresholdMs
    }

    /// One-based index of `best` in `steps`, or nil when there is no best step or it is
    /// not one of the steps.
    public var bestStepNumber: Int? {
        guard let best else { return nil }
        return steps.lastIndex(of: best).map { $0 + 1 }
    }
}
