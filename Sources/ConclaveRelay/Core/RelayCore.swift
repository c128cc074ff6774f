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
    private let startInstant = ContinuousClock.now

    private struct RoomEntry {
        var policy: RoomPolicy
        let passwordHash: String?
        /// Outboxes of admitted members, rebuilt when membership changes; a frame takes a
        /// copy-on-write snapshot of it (no allocation).
        var recipients: [ConnectionOutbox] = []
    }

    private struct ConnectionEntry {
        let outbox: ConnectionOutbox
        var roomID: RoomID?
    }

    private struct State {
        var rooms: [RoomID: RoomEntry] = [:]
        var connections: [ConnectionID: ConnectionEntry] = [:]
        var nextConnection: UInt64 = 1
        /// Join attempts per source address, whatever their outcome.
        var joinAttempts: RateLimiter<String>
        var passwordFailuresByAddress: RateLimiter<String>
        var passwordFailuresByRoom: RateLimiter<RoomID>
        var shuttingDown = false
    }

    private let state: Mutex<State>

    init(configuration: RelayConfiguration, metrics: RelayMetrics, logger: Logger, threadPool: NIOThreadPool) {
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        self.threadPool = threadPool
        self.state = Mutex(State(
            joinAttempts: RateLimiter(limit: configuration.joinAttemptsPerAddressPerMinute, window: 60_000),
            passwordFailuresByAddress: RateLimiter(limit: configuration.passwordFailuresPerAddressPerMinute, window: 60_000),
            passwordFailuresByRoom: RateLimiter(limit: configuration.passwordFailuresPerRoomPerMinute, window: 60_000)))
    }

    /// Milliseconds since the relay started (monotonic).
    var now: RelayMillis {
        let d = ContinuousClock.now - startInstant
        return RelayMillis(d.components.seconds) * 1000 + RelayMillis(d.components.attoseconds / 1_000_000_000_000_000)
    }

    // MARK: - Connections

    /// Registers a new connection; nil when the relay is at its connection limit or stopping.
    func register(channel: Channel, address: String) -> ConnectionOutbox? {
        state.withLock { s -> ConnectionOutbox? in
            guard !s.shuttingDown, s.connections.count < configuration.maxConnections else { return nil }
            let id = ConnectionID(s.nextConnection)
            s.nextConnection += 1
            let outbox = ConnectionOutbox(id: id, channel: channel, address: address, metrics: metrics,
                                          mediaLimit: configuration.outboundMediaQueueBytes, hardLimit: configuration.outboundQueueBytes)
            s.connections[id] = ConnectionEntry(outbox: outbox, roomID: nil)
            metrics.connections.record(s.connections.count)
            return outbox
        }
    }

    func isInRoom(_ id: ConnectionID) -> Bool {
        state.withLock { $0.connections[id]?.roomID != nil }
    }

    /// The connection went away (closed by either side). Idempotent.
    func disconnected(_ id: ConnectionID, reason: LeaveReason) {
        let deliveries = state.withLock { s -> [Delivery] in
            guard let entry = s.connections.removeValue(forKey: id) else { return [] }
            metrics.connections.record(s.connections.count)
            guard let roomID = entry.roomID else { return [] }
            return mutateRoom(&s, roomID) { $0.disconnected(id, reason: reason, now: now) }
        }
        deliver(deliveries)
    }

    // MARK: - Rooms

    func createRoom(_ message: CreateRoomMessage, challenge: [UInt8], from outbox: ConnectionOutbox) {
        guard verifyIdentityProof(identity: message.identity, signature: message.signature, challenge: challenge, roomID: .zero) else {
            return fail(outbox, .badSignature, "the identity signature over the relay challenge does not verify")
        }
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
            var roomID: RoomID
            repeat { roomID = RoomID(bytes: SecureRandom.bytes(count: 16))! } while s.rooms[roomID] != nil
            let policy = RoomPolicy(roomID: roomID, owner: message.identity, ownerConnection: outbox.id, settings: settings, now: now)
            s.rooms[roomID] = RoomEntry(policy: policy, passwordHash: passwordHash, recipients: [outbox])
            connection.roomID = roomID
            s.connections[outbox.id] = connection
            metrics.rooms.record(s.rooms.count)
            metrics.roomsCreated.increment()
            updateGauges(s)
            let created = RelayMessage.roomCreated(RoomCreatedMessage(roomID: roomID, index: policy.index(of: outbox.id) ?? 1, settings: settings))
            return .success((roomID, [Delivery(outbox: outbox, action: .message(created))]))
        }
        switch result {
        case .success(let (roomID, deliveries)):
            logger.info("room created", metadata: ["room": "\(LogRedaction.room(roomID))", "password": "\(passwordHash != nil)"])
            deliver(deliveries)
        case .failure(let refusal):
            outbox.close(with: refusal.message)
        }
    }

    private struct RefusalError: Error { let message: ErrorMessage }

    func join(_ message: JoinMessage, challenge: [UInt8], from outbox: ConnectionOutbox) {
        let now = self.now
        // Attempts per source address, whatever the outcome.
        let gate = state.withLock { s -> ErrorMessage? in
            if case .limited(let retry) = s.joinAttempts.decision(for: outbox.address, now: now) {
                metrics.limitHit("join_attempts")
                return ErrorMessage(code: .rateLimited, isFatal: true, retryAfterMilliseconds: retry, message: "too many join attempts from this address")
            }
            s.joinAttempts.recordFailure(for: outbox.address, now: now)
            guard let room = s.rooms[message.roomID] else {
                return ErrorMessage(code: .roomNotFound, isFatal: true, message: "no such room")
            }
            if room.passwordHash != nil {
                var retry: UInt32?
                if case .limited(let r) = s.passwordFailuresByAddress.decision(for: outbox.address, now: now) { retry = r }
                if case .limited(let r) = s.passwordFailuresByRoom.decision(for: message.roomID, now: now) { retry = max(retry ?? 0, r) }
                if let retry {
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
        let hash = state.withLock { $0.rooms[message.roomID]?.passwordHash }
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
        state.withLock { s in
            s.passwordFailuresByAddress.recordFailure(for: outbox.address, now: now)
            s.passwordFailuresByRoom.recordFailure(for: message.roomID, now: now)
        }
        metrics.joins["bad_password"]?.increment()
        fail(outbox, .badPassword, "the password is wrong or missing")
    }

    private func finishJoin(_ message: JoinMessage, outbox: ConnectionOutbox) {
        let deliveries = state.withLock { s -> [Delivery] in
            guard var connection = s.connections[outbox.id], connection.roomID == nil else { return [] }
            guard s.rooms[message.roomID] != nil else {
                return [Delivery(outbox: outbox, action: .close(ErrorMessage(code: .roomNotFound, isFatal: true, message: "no such room")))]
            }
            connection.roomID = message.roomID
            s.connections[outbox.id] = connection
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

    /// Routes one `FRAME` (the whole WebSocket message) and forwards it byte for byte.
    /// Returns an error when the sender must be disconnected.
    func frame(_ header: FrameHeader, message: ByteBuffer, from outbox: ConnectionOutbox) -> ErrorMessage? {
        let payloadLength = message.readableBytes - FrameHeader.length
        guard payloadLength <= configuration.payloadLimit(header.kind) else {
            metrics.limitHit("frame_size")
            return ErrorMessage(code: .tooLarge, isFatal: true, message: "\(header.kind.name) frame of \(payloadLength) bytes exceeds this relay's limit of \(configuration.payloadLimit(header.kind))")
        }
        let decision = state.withLock { s -> (FrameRoute, [ConnectionOutbox], ConnectionOutbox?) in
            guard let roomID = s.connections[outbox.id]?.roomID, s.rooms[roomID] != nil else {
                return (.reject(ErrorMessage(code: .unexpectedMessage, isFatal: true, message: "frames are only accepted from admitted participants")), [], nil)
            }
            // Mutate the policy where it is stored (the dictionary's modify accessor): a copy
            // would duplicate the room's tables on write (copy-on-write) for every frame.
            let route = s.rooms[roomID]!.policy.routeFrame(header, from: outbox.id)
            switch route {
            case .broadcast: return (route, s.rooms[roomID]!.recipients, nil)
            case .unicast(let to): return (route, [], s.connections[to]?.outbox)
            default: return (route, [], nil)
            }
        }
        switch decision.0 {
        case .broadcast:
            metrics.framesForwarded[header.kind]?.increment()
            metrics.bytesForwarded.increment(by: Int64(message.readableBytes))
            let trafficClass: ConnectionOutbox.TrafficClass = header.kind == .audio || header.kind == .screen ? .media : .reliable
            var n = 0
            for recipient in decision.1 where recipient !== outbox {
                recipient.send(message, class: trafficClass)
                n += 1
            }
            metrics.deliveries.increment(by: Int64(n))
        case .unicast:
            metrics.framesForwarded[header.kind]?.increment()
            metrics.bytesForwarded.increment(by: Int64(message.readableBytes))
            if let recipient = decision.2 {
                recipient.send(message, class: .reliable)
                metrics.deliveries.increment()
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

    var connectionCount: Int { state.withLock { $0.connections.count } }
    var roomCount: Int { state.withLock { $0.rooms.count } }

    // MARK: - Internals

    struct Delivery {
        enum Action { case message(RelayMessage), close(ErrorMessage), release }
        let outbox: ConnectionOutbox
        let action: Action
    }

    /// Runs `body` on a room's policy and turns its actions into deliveries. Must be called
    /// with the lock held (it takes `inout State`).
    private func mutateRoom(_ s: inout State, _ roomID: RoomID, _ body: (inout RoomPolicy) -> [RoomAction]) -> [Delivery] {
        guard s.rooms[roomID] != nil else { return [] }
        // In place: a copy would duplicate the policy's tables (copy-on-write) on every action.
        let actions = body(&s.rooms[roomID]!.policy)
        var out: [Delivery] = []
        out.reserveCapacity(actions.count)
        var closed = false
        for action in actions {
            switch action {
            case let .send(id, message):
                if let outbox = s.connections[id]?.outbox { out.append(Delivery(outbox: outbox, action: .message(message))) }
            case let .close(id, error):
                if let entry = s.connections[id] {
                    out.append(Delivery(outbox: entry.outbox, action: .close(error)))
                    s.connections[id]?.roomID = nil
                }
            case let .release(id):
                if let entry = s.connections[id] {
                    out.append(Delivery(outbox: entry.outbox, action: .release))
                    s.connections[id]?.roomID = nil
                }
            case .roomClosed:
                closed = true
            }
        }
        if closed {
            s.rooms[roomID] = nil
            s.passwordFailuresByRoom.forget(roomID)
            for (id, entry) in s.connections where entry.roomID == roomID { s.connections[id]?.roomID = nil }
            metrics.rooms.record(s.rooms.count)
            logger.info("room closed", metadata: ["room": "\(LogRedaction.room(roomID))"])
        } else {
            let recipients = s.rooms[roomID]!.policy.admittedConnections.compactMap { s.connections[$0]?.outbox }
            s.rooms[roomID]!.recipients = recipients
        }
        updateGauges(s)
        return out
    }

    private func updateGauges(_ s: State) {
        var admitted = 0, waiting = 0
        for room in s.rooms.values { admitted += room.policy.admittedCount; waiting += room.policy.waitingCount }
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
