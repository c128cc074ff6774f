/// Settings of a ``ReceiveMixer``.
public struct ReceiveMixerConfiguration: Sendable, Equatable {
    /// Each sender's jitter buffer (default: 60 ms target, 10 packets max).
    public var jitterBuffer: JitterBuffer.Configuration
    /// Senders tracked at once (default 256); a new sender beyond this
    /// evicts the one that has been idle longest.
    public var maximumSenders: Int
    /// Whether senders' `send_time_us` and the `nowMicros` given to
    /// ``ReceiveMixer/receive(sender:packetBytes:nowMicros:)`` come from the
    /// same clock (a load test on one machine). Only then is
    /// `now − send_time_us` recorded as an absolute latency.
    public var clocksShared: Bool
    /// Latencies kept per sender for percentiles (default 1 024, ≈ 20 s).
    public var latencyWindow: Int

    /// The largest ``maximumSenders`` accepted (the participant index space).
    public static let senderLimit = 65_536

    public init(
        jitterBuffer: JitterBuffer.Configuration = JitterBuffer.Configuration(), maximumSenders: Int = 256,
        clocksShared: Bool = false, latencyWindow: Int = 1_024
    ) {
        self.jitterBuffer = jitterBuffer
        self.maximumSenders = maximumSenders
        self.clocksShared = clocksShared
        self.latencyWindow = latencyWindow
    }
}

/// Why a ``ReceiveMixer`` could not be created or take a packet.
public enum ReceiveMixerError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidConfiguration(JitterBufferError)
    /// The audio plaintext from `sender` is malformed; it was dropped.
    case malformedPacket(sender: UInt16, AudioPacketError)
    /// The Opus decoder for a new sender could not be created.
    case decoderUnavailable(sender: UInt16, OpusError)

    public var description: String {
        switch self {
        case .invalidConfiguration(let error):
            return "receive mixer: \(error)"
        case .malformedPacket(let sender, let error):
            return "audio from sender \(sender) dropped: \(error)"
        case .decoderUnavailable(let sender, let error):
            return "no Opus decoder for sender \(sender): \(error)"
        }
    }
}

/// What a sender contributed to the last tick.
public enum SenderFrameKind: Sendable, Equatable {
    /// Decoded from received packets.
    case decoded
    /// At least partly synthesised by Opus packet-loss concealment.
    case concealed
    /// Nothing to play (buffering): silence, not mixed.
    case silent
}

/// Per-sender receive statistics.
public struct ReceiveSenderStatistics: Sendable, Equatable {
    public var sender: UInt16
    /// Received, lost, late, duplicate, dropped packets and more.
    public var jitterBuffer: JitterBuffer.Statistics
    /// Opus packets decoded.
    public var framesDecoded: Int
    /// Opus loss concealments run (one per missing packet or undecodable one).
    public var framesConcealed: Int
    /// Ticks in which the sender was silent (buffering).
    public var framesSilent: Int
    /// Packets libopus refused to decode (concealed instead).
    public var decodeErrors: Int
    /// Absolute one-way latency (`now − send_time_us`); empty unless
    /// ``ReceiveMixerConfiguration/clocksShared``.
    public var latency: LatencySummary
    /// Arrivals whose `send_time_us` was after `now` (shared clocks only).
    public var sentInTheFuture: Int
    /// RFC 3550 interarrival jitter (µs); meaningful across machines.
    public var transitJitterMicros: Double
    /// `nowMicros` of the sender's latest packet.
    public var lastArrivalMicros: UInt64
}

/// The receiving half of a call's audio: a jitter buffer and an Opus
/// decoder per sender, and a saturating mix of everyone every 20 ms.
///
/// The caller feeds decrypted audio plaintexts in with
/// ``receive(sender:packetBytes:nowMicros:)`` as they arrive and calls
/// ``tick(into:)`` once per 20 ms; after each tick, each sender's own
/// 960-sample frame is available (``forEachSenderFrame(_:)``) for
/// per-participant recording. Missing packets are concealed with Opus PLC;
/// a sender with nothing buffered is silent and left out of the mix.
///
/// Memory is bounded: at most ``ReceiveMixerConfiguration/maximumSenders``
/// senders, each with fixed buffers allocated when it first appears. After
/// that, receiving and ticking allocate nothing.
///
/// Not `Sendable`: it owns Opus decoders; one task drives it.
public final class ReceiveMixer {
    /// Samples per tick: 20 ms of mono 48 kHz.
    public static let frameSamples = 960
    /// Jitter-buffer pops per sender per tick at most (8 × 2.5 ms packets = 20 ms).
    static let maximumPopsPerTick = 8

