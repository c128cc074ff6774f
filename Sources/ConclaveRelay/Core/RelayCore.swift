import Synchronization
import Logging
import NIOCore
import NIOPosix
import ConclaveCrypto
import ConclaveProtocol

/// The relay's shared state: rooms, connections and limits, behind one lock.
///
/// Policy decisions are made by each room's ``RoomPolicy`` (a pure state machine). This
/// type only routes inputs to it and carries its actions out. Work that is slow (Argon2id)
/// runs on a thread pool, outside the lock; I/O happens after the lock is released.
/// Nothing survives a room: when it closes its policy, password hash, bans and limiter
/// entries are dropped.
final class RelayCore: Sendable {
    let configuration: RelayConfiguration
    let metrics: RelayMetrics
    let logger: Logger
    private let threadPool: NIOThreadPool
    /// The relay's time (injected: tests move a ``ManualRelayClock`` by hand).
    let clock: any RelayClock
    /// The relay's randomness (challenges, session ids, hop keys, path tokens).
    let random: RelayRandom

    /// A room in the registry: its cell (policy and recipients under the room's own lock)
    /// and its member counts as of its last change, for the gauges and the cluster's load.
    private struct RoomEntry {
        let cell: RoomCell
        var admitted = 1
        var waiting = 0
    }

    /// An admitted member as the frame path sees it: its WebSocket and, when the relay runs
    /// a media path, its UDP session.
    struct Recipient {
        let outbox: ConnectionOutbox
        let media: MediaSession?
    }

    private struct ConnectionEntry {
        let outbox: ConnectionOutbox
        var roomID: RoomID?
        var media: MediaSession?
    }

    /// The UDP media path, once bound.
    struct MediaEndpoint {
        /// `host` of `MEDIA_SESSION` (empty: the host of the control connection).
        let advertisedHost: String
        let port: UInt16
        /// One channel per event loop (SO_REUSEPORT), all bound to `port`.
        let channels: [Channel]
    }

    private struct State {
        var rooms: [RoomID: RoomEntry] = [:]
        var connections: [ConnectionID: ConnectionEntry] = [:]
        var nextConnection: UInt64 = 1
        /// Join attempts per source address, whatever their outcome.
        var joinAttempts: RateLimiter<String>
        var passwordFailuresByAddress: RateLimiter<String>
        var passwordFailuresByRoom: RateLimiter<RoomID>
        /// Rooms created per source address (every `CREATE_ROOM` counts, before any hashing).
        var roomCreations: RateLimiter<String>
        var shuttingDown = false
        var media: MediaEndpoint?
        /// TCP connections accepted and not yet upgraded to a WebSocket (or closed), in all
        /// and per source address: they count against `max-connections` from accept on.
        var pending = 0
        var pendingByAddress: [String: Int] = [:]
        /// Connections over the limit that will be told `at_capacity` (``refusalReserve``).
        var refusing = 0
    }

    /// Why a TCP connection was refused at accept.
    enum AcceptRefusal: Equatable {
        /// Over the limit by more than the refusal reserve: closed at once.
        case atCapacity, addressCap, shuttingDown
        /// Over the limit, within the reserve: it may upgrade, to be told `at_capacity`.
        case refuseAfterUpgrade
    }

    /// Connections past `max-connections` that may still upgrade to receive a typed
    /// `ERROR at_capacity` (5.1); past these, a connection is closed at accept.
    static let refusalReserve = 16

    /// The registry: rooms, connections, limiters. Not taken by the frame paths.
    private let state: Mutex<State>
    /// Media sessions by id (sharded; the UDP path looks a session up per datagram).
    private let sessions = SessionTable()
    /// The bound media path, for the WebSocket frame path's UDP writes.
    private let mediaBox = Mutex<MediaEndpoint?>(nil)
    /// This relay's membership of a cluster (nil: a single relay).
    private let clusterBox = Mutex<ClusterNode?>(nil)
    var cluster: ClusterNode? { clusterBox.withLock { $0 } }
    func attach(cluster: ClusterNode) { clusterBox.withLock { $0 = cluster } }
    /// A UDP path that has been silent this long falls back to the WebSocket.
    let mediaPathTimeout: Duration

    init(configuration: RelayConfiguration, metrics: RelayMetrics, logger: Logger, threadPool: NIOThreadPool,
         clock: any RelayClock = MonotonicRelayClock(), random: RelayRandom = .system) {
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        self.threadPool = threadPool
        self.clock = clock
        self.random = random
        self.mediaPathTimeout = .seconds(configuration.mediaPathTimeoutSeconds)
        self.state = Mutex(State(
            joinAttempts: RateLimiter(limit: configuration.joinAttemptsPerAddressPerMinute, window: 60_000),
            passwordFailuresByAddress: RateLimiter(limit: configuration.passwordFailuresPerAddressPerMinute, window: 60_000),
            passwordFailuresByRoom: RateLimiter(limit: configuration.passwordFailuresPerRoomPerMinute, window: 60_000),
            roomCreations: RateLimiter(limit: configuration.roomCreationsPerAddressPerMinute, window: 60_000)))
    }

