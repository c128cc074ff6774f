#if canImport(Glibc)
import Glibc
#endif
import Histogram
import Synchronization
import NIOCore
import ConclaveBench
import ConclaveClient
import ConclaveCrypto
import ConclaveMedia
import ConclaveProtocol

/// What `conclave load` runs.
public struct LoadOptions: Sendable {
    /// The relay (the first node when ``relays`` names several).
    public var relay: RelayEndpoint {
        get { relays[0] }
        set { relays[0] = newValue }
    }
    /// Every node of a relay cluster to use: room `r` is created through node `r mod n`
    /// (the cluster then places it), and relay CPU and memory are the sum over them.
    public var relays: [RelayEndpoint]
    public var rooms: Int
    public var perRoom: Int
    public var durationSeconds: Double
    public var rampSeconds: Double
    public var transport: MediaTransport = .udp
    /// 50, 25, 10, 5, 2 or 1 (one 20 ms tick in 50 / fps).
    public var audioFPS = 50
    /// The target size of an audio FRAME payload on the wire (SFrame ciphertext), in bytes.
    public var frameBytes = 160
    /// Decrypt one arriving frame in this many (1: all).
    public var decryptEvery = 1
    /// Joins in flight at once during the ramp.
    public var joinConcurrency = 16
    /// Thresholds for `passed` (and `--find-capacity`).
    public var lossThresholdPercent = 0.1
    public var p99ThresholdMs = 20.0
    /// Remove one member of room 1 at the end and time the rekey.
    public var measureRekey = true
    /// Members per room that send audio (the host first, then the earliest joiners); the
    /// rest only listen. Nil: everyone talks.
    public var talkers: Int?
    /// Read the relay's RSS and open descriptors from its `/metrics` every this many
    /// seconds of the measurement, into the timeline (0: never).
    public var relaySampleSeconds = 10
    /// Write every participant's `alert`, `error` and `leader` events to this function
    /// (`conclave load --events`), prefixed with its name; `t` counts from the run's start.
    public var eventSink: (@Sendable (String) -> Void)?

    public init(relay: RelayEndpoint, rooms: Int, perRoom: Int, durationSeconds: Double, rampSeconds: Double) {
        self.relays = [relay]
        self.rooms = rooms
        self.perRoom = perRoom
        self.durationSeconds = durationSeconds
        self.rampSeconds = rampSeconds
    }

    public static let supportedFPS: Set<Int> = [1, 2, 5, 10, 25, 50]

    /// The Opus bitrate whose 20 ms packets give about `frameBytes` of SFrame payload:
    /// minus the 16-byte tag, a 4-byte SFrame header and the 14-byte audio header.
    var opusBitrate: Int {
        min(max((frameBytes - 34) * 8 * 50, 6_000), 510_000)
    }

    var configuration: LoadConfiguration {
        LoadConfiguration(
            relay: relays.map(\.description).joined(separator: ","), rooms: rooms, perRoom: perRoom, durationSeconds: durationSeconds,
            rampSeconds: rampSeconds, transport: transport.rawValue, audioFPS: audioFPS, frameBytes: frameBytes,
            decrypt: decryptEvery == 1 ? "all" : "sample:\(decryptEvery)", talkers: min(talkers ?? perRoom, perRoom))
    }
}

/// Set by SIGINT: the run stops measuring, drains and reports.
public let loadInterrupted = Atomic<Bool>(false)

/// Runs real participants against a relay: each has its own identity, knocks, is admitted
/// by its room's host (auto-admit), receives its key package and sends encrypted audio.
public struct LoadRunner: Sendable {
    public let options: LoadOptions
    /// Progress lines (one per second).
    public let progress: @Sendable (String) -> Void

    public init(options: LoadOptions, progress: @escaping @Sendable (String) -> Void) {
        self.options = options
        self.progress = progress
    }

    final class Virtual: Sendable {
        let participant: Participant
        let probe: VirtualProbe
        let run: Task<Void, Never>
        let room: Int
        init(participant: Participant, probe: VirtualProbe, run: Task<Void, Never>, room: Int) {
            self.participant = participant
            self.probe = probe
            self.run = run
            self.room = room
        }
    }