    public let configuration: ReceiveMixerConfiguration
    private var senderStates: [UInt16: SenderState] = [:]
    private var mixer = AudioMixer(frameCount: frameSamples)
    /// Senders evicted to make room for new ones.
    public private(set) var evictions = 0
    /// Ticks run.
    public private(set) var ticks: UInt64 = 0

    // MARK: Life cycle

    /// - Throws: ``ReceiveMixerError/invalidConfiguration(_:)`` for an
    ///   invalid jitter buffer or a sender maximum outside 1…65 536.
    public init(configuration: ReceiveMixerConfiguration = ReceiveMixerConfiguration()) throws(ReceiveMixerError) {
        do {
            try configuration.jitterBuffer.validate()
        } catch {
            throw .invalidConfiguration(error)
        }
        guard (1...ReceiveMixerConfiguration.senderLimit).contains(configuration.maximumSenders) else {
            throw .invalidConfiguration(
                .invalidConfiguration(
                    "maximumSenders \(configuration.maximumSenders) is not in 1...\(ReceiveMixerConfiguration.senderLimit)"))
        }
        self.configuration = configuration
        senderStates.reserveCapacity(min(configuration.maximumSenders, 1_024))
    }

    // MARK: Receiving

    /// Takes one decrypted audio plaintext from `sender`, received at
    /// `nowMicros` on the caller's monotonic clock.
    ///
    /// - Returns: what the sender's jitter buffer did with it.
    /// - Throws: ``ReceiveMixerError/malformedPacket(sender:_:)`` (nothing is
    ///   recorded, no sender is created) or
    ///   ``ReceiveMixerError/decoderUnavailable(sender:_:)``.
    @discardableResult
    public func receive(sender: UInt16, packetBytes: UnsafeRawBufferPointer, nowMicros: UInt64) throws(ReceiveMixerError) -> JitterBuffer.InsertOutcome {
        let header: AudioPacketHeader
        let opus: UnsafeRawBufferPointer
        do {
            (header, opus) = try AudioPacket.decode(packetBytes)
        } catch {
            throw .malformedPacket(sender: sender, error)
        }
        let state = try senderState(for: sender, nowMicros: nowMicros)
        let outcome: JitterBuffer.InsertOutcome
        do {
            outcome = try state.jitterBuffer.insert(header, opus: opus)
        } catch {
            throw .malformedPacket(sender: sender, error)
        }
        state.lastArrivalMicros = nowMicros
        if outcome != .duplicate {
            state.transitJitter.record(sendMicros: header.sendTimeMicros, arrivalMicros: nowMicros)
            if configuration.clocksShared {
                if nowMicros >= header.sendTimeMicros {
                    state.latency.record(nowMicros - header.sendTimeMicros)
                } else {
                    state.sentInTheFuture += 1
                }
            }
        }
        return outcome
    }

    /// Array convenience for ``receive(sender:packetBytes:nowMicros:)-(_,UnsafeRawBufferPointer,_)``.
    @discardableResult
    public func receive(sender: UInt16, packetBytes: [UInt8], nowMicros: UInt64) throws(ReceiveMixerError) -> JitterBuffer.InsertOutcome {
        try packetBytes.withUnsafeBufferPointer { bytes throws(ReceiveMixerError) in
            try receive(sender: sender, packetBytes: UnsafeRawBufferPointer(bytes), nowMicros: nowMicros)
        }
    }

    private func senderState(for sender: UInt16, nowMicros: UInt64) throws(ReceiveMixerError) -> SenderState {
        if let state = senderStates[sender] { return state }
        let decoder: OpusDecoder
        do {
            decoder = try OpusDecoder(sampleRate: AudioFormat.productSampleRate, channels: 1)
        } catch {
            throw .decoderUnavailable(sender: sender, error)
        }
        if senderStates.count >= configuration.maximumSenders {
            // Evict the sender idle longest (lowest index on a tie).
            var idlest: (sender: UInt16, last: UInt64)?
            for (id, state) in senderStates {
                if let current = idlest, (current.last, current.sender) < (state.lastArrivalMicros, id) { continue }
                idlest = (id, state.lastArrivalMicros)
            }
            if let idlest {
                senderStates[idlest.sender] = nil
                evictions += 1
            }
        }
        // The configuration was validated in init, so this cannot throw.
        guard let jitterBuffer = try? JitterBuffer(configuration: configuration.jitterBuffer) else {
            preconditionFailure("validated jitter buffer configuration rejected")
        }
        let state = SenderState(
            decoder: decoder, jitterBuffer: jitterBuffer, latencyWindow: configuration.latencyWindow, now: nowMicros)
        senderStates[sender] = state
        return state
    }

