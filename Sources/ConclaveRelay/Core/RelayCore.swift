import Synchronization
import Logging
import NIOCore
import NIOPosix
import ConclaveCrypto
import ConclaveProtocol

/// The relay's core: the registry under its lock, the frame paths under each room's lock.
///
/// Rooms, connections, pending accepts, limiters and media sessions are a
/// ``RelayRegistry``, a state machine that returns the actions of each input; this type
/// runs it under one lock and carries the actions out (deliveries, cluster updates,
/// metrics, logs) after releasing it. Policy decisions are made by each room's
/// ``RoomPolicy``. Work that is slow (Argon2id) runs on a thread pool, outside the lock.
/// Frames take only their room's lock (``RoomCell``). Nothing survives a room: when it
/// closes its policy, password hash, bans and limiter entries are dropped.
final class RelayCore: Sendable {
    let configuration: RelayConfiguration
    let metrics: RelayMetrics
    let logger: Logger
    private let threadPool: NIOThreadPool
    /// The relay's time (injected: tests move a ``ManualRelayClock`` by hand).
    let clock: any RelayClock
    /// The relay's randomness (challenges, session ids, hop keys, path tokens).
    let random: RelayRandom

    /// An admitted member as the frame path sees it: its WebSocket and, when the relay runs
    /// a media path, its UDP session.
    struct Recipient {
        let outbox: ConnectionOutbox
        let media: MediaSession?
    }

    /// The UDP media path, once bound.
    struct MediaEndpoint {
        /// `host` of `MEDIA_SESSION` (empty: the host of the control connection).
        let advertisedHost: String
        let port: UInt16
        /// The media sockets (SO_REUSEPORT), all bound to `port`.
        let sockets: [MediaSocket]
    }

    /// Why a TCP connection was refused at accept.
    enum AcceptRefusal: Equatable {
        /// Over the limit by more than the refusal reserve: closed at once.
        case atCapacity, addressCap, shuttingDown
        /// Over the limit, within the reserve: it may upgrade, to be told `at_capacity`.
        case refuseAfterUpgrade
    }

    static var refusalReserve: Int { RelayRegistry.refusalReserve }

    /// The registry. Not taken by the frame paths.
    private let registry: Mutex<RelayRegistry>
    /// Media sessions by id (sharded; the UDP path looks a session up per datagram).
    private let sessions = SessionTable()
    /// The bound media path, for the WebSocket frame path's UDP writes.
    private let mediaBox = Mutex<MediaEndpoint?>(nil)
    /// This relay's membership of a cluster (nil: a single relay).
    private let clusterBox = Mutex<ClusterNode?>(nil)
    var cluster: ClusterNode? { clusterBox.withLock { $0 } }
    func attach(cluster: ClusterNode) { clusterBox.withLock { $0 = cluster } }
    /// A UDP path that has been silent this long falls back to the WebSocket; in the relay
    /// clock's unit, for the per-frame check.
    let mediaPathTimeoutNanoseconds: UInt64

    init(
        configuration: RelayConfiguration, metrics: RelayMetrics, logger: Logger, threadPool: NIOThreadPool,
        clock: any RelayClock = MonotonicRelayClock(), random: RelayRandom = .system
    ) {
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        self.threadPool = threadPool
        self.clock = clock
        self.random = random
        self.mediaPathTimeoutNanoseconds = UInt64(configuration.mediaPathTimeoutSeconds) * 1_000_000_000
        self.registry = Mutex(RelayRegistry(configuration: configuration, random: random, sessions: sessions))
    }

    /// Runs one input on the registry under its lock, then carries its actions out.
    private func update(_ input: (inout RelayRegistry) -> RelayRegistry.Actions) {
        perform(
            registry.withLock { r in
                var actions = input(&r)
                actions.gauges = r.gauges
                return actions
            })
    }

    /// Runs a registry input that changes only counts, and records the gauges.
    private func count<T>(_ input: (inout RelayRegistry) -> T) -> T {
        let (result, gauges) = registry.withLock { r in (input(&r), r.gauges) }
        record(gauges)
        return result
    }

    private func read<T>(_ body: (RelayRegistry) -> T) -> T { registry.withLock { body($0) } }

    // MARK: - Connections

    /// A TCP connection was accepted (before TLS and HTTP): it holds one of
    /// `max-connections` and one of its address's `max-pending-connections-per-address`
    /// until it upgrades or closes (``pendingEnded(address:)``). Nil: it may stay.
    func accepted(address: String) -> AcceptRefusal? { count { $0.accept(address: address) } }

    /// A connection accepted in the refusal reserve closed.
    func refusalEnded() { count { $0.refusalEnded() } }