    /// Milliseconds on the relay's clock (room policy, rate limiters).
    var now: RelayMillis { clock.now.milliseconds }

    // MARK: - Connections

    /// A TCP connection was accepted (before TLS and HTTP): it holds one of
    /// `max-connections` and one of its address's `max-pending-connections-per-address`
    /// until it upgrades or closes (``pendingEnded(address:)``). Nil: it may stay.
    func accepted(address: String) -> AcceptRefusal? {
        state.withLock { s -> AcceptRefusal? in
            if s.shuttingDown { return .shuttingDown }
            guard s.connections.count + s.pending < configuration.maxConnections else {
                guard s.refusing < Self.refusalReserve else { return .atCapacity }
                s.refusing += 1
                return .refuseAfterUpgrade
            }
            let mine = s.pendingByAddress[address, default: 0]
            guard mine < configuration.maxPendingConnectionsPerAddress || configuration.exemptAddresses.contains(address) else { return .addressCap }
            s.pending += 1
            s.pendingByAddress[address] = mine + 1
            recordConnections(s)
            return nil
        }
    }

    /// A connection accepted in the refusal reserve closed.
    func refusalEnded() {
        state.withLock { s in s.refusing = max(0, s.refusing - 1) }
    }

    /// A connection counted by ``accepted(address:)`` closed before its upgrade.
    func pendingEnded(address: String) {
        state.withLock { s in
            releasePending(&s, address)
            recordConnections(s)
        }
    }

    private func releasePending(_ s: inout State, _ address: String) {
        guard s.pending > 0, let mine = s.pendingByAddress[address] else { return }
        s.pending -= 1
        if mine <= 1 { s.pendingByAddress[address] = nil } else { s.pendingByAddress[address] = mine - 1 }
    }

    private func recordConnections(_ s: State) {
        metrics.connections.record(s.connections.count + s.pending)
        metrics.pendingConnections.record(s.pending)
    }

    /// Connections not yet upgraded.
    var pendingCount: Int { state.withLock { $0.pending } }

    /// Registers an upgraded connection, which held a pending slot since its accept; nil
    /// when the relay is stopping.
    func register(channel: Channel, address: String) -> ConnectionOutbox? {
        state.withLock { s -> ConnectionOutbox? in
            releasePending(&s, address)
            defer { recordConnections(s) }
            guard !s.shuttingDown, s.connections.count < configuration.maxConnections else { return nil }
            let id = ConnectionID(s.nextConnection)
            s.nextConnection += 1
            let outbox = ConnectionOutbox(id: id, channel: channel, address: address, metrics: metrics,
                                          mediaLimit: configuration.outboundMediaQueueBytes, hardLimit: configuration.outboundQueueBytes)
            s.connections[id] = ConnectionEntry(outbox: outbox, roomID: nil)
            return outbox
        }
    }

    func isInRoom(_ id: ConnectionID) -> Bool {
        state.withLock { $0.connections[id]?.roomID != nil }
    }

    /// The handshake deadline (from TCP accept) passed: an upgraded connection that has
    /// not sent `JOIN` or `CREATE_ROOM` gets `handshake_timeout` and is closed.
    func handshakeExpired(_ outbox: ConnectionOutbox) {
        metrics.limitHit("handshake_timeout")
        outbox.close(with: ErrorMessage(code: .handshakeTimeout, isFatal: true,
                                        message: "no JOIN or CREATE_ROOM within \(configuration.handshakeTimeoutSeconds) s of connecting"))
    }

    /// The connection went away (closed by either side). Idempotent.
    func disconnected(_ id: ConnectionID, reason: LeaveReason) {
        let deliveries = state.withLock { s -> [Delivery] in
            guard let entry = s.connections.removeValue(forKey: id) else { return [] }
            recordConnections(s)
            entry.outbox.room = nil
            if let media = entry.media { dropSession(&s, media) }
            guard let roomID = entry.roomID else { return [] }
            return mutateRoom(&s, roomID) { $0.disconnected(id, reason: reason, now: now) }
        }
        deliver(deliveries)
    }

    // MARK: - Rooms

    func createRoom(_ message: CreateRoomMessage, challenge: [UInt8], from outbox: ConnectionOutbox) {
        // Per source address, before the signature check and any Argon2id work (5.4).
        let now = self.now
        let limited = state.withLock { s -> UInt32? in
            guard !configuration.exemptAddresses.contains(outbox.address) else { return nil }
            if case .limited(let retry) = s.roomCreations.decision(for: outbox.address, now: now) { return retry }
            s.roomCreations.recordFailure(for: outbox.address, now: now)
            return nil
        }
        if let retry = limited {
            metrics.limitHit("room_creations")
            return outbox.close(with: ErrorMessage(code: .rateLimited, isFatal: true, retryAfterMilliseconds: retry,
                                                   message: "too many rooms created from this address; wait before creating another"))
        }
        guard verifyIdentityProof(identity: message.identity, signature: message.signature, challenge: challenge, roomID: message.roomID) else {
            return fail(outbox, .badSignature, "the identity signature over the relay challenge does not verify")
        }
        // In a cluster, a room not served here is placed first (5.10).
        if let cluster, !state.withLock({ $0.rooms[message.roomID] != nil }) {
            let loop = outbox.channel.eventLoop
            Task {
                let route = await cluster.routeCreate(message.roomID, owner: message.identity)
                loop.execute {
                    switch route {
                    case .local: self.hashAndCreate(message, outbox: outbox)
                    case .redirect(let origin): self.redirect(outbox, to: origin)
                    case .refuse(let code, let text): self.fail(outbox, code, text)
                    }
                }
            }
            return
        }
        hashAndCreate(message, outbox: outbox)
    }

