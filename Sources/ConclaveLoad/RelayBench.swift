import Foundation
import Histogram
import Synchronization
import NIOCore
import NIOPosix
import ConclaveClient
import ConclaveCrypto
import ConclaveProtocol

/// `conclave bench relay`: loopback UDP forwarding through a real relay process.
///
/// For each room size, every member sends 160-byte audio frames by UDP at a paced rate so
/// the relay forwards `offeredRate` packets per second in total. Receivers count packets
/// and record the latency from a send timestamp in the payload. The relay's CPU comes from
/// its `/metrics` (process CPU, user + system), so CPU per forwarded packet, and the packets
/// per second one relay core sustains, are the relay's own figures, not the generator's.
/// The same generator and receivers, wired directly to each other with no relay, give the
/// loopback baseline: relay-added latency is the difference of the percentiles.
public struct RelayBench: Sendable {
    public struct Options: Sendable {
        public var relay: RelayEndpoint
        public var roomSizes = [2, 5, 10]
        /// Forwarded packets per second the generator asks for (per room size).
        public var offeredRate = 75_000
        public var seconds = 5.0
        public var warmupSeconds = 1.0
        public var payloadBytes = 160
        /// Also measure the C reference forwarder (`--baseline`), with the same generator
        /// and receivers, in the same run: the relay's CPU per packet as a ratio of its.
        public var referenceForwarder: ReferenceForwarder?
        /// With a reference forwarder: relay and C loop measured alternately this many times
        /// each (relay first in odd rounds, C first in even ones), their CPU and packets
        /// pooled, so that the machine's drift over the run weighs on both alike.
        public var rounds = 1
        public init(relay: RelayEndpoint) { self.relay = relay }
    }

    /// The C reference forwarder's figures for one room size.
    public struct ReferenceResult: Sendable {
        public var forwardedPerSecond: Double
        public var lossPercent: Double
        public var cpuPercent: Double?
        public var cpuMicrosPerPacket: Double?
        public var packetsPerSecondPerCore: Double?
        public var latencyP50Ms: Double
        public var latencyP99Ms: Double
    }

    public struct Result: Sendable {
        public var roomSize: Int
        public var senders: Int
        public var offeredPerSecond: Double
        public var forwardedPerSecond: Double
        public var receivedPerSecond: Double
        public var lossPercent: Double
        public var relayCPUPercent: Double?
        public var relayCPUMicrosPerPacket: Double?
        /// Datagrams per second the relay reports having sent (its `/metrics`), and its CPU
        /// per such datagram: the figures to use at saturation, where receivers lose packets.
        public var relaySentPerSecond: Double?
        public var relayCPUMicrosPerSentPacket: Double?
        /// 1 / CPU per packet: what one relay core would forward at 100 % busy.
        public var packetsPerSecondPerCore: Double?
        public var latencyP50Ms: Double
        public var latencyP99Ms: Double
        public var baselineP50Ms: Double
        public var baselineP99Ms: Double
        public var relayAddedP50Ms: Double { max(0, latencyP50Ms - baselineP50Ms) }
        public var relayAddedP99Ms: Double { max(0, latencyP99Ms - baselineP99Ms) }
        /// The C reference forwarder in the same run (`--baseline`).
        public var reference: ReferenceResult?
        /// Relay ÷ C CPU per packet of each round (`--rounds`), in order.
        public var roundRatios: [Double] = []
        /// The relay's CPU per forwarded packet ÷ the C forwarder's (target ≤ 1.1).
        public var cpuRatioToReference: Double? {
            guard let relay = relayCPUMicrosPerPacket, let c = reference?.cpuMicrosPerPacket, c > 0 else { return nil }
            return relay / c
        }
        /// The offered rate as a share of what one core forwards through the C loop (the
        /// latency target applies at ≤ 0.5).
        public var offeredShareOfReferenceCore: Double? {
            guard let perCore = reference?.packetsPerSecondPerCore, perCore > 0 else { return nil }
            return offeredPerSecond / perCore
        }
    }