    /// A connection counted by ``accepted(address:)`` closed before its upgrade.
    func pendingEnded(address: String) { count { $0.pendingEnded(address: address) } }

    /// Connections not yet upgraded.
    var pendingCount: Int { read { $0.pending } }

    /// Registers an upgraded connection, which held a pending slot since its accept; nil
    /// when the relay is stopping.
    func register(channel: Channel, address: String) -> ConnectionOutbox? {
        count { r in
            r.register(address: address) { id in
                ConnectionOutbox(
                    id: id, channel: channel, address: address, metrics: metrics,
                    mediaLimit: configuration.outboundMediaQueueBytes, hardLimit: configuration.outboundQueueBytes)
            }
        }
    }

    func isInRoom(_ id: ConnectionID) -> Bool { read { $0.roomID(of: id) != nil } }

    /// The handshake deadline (from TCP accept) passed: an upgraded connection that has
    /// not sent `JOIN` or `CREATE_ROOM` gets `handshake_timeout` and is closed.
    func handshakeExpired(_ outbox: ConnectionOutbox) {
        metrics.limitHit("handshake_timeout")
        outbox.close(
            with: ErrorMessage(
                code: .handshakeTimeout, isFatal: true,
                message: "no JOIN or CREATE_ROOM within \(configuration.handshakeTimeoutSeconds) s of connecting"))
    }

    /// The connection went away (closed by either side). Idempotent.
    func disconnected(_ id: ConnectionID, reason: LeaveReason) {
        let now = clock.now
        update { $0.disconnect(id, reason: reason, now: now) }
    }

    // MARK: - Rooms