    private func hashAndCreate(_ message: CreateRoomMessage, outbox: ConnectionOutbox) {
        if let auth = message.relayAuth {
            let limits = configuration.passwordLimits
            threadPool.runIfActive(eventLoop: outbox.channel.eventLoop) {
                try PasswordHash.hash(auth, limits: limits)
            }.whenComplete { result in
                switch result {
                case .success(let hash): self.finishCreate(message, passwordHash: hash, outbox: outbox)
                case .failure: self.fail(outbox, .internal, "the relay could not hash the password proof")
                }
            }
        } else {
            finishCreate(message, passwordHash: nil, outbox: outbox)
        }
    }

    private func finishCreate(_ message: CreateRoomMessage, passwordHash: String?, outbox: ConnectionOutbox) {
        var settings = message.settings
        settings.maxParticipants = min(settings.maxParticipants, UInt16(configuration.maxParticipantsPerRoom))
        settings.maxWaiting = min(settings.maxWaiting, UInt16(configuration.maxWaitingPerRoom))
        let result = state.withLock { s -> Result<(RoomID, [Delivery]), RefusalError> in
            guard var connection = s.connections[outbox.id], connection.roomID == nil else {
                return .failure(RefusalError(message: ErrorMessage(code: .unexpectedMessage, isFatal: true, message: "this connection already belongs to a room")))
            }
            guard s.rooms.count < configuration.maxRooms else {
                metrics.limitHit("rooms")
                return .failure(RefusalError(message: ErrorMessage(code: .tooManyRooms, isFatal: true, message: "the relay has reached its room limit")))
            }
            // The host proposes the id (5.4): its identity proof and relay_auth are bound to it.
            let roomID = message.roomID
            guard s.rooms[roomID] == nil else {
                return .failure(RefusalError(message: ErrorMessage(code: .roomExists, isFatal: true, message: "a room with the proposed id exists")))
            }
            let policy = RoomPolicy(roomID: roomID, owner: message.identity, ownerConnection: outbox.id, settings: settings, now: now)
            let cell = RoomCell(id: roomID, policy: policy, passwordHash: passwordHash)
            connection.roomID = roomID
            s.connections[outbox.id] = connection
            outbox.room = cell
            var deliveries = [Delivery(outbox: outbox, action: .message(.roomCreated(
                RoomCreatedMessage(roomID: roomID, index: policy.index(of: outbox.id) ?? 1, settings: settings))))]
            let media = openSession(&s, for: outbox.id, room: cell, deliveries: &deliveries)
            let host = Recipient(outbox: outbox, media: media)
            cell.state.withLock { r in
                r.recipients = [host]
                r.byConnection = [outbox.id: host]
            }
            s.rooms[roomID] = RoomEntry(cell: cell)
            metrics.rooms.record(s.rooms.count)
            metrics.roomsCreated.increment()
            updateGauges(s)
            return .success((roomID, deliveries))
        }
        switch result {
        case .success(let (roomID, deliveries)):
            logger.info("room created", metadata: ["room": "\(LogRedaction.room(roomID))", "password": "\(passwordHash != nil)"])
            cluster?.roomOpened(roomID, owner: message.identity)
            deliver(deliveries)
        case .failure(let refusal):
            outbox.close(with: refusal.message)
        }
    }

    private struct RefusalError: Error { let message: ErrorMessage }