    public let options: Options
    public init(options: Options) { self.options = options }

    // MARK: Members

    /// A room member on raw UDP: the control connection, the session, a socket.
    final class Member: @unchecked Sendable {
        let connection: RelayConnection
        let index: ParticipantIndex
        let session: MediaSessionMessage
        let authenticator: HopAuthenticator
        var channel: Channel!
        var sequence: UInt64 = 0
        /// Frames sent in the current measurement (event loop only).
        var sentTotal = 0
        init(connection: RelayConnection, index: ParticipantIndex, session: MediaSessionMessage) throws {
            self.connection = connection
            self.index = index
            self.session = session
            self.authenticator = try HopAuthenticator(key: session.hopKey)
        }
    }

    /// Counts datagrams and records latency; confined to its channel's event loop.
    final class Receiver: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        var count = 0
        var recording = false
        /// The last `PATH_CHALLENGE` datagram received (answered by the bench, 6.4).
        var challenge: [UInt8]?
        /// The reference forwarder answered this member's registration.
        var registered = false
        var histogram = LoadLatency.makeHistogram()
        /// Offset of the timestamp in a received datagram.
        let stampOffset: Int
        init(stampOffset: Int) { self.stampOffset = stampOffset }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = Self.unwrapInboundIn(data).data
            if buffer.readableBytes == MediaDatagram.keepaliveAckLength,
                buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) == MediaDatagram.Kind.pathChallenge.rawValue
            {
                challenge = buffer.getBytes(at: buffer.readerIndex, length: buffer.readableBytes)
                return
            }
            if buffer.readableBytes == ReferenceForwarder.registrationAnswerLength,
                buffer.getBytes(at: buffer.readerIndex, length: 4) == ReferenceForwarder.registrationAnswer
            {
                registered = true
                return
            }
            guard recording, buffer.readableBytes >= stampOffset + 8,
                let stamp = buffer.getInteger(at: buffer.readerIndex + stampOffset, as: UInt64.self)
            else { return }
            count += 1
            let now = NIODeadline.now().uptimeNanoseconds
            _ = histogram.record(max(1, (now &- stamp) / 1_000))
        }
    }

    static func join(_ endpoint: RelayEndpoint, room: RoomID?, settings: RoomSettings) async throws -> (Member, RoomID) {
        let (connection, challenge) = try await RelayHandshake.open(endpoint, tls: nil)
        let identity = PrivateIdentity.generate()
        let wire = identity.publicIdentity.wireIdentity
        let roomID: RoomID, index: ParticipantIndex
        if let room {
            try await connection.send(
                .join(
                    JoinMessage(
                        roomID: room, identity: wire, signature: try RelayHandshake.proof(identity: identity, challenge: challenge, room: room),
                        relayAuth: nil, knock: [UInt8](repeating: 0x4B, count: 32))))
            index = try await RelayHandshake.expect(connection, "ADMITTED", timeout: .seconds(5)) {
                if case .admitted(let a) = $0 { return a.index }; return nil
            }
            roomID = room
        } else {
            let proposed = RoomID(bytes: SecureRandom.bytes(count: 16))!
            try await connection.send(
                .createRoom(
                    CreateRoomMessage(
                        roomID: proposed, identity: wire,
                        signature: try RelayHandshake.proof(identity: identity, challenge: challenge, room: proposed),
                        relayAuth: nil, settings: settings)))
            let created = try await RelayHandshake.expect(connection, "ROOM_CREATED", timeout: .seconds(5)) {
                if case .roomCreated(let c) = $0 { return c }; return nil
            }
            (roomID, index) = (created.roomID, created.index)
        }
        let session = try await RelayHandshake.expect(connection, "MEDIA_SESSION (is the relay's UDP media path on?)", timeout: .seconds(5)) {
            if case .mediaSession(let s) = $0 { return s }; return nil
        }
        return (try Member(connection: connection, index: index, session: session), roomID)
    }

    // MARK: Running

    public func run(progress: @Sendable (String) -> Void) async throws -> [Result] {
        var results: [Result] = []
        for size in options.roomSizes {
            progress("room of \(size): setting up")
            results.append(try await runRoom(size: size, progress: progress))
        }
        return results
    }

    func runRoom(size: Int, progress: @Sendable (String) -> Void) async throws -> Result {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        var settings = RoomSettings.privacyDefaults
        settings.waitingRoom = false
        settings.muteOnEntry = false
        var joined: [Member] = []
        let (host, room) = try await Self.join(options.relay, room: nil, settings: settings)
        joined.append(host)
        for _ in 1..<size { joined.append(try await Self.join(options.relay, room: room, settings: settings).0) }
        let members = joined
        defer { for m in members { let c = m.connection; Task { await c.close() } } }

        let relayAddress = try SocketAddress.makeAddressResolvingHost(options.relay.host, port: Int(host.session.port))
        // The timestamp sits at the start of the FRAME payload: datagram offset 0 (downlink
        // datagrams are the FRAME message) + 8 header bytes.
        var receivers: [Receiver] = []
        for m in members {
            let receiver = Receiver(stampOffset: MessageLimits.frameHeaderLength)
            receivers.append(receiver)
            m.channel = try await DatagramBootstrap(group: loop)
                .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
                .channelOption(.socketOption(.so_sndbuf), value: 4 << 20)
                .channelOption(.datagramVectorReadMessageCount, value: 32)
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 32 * 2048))
                .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(receiver) } }
                .bind(host: "127.0.0.1", port: 0).get()
        }
        // Keepalives open every path: the relay challenges each address, the member echoes
        // the token (6.4), and the path is validated.
        try await loop.submit {
            for m in members { try self.send(m, kind: .keepalive, body: nil, to: relayAddress) }
        }.get()
        let deadline = ContinuousClock.now + .seconds(5)
        var answered = Set<Int>()
        while answered.count < members.count, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
            let pending = answered, receiving = receivers
            answered = try await loop.submit { () -> Set<Int> in
                var now = pending
                for (i, m) in members.enumerated() where !now.contains(i) {
                    guard let bytes = receiving[i].challenge,
                        let c = bytes.withUnsafeBytes({ MediaDatagram.openPathChallenge($0, sessionID: m.session.sessionID, authenticator: m.authenticator) })
                    else { continue }
                    try self.send(m, kind: .pathResponse, body: MediaDatagram.pathResponseBody(token: c.token), to: relayAddress)
                    now.insert(i)
                }
                return now
            }.get()
        }
        guard answered.count == members.count else { throw RelayBenchError(message: "the relay did not challenge every member's address") }
        try await Task.sleep(for: .milliseconds(100))

        let perSender = Double(options.offeredRate) / Double(size * (size - 1))
        func throughRelay() async throws -> Measurement {
            try await self.measure(
                members: members, receivers: receivers, perSenderRate: perSender, loop: loop, progress: progress, label: "room of \(size)",
                cpu: .relay
            ) { _ in (relayAddress, true) }
        }
        guard let forwarder = options.referenceForwarder else {
            return try await finish(
                size: size, members: members, receivers: receivers, perSender: perSender, loop: loop, progress: progress, relay: [try await throughRelay()],
                reference: [])
        }
        func throughC(_ forwarder: ReferenceForwarder) async throws -> Measurement {
            try await self.register(members, receivers: receivers, room: UInt32(size), with: forwarder, loop: loop)
            return try await self.measure(
                members: members, receivers: receivers, perSenderRate: perSender, loop: loop, progress: progress,
                label: "room of \(size), C reference forwarder", cpu: .reference(forwarder)
            ) { _ in (forwarder.address, true) }
        }
        var relay: [Measurement] = []
        var reference: [Measurement] = []
        for round in 0..<max(1, options.rounds) {
            if round % 2 == 0 {
                relay.append(try await throughRelay())
                reference.append(try await throughC(forwarder))
            } else {
                reference.append(try await throughC(forwarder))
                relay.append(try await throughRelay())
            }
        }
        return try await finish(
            size: size, members: members, receivers: receivers, perSender: perSender, loop: loop, progress: progress, relay: relay, reference: reference)
    }

    /// Pools the rounds' measurements (CPU and packets summed, so CPU per packet is the
    /// whole run's; latency percentiles are the worst round's), runs the direct baseline and
    /// makes the result.
    func finish(
        size: Int, members: [Member], receivers: [Receiver], perSender: Double, loop: EventLoop, progress: @Sendable (String) -> Void,
        relay: [Measurement], reference: [Measurement]
    ) async throws -> Result {
        let viaRelay = Measurement.pooled(relay)
        var pooledReference: ReferenceResult?
        if !reference.isEmpty {
            let c = Measurement.pooled(reference)
            pooledReference = ReferenceResult(
                forwardedPerSecond: c.forwarded, lossPercent: c.loss, cpuPercent: c.cpuPercent, cpuMicrosPerPacket: c.cpuMicrosPerPacket,
                packetsPerSecondPerCore: c.cpuMicrosPerPacket.map { $0 > 0 ? 1e6 / $0 : 0 }, latencyP50Ms: c.p50, latencyP99Ms: c.p99)
        }
        let roundRatios = zip(relay, reference).compactMap { r, c -> Double? in
            guard let a = r.cpuMicrosPerPacket, let b = c.cpuMicrosPerPacket, b > 0 else { return nil }
            return a / b
        }
        // Baseline: each sender writes straight to the next member's socket, same rate, same sizes.
        let addresses = members.map { $0.channel.localAddress! }
        let baseline = try await measure(
            members: members, receivers: receivers, perSenderRate: perSender * Double(size - 1), loop: loop,
            progress: progress, label: "room of \(size), direct baseline", cpu: nil
        ) { m in
            let i = members.firstIndex { $0 === m }!
            return (addresses[(i + 1) % members.count], false)
        }
        for m in members { try? await m.channel.close() }
        return Result(
            roomSize: size, senders: size, offeredPerSecond: Double(options.offeredRate), forwardedPerSecond: viaRelay.forwarded,
            receivedPerSecond: viaRelay.received, lossPercent: viaRelay.loss,
            relayCPUPercent: viaRelay.cpuPercent, relayCPUMicrosPerPacket: viaRelay.cpuMicrosPerPacket,
            relaySentPerSecond: viaRelay.sentPerSecond, relayCPUMicrosPerSentPacket: viaRelay.cpuMicrosPerSentPacket,
            packetsPerSecondPerCore: viaRelay.cpuMicrosPerPacket.map { $0 > 0 ? 1e6 / $0 : 0 },
            latencyP50Ms: viaRelay.p50, latencyP99Ms: viaRelay.p99, baselineP50Ms: baseline.p50, baselineP99Ms: baseline.p99,
            reference: pooledReference, roundRatios: roundRatios)
    }

    /// Every member registers its socket with the reference forwarder, in room `room`;
    /// returns once each has its answer (resent every 50 ms, for at most 5 s).
    func register(_ members: [Member], receivers: [Receiver], room: UInt32, with forwarder: ReferenceForwarder, loop: EventLoop) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            let missing = try await loop.submit { () -> Int in
                var missing = 0
                for (i, m) in members.enumerated() where !receivers[i].registered {
                    missing += 1
                    let bytes = ReferenceForwarder.registration(room: room, member: UInt32(i))
                    m.channel.writeAndFlush(AddressedEnvelope(remoteAddress: forwarder.address, data: m.channel.allocator.buffer(bytes: bytes)), promise: nil)
                }
                return missing
            }.get()
            if missing == 0 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw RelayBenchError(message: "the reference forwarder did not answer every member's registration within 5 s")
    }

    /// Whose CPU a measurement reads.
    enum CPUSource {
        /// The relay's own `/metrics`.
        case relay
        /// The reference forwarder's `/proc/PID/stat`.
        case reference(ReferenceForwarder)
    }

    func cpuSample(_ source: CPUSource?) async -> (seconds: Double, at: ContinuousClock.Instant, sent: Double?)? {
        switch source {
        case nil: return nil
        case .relay: return await RelayProcessSample.read(host: options.relay.host, port: options.relay.port).map { ($0.cpuSeconds, $0.at, $0.udpSent) }
        case .reference(let forwarder): return forwarder.cpuSeconds.map { ($0, ContinuousClock.now, nil) }
        }
    }

    struct Measurement {
        var forwarded: Double, received: Double, loss: Double
        var cpuPercent: Double?, cpuMicrosPerPacket: Double?
        var p50: Double, p99: Double
        /// The raw sums behind the rates, for pooling rounds.
        var expectedPackets = 0.0, receivedPackets = 0.0, wallSeconds = 0.0
        var cpuSeconds: Double?, cpuWallSeconds: Double?
        /// Datagrams the relay itself says it sent over the CPU window (its `/metrics`).
        var sentPackets: Double?
        /// CPU per datagram the relay sent: unlike ``cpuMicrosPerPacket``, not inflated by
        /// packets the receivers lost when the machine is saturated.
        var cpuMicrosPerSentPacket: Double? {
            guard let cpuSeconds, let sentPackets, sentPackets > 0 else { return nil }
            return cpuSeconds / sentPackets * 1e6
        }
        var sentPerSecond: Double? {
            guard let sentPackets, let cpuWallSeconds, cpuWallSeconds > 0 else { return nil }
            return sentPackets / cpuWallSeconds
        }

        /// Several measurements as one: rates over the summed time, CPU per packet as the
        /// summed CPU over the summed packets, the worst p50 and p99.
        static func pooled(_ all: [Measurement]) -> Measurement {
            if all.count == 1 { return all[0] }
            let wall = all.reduce(0) { $0 + $1.wallSeconds }
            let expected = all.reduce(0) { $0 + $1.expectedPackets }
            let received = all.reduce(0) { $0 + $1.receivedPackets }
            var m = Measurement(
                forwarded: wall > 0 ? expected / wall : 0, received: wall > 0 ? received / wall : 0,
                loss: expected > 0 ? max(0, (expected - received) / expected * 100) : 0,
                cpuPercent: nil, cpuMicrosPerPacket: nil,
                p50: all.map(\.p50).max() ?? 0, p99: all.map(\.p99).max() ?? 0,
                expectedPackets: expected, receivedPackets: received, wallSeconds: wall)
            let cpu = all.compactMap(\.cpuSeconds), cpuWall = all.compactMap(\.cpuWallSeconds)
            if cpu.count == all.count, cpuWall.count == all.count {
                let used = cpu.reduce(0, +), seconds = cpuWall.reduce(0, +)
                m.cpuSeconds = used
                m.cpuWallSeconds = seconds
                let sent = all.compactMap(\.sentPackets)
                m.sentPackets = sent.count == all.count ? sent.reduce(0, +) : nil
                m.cpuPercent = seconds > 0 ? used / seconds * 100 : nil
                // Packets received while the CPU was sampled, per round, summed.
                let packets = all.reduce(0.0) { $0 + $1.receivedPackets * ($1.cpuWallSeconds ?? 0) / max($1.wallSeconds, 1e-9) }
                m.cpuMicrosPerPacket = packets > 0 ? used / packets * 1e6 : nil
            }
            return m
        }
    }

    /// Paces sends every millisecond on `loop` for warm-up + measurement; returns rates and latency.
    func measure(
        members: [Member], receivers: [Receiver], perSenderRate: Double, loop: EventLoop,
        progress: @Sendable (String) -> Void, label: String, cpu: CPUSource?,
        target: @escaping @Sendable (Member) -> (SocketAddress, Bool)
    ) async throws -> Measurement {
        let fanOut = cpu.map { _ in members.count - 1 } ?? 1
        let payload = options.payloadBytes
        let started = NIODeadline.now()
        let task = loop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(1)) { _ in
            let elapsed = Double((NIODeadline.now() - started).nanoseconds) / 1e9
            for m in members {
                let due = Int(elapsed * perSenderRate) - Int(m.sentTotal)
                guard due > 0 else { continue }
                let (address, viaRelay) = target(m)
                for _ in 0..<min(due, 2_000) {
                    try? self.sendFrame(m, payloadBytes: payload, to: address, viaRelay: viaRelay, flush: false)
                    m.sentTotal += 1
                }
                m.channel.flush()
            }
        }
        defer { task.cancel() }
        try await Task.sleep(for: .seconds(options.warmupSeconds))
        try await loop.submit { for r in receivers { r.recording = true; r.count = 0; r.histogram = LoadLatency.makeHistogram() } }.get()
        let sentAtStart = try await loop.submit { members.reduce(0) { $0 + $1.sentTotal } }.get()
        let before = await cpuSample(cpu)
        let t0 = ContinuousClock.now
        try await Task.sleep(for: .seconds(options.seconds))
        let after = await cpuSample(cpu)
        let (sentAtEnd, received, histogram) = try await loop.submit { () -> (Int, Int, Histogram<UInt64>) in
            var h = LoadLatency.makeHistogram()
            for r in receivers { r.recording = false; h.add(r.histogram) }
            return (members.reduce(0) { $0 + $1.sentTotal }, receivers.reduce(0) { $0 + $1.count }, h)
        }.get()
        let wall = LoadRunner.seconds(ContinuousClock.now - t0)
        task.cancel()
        try await Task.sleep(for: .milliseconds(200))
        for m in members { m.sentTotal = 0 }
        let expected = Double(sentAtEnd - sentAtStart) * Double(fanOut)
        let forwarded = expected / wall
        let receivedRate = Double(received) / wall
        let p = LoadLatency.percentiles(histogram)
        var m = Measurement(
            forwarded: forwarded, received: receivedRate, loss: expected > 0 ? max(0, (expected - Double(received)) / expected * 100) : 0,
            cpuPercent: nil, cpuMicrosPerPacket: nil, p50: p.p50Ms, p99: p.p99Ms,
            expectedPackets: expected, receivedPackets: Double(received), wallSeconds: wall)
        if let before, let after {
            let used = after.seconds - before.seconds
            let seconds = LoadRunner.seconds(after.at - before.at)
            m.cpuSeconds = used
            m.cpuWallSeconds = seconds
            if let a = before.sent, let b = after.sent { m.sentPackets = b - a }
            m.cpuPercent = used / seconds * 100
            m.cpuMicrosPerPacket = received > 0 ? used / (Double(received) * seconds / wall) * 1e6 : nil
        }
        progress(
            "\(label): \(Int(receivedRate)) packets/s received, loss \(String(format: "%.3f", m.loss))%, p50 \(String(format: "%.3f", m.p50)) ms, p99 \(String(format: "%.3f", m.p99)) ms"
                + (m.cpuPercent.map { ", forwarder CPU \(String(format: "%.1f", $0))%" } ?? ""))
        return m
    }

    /// One MEDIA datagram (to the relay) or the bare FRAME message (baseline), stamped now.
    func sendFrame(_ m: Member, payloadBytes: Int, to address: SocketAddress, viaRelay: Bool, flush: Bool) throws {
        var frame = m.channel.allocator.buffer(capacity: MediaDatagram.headerLength + 8 + payloadBytes + MediaDatagram.tagLength)
        if viaRelay {
            m.sequence += 1
            frame.writeInteger(MediaDatagram.Kind.media.rawValue)
            frame.writeInteger(m.session.sessionID)
            frame.writeInteger(m.sequence)
        }
        frame.writeInteger(ProtocolVersion.current)
        frame.writeInteger(MessageType.frame.rawValue)
        frame.writeInteger(FrameKind.audio.rawValue)
        frame.writeInteger(UInt8(0))
        frame.writeInteger(m.index.rawValue)
        frame.writeInteger(ParticipantIndex.everyone.rawValue)
        frame.writeInteger(NIODeadline.now().uptimeNanoseconds)
        frame.writeRepeatingByte(0x5A, count: payloadBytes - 8)
        if viaRelay {
            let end = frame.writerIndex
            frame.writeRepeatingByte(0, count: MediaDatagram.tagLength)
            frame.withUnsafeMutableReadableBytes { raw in
                m.authenticator.tag(
                    UnsafeRawBufferPointer(rebasing: raw[..<end]), direction: .clientToRelay, sequence: m.sequence,
                    into: UnsafeMutableRawBufferPointer(rebasing: raw[end...]))
            }
        }
        m.channel.write(AddressedEnvelope(remoteAddress: address, data: frame), promise: nil)
        if flush { m.channel.flush() }
    }

    func send(_ m: Member, kind: MediaDatagram.Kind, body: [UInt8]?, to address: SocketAddress) throws {
        m.sequence += 1
        var out: [UInt8] = []
        (body ?? []).withUnsafeBytes {
            MediaDatagram.seal(.init(kind: kind, sessionID: m.session.sessionID, sequence: m.sequence), body: $0, authenticator: m.authenticator, into: &out)
        }
        m.channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: m.channel.allocator.buffer(bytes: out)), promise: nil)
    }
}