    // MARK: Playout

    /// Runs one 20 ms playout period: pops, decodes or conceals each
    /// sender's next packet and writes the saturated mix into `output`
    /// without allocating.
    ///
    /// - Returns: the number of senders mixed (not silent).
    /// - Precondition: `output.count == ReceiveMixer.frameSamples`.
    @discardableResult
    public func tick(into output: UnsafeMutableBufferPointer<Int16>) -> Int {
        precondition(output.count == Self.frameSamples, "a tick produces \(Self.frameSamples) samples")
        ticks += 1
        mixer.reset()
        var mixed = 0
        for (_, state) in senderStates {
            state.produceFrame()
            if state.frameKind != .silent {
                state.frame.withUnsafeBufferPointer { mixer.add($0) }
                mixed += 1
            }
        }
        mixer.mix(into: output)
        return mixed
    }

    /// ``tick(into:)`` returning a new array of 960 samples. Allocates.
    public func tick() -> [Int16] {
        var output = [Int16](repeating: 0, count: Self.frameSamples)
        output.withUnsafeMutableBufferPointer { _ = tick(into: $0) }
        return output
    }

    // MARK: Per-sender access

    /// The senders currently tracked, in ascending order.
    public var senders: [UInt16] { senderStates.keys.sorted() }

    /// Calls `body` with each sender's frame from the last tick (960
    /// samples; zeros when silent), in unspecified order, without allocating.
    public func forEachSenderFrame<E: Error>(_ body: (UInt16, UnsafeBufferPointer<Int16>, SenderFrameKind) throws(E) -> Void) throws(E) {
        for (sender, state) in senderStates {
            let kind = state.frameKind
            try state.frame.withUnsafeBufferPointer { frame throws(E) in try body(sender, frame, kind) }
        }
    }

    /// A copy of `sender`'s frame from the last tick, or `nil` for an unknown sender.
    public func frame(of sender: UInt16) -> (samples: [Int16], kind: SenderFrameKind)? {
        guard let state = senderStates[sender] else { return nil }
        return (state.frame, state.frameKind)
    }

    /// Statistics of one sender, or `nil` if it is not tracked.
    public func statistics(for sender: UInt16) -> ReceiveSenderStatistics? {
        senderStates[sender].map { $0.statistics(sender: sender) }
    }

    /// Statistics of every tracked sender, by ascending sender.
    public func allStatistics() -> [ReceiveSenderStatistics] {
        senders.compactMap { statistics(for: $0) }
    }

    /// Latency over all tracked senders (empty unless clocks are shared).
    public func latencySummary() -> LatencySummary {
        LatencyRecorder.summary(of: senderStates.values.map(\.latency))
    }

    /// Forgets `sender` (e.g. it left the room). Returns whether it was tracked.
    @discardableResult
    public func removeSender(_ sender: UInt16) -> Bool {
        senderStates.removeValue(forKey: sender) != nil
    }

    /// Forgets senders whose last packet arrived more than `idleMicros`
    /// before `nowMicros`; returns how many.
    @discardableResult
    public func removeSenders(idleFor idleMicros: UInt64, nowMicros: UInt64) -> Int {
        let idle = senderStates.filter { nowMicros >= $0.value.lastArrivalMicros && nowMicros - $0.value.lastArrivalMicros > idleMicros }
        for sender in idle.keys { senderStates[sender] = nil }
        return idle.count
    }
}

// MARK: - One sender

private final class SenderState {
    let decoder: OpusDecoder
    var jitterBuffer: JitterBuffer
    /// Decoded audio not yet played: a packet longer than 20 ms leaves a
    /// remainder for the next tick. Room for < 20 ms plus the longest packet.
    var pending: [Int16]
    var pendingCount = 0
    /// The last tick's output.
    var frame: [Int16]
    var frameKind = SenderFrameKind.silent
    /// Scratch for one popped Opus packet.
    var packet: [UInt8]

