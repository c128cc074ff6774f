import ConclaveMedia
import Testing

@Suite("Pipeline: send and receive")
struct PipelineReceiveTests {
    static let tickMicros: UInt64 = 20_000
    /// Network delay added to every delivery (shared clock).
    static let networkMicros: UInt64 = 5_000

    /// One packet on the simulated network.
    struct Delivery {
        var tick: Int
        var order: Int
        var sender: UInt16
        var bytes: [UInt8]
    }

    /// Produces `count` packets from `source`, packet k sent at tick k.
    static func sendPackets(source: String, count: Int, configuration: AudioSendConfiguration = .init()) throws -> [[UInt8]] {
        let pipeline = try AudioSendPipeline(source: AudioSource(parsing: source), configuration: configuration)
        return try (0..<count).map { k in try #require(try pipeline.nextPacket(nowMicros: UInt64(k) * tickMicros)) }
    }

    /// Runs the receiver for `ticks` ticks; returns the mixed output and each sender's frames.
    static func run(
        _ deliveries: [Delivery], ticks: Int, mixer: ReceiveMixer
    ) throws -> (mixed: [Int16], perSender: [UInt16: [Int16]]) {
        let ordered = deliveries.sorted { ($0.tick, $0.order) < ($1.tick, $1.order) }
        var cursor = 0
        var mixed: [Int16] = []
        var perSender: [UInt16: [Int16]] = [:]
        var output = [Int16](repeating: 0, count: ReceiveMixer.frameSamples)
        for tick in 0..<ticks {
            let now = UInt64(tick) * tickMicros + networkMicros
            while cursor < ordered.count && ordered[cursor].tick == tick {
                try mixer.receive(sender: ordered[cursor].sender, packetBytes: ordered[cursor].bytes, nowMicros: now)
                cursor += 1
            }
            output.withUnsafeMutableBufferPointer { _ = mixer.tick(into: $0) }
            mixed += output
            mixer.forEachSenderFrame { sender, frame, _ in perSender[sender, default: []] += frame }
        }
        #expect(cursor == ordered.count, "every delivery happened")
        return (mixed, perSender)
    }

    // MARK: One sender through a bad network

    @Test("440 Hz through loss, reordering, late packets and duplicates: tone intact, counters exact")
    func impairedNetwork() throws {
        let packetCount = 150  // 3 s
        let packets = try Self.sendPackets(source: "tone:440", count: packetCount)
        let dropped: Set<Int> = [20, 45, 46, 90, 120]
        let late: Set<Int> = [30, 70, 100]  // delivered 6 ticks after sending: after their slot
        let duplicatedSameTick: Set<Int> = [10, 80]  // second copy right after the first
        let duplicatedLater: Set<Int> = [50]  // second copy 10 ticks later, after playout
        let swapped: Set<Int> = [60, 110, 135]  // delivered one tick late, after the next packet

        var deliveries: [Delivery] = []
        for k in 0..<packetCount where !dropped.contains(k) {
            var tick = k
            var order = 0
            if late.contains(k) { tick = k + 6 }
            if swapped.contains(k) { tick = k + 1; order = 1 }
            deliveries.append(Delivery(tick: tick, order: order, sender: 7, bytes: packets[k]))
            if duplicatedSameTick.contains(k) { deliveries.append(Delivery(tick: tick, order: 2, sender: 7, bytes: packets[k])) }
            if duplicatedLater.contains(k) { deliveries.append(Delivery(tick: k + 10, order: 0, sender: 7, bytes: packets[k])) }
        }

        let mixer = try ReceiveMixer(configuration: .init(clocksShared: true))
        let (mixed, perSender) = try Self.run(deliveries, ticks: packetCount + 6, mixer: mixer)

        let stats = try #require(mixer.statistics(for: 7))
        let jitter = stats.jitterBuffer
        #expect(jitter.lost == dropped.count)
        #expect(jitter.late == late.count)
        #expect(jitter.duplicates == duplicatedSameTick.count + duplicatedLater.count)
        #expect(jitter.received == packetCount - dropped.count)
        #expect(jitter.played == packetCount - dropped.count - late.count)
        #expect(jitter.dropped == 0)
        #expect(jitter.missing == dropped.count + late.count)
        #expect(jitter.underruns == 1)  // the end of the stream
        #expect(stats.framesDecoded == jitter.played)
        #expect(stats.framesConcealed == dropped.count + late.count)
        #expect(stats.decodeErrors == 0)
        // Two buffering ticks at the start, then one silent tick per tick after the last packet.
        #expect(stats.framesSilent == 2 + 4)

        // Shared clock: latency is the network delay plus whole ticks of lateness.
        #expect(stats.latency.count == packetCount - dropped.count)
        #expect(stats.latency.p50 == Self.networkMicros)
        #expect(stats.latency.minimum == Self.networkMicros)
        #expect(stats.latency.maximum == 6 * Self.tickMicros + Self.networkMicros)
        #expect(stats.latency.p99 == 6 * Self.tickMicros + Self.networkMicros)
        #expect(stats.transitJitterMicros > 0)

        // The tone survives; skip the buffering ticks and codec start-up.
        let settled = Array(mixed[(10 * 960)...])
        let frequency = try #require(DominantFrequency.estimate(samples: settled, sampleRate: 48_000))
        #expect(relativeError(frequency, 440) < 0.02, "mixed output at \(frequency) Hz")
        #expect(AudioLevel.rms(settled) > 0.2)
        // With one sender the mix is that sender's stream.
        #expect(perSender[7] == mixed)
    }

    // MARK: Two senders

    @Test("two senders at 440 and 660 Hz: each stream carries its tone and the mix is their sum")
    func twoSenders() throws {
        let count = 100
        let a = try Self.sendPackets(source: "tone:440", count: count, configuration: .init(initialSequence: 65_500))
        let b = try Self.sendPackets(source: "tone:660", count: count, configuration: .init(initialSequence: 3))
        var deliveries: [Delivery] = []
        for k in 0..<count {
            deliveries.append(Delivery(tick: k, order: 0, sender: 1, bytes: a[k]))
            deliveries.append(Delivery(tick: k, order: 1, sender: 2, bytes: b[k]))
        }
        let mixer = try ReceiveMixer()
        let (mixed, perSender) = try Self.run(deliveries, ticks: count + 2, mixer: mixer)
        #expect(mixer.senders == [1, 2])

        for (sender, expected) in [(UInt16(1), 440.0), (2, 660.0)] {
            let stream = try #require(perSender[sender])
            let frequency = try #require(DominantFrequency.estimate(samples: Array(stream[(10 * 960)...]), sampleRate: 48_000))
            #expect(relativeError(frequency, expected) < 0.02, "sender \(sender): \(frequency) Hz")
            let stats = try #require(mixer.statistics(for: sender))
            #expect(stats.jitterBuffer.played == count)
            #expect(stats.jitterBuffer.lost == 0)
        }
        // The mix is the saturating sum of the per-sender streams, sample for sample.
        let streamA = try #require(perSender[1])
        let streamB = try #require(perSender[2])
        #expect(mixed == zip(streamA, streamB).map { Int16(clamping: Int($0) + Int($1)) })
        // Without a shared clock no absolute latency is recorded.
        #expect(mixer.latencySummary().count == 0)
    }

    @Test("the mix saturates instead of wrapping")
    func saturation() throws {
        let count = 40
        let configuration = AudioSendConfiguration(bitrate: .bitsPerSecond(64_000))
        var deliveries: [Delivery] = []
        for sender in UInt16(1)...4 {
            let pipeline = try AudioSendPipeline(source: AudioSource(parsing: "tone:300", amplitude: 0.9), configuration: configuration)
            for k in 0..<count {
                deliveries.append(Delivery(tick: k, order: Int(sender), sender: sender, bytes: try #require(try pipeline.nextPacket(nowMicros: 0))))
            }
        }
        let mixer = try ReceiveMixer()
        let (mixed, perSender) = try Self.run(deliveries, ticks: count, mixer: mixer)
        let sums = (0..<mixed.count).map { index in (1...4).reduce(0) { $0 + Int(perSender[UInt16($1)]![index]) } }
        #expect(sums.contains { $0 > Int(Int16.max) })
        #expect(mixed == sums.map { Int16(clamping: $0) })
    }

    // MARK: Sender pipeline

    @Test("headers carry consecutive sequences, +960 timestamps and the send time, wrapping")
    func headers() throws {
        let pipeline = try AudioSendPipeline(
            source: AudioSource(parsing: "noise"),
            configuration: .init(initialSequence: 65_534, initialTimestamp: UInt32.max - 959))
        var headers: [AudioPacketHeader] = []
        for k in 0..<4 {
            let packet = try #require(try pipeline.nextPacket(nowMicros: 1_000 + UInt64(k)))
            #expect(packet.count > 14 && packet.count <= AudioPacket.maximumPlaintextSize)
            headers.append(try AudioPacket.decode(packet).header)
        }
        #expect(headers.map(\.sequence) == [65_534, 65_535, 0, 1])
        #expect(headers.map(\.timestamp) == [UInt32.max - 959, 0, 960, 1_920])
        #expect(headers.map(\.sendTimeMicros) == [1_000, 1_001, 1_002, 1_003])
        #expect(pipeline.packetsProduced == 4)
        #expect(pipeline.nextSequence == 2)
    }

    @Test("the buffer variant writes into the caller's buffer and checks its size")
    func bufferVariant() throws {
        let pipeline = try AudioSendPipeline(source: AudioSource(parsing: "tone:1000"))
        var small = [UInt8](repeating: 0, count: 100)
        #expect(throws: AudioSendError.outputBufferTooSmall(required: 1_467, available: 100)) {
            try small.withUnsafeMutableBytes { try pipeline.nextPacket(nowMicros: 0, into: $0) }
        }
        #expect(pipeline.nextSequence == 0)
        var buffer = [UInt8](repeating: 0, count: AudioSendPipeline.maximumPacketSize)
        for k in 0..<10 {
            let length = try #require(try buffer.withUnsafeMutableBytes { try pipeline.nextPacket(nowMicros: 5, into: $0) })
            let (header, opus) = try AudioPacket.decode(Array(buffer[..<length]))
            #expect(header.sequence == UInt16(k))
            #expect(!opus.isEmpty)
        }
    }

    @Test("reuse mode cycles pre-encoded Opus packets under fresh headers")
    func reuseMode() throws {
        let pipeline = try AudioSendPipeline(source: AudioSource(parsing: "tone:440"), configuration: .init(reusedPacketCount: 25))
        #expect(pipeline.isReusingPackets)
        #expect(pipeline.reusedPacketCount == 25)
        var packets: [[UInt8]] = []
        for k in 0..<100 { packets.append(try #require(try pipeline.nextPacket(nowMicros: UInt64(k) * 20_000))) }
        for k in 0..<75 {
            let first = try AudioPacket.decode(packets[k])
            let again = try AudioPacket.decode(packets[k + 25])
            #expect(first.opus.elementsEqual(again.opus))
            #expect(again.header.sequence == first.header.sequence &+ 25)
            #expect(again.header.timestamp == first.header.timestamp &+ 25 * 960)
            #expect(again.header.sendTimeMicros == first.header.sendTimeMicros + 25 * 20_000)
        }
        // The receiver decodes them into the tone.
        let mixer = try ReceiveMixer()
        let deliveries = packets.enumerated().map { Delivery(tick: $0.offset, order: 0, sender: 9, bytes: $0.element) }
        let (mixed, _) = try Self.run(deliveries, ticks: 100, mixer: mixer)
        let frequency = try #require(DominantFrequency.estimate(samples: Array(mixed[(10 * 960)...]), sampleRate: 48_000))
        #expect(relativeError(frequency, 440) < 0.02)

        #expect(throws: AudioSendError.reusedPacketCountOutOfRange(0, limit: 3_000)) {
            try AudioSendPipeline(source: AudioSource(parsing: "silence"), configuration: .init(reusedPacketCount: 0))
        }
    }

    @Test("a non-looping WAV source ends the pipeline")
    func finiteSource() throws {
        let audio = PCMAudio(sampleRate: 48_000, channels: 1, samples: [Int16](repeating: 1_000, count: 960 * 3 + 10))
        let pipeline = try AudioSendPipeline(source: AudioSource(audio: audio, loop: false))
        var count = 0
        while try pipeline.nextPacket(nowMicros: 0) != nil { count += 1 }
        #expect(count == 4)
        #expect(pipeline.isFinished)
        #expect(pipeline.nextSequence == 4)
    }

    @Test("invalid encoder settings are typed errors")
    func encoderErrors() {
        #expect(throws: AudioSendError.opus(.complexityOutOfRange(11))) {
            try AudioSendPipeline(source: AudioSource(parsing: "silence"), configuration: .init(complexity: 11))
        }
    }

    // MARK: Receiver bounds and errors

    @Test("beyond the sender maximum the longest-idle sender is evicted")
    func eviction() throws {
        let mixer = try ReceiveMixer(configuration: .init(maximumSenders: 2))
        let packet = try Self.sendPackets(source: "tone:440", count: 1)[0]
        try mixer.receive(sender: 1, packetBytes: packet, nowMicros: 100)
        try mixer.receive(sender: 2, packetBytes: packet, nowMicros: 50)
        try mixer.receive(sender: 1, packetBytes: packet, nowMicros: 200)
        try mixer.receive(sender: 3, packetBytes: packet, nowMicros: 300)
        #expect(mixer.senders == [1, 3])
        #expect(mixer.evictions == 1)
        #expect(mixer.statistics(for: 1)?.jitterBuffer.duplicates == 1)
        #expect(mixer.removeSenders(idleFor: 150, nowMicros: 400) == 1)
        #expect(mixer.senders == [3])
        #expect(mixer.removeSender(3))
        #expect(mixer.senders.isEmpty)
    }

    @Test("malformed packets are rejected without creating a sender")
    func malformed() throws {
        let mixer = try ReceiveMixer()
        #expect(throws: ReceiveMixerError.malformedPacket(sender: 4, .truncatedHeader(length: 3))) {
            try mixer.receive(sender: 4, packetBytes: [1, 2, 3], nowMicros: 0)
        }
        #expect(throws: ReceiveMixerError.malformedPacket(sender: 4, .emptyOpusPacket)) {
            try mixer.receive(sender: 4, packetBytes: [UInt8](repeating: 0, count: 14), nowMicros: 0)
        }
        #expect(mixer.senders.isEmpty)
        #expect(mixer.tick() == [Int16](repeating: 0, count: 960))

        // Garbage after a valid header reaches libopus, which refuses it: concealed, counted, no trap.
        let garbage = try AudioPacket.encode(AudioPacketHeader(sequence: 0, timestamp: 0, sendTimeMicros: 0), opus: [0xFF, 0xFF, 0xFF])
        for sequence in UInt16(0)..<3 {
            var bytes = garbage
            bytes[1] = UInt8(sequence)
            try mixer.receive(sender: 5, packetBytes: bytes, nowMicros: 0)
        }
        for _ in 0..<4 { _ = mixer.tick() }
        let stats = try #require(mixer.statistics(for: 5))
        #expect(stats.decodeErrors + stats.framesDecoded == 3)
        #expect(throws: ReceiveMixerError.self) { try ReceiveMixer(configuration: .init(maximumSenders: 0)) }
        #expect(throws: ReceiveMixerError.self) { try ReceiveMixer(configuration: .init(jitterBuffer: .init(targetDelayPackets: 20))) }
    }

    @Test("latency percentiles over a window")
    func latencyRecorder() {
        var recorder = LatencyRecorder(windowSize: 100)
        for value in UInt64(1)...100 { recorder.record(value) }
        #expect(recorder.percentile(0.5) == 50)
        #expect(recorder.percentile(0.99) == 99)
        #expect(recorder.summary.maximum == 100)
        #expect(recorder.summary.mean == 50.5)
        for _ in 0..<100 { recorder.record(1_000) }  // the window now holds only these
        #expect(recorder.percentile(0.5) == 1_000)
        #expect(recorder.summary.minimum == 1)
        #expect(recorder.count == 200)
        #expect(LatencyRecorder().summary == LatencySummary())
    }
}