    func join(_ message: JoinMessage, challenge: [UInt8], from outbox: ConnectionOutbox) {
        let now = self.now
        // Attempts per source address, whatever the outcome.
        let exempt = configuration.exemptAddresses.contains(outbox.address)
        let cluster = self.cluster, inCluster = cluster != nil
        let gate = state.withLock { s -> ErrorMessage? in
            if !exempt, case .limited(let retry) = s.joinAttempts.decision(for: outbox.address, now: now) {
                metrics.limitHit("join_attempts")
                return ErrorMessage(code: .rateLimited, isFatal: true, retryAfterMilliseconds: retry, message: "too many join attempts from this address")
            }
            if !exempt { s.joinAttempts.recordFailure(for: outbox.address, now: now) }
            guard let room = s.rooms[message.roomID] else {
                // In a cluster the room may be on another node: routed after the proof.
                if inCluster { return nil }
                return ErrorMessage(code: .roomNotFound, isFatal: true, message: "no such room")
            }
            if room.cell.passwordHash != nil {
                // Wrong passwords per address refuse that address. Per room they only slow
                // the wrong answers (``wrongPassword(_:outbox:)``): a stranger who knows the
                // room id must not be able to lock its invitees out (5.4).
                if !exempt, case .limited(let retry) = s.passwordFailuresByAddress.decision(for: outbox.address, now: now) {
                    metrics.limitHit("password_failures")
                    return ErrorMessage(code: .rateLimited, isFatal: true, retryAfterMilliseconds: retry, message: "too many wrong passwords; wait before trying again")
                }
            }
            return nil
        }
        if let gate {
            metrics.joins[gate.code == .rateLimited ? "rate_limited" : "refused"]?.increment()
            return outbox.close(with: gate)
        }
        guard verifyIdentityProof(identity: message.identity, signature: message.signature, challenge: challenge, roomID: message.roomID) else {
            metrics.joins["refused"]?.increment()
            return fail(outbox, .badSignature, "the identity signature over the relay challenge does not verify")
        }
        if let cluster, !state.withLock({ $0.rooms[message.roomID] != nil }) {
            let loop = outbox.channel.eventLoop
            Task {
                let route = await cluster.routeJoin(message.roomID)
                loop.execute {
                    switch route {
                    case .redirect(let origin):
                        self.redirect(outbox, to: origin)
                    case .local:
                        // Not here and no live owner: the room does not exist (or is moving).
                        if self.state.withLock({ $0.rooms[message.roomID] != nil }) { return self.checkPasswordAndJoin(message, outbox: outbox) }
                        self.metrics.joins["refused"]?.increment()
                        self.fail(outbox, .roomNotFound, "no such room")
                    case .refuse(let code, let text):
                        self.metrics.joins["refused"]?.increment()
                        self.fail(outbox, code, text)
                    }
                }
            }
            return
        }
        checkPasswordAndJoin(message, outbox: outbox)
    }

    private func checkPasswordAndJoin(_ message: JoinMessage, outbox: ConnectionOutbox) {
        let hash = state.withLock { $0.rooms[message.roomID]?.cell.passwordHash }
        guard let hash else { return finishJoin(message, outbox: outbox) }
        guard let auth = message.relayAuth else { return wrongPassword(message, outbox: outbox) }
        threadPool.runIfActive(eventLoop: outbox.channel.eventLoop) {
            PasswordHash.verify(auth, against: hash)
        }.whenComplete { result in
            if case .success(true) = result {
                self.finishJoin(message, outbox: outbox)
            } else {
                self.wrongPassword(message, outbox: outbox)
            }
        }
    }

    private func wrongPassword(_ message: JoinMessage, outbox: ConnectionOutbox) {
        let now = self.now
        let roomUnderAttack = state.withLock { s -> Bool in
            s.passwordFailuresByAddress.recordFailure(for: outbox.address, now: now)
            if case .limited = s.passwordFailuresByRoom.recordFailure(for: message.roomID, now: now) { return true }
            return false
        }
        metrics.joins["bad_password"]?.increment()
        guard roomUnderAttack else { return fail(outbox, .badPassword, "the password is wrong or missing") }
        // Past the room's budget, a wrong password is answered after a delay: guessing
        // slows down, and the right password (which never waits) still gets in.
        metrics.limitHit("password_failures")
        outbox.channel.eventLoop.scheduleTask(in: .milliseconds(Int64(Self.wrongPasswordDelayMillis))) {
            self.fail(outbox, .badPassword, "the password is wrong or missing")
        }
    }

    /// How long a wrong password waits for its answer once its room has had
    /// `password-failures-per-room-per-minute` of them (5.4).
    static let wrongPasswordDelayMillis = 2_000

    private func finishJoin(_ message: JoinMessage, outbox: ConnectionOutbox) {
        let deliveries = state.withLock { s -> [Delivery] in
            guard var connection = s.connections[outbox.id], connection.roomID == nil else { return [] }
            guard let room = s.rooms[message.roomID] else {
                return [Delivery(outbox: outbox, action: .close(ErrorMessage(code: .roomNotFound, isFatal: true, message: "no such room")))]
            }
            connection.roomID = message.roomID
            s.connections[outbox.id] = connection
            outbox.room = room.cell
            return mutateRoom(&s, message.roomID) { $0.join(connection: outbox.id, identity: message.identity, knock: message.knock, now: now) }
        }
        for d in deliveries where d.outbox === outbox {
            switch d.action {
            case .message(.waiting): metrics.joins["waiting"]?.increment()
            case .message(.admitted): metrics.joins["admitted"]?.increment()
            case .close: metrics.joins["refused"]?.increment()
            default: break
            }
        }
        deliver(deliveries)
    }

    func command(_ message: CommandMessage, from outbox: ConnectionOutbox) {
        let deliveries = state.withLock { s -> [Delivery] in
            guard let roomID = s.connections[outbox.id]?.roomID else {
                return [Delivery(outbox: outbox, action: .close(ErrorMessage(code: .unexpectedMessage, requestID: message.requestID, isFatal: true, message: "join or create a room before sending commands")))]
            }
            return mutateRoom(&s, roomID) { $0.command(message, from: outbox.id, now: now) }
        }
        deliver(deliveries)
    }