/// A JSON number with 4 decimals; `null` when absent or not finite.
private func n(_ v: Double?) -> String { v.map { $0.isFinite ? String(format: "%.4f", $0) : "null" } ?? "null" }

extension RelayBench.Result {
    public var json: String {
        "{\"room_size\":\(roomSize),\"offered_forwarded_per_second\":\(n(offeredPerSecond)),\"forwarded_per_second\":\(n(forwardedPerSecond)),"
            + "\"received_per_second\":\(n(receivedPerSecond)),\"loss_percent\":\(n(lossPercent)),\"relay_cpu_percent\":\(n(relayCPUPercent)),"
            + "\"relay_cpu_us_per_packet\":\(n(relayCPUMicrosPerPacket)),\"packets_per_second_per_relay_core\":\(n(packetsPerSecondPerCore)),"
            + "\"relay_sent_per_second\":\(n(relaySentPerSecond)),\"relay_cpu_us_per_sent_packet\":\(n(relayCPUMicrosPerSentPacket)),"
            + "\"latency_p50_ms\":\(n(latencyP50Ms)),\"latency_p99_ms\":\(n(latencyP99Ms)),\"baseline_p50_ms\":\(n(baselineP50Ms)),"
            + "\"baseline_p99_ms\":\(n(baselineP99Ms)),\"relay_added_p50_ms\":\(n(relayAddedP50Ms)),\"relay_added_p99_ms\":\(n(relayAddedP99Ms)),"
            + "\"reference\":\(reference.map(\.json) ?? "null"),\"relay_cpu_per_packet_over_reference\":\(n(cpuRatioToReference)),"
            + "\"offered_share_of_reference_core\":\(n(offeredShareOfReferenceCore)),"
            + "\"round_ratios\":[\(roundRatios.map { n($0) }.joined(separator: ","))]}"
    }
}

extension RelayBench.ReferenceResult {
    public var json: String {
        "{\"forwarded_per_second\":\(n(forwardedPerSecond)),\"loss_percent\":\(n(lossPercent)),\"cpu_percent\":\(n(cpuPercent)),"
            + "\"cpu_us_per_packet\":\(n(cpuMicrosPerPacket)),\"packets_per_second_per_core\":\(n(packetsPerSecondPerCore)),"
            + "\"latency_p50_ms\":\(n(latencyP50Ms)),\"latency_p99_ms\":\(n(latencyP99Ms))}"
    }
}

/// A relay benchmark that could not run, with the reason.
struct RelayBenchError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