    func createRoom(_ message: CreateRoomMessage, challenge: [UInt8], from outbox: ConnectionOutbox) {
        // Per source address, before the signature check and any Argon2id work (5.4).
        let now = clock.now
        if let retry = registry.withLock({ $0.limitRoomCreation(address: outbox.address, now: now) }) {
            metrics.limitHit("room_creations")
            return outbox.close(
                with: ErrorMessage(
                    code: .rateLimited, isFatal: true, retryAfterMilliseconds: retry,
                    message: "too many rooms created from this address; wait before creating another"))
        }
        guard verifyIdentityProof(identity: message.identity, signature: message.signature, challenge: challenge, roomID: message.roomID) else {
            return fail(outbox, .badSignature, "the identity signature over the relay challenge does not verify")
        }
        // In a cluster, a room not served here is placed first (5.10).
        if let cluster, !read({ $0.hasRoom(message.roomID) }) {
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
        let now = clock.now
        update { $0.createRoom(message, passwordHash: passwordHash, outbox: outbox, now: now) }
    }

    func join(_ message: JoinMessage, challenge: [UInt8], from outbox: ConnectionOutbox) {
        let now = clock.now
        let cluster = self.cluster
        if let refusal = registry.withLock({ $0.gateJoin(room: message.roomID, address: outbox.address, inCluster: cluster != nil, now: now) }) {
            if let limit = refusal.limit { metrics.limitHit(limit) }
            metrics.joins[refusal.error.code == .rateLimited ? "rate_limited" : "refused"]?.increment()
            return outbox.close(with: refusal.error)
        }
        guard verifyIdentityProof(identity: message.identity, signature: message.signature, challenge: challenge, roomID: message.roomID) else {
            metrics.joins["refused"]?.increment()
            return fail(outbox, .badSignature, "the identity signature over the relay challenge does not verify")
        }
        if let cluster, !read({ $0.hasRoom(message.roomID) }) {
            let loop = outbox.channel.eventLoop
            Task {
                let route = await cluster.routeJoin(message.roomID)
                loop.execute {
                    switch route {
                    case .redirect(let origin):
                        self.redirect(outbox, to: origin)
                    case .local:
                        // Not here and no live owner: the room does not exist (or is moving).
                        if self.read({ $0.hasRoom(message.roomID) }) { return self.checkPasswordAndJoin(message, outbox: outbox) }
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
        guard let hash = read({ $0.passwordHash(of: message.roomID) }) ?? nil else { return finishJoin(message, outbox: outbox) }
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
        let now = clock.now
        let roomUnderAttack = registry.withLock { $0.recordWrongPassword(address: outbox.address, room: message.roomID, now: now) }
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
        let now = clock.now
        let actions = registry.withLock { r in
            var actions = r.join(message, outbox: outbox, now: now)
            actions.gauges = r.gauges
            return actions
        }
        for d in actions.deliveries where d.outbox === outbox {
            switch d.action {
            case .message(.waiting): metrics.joins["waiting"]?.increment()
            case .message(.admitted): metrics.joins["admitted"]?.increment()
            case .close: metrics.joins["refused"]?.increment()
            default: break
            }
        }
        perform(actions)
    }

    func command(_ message: CommandMessage, from outbox: ConnectionOutbox) {
        let now = clock.now
        update { $0.command(message, from: outbox, now: now) }
    }

    /// Routes one `FRAME` (the whole WebSocket message) and forwards it byte for byte: by
    /// UDP to recipients with a live media path (audio and screen frames that fit a
    /// datagram), over their WebSocket to everyone else. Returns an error when the sender
    /// must be disconnected.
    func frame(_ header: FrameHeader, message: ByteBuffer, from outbox: ConnectionOutbox) -> ErrorMessage? {
        let payloadLength = message.readableBytes - FrameHeader.length
        guard payloadLength <= configuration.payloadLimit(header.kind) else {
            metrics.limitHit("frame_size")
            return ErrorMessage(
                code: .tooLarge, isFatal: true,
                message: "\(header.kind.name) frame of \(payloadLength) bytes exceeds this relay's limit of \(configuration.payloadLimit(header.kind))")
        }
        var targets = MediaTargets(capacity: 0)
        let now = clock.now
        let notAdmitted = FrameRoute.reject(
            ErrorMessage(code: .unexpectedMessage, isFatal: true, message: "frames are only accepted from admitted participants"))
        // The room's lock only: frames of other rooms, and joins, go on meanwhile.
        let route =
            outbox.room?.state.withLock { r -> FrameRoute in
                guard !r.isClosed else { return notAdmitted }
                return routeLocked(&r, header: header, frameLength: message.readableBytes, from: outbox.id, now: now, targets: &targets)
            } ?? notAdmitted
        switch route {
        case .broadcast, .unicast:
            for recipient in targets.websocket {
                recipient.send(message, class: header.kind == .audio || header.kind == .screen ? .media : .reliable)
            }
            if !targets.udp.isEmpty, let socket = mediaSocket(for: outbox.id) {
                // Straight to the kernel from this thread: no hop, no copy.
                message.withUnsafeReadableBytes { socket.send($0, to: targets.udp) }
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

    /// The policy decision for one frame, and its targets filled into `targets`. Called
    /// with the room's lock held, from both the WebSocket and the UDP path, so mute, sharing
    /// and addressing rules are the same on both. Allocates nothing once `targets` has grown.
    private func routeLocked(
        _ r: inout RoomState, header: FrameHeader, frameLength: Int,
        from connection: ConnectionID, now: RelayInstant, targets: inout MediaTargets
    ) -> FrameRoute {
        // Mutate the policy in place: a copy would duplicate the room's tables on write
        // (copy-on-write) for every frame.
        let route = r.policy.routeFrame(header, from: connection)
        switch route {
        case .broadcast:
            metrics.framesForwarded[header.kind]?.increment()
            metrics.bytesForwarded.increment(by: Int64(frameLength))
            let byUDP = (header.kind == .audio || header.kind == .screen) && frameLength <= MediaDatagram.maximumBodyLength
            var udp = 0
            // By index, reading fields in place: binding each element (`for recipient in`)
            // retains and releases its two references per recipient per frame.
            // Live: heard within the timeout, i.e. at or after now - timeout.
            let heardSince = now.nanoseconds > mediaPathTimeoutNanoseconds ? now.nanoseconds - mediaPathTimeoutNanoseconds : 0
            for i in r.recipients.indices where r.recipients[i].outbox.id != connection {
                if byUDP, let address = r.recipients[i].media?.liveAddress(heardSince: heardSince) {
                    targets.udp.append(address)
                    udp += 1
                } else {
                    targets.websocket.append(r.recipients[i].outbox)
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

    /// A media socket for a WebSocket sender's UDP fan-out (any will do; spread by sender).
    private func mediaSocket(for connection: ConnectionID) -> MediaSocket? {
        guard let sockets = mediaBox.withLock({ $0?.sockets }), !sockets.isEmpty else { return nil }
        return sockets[Int(truncatingIfNeeded: connection.rawValue % UInt64(sockets.count))]
    }

    // MARK: - UDP media path

    /// At most one `PATH_CHALLENGE` per session and address per this interval.
    static let pathChallengeInterval = Duration.milliseconds(250)

    /// Handles one client → relay datagram (protocol 6.3): parse, hop tag, replay window,
    /// address learning, then the same routing as ``frame(_:message:from:)``. Fills
    /// `targets`; the caller writes. No allocation on the forwarding path.
    func mediaDatagram(
        _ datagram: UnsafeRawBufferPointer, from address: MediaAddress,
        targets: inout MediaTargets
    ) -> MediaInbound {
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
                return .acknowledge(
                    MediaDatagram.keepaliveAck(
                        sessionID: session.id, sequence: session.ackSequence,
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
                return .acknowledge(
                    MediaDatagram.pathChallenge(
                        sessionID: session.id, sequence: session.ackSequence, token: token,
                        authenticator: session.authenticator))
            }
            session.window.accept(header.sequence)
            session.lastHeard = now
            guard let frameHeader else {
                session.ackSequence += 1
                return .acknowledge(
                    MediaDatagram.keepaliveAck(
                        sessionID: session.id, sequence: session.ackSequence,
                        echo: header.sequence, authenticator: session.authenticator))
            }
            guard session.frames.consume(now: millis), session.bytes.consume(UInt64(parsed.body.count), now: millis) else {
                metrics.limitHit("frames_per_second")
                return udpDrop("rate_limited")
            }
            switch routeLocked(
                &r, header: frameHeader, frameLength: parsed.body.count,
                from: session.connection, now: now, targets: &targets)
            {
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
    func roomID(of id: ConnectionID) -> RoomID? { read { $0.roomID(of: id) } }

    /// A connection's participant index in its room (harness and tests).
    func index(of id: ConnectionID) -> ParticipantIndex? {
        read { $0.room(of: id) }?.state.withLock { $0.policy.index(of: id) }
    }

    /// A connection's media session (harness and tests).
    func mediaSession(of id: ConnectionID) -> MediaSession? { read { $0.mediaSession(of: id) } }

    /// Forgets the sequence numbers a session has seen (the harness reuses a datagram pool).
    func resetReplayWindow(_ session: MediaSession) { session.room.state.withLock { _ in session.window = ReplayWindow() } }

    private func udpDrop(_ reason: String) -> MediaInbound {
        metrics.udpDropped(reason)
        return .dropped(reason)
    }

    /// Records the bound media path; `MEDIA_SESSION`s name it from now on.
    func mediaPathBound(_ endpoint: MediaEndpoint) {
        registry.withLock { $0.mediaPathBound(endpoint) }
        mediaBox.withLock { $0 = endpoint }
    }

    /// Recording-acknowledgement deadlines for every room.
    func tick() {
        let now = clock.now
        update { $0.tick(now: now) }
    }

    /// Tells every client the relay is stopping and closes every room. Returns how many
    /// connections were notified.
    @discardableResult
    func shutdownAll() -> Int {
        let now = clock.now
        var notified = 0
        update { r in
            let actions = r.shutdown(now: now)
            notified = Set(actions.deliveries.map { ObjectIdentifier($0.outbox) }).count
            return actions
        }
        return notified
    }

    /// Drains this cluster node (5.10): every room here is let go in the cluster (its claim
    /// released, its owner record kept so that only its owner re-creates it elsewhere), and
    /// every client is told `REDIRECT draining` to `origin` and closed. Without another
    /// node to send them to, clients get `shutting_down` as on a single relay. Returns how
    /// many connections were told.
    @discardableResult
    func drainAll(redirectTo origin: String?) -> Int {
        guard let origin else { return shutdownAll() }
        var told = 0
        update { r in
            told = r.connectionCount
            return r.drain(redirectTo: origin)
        }
        return told
    }

    var connectionCount: Int { read { $0.connectionCount } }
    var roomCount: Int { read { $0.roomCount } }
    /// Admitted participants in every room.
    var participantCount: Int { read { $0.participantCount } }

    // MARK: - Internals

    /// Carries out a registry input's actions: gauges and counters, the cluster's view of
    /// the rooms, logs (room ids redacted), then the deliveries.
    private func perform(_ actions: RelayRegistry.Actions) {
        record(actions.gauges)
        for limit in actions.limitHits { metrics.limitHit(limit) }
        if let opened = actions.opened {
            metrics.roomsCreated.increment()
            logger.info("room created", metadata: ["room": "\(LogRedaction.room(opened.room))"])
            cluster?.roomOpened(opened.room, owner: opened.owner)
        }
        for closed in actions.closed {
            logger.info("room closed", metadata: ["room": "\(LogRedaction.room(closed.id))"])
            cluster?.roomClosed(closed.id, mayMove: closed.mayMove)
        }
        if actions.rehomes > 0 { metrics.clusterRehomes.increment(by: Int64(actions.rehomes)) }
        for d in actions.deliveries {
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

    private func record(_ gauges: RelayRegistry.Gauges) {
        metrics.connections.record(gauges.connections)
        metrics.pendingConnections.record(gauges.pending)
        metrics.rooms.record(gauges.rooms)
        metrics.participants.record(gauges.participants)
        metrics.waiting.record(gauges.waiting)
        metrics.mediaSessions.record(gauges.mediaSessions)
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