    /// Routes one `FRAME` (the whole WebSocket message) and forwards it byte for byte: by
    /// UDP to recipients with a live media path (audio and screen frames that fit a
    /// datagram), over their WebSocket to everyone else. Returns an error when the sender
    /// must be disconnected.
    func frame(_ header: FrameHeader, message: ByteBuffer, from outbox: ConnectionOutbox) -> ErrorMessage? {
        let payloadLength = message.readableBytes - FrameHeader.length
        guard payloadLength <= configuration.payloadLimit(header.kind) else {
            metrics.limitHit("frame_size")
            return ErrorMessage(code: .tooLarge, isFatal: true, message: "\(header.kind.name) frame of \(payloadLength) bytes exceeds this relay's limit of \(configuration.payloadLimit(header.kind))")
        }
        var targets = MediaTargets(capacity: 0)
        let now = clock.now
        let notAdmitted = FrameRoute.reject(ErrorMessage(code: .unexpectedMessage, isFatal: true, message: "frames are only accepted from admitted participants"))
        // The room's lock only: frames of other rooms, and joins, go on meanwhile.
        let route = outbox.room?.state.withLock { r -> FrameRoute in
            guard !r.isClosed else { return notAdmitted }
            return routeLocked(&r, header: header, frameLength: message.readableBytes, from: outbox.id, now: now, targets: &targets)
        } ?? notAdmitted
        let channel = targets.udp.isEmpty ? nil : mediaChannel(for: outbox.channel.eventLoop)
        switch route {
        case .broadcast, .unicast:
            for recipient in targets.websocket {
                recipient.send(message, class: header.kind == .audio || header.kind == .screen ? .media : .reliable)
            }
            if let channel, !targets.udp.isEmpty {
                let addresses = targets.udp
                if channel.eventLoop.inEventLoop {
                    Self.writeDatagrams(message, to: addresses, on: channel)
                } else {
                    channel.eventLoop.execute { Self.writeDatagrams(message, to: addresses, on: channel) }
                }
            }
        case .drop(let reason):
            metrics.dropped(reason.metricName)
        case .dropAndNotify(let reason, let notice):
            metrics.dropped(reason.metricName)
            metrics.errorSent(notice.code)
            outbox.send(.error(notice))
        case .reject(let error):
            return error
        }
        return nil
    }

    private static func writeDatagrams(_ message: ByteBuffer, to addresses: [SocketAddress], on channel: Channel) {
        for address in addresses {
            channel.write(AddressedEnvelope(remoteAddress: address, data: message), promise: nil)
        }
        channel.flush()
    }

    /// The policy decision for one frame, and its targets filled into `targets`. Called
    /// with the room's lock held, from both the WebSocket and the UDP path, so mute, sharing
    /// and addressing rules are the same on both. Allocates nothing once `targets` has grown.
    private func routeLocked(_ r: inout RoomState, header: FrameHeader, frameLength: Int,
                             from connection: ConnectionID, now: RelayInstant, targets: inout MediaTargets) -> FrameRoute {
        // Mutate the policy in place: a copy would duplicate the room's tables on write
        // (copy-on-write) for every frame.
        let route = r.policy.routeFrame(header, from: connection)
        switch route {
        case .broadcast:
            metrics.framesForwarded[header.kind]?.increment()
            metrics.bytesForwarded.increment(by: Int64(frameLength))
            let byUDP = (header.kind == .audio || header.kind == .screen) && frameLength <= MediaDatagram.maximumBodyLength
            var udp = 0
            for recipient in r.recipients where recipient.outbox.id != connection {
                if byUDP, let media = recipient.media, media.pathIsLive(now: now, timeout: mediaPathTimeout) {
                    targets.udp.append(media.address!)
                    udp += 1
                } else {
                    targets.websocket.append(recipient.outbox)
                }
            }
            metrics.deliveries.increment(by: Int64(udp + targets.websocket.count))
            if udp > 0 { metrics.udpDeliveries.increment(by: Int64(udp)) }
        case .unicast(let to):
            metrics.framesForwarded[header.kind]?.increment()
            metrics.bytesForwarded.increment(by: Int64(frameLength))
            if let recipient = r.byConnection[to]?.outbox {
                targets.websocket.append(recipient)
                metrics.deliveries.increment()
            }
        default:
            break
        }
        return route
    }

    /// The media channel on `eventLoop` if there is one (a write without a thread hop),
    /// else the first.
    private func mediaChannel(for eventLoop: EventLoop) -> Channel? {
        guard let channels = mediaBox.withLock({ $0?.channels }) else { return nil }
        return channels.first { $0.eventLoop === eventLoop } ?? channels.first
    }

    // MARK: - UDP media path

    /// At most one `PATH_CHALLENGE` per session and address per this interval.
    static let pathChallengeInterval = Duration.milliseconds(250)