    struct JoinFailure: Error, CustomStringConvertible {
        let description: String
    }

    public func run() async -> LoadSummary {
        let o = options
        let gate = LoadGate()
        let rooms = (0..<o.rooms).map { _ in RoomStats() }
        let divisor = 50 / max(1, o.audioFPS)
        let lifetime = Duration.seconds(o.rampSeconds + o.durationSeconds + 60)
        var errors: [String] = []
        var joinTimes: [Double] = []
        let runStart = ContinuousClock.now
        let quiet = EventOutput(json: true) { _ in }
        func output(_ name: String) -> EventOutput {
            guard let sink = o.eventSink else { return quiet }
            let start = runStart
            return EventOutput(json: true, start: start) { line in
                if line.hasPrefix("{\"event\":\"alert\"") || line.hasPrefix("{\"event\":\"error\"") || line.hasPrefix("{\"event\":\"leader\"") {
                    sink("\(name): \(line)")
                }
            }
        }
        let relayBefore = await RelayProcessSample.readAll(o.relays)

        func participantOptions(_ name: String, probe: VirtualProbe, talks: Bool) -> ParticipantOptions {
            var p = ParticipantOptions(displayName: name)
            if talks {
                p.audioSource = .tone(frequency: 440)
                p.audioSendConfiguration = AudioSendConfiguration(bitrate: .bitsPerSecond(o.opusBitrate), reusedPacketCount: 50)
                p.unmuteOnJoin = true
            }
            p.autoAdmit = true
            p.mediaTransport = o.transport
            p.probe = probe
            return p
        }
        func waitForKeys(_ probe: VirtualProbe, timeout: Duration) async -> Bool {
            let deadline = ContinuousClock.now + timeout
            while !probe.hasKeys, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(5)) }
            return probe.hasKeys
        }

        // MARK: Ramp: one host per room, then every member through the waiting room.
        var all: [Virtual] = []
        var invites: [Invite?] = []
        var settings = RoomSettings.privacyDefaults
        settings.maxParticipants = UInt16(clamping: o.perRoom)
        settings.maxWaiting = UInt16(clamping: max(o.perRoom, 1))
        for r in 0..<o.rooms {
            let probe = VirtualProbe(room: rooms[r], gate: gate, tickDivisor: divisor, decryptEvery: o.decryptEvery)
            do {
                let host = try await Participant.host(
                    relay: o.relays[r % o.relays.count], password: nil, settings: settings,
                    options: participantOptions("host \(r + 1)", probe: probe, talks: true), output: output("host \(r + 1)"))
                let run = Task { await host.run(for: lifetime) }
                all.append(Virtual(participant: host, probe: probe, run: run, room: r))
                invites.append(await host.invite)
            } catch {
                errors.append("room \(r + 1): the host could not create it: \(error)")
                invites.append(nil)
            }
        }
        let members = (0..<o.rooms).flatMap { r in (1..<o.perRoom).map { (r, $0) } }
        let pace = members.isEmpty ? 0 : o.rampSeconds / Double(members.count)
        let rampStart = ContinuousClock.now
        await withTaskGroup(of: Result<(Virtual, Double), JoinFailure>.self) { group in
            var inFlight = 0
            for (n, (r, m)) in members.enumerated() {
                if loadInterrupted.load(ordering: .relaxed) { break }
                guard let invite = invites[r] else { continue }
                if inFlight >= o.joinConcurrency, let result = await group.next() {
                    inFlight -= 1
                    collect(result)
                }
                let due = rampStart + .seconds(pace * Double(n))
                if due > .now { try? await Task.sleep(until: due, clock: .continuous) }
                let probe = VirtualProbe(room: rooms[r], gate: gate, tickDivisor: divisor, decryptEvery: o.decryptEvery)
                let name = "member \(r + 1).\(m)"
                let options = participantOptions(name, probe: probe, talks: m < (o.talkers ?? o.perRoom))
                inFlight += 1
                group.addTask {
                    let start = ContinuousClock.now
                    do {
                        let p = try await Participant.join(invite: invite, options: options, output: output(name))
                        let run = Task { await p.run(for: lifetime) }
                        guard await waitForKeys(probe, timeout: .seconds(15)) else {
                            await p.stop()
                            return .failure(JoinFailure(description: "\(name) was not admitted with keys within 15 s"))
                        }
                        let elapsed = ContinuousClock.now - start
                        return .success((Virtual(participant: p, probe: probe, run: run, room: r), Self.millis(elapsed)))
                    } catch {
                        return .failure(JoinFailure(description: "\(name): \(error)"))
                    }
                }
            }
            for await result in group { collect(result) }
            func collect(_ result: Result<(Virtual, Double), JoinFailure>) {
                switch result {
                case .success(let (v, ms)):
                    all.append(v)
                    joinTimes.append(ms)
                case .failure(let f):
                    errors.append(f.description)
                }
            }
        }
        // Every member of a room must hold the room's newest epoch before the clock starts.
        try? await Task.sleep(for: .milliseconds(1_500))
        let connected = all.count
        var perRoomCount = [Int](repeating: 0, count: o.rooms)
        for v in all { perRoomCount[v.room] += 1 }

        // MARK: Measure
        for r in rooms { r.reset() }
        let queuesAtStart = await Self.clientQueues(all)
        let cpuStart = processCPUSeconds(), userCPUStart = processUserCPUSeconds()
        let relayStart = await RelayProcessSample.readAll(o.relays)
        let measureStart = ContinuousClock.now
        gate.open.store(true, ordering: .relaxed)
        var timeline: [LoadSample] = []
        var lastSent = 0, lastArrived = 0, lastExpected = 0
        var second = 1
        while !loadInterrupted.load(ordering: .relaxed), ContinuousClock.now < measureStart + .seconds(o.durationSeconds) {
            try? await Task.sleep(until: min(measureStart + .seconds(second), measureStart + .seconds(o.durationSeconds)), clock: .continuous)
            second += 1
            var sent = 0, arrived = 0, expected = 0
            var interval = LoadLatency.makeHistogram()
            for (r, stats) in rooms.enumerated() {
                let s = stats.sent.load(ordering: .relaxed)
                sent += s
                expected += s * max(0, perRoomCount[r] - 1)
                arrived += stats.arrived.load(ordering: .relaxed) - stats.stale.load(ordering: .relaxed)
                interval.add(stats.takeInterval())
            }
            let elapsed = Self.seconds(ContinuousClock.now - measureStart)
            let dt = max(0.001, elapsed - (timeline.last?.tSeconds ?? 0))
            let dExpected = expected - lastExpected, dArrived = arrived - lastArrived
            let p = LoadLatency.percentiles(interval)
            var sample = LoadSample(
                tSeconds: elapsed, connected: connected, sentPerSecond: Double(sent - lastSent) / dt,
                receivedPerSecond: Double(dArrived) / dt,
                lossPercent: dExpected > 0 ? max(0, Double(dExpected - dArrived) / Double(dExpected) * 100) : 0,
                p50Ms: p.p50Ms, p99Ms: p.p99Ms)
            if o.relaySampleSeconds > 0, (second - 1) % o.relaySampleSeconds == 0,
                let relay = await RelayProcessSample.readAll(o.relays)
            {
                sample.relayRSSBytes = relay.residentBytes
                sample.relayOpenFDs = relay.openDescriptors
            }
            timeline.append(sample)
            progress(LoadReport.progressLine(sample))
            (lastSent, lastArrived, lastExpected) = (sent, arrived, expected)
        }
        gate.open.store(false, ordering: .relaxed)
        let cpuEnd = processCPUSeconds(), userCPUEnd = processUserCPUSeconds()
        // The frames the runner's CPU above paid for: sealed, and opened, while it ran.
        let sentAtGateClose = rooms.reduce(0) { $0 + $1.sent.load(ordering: .relaxed) }
        let decryptedAtGateClose = rooms.reduce(0) { $0 + $1.decrypted.load(ordering: .relaxed) }
        let measured = Self.seconds(ContinuousClock.now - measureStart)
        let relayEnd = await RelayProcessSample.readAll(o.relays)
        // Drain: frames in flight when the gate closed still count.
        try? await Task.sleep(for: .seconds(1))

        var sent = 0, expected = 0, arrived = 0, decrypted = 0, duplicates = 0, failures = 0, late = 0
        var total = LoadLatency.makeHistogram()
        for (r, stats) in rooms.enumerated() {
            let s = stats.sent.load(ordering: .relaxed)
            sent += s
            expected += s * max(0, perRoomCount[r] - 1)
            // A frame dropped as stale after decryption is not received: it is lost.
            arrived += stats.arrived.load(ordering: .relaxed) - stats.stale.load(ordering: .relaxed)
            late += stats.stale.load(ordering: .relaxed)
            decrypted += stats.decrypted.load(ordering: .relaxed)
            duplicates += stats.duplicates.load(ordering: .relaxed)
            failures += stats.failures.load(ordering: .relaxed)
            stats.latency.withLock { total.add($0.total) }
        }
        let beforeJoin = rooms.reduce(0) { $0 + $1.beforeJoin.load(ordering: .relaxed) }
        if beforeJoin > 0 {
            errors.append(
                "\(beforeJoin) audio frames arrived sealed under an epoch from before their receiver's admission (not readable by design; counted as lost)")
        }
        if failures > 0 {
            var reasons: [String: Int] = [:]
            for stats in rooms { stats.failureReasons.withLock { reasons.merge($0, uniquingKeysWith: +) } }
            errors.append("\(failures) audio frames not opened: " + reasons.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            var cases: [String: Int] = [:]
            for stats in rooms { stats.unknownEpochCases.withLock { cases.merge($0, uniquingKeysWith: +) } }
            for (key, count) in cases.sorted(by: { $0.value > $1.value }).prefix(3) {
                errors.append("unknown_epoch: \(count) with \(key)")
            }
        }
        var udp = 0
        for v in all where await v.participant.mediaPathIsUp { udp += 1 }
        // Drops during the measurement (as the loss is); peaks over the whole run.
        var queues = await Self.clientQueues(all)
        queues.staleAudioDropped -= queuesAtStart.staleAudioDropped
        queues.mediaOverflowDropped -= queuesAtStart.mediaOverflowDropped
        queues.lateAudioDropped = UInt64(late)

        // MARK: Rekey after a removal (room 1)
        var rekeyMs: Double?
        if o.measureRekey, !loadInterrupted.load(ordering: .relaxed) {
            rekeyMs = await measureRekey(all.filter { $0.room == 0 }, errors: &errors)
        }

        // MARK: Tear down
        for v in all { await v.participant.stop() }
        for v in all { _ = await v.run.value }

        let loss = expected > 0 ? max(0, Double(expected - arrived) / Double(expected) * 100) : 0
        let latency = LoadLatency.percentiles(total)
        joinTimes.sort()
        func percentile(_ values: [Double], _ p: Double) -> Double {
            values.isEmpty ? 0 : values[min(values.count - 1, Int((Double(values.count) * p / 100).rounded(.up)) - 1)]
        }
        var relayCPU: Double?, relayRSS: UInt64?, perParticipant: UInt64?
        if let a = relayStart, let b = relayEnd {
            relayCPU = (b.cpuSeconds - a.cpuSeconds) / max(0.001, Self.seconds(b.at - a.at)) * 100
            relayRSS = b.residentBytes
            if let base = relayBefore, connected > 0 {
                perParticipant = (b.residentBytes > base.residentBytes ? b.residentBytes - base.residentBytes : 0) / UInt64(connected)
            }
        } else {
            errors.append(
                "a relay's /metrics did not answer (\(o.relays.map { "\($0.host):\($0.port)" }.joined(separator: ", "))); relay CPU and memory not measured")
        }
        if connected < o.rooms * o.perRoom {
            errors.insert("\(o.rooms * o.perRoom - connected) of \(o.rooms * o.perRoom) participants did not join", at: 0)
        }
        let passed =
            connected == o.rooms * o.perRoom && loss <= o.lossThresholdPercent && latency.p99Ms <= o.p99ThresholdMs
            && latency.count > 0 && failures == 0
        var summary = LoadSummary(
            configuration: o.configuration, date: Self.isoDate(), machine: Self.machine(),
            participantsTarget: o.rooms * o.perRoom, participantsConnected: connected, udpParticipants: udp, wsParticipants: connected - udp,
            framesSent: UInt64(sent), framesExpected: UInt64(expected), framesReceived: UInt64(arrived), lossPercent: loss,
            duplicates: UInt64(duplicates), decryptFailures: UInt64(failures), framesDecrypted: UInt64(decrypted),
            latency: latency, joinP50Ms: percentile(joinTimes, 50), joinP99Ms: percentile(joinTimes, 99),
            rekeyAfterRemovalMs: rekeyMs, runnerCPUPercent: (cpuEnd - cpuStart) / max(0.001, measured) * 100,
            relayCPUPercent: relayCPU, relayRSSBytes: relayRSS, relayRSSPerParticipantBytes: perParticipant,
            timeline: timeline, passed: passed, errors: errors)
        summary.clientQueues = queues
        summary.clientCPU = Self.bareCrypto(frameBytes: o.frameBytes).map {
            ClientCPUPerFrame(
                runnerCPUSeconds: cpuEnd - cpuStart, runnerUserCPUSeconds: userCPUEnd - userCPUStart, framesSealed: UInt64(sentAtGateClose),
                framesOpened: UInt64(decryptedAtGateClose),
                bareSealMicros: $0.seal, bareOpenMicros: $0.open)
        }
        return summary
    }

    /// Every participant's inbound queue: drops summed, peaks maxed.
    static func clientQueues(_ all: [Virtual]) async -> ClientQueueSummary {
        var queues = ClientQueueSummary()
        let limits = RelayConnection.Options()
        queues.mediaLimit = limits.maximumQueuedMedia
        queues.controlHighWatermark = limits.inboundHighWatermark
        for v in all {
            let q = await v.participant.inboundStatistics()
            queues.staleAudioDropped += q.staleAudioDropped
            queues.mediaOverflowDropped += q.mediaOverflowDropped
            queues.peakQueuedMedia = max(queues.peakQueuedMedia, q.peakQueuedMedia)
            queues.peakQueuedControl = max(queues.peakQueuedControl, q.peakQueuedControl)
        }
        return queues
    }

    /// The host removes the room's last member; the time until every remaining member has
    /// installed the fresh epoch (milliseconds).
    func measureRekey(_ room: [Virtual], errors: inout [String]) async -> Double? {
        guard room.count >= 3, let host = room.first else { return nil }
        let victim = room.last!
        let remaining = room.dropLast()
        let before = remaining.map { $0.probe.epoch.epoch }
        let victimIndex = await victim.participant.index
        let start = NIODeadline.now().uptimeNanoseconds
        do {
            try await host.participant.command(.remove(ParticipantIndex(victimIndex)))
        } catch {
            errors.append("rekey: the host could not remove a member: \(error)")
            return nil
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            let done = zip(remaining, before).allSatisfy { v, b in v.probe.epoch.epoch > b }
            if done {
                let last = remaining.map { $0.probe.epoch.at }.max() ?? start
                return Double(last - start) / 1_000_000
            }
            try? await Task.sleep(for: .milliseconds(1))
        }
        errors.append("rekey: not every member had the new epoch 5 s after the removal")
        return nil
    }

    /// The bare seal and open of one `frameBytes` frame on this machine, in microseconds
    /// of thread CPU time: libsodium's XChaCha20-Poly1305 through ``CryptoBench``, 3 rounds
    /// of 100 ms each (about 0.4 s); nil if the bench fails its self-check.
    static func bareCrypto(frameBytes: Int) -> (seal: Double, open: Double)? {
        let configuration = CryptoBench.Configuration(
            sizes: [max(1, frameBytes)], measurementDuration: .milliseconds(100), rounds: 3, contenders: [.libsodium])
        guard let report = try? CryptoBench.run(configuration), let r = report.sizes.first?.result(for: .libsodium),
            r.sealFramesPerSecond > 0, r.openFramesPerSecond > 0
        else { return nil }
        return (1e6 / r.sealFramesPerSecond, 1e6 / r.openFramesPerSecond)
    }

    static func millis(_ d: Duration) -> Double { seconds(d) * 1_000 }
    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    static func isoDate() -> String {
        var t = time(nil)
        var tm = tm()
        gmtime_r(&t, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday))T\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec))Z"
    }

    static func machine() -> String {
        "\(System.coreCount) cores, Linux"
    }
}