    var framesDecoded = 0
    var framesConcealed = 0
    var framesSilent = 0
    var decodeErrors = 0
    var latency: LatencyRecorder
    var sentInTheFuture = 0
    var transitJitter = TransitJitter()
    var lastArrivalMicros: UInt64

    init(decoder: OpusDecoder, jitterBuffer: JitterBuffer, latencyWindow: Int, now: UInt64) {
        self.decoder = decoder
        self.jitterBuffer = jitterBuffer
        pending = [Int16](repeating: 0, count: ReceiveMixer.frameSamples + decoder.maximumSamplesPerChannel)
        frame = [Int16](repeating: 0, count: ReceiveMixer.frameSamples)
        packet = [UInt8](repeating: 0, count: AudioPacket.maximumOpusPacketSize)
        latency = LatencyRecorder(windowSize: latencyWindow)
        lastArrivalMicros = now
    }

    /// Fills ``frame`` with the next 20 ms: pops until 960 samples are
    /// pending or the jitter buffer has nothing more.
    func produceFrame() {
        let frameSamples = ReceiveMixer.frameSamples
        var concealed = false
        var pops = 0
        while pendingCount < frameSamples && pops < ReceiveMixer.maximumPopsPerTick {
            pops += 1
            let result = packet.withUnsafeMutableBytes { jitterBuffer.pop(into: $0) }
            switch result {
            case .buffering:
                pops = ReceiveMixer.maximumPopsPerTick
            case .packet(_, let length):
                if decodePacket(length: length) {
                    framesDecoded += 1
                } else {
                    decodeErrors += 1
                    conceal()
                    concealed = true
                }
            case .missing:
                conceal()
                concealed = true
            }
        }

        if pendingCount == 0 {
            frameKind = .silent
            framesSilent += 1
            frame.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            return
        }
        frameKind = concealed ? .concealed : .decoded
        let used = min(pendingCount, frameSamples)
        frame.withUnsafeMutableBufferPointer { out in
            pending.withUnsafeBufferPointer { source in
                for index in 0..<used { out[index] = source[index] }
            }
            for index in used..<frameSamples { out[index] = 0 }
        }
        // Move any remainder (from a packet longer than 20 ms) to the front.
        pending.withUnsafeMutableBufferPointer { buffer in
            for index in used..<pendingCount { buffer[index - used] = buffer[index] }
        }
        pendingCount -= used
    }

    /// Decodes the popped packet after the pending audio; false on a libopus error.
    private func decodePacket(length: Int) -> Bool {
        let capacity = decoder.maximumSamplesPerChannel
        let start = pendingCount
        let decoded: Int? = packet.withUnsafeBytes { bytes in
            pending.withUnsafeMutableBufferPointer { buffer in
                let output = UnsafeMutableBufferPointer(rebasing: buffer[start..<(start + capacity)])
                return try? decoder.decode(UnsafeRawBufferPointer(rebasing: bytes[..<length]), into: output)
            }
        }
        guard let decoded else { return false }
        pendingCount += decoded
        return true
    }

    /// Opus PLC for one missing packet, as long as the last packet (20 ms
    /// before any). Falls back to silence if libopus refuses.
    private func conceal() {
        framesConcealed += 1
        var duration = (try? decoder.lastPacketDuration) ?? 0
        if duration <= 0 || duration > decoder.maximumSamplesPerChannel {
            duration = ReceiveMixer.frameSamples
        }
        let start = pendingCount
        let produced: Int? = pending.withUnsafeMutableBufferPointer { buffer in
            let output = UnsafeMutableBufferPointer(rebasing: buffer[start..<(start + duration)])
            return try? decoder.decode(nil, into: output)
        }
        if let produced {
            pendingCount += produced
        } else {
            pending.withUnsafeMutableBufferPointer { buffer in
                for index in start..<(start + duration) { buffer[index] = 0 }
            }
            pendingCount += duration
        }
    }

    func statistics(sender: UInt16) -> ReceiveSenderStatistics {
        ReceiveSenderStatistics(
            sender: sender, jitterBuffer: jitterBuffer.statistics, framesDecoded: framesDecoded,
            framesConcealed: framesConcealed, framesSilent: framesSilent, decodeErrors: decodeErrors,
            latency: latency.summary, sentInTheFuture: sentInTheFuture,
            transitJitterMicros: transitJitter.jitterMicros, lastArrivalMicros: lastArrivalMicros)
    }
}