    /// Handles one client → relay datagram (protocol 6.3): parse, hop tag, replay window,
    /// address learning, then the same routing as ``frame(_:message:from:)``. Fills
    /// `targets`; the caller writes. No allocation on the forwarding path.
    func mediaDatagram(_ datagram: UnsafeRawBufferPointer, from address: SocketAddress,
                       targets: inout MediaTargets) -> MediaInbound {
        let parsed: (header: MediaDatagram.Header, body: Range<Int>)
        do {
            parsed = try MediaDatagram.parse(datagram)
        } catch {
            return udpDrop(error.metricName)
        }
        let header = parsed.header
        guard let session = sessions[header.sessionID] else {
            return udpDrop("unknown_session")
        }
        // The tag first: nothing unauthenticated touches the window or the address.
        guard MediaDatagram.verify(datagram, header: header, authenticator: session.authenticator) else {
            return udpDrop("bad_tag")
        }
        var frameHeader: FrameHeader?
        if header.kind == .media {
            let body = UnsafeRawBufferPointer(rebasing: datagram[parsed.body])
            guard let decoded = try? FrameHeader.decode(message: body) else { return udpDrop("malformed") }
            guard decoded.header.kind == .audio || decoded.header.kind == .screen else { return udpDrop("kind") }
            guard decoded.payloadRange.count <= configuration.payloadLimit(decoded.header.kind) else {
                metrics.limitHit("frame_size")
                return udpDrop("too_large")
            }
            frameHeader = decoded.header
        }
        let now = clock.now
        let millis = now.milliseconds
        // The session's room's lock only: datagrams of other rooms go on meanwhile.
        return session.room.state.withLock { r -> MediaInbound in
            // The session may have closed since the look-up.
            guard session.isOpen, !r.isClosed else { return udpDrop("unknown_session") }
            guard session.window.check(header.sequence) == .fresh else { return udpDrop("replayed") }
            // Path validation (6.4): the relay sends to an address only after the client
            // proved, by echoing a random token sent there, that it receives there. A member
            // who spoofs another host's address cannot make the relay send it the room.
            if header.kind == .pathResponse {
                let token = UInt64(bigEndian: UnsafeRawBufferPointer(rebasing: datagram[parsed.body]).loadUnaligned(as: UInt64.self))
                guard let pending = session.pendingPath, pending.address == address, pending.token == token else {
                    return udpDrop("path_response")
                }
                session.window.accept(header.sequence)
                if session.address != nil { metrics.udpAddressChanges.increment() }
                session.address = address
                session.pendingPath = nil
                session.lastHeard = now
                session.ackSequence += 1
                return .acknowledge(MediaDatagram.keepaliveAck(sessionID: session.id, sequence: session.ackSequence,
                                                               echo: header.sequence, authenticator: session.authenticator))
            }
            if session.address != address {
                // Authenticated, but from an address not validated: challenge it (at most
                // one challenge per interval), and use nothing of the datagram. The window
                // is not advanced, so the same datagram from the right address still counts.
                if let pending = session.pendingPath, pending.address == address, now.since(pending.sentAt) < Self.pathChallengeInterval {
                    return udpDrop("unvalidated_address")
                }
                let token = random.uint64()
                session.pendingPath = (address, token, now)
                session.ackSequence += 1
                metrics.udpDropped("unvalidated_address")
                return .acknowledge(MediaDatagram.pathChallenge(sessionID: session.id, sequence: session.ackSequence, token: token,
                                                                authenticator: session.authenticator))
            }
            session.window.accept(header.sequence)
            session.lastHeard = now
            guard let frameHeader else {
                session.ackSequence += 1
                return .acknowledge(MediaDatagram.keepaliveAck(sessionID: session.id, sequence: session.ackSequence,
                                                               echo: header.sequence, authenticator: session.authenticator))
            }
            guard session.frames.consume(now: millis), session.bytes.consume(UInt64(parsed.body.count), now: millis) else {
                metrics.limitHit("frames_per_second")
                return udpDrop("rate_limited")
            }
            switch routeLocked(&r, header: frameHeader, frameLength: parsed.body.count,
                               from: session.connection, now: now, targets: &targets) {
            case .broadcast, .unicast:
                return .forward(body: parsed.body)
            case .drop(let reason):
                metrics.dropped(reason.metricName)
                return .dropped(reason.metricName)
            case .dropAndNotify(let reason, let notice):
                metrics.dropped(reason.metricName)
                metrics.errorSent(notice.code)
                return .notify(session.outbox, notice)
            case .reject:
                return udpDrop("not_admitted")
            }
        }
    }

    /// The room a connection belongs to (harness and tests).
    func roomID(of id: ConnectionID) -> RoomID? { state.withLock { $0.connections[id]?.roomID } }

    /// A connection's participant index in its room (harness and tests).
    func index(of id: ConnectionID) -> ParticipantIndex? {
        let cell = state.withLock { s in s.connections[id]?.roomID.flatMap { s.rooms[$0]?.cell } }
        return cell?.state.withLock { $0.policy.index(of: id) }
    }

    /// A connection's media session (harness and tests).
    func mediaSession(of id: ConnectionID) -> MediaSession? { state.withLock { $0.connections[id]?.media } }

    /// Forgets the sequence numbers a session has seen (the harness reuses a datagram pool).
    func resetReplayWindow(_ session: MediaSession) { session.room.state.withLock { _ in session.window = ReplayWindow() } }

    private func udpDrop(_ reason: String) -> MediaInbound {
        metrics.udpDropped(reason)
        return .dropped(reason)
    }

    /// Records the bound media path; `MEDIA_SESSION`s name it from now on.
    func mediaPathBound(_ endpoint: MediaEndpoint) {
        state.withLock { $0.media = endpoint }
        mediaBox.withLock { $0 = endpoint }
    }

    /// Opens a media session for an admitted connection and queues its `MEDIA_SESSION`.
    /// Nil when the relay runs no media path. Lock held.
    private func openSession(_ s: inout State, for id: ConnectionID, room: RoomCell, deliveries: inout [Delivery]) -> MediaSession? {
        guard let media = s.media, let entry = s.connections[id] else { return nil }
        if let existing = entry.media { return existing }
        let key = SecretKey(copying: random.bytes(HopAuthenticator.keyByteCount))
        var session: MediaSession
        repeat {
            guard let candidate = try? MediaSession(id: max(1, random.uint32()), connection: id, room: room, outbox: entry.outbox,
                                                    hopKey: key, configuration: configuration, now: now) else { return nil }
            session = candidate
        } while !sessions.insert(session)
        let sessionID = session.id
        s.connections[id]?.media = session
        metrics.mediaSessions.record(sessions.count)
        deliveries.append(Delivery(outbox: entry.outbox, action: .message(.mediaSession(
            MediaSessionMessage(sessionID: sessionID, hopKey: key, port: media.port, host: media.advertisedHost)))))
        return session
    }

    /// Forgets a session: its datagrams are dropped as `unknown_session` from now on.
    /// Registry lock held; `roomLocked`: its room's lock too (else it is taken here).
    private func dropSession(_ s: inout State, _ session: MediaSession, roomLocked: Bool = false) {
        sessions.remove(session.id)
        if roomLocked { session.isOpen = false } else { session.room.state.withLock { _ in session.isOpen = false } }
        s.connections[session.connection]?.media = nil
        metrics.mediaSessions.record(sessions.count)
    }

    /// Recording-acknowledgement deadlines for every room.
    func tick() {
        let now = self.now
        let deliveries = state.withLock { s -> [Delivery] in
            var out: [Delivery] = []
            for roomID in Array(s.rooms.keys) {
                out += mutateRoom(&s, roomID) { $0.tick(now: now) }
            }
            s.joinAttempts.removeExpired(now: now)
            s.passwordFailuresByAddress.removeExpired(now: now)
            s.passwordFailuresByRoom.removeExpired(now: now)
            s.roomCreations.removeExpired(now: now)
            return out
        }
        deliver(deliveries)
    }

    /// Tells every client the relay is stopping and closes every room. Returns how many
    /// connections were notified.
    @discardableResult
    func shutdownAll() -> Int {
        let deliveries = state.withLock { s -> [Delivery] in
            s.shuttingDown = true
            var out: [Delivery] = []
            for roomID in Array(s.rooms.keys) {
                out += mutateRoom(&s, roomID) { $0.shutdown(message: "the relay is shutting down") }
            }
            let notified = Set(out.map { ObjectIdentifier($0.outbox) })
            for entry in s.connections.values where !notified.contains(ObjectIdentifier(entry.outbox)) {
                out.append(Delivery(outbox: entry.outbox, action: .close(ErrorMessage(code: .shuttingDown, isFatal: true, message: "the relay is shutting down"))))
            }
            return out
        }
        deliver(deliveries)
        return Set(deliveries.map { ObjectIdentifier($0.outbox) }).count
    }

    /// Drains this cluster node (5.10): every room here is let go in the cluster (its claim
    /// released, its owner record kept so that only its owner re-creates it elsewhere), and
    /// every client is told `REDIRECT draining` to `origin` and closed. Without another
    /// node to send them to, clients get `shutting_down` as on a single relay. Returns how
    /// many connections were told.
    @discardableResult
    func drainAll(redirectTo origin: String?) -> Int {
        guard let origin else { return shutdownAll() }
        let outboxes = state.withLock { s -> [ConnectionOutbox] in
            s.shuttingDown = true
            for (roomID, room) in s.rooms {
                room.cell.state.withLock { r in
                    r.isClosed = true
                    r.recipients = []
                    r.byConnection = [:]
                }
                s.rooms[roomID] = nil
                cluster?.roomClosed(roomID, mayMove: true)
                metrics.clusterRehomes.increment()
            }
            for (id, entry) in s.connections {
                s.connections[id]?.roomID = nil
                entry.outbox.room = nil
                if let media = entry.media { dropSession(&s, media) }
            }
            metrics.rooms.record(0)
            updateGauges(s)
            return s.connections.values.map(\.outbox)
        }
        for outbox in outboxes {
            outbox.send(.redirect(RedirectMessage(reason: .draining, origin: origin)))
            outbox.closeNormally()
        }
        return outboxes.count
    }

    var connectionCount: Int { state.withLock { $0.connections.count } }
    var roomCount: Int { state.withLock { $0.rooms.count } }
    /// Admitted participants in every room.
    var participantCount: Int { state.withLock { $0.rooms.values.reduce(0) { $0 + $1.admitted } } }

    // MARK: - Internals

    struct Delivery {
        enum Action { case message(RelayMessage), close(ErrorMessage), release }
        let outbox: ConnectionOutbox
        let action: Action
    }

    /// Runs `body` on a room's policy and turns its actions into deliveries. Must be called
    /// with the registry lock held (it takes `inout State`); takes the room's lock for the
    /// whole change, so that no frame is routed to a member list half updated.
    private func mutateRoom(_ s: inout State, _ roomID: RoomID, _ body: (inout RoomPolicy) -> [RoomAction]) -> [Delivery] {
        guard let cell = s.rooms[roomID]?.cell else { return [] }
        var out: [Delivery] = []
        var closed = false
        var counts = (admitted: 0, waiting: 0)
        cell.state.withLock { r in
            // In place: a copy would duplicate the policy's tables (copy-on-write).
            let actions = body(&r.policy)
            out.reserveCapacity(actions.count)
            for action in actions {
                switch action {
                case let .send(id, message):
                    if let outbox = s.connections[id]?.outbox { out.append(Delivery(outbox: outbox, action: .message(message))) }
                    if case .admitted = message { _ = openSession(&s, for: id, room: cell, deliveries: &out) }
                case let .close(id, error):
                    if let entry = s.connections[id] {
                        out.append(Delivery(outbox: entry.outbox, action: .close(error)))
                        s.connections[id]?.roomID = nil
                        entry.outbox.room = nil
                        if let media = s.connections[id]?.media { dropSession(&s, media, roomLocked: true) }
                    }
                case let .release(id):
                    if let entry = s.connections[id] {
                        out.append(Delivery(outbox: entry.outbox, action: .release))
                        s.connections[id]?.roomID = nil
                        entry.outbox.room = nil
                        if let media = s.connections[id]?.media { dropSession(&s, media, roomLocked: true) }
                    }
                case .roomClosed:
                    closed = true
                }
            }
            if closed {
                r.isClosed = true
                r.recipients = []
                r.byConnection = [:]
                for (id, entry) in s.connections where entry.roomID == roomID {
                    s.connections[id]?.roomID = nil
                    entry.outbox.room = nil
                    if let media = entry.media { dropSession(&s, media, roomLocked: true) }
                }
            } else {
                let recipients = r.policy.admittedConnections.compactMap { id in
                    s.connections[id].map { Recipient(outbox: $0.outbox, media: $0.media) }
                }
                r.recipients = recipients
                r.byConnection = Dictionary(recipients.map { ($0.outbox.id, $0) }, uniquingKeysWith: { a, _ in a })
                counts = (r.policy.admittedCount, r.policy.waitingCount)
            }
        }
        if closed {
            s.rooms[roomID] = nil
            cluster?.roomClosed(roomID, mayMove: s.shuttingDown)
            s.passwordFailuresByRoom.forget(roomID)
            metrics.rooms.record(s.rooms.count)
            logger.info("room closed", metadata: ["room": "\(LogRedaction.room(roomID))"])
        } else {
            s.rooms[roomID]?.admitted = counts.admitted
            s.rooms[roomID]?.waiting = counts.waiting
        }
        updateGauges(s)
        return out
    }

    private func updateGauges(_ s: State) {
        var admitted = 0, waiting = 0
        for room in s.rooms.values { admitted += room.admitted; waiting += room.waiting }
        metrics.participants.record(admitted)
        metrics.waiting.record(waiting)
    }

    private func deliver(_ deliveries: [Delivery]) {
        for d in deliveries {
            switch d.action {
            case .message(let m):
                if case .error(let e) = m { metrics.errorSent(e.code) }
                d.outbox.send(m)
            case .close(let e):
                d.outbox.close(with: e)
            case .release:
                d.outbox.closeNormally()
            }
        }
    }

    /// `REDIRECT elsewhere` and a normal close (5.10).
    private func redirect(_ outbox: ConnectionOutbox, to origin: String) {
        metrics.joins["redirected"]?.increment()
        outbox.send(.redirect(RedirectMessage(reason: .elsewhere, origin: origin)))
        outbox.closeNormally()
    }

    private func fail(_ outbox: ConnectionOutbox, _ code: ErrorCode, _ text: String) {
        outbox.close(with: ErrorMessage(code: code, isFatal: true, message: text))
    }

    private func verifyIdentityProof(identity: Identity, signature: [UInt8], challenge: [UInt8], roomID: RoomID) -> Bool {
        guard let key = try? Ed25519.PublicKey(rawRepresentation: identity.ed25519Public) else { return false }
        let signed = challenge + roomID.bytes + identity.ed25519Public + identity.x25519Public
        return key.isValidSignature(signature, for: signed, context: "conclave/v1 relay-auth")
    }
}

extension FrameDropReason {
    var metricName: String {
        switch self {
        case .muted: return "muted"
        case .notPresenter: return "not_presenter"
        case .notLeader: return "not_leader"
        case .unknownRecipient: return "unknown_recipient"
        }
    }
}
