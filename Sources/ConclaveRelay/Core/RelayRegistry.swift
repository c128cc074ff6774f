import ConclaveCrypto
import ConclaveProtocol

/// The relay's registry as a state machine: rooms, connections, pending accepts, rate
/// limiters and media sessions.
///
/// Every input is a mutating method that changes the registry and returns the
/// ``Actions`` to carry out: messages and closes to deliver, rooms opened or closed (for
/// the cluster), limits hit and counters (for the metrics). It performs no I/O, logs
/// nothing, reads no clock (time comes in as a ``RelayInstant``) and draws randomness only
/// from the injected ``RelayRandom``. ``RelayCore`` runs it under its lock and carries the
/// actions out after releasing it, the way async-http-client's `HTTPConnectionPool` runs
/// its state machine; tests drive it directly, without sockets or a clock.
///
/// A room's policy and member list live in its ``RoomCell``, under the room's own lock:
/// the registry takes that lock (after its own, never the reverse) whenever a room's
/// membership changes, so the frame paths, which take only the room's lock, never see a
/// member list half updated.
struct RelayRegistry {
    /// A message or close for one connection.
    struct Delivery {
        enum Action { case message(RelayMessage), close(ErrorMessage), release }
        let outbox: ConnectionOutbox
        let action: Action
    }

    /// A room that left this relay. `mayMove`: it was let go while the relay was stopping
    /// or draining, so its owner may re-create it on another node (5.10).
    struct ClosedRoom: Equatable {
        let id: RoomID
        let mayMove: Bool
    }

    /// What the gauges show, as of the end of an input.
    struct Gauges: Equatable {
        /// Upgraded connections and accepted ones not yet upgraded.
        var connections = 0
        var pending = 0
        var rooms = 0
        /// Admitted members and members in waiting rooms, over every room.
        var participants = 0
        var waiting = 0
        var mediaSessions = 0
    }

    /// What the relay does after an input, outside the lock.
    struct Actions {
        var deliveries: [Delivery] = []
        /// A room created by this input, and its owner.
        var opened: (room: RoomID, owner: Identity)?
        var closed: [ClosedRoom] = []
        /// Names of limits hit (`conclave_limit_hits_total{limit}`).
        var limitHits: [String] = []
        /// Rooms let go for another node by a drain.
        var rehomes = 0
        var gauges = Gauges()

        mutating func close(_ outbox: ConnectionOutbox, _ error: ErrorMessage) {
            deliveries.append(Delivery(outbox: outbox, action: .close(error)))
        }
    }

    /// A room in the registry: its cell, and its member counts as of its last change.
    private struct RoomEntry {
        let cell: RoomCell
        var admitted = 1
        var waiting = 0
    }

    private struct ConnectionEntry {
        let outbox: ConnectionOutbox
        var roomID: RoomID?
        var media: MediaSession?
    }

    let configuration: RelayConfiguration
    private let random: RelayRandom
    /// Media sessions by id (shared with the UDP path, which looks them up per datagram).
    let sessions: SessionTable

    private var rooms: [RoomID: RoomEntry] = [:]
    private var connections: [ConnectionID: ConnectionEntry] = [:]
    private var nextConnection: UInt64 = 1
    /// Join attempts per source address, whatever their outcome.
    private var joinAttempts: RateLimiter<String>
    private var passwordFailuresByAddress: RateLimiter<String>
    private var passwordFailuresByRoom: RateLimiter<RoomID>
    /// Rooms created per source address (every `CREATE_ROOM` counts, before any hashing).
    private var roomCreations: RateLimiter<String>
    private(set) var shuttingDown = false
    private var media: RelayCore.MediaEndpoint?
    /// TCP connections accepted and not yet upgraded (or closed), in all and per source
    /// address: they count against `max-connections` from accept on.
    private(set) var pending = 0
    private var pendingByAddress: [String: Int] = [:]
    /// Connections over the limit that will be told `at_capacity` (``refusalReserve``).
    private(set) var refusing = 0
    /// Sums of the rooms' counts, kept as they change.
    private var admittedTotal = 0
    private var waitingTotal = 0

    /// Connections past `max-connections` that may still upgrade to receive a typed
    /// `ERROR at_capacity` (5.1); past these, a connection is closed at accept.
    static let refusalReserve = 16

    init(configuration: RelayConfiguration, random: RelayRandom, sessions: SessionTable = SessionTable()) {
        self.configuration = configuration
        self.random = random
        self.sessions = sessions
        joinAttempts = RateLimiter(limit: configuration.joinAttemptsPerAddressPerMinute, window: 60_000)
        passwordFailuresByAddress = RateLimiter(limit: configuration.passwordFailuresPerAddressPerMinute, window: 60_000)
        passwordFailuresByRoom = RateLimiter(limit: configuration.passwordFailuresPerRoomPerMinute, window: 60_000)
        roomCreations = RateLimiter(limit: configuration.roomCreationsPerAddressPerMinute, window: 60_000)
    }

    // MARK: - Reading

    var gauges: Gauges {
        Gauges(
            connections: connections.count + pending, pending: pending, rooms: rooms.count,
            participants: admittedTotal, waiting: waitingTotal, mediaSessions: sessions.count)
    }
    var connectionCount: Int { connections.count }
    var roomCount: Int { rooms.count }
    var participantCount: Int { admittedTotal }
    func hasRoom(_ id: RoomID) -> Bool { rooms[id] != nil }
    func roomID(of id: ConnectionID) -> RoomID? { connections[id]?.roomID }
    func room(of id: ConnectionID) -> RoomCell? { connections[id]?.roomID.flatMap { rooms[$0]?.cell } }
    func mediaSession(of id: ConnectionID) -> MediaSession? { connections[id]?.media }
    /// The room's password hash: nil when there is no such room, `.some(nil)` when it has
    /// no password.
    func passwordHash(of id: RoomID) -> String?? { rooms[id].map { $0.cell.passwordHash } }

    private func isExempt(_ address: String) -> Bool { configuration.exemptAddresses.contains(address) }

    // MARK: - Connections

    /// A TCP connection was accepted. Nil: it holds a pending slot until
    /// ``register(address:makeOutbox:)`` or ``pendingEnded(address:)``.
    mutating func accept(address: String) -> RelayCore.AcceptRefusal? {
        if shuttingDown { return .shuttingDown }
        guard connections.count + pending < configuration.maxConnections else {
            guard refusing < Self.refusalReserve else { return .atCapacity }
            refusing += 1
            return .refuseAfterUpgrade
        }
        let mine = pendingByAddress[address, default: 0]
        guard mine < configuration.maxPendingConnectionsPerAddress || isExempt(address) else { return .addressCap }
        pending += 1
        pendingByAddress[address] = mine + 1
        return nil
    }

    mutating func refusalEnded() { refusing = max(0, refusing - 1) }

    mutating func pendingEnded(address: String) {
        guard pending > 0, let mine = pendingByAddress[address] else { return }
        pending -= 1
        if mine <= 1 { pendingByAddress[address] = nil } else { pendingByAddress[address] = mine - 1 }
    }

    /// An accepted connection upgraded: it gives up its pending slot and gets an id and
    /// an outbox. Nil when the relay is stopping or full.
    mutating func register(address: String, makeOutbox: (ConnectionID) -> ConnectionOutbox) -> ConnectionOutbox? {
        pendingEnded(address: address)
        guard !shuttingDown, connections.count < configuration.maxConnections else { return nil }
        let id = ConnectionID(nextConnection)
        nextConnection += 1
        let outbox = makeOutbox(id)
        connections[id] = ConnectionEntry(outbox: outbox, roomID: nil)
        return outbox
    }

    /// The connection went away. Idempotent.
    mutating func disconnect(_ id: ConnectionID, reason: LeaveReason, now: RelayInstant) -> Actions {
        var actions = Actions()
        guard let entry = connections.removeValue(forKey: id) else { return actions }
        entry.outbox.room = nil
        if let media = entry.media { dropSession(media, roomLocked: false) }
        if let roomID = entry.roomID {
            mutateRoom(roomID, now: now, &actions) { $0.disconnected(id, reason: reason, now: now.milliseconds) }
        }
        return actions
    }

    // MARK: - Rooms

    /// Counts a `CREATE_ROOM` against its address (before any signature check or hashing).
    /// Returns the wait when the address is over its limit.
    mutating func limitRoomCreation(address: String, now: RelayInstant) -> UInt32? {
        guard !isExempt(address) else { return nil }
        if case .limited(let retry) = roomCreations.decision(for: address, now: now.milliseconds) { return retry }
        roomCreations.recordFailure(for: address, now: now.milliseconds)
        return nil
    }

    /// Creates the room `message` proposes, owned by `outbox`'s connection, with the
    /// settings clamped to this relay's limits.
    mutating func createRoom(
        _ message: CreateRoomMessage, passwordHash: String?, outbox: ConnectionOutbox,
        now: RelayInstant
    ) -> Actions {
        var actions = Actions()
        var settings = message.settings
        settings.maxParticipants = min(settings.maxParticipants, UInt16(clamping: configuration.maxParticipantsPerRoom))
        settings.maxWaiting = min(settings.maxWaiting, UInt16(clamping: configuration.maxWaitingPerRoom))
        guard var connection = connections[outbox.id], connection.roomID == nil else {
            actions.close(outbox, ErrorMessage(code: .unexpectedMessage, isFatal: true, message: "this connection already belongs to a room"))
            return actions
        }
        guard rooms.count < configuration.maxRooms else {
            actions.limitHits.append("rooms")
            actions.close(outbox, ErrorMessage(code: .tooManyRooms, isFatal: true, message: "the relay has reached its room limit"))
            return actions
        }
        // The host proposes the id (5.4): its identity proof and relay_auth are bound to it.
        let roomID = message.roomID
        guard rooms[roomID] == nil else {
            actions.close(outbox, ErrorMessage(code: .roomExists, isFatal: true, message: "a room with the proposed id exists"))
            return actions
        }
        let policy = RoomPolicy(roomID: roomID, owner: message.identity, ownerConnection: outbox.id, settings: settings, now: now.milliseconds)
        let cell = RoomCell(id: roomID, policy: policy, passwordHash: passwordHash)
        connection.roomID = roomID
        connections[outbox.id] = connection
        outbox.room = cell
        actions.deliveries.append(
            Delivery(
                outbox: outbox,
                action: .message(
                    .roomCreated(
                        RoomCreatedMessage(roomID: roomID, index: policy.index(of: outbox.id) ?? 1, settings: settings)))))
        let media = openSession(for: outbox.id, room: cell, now: now, deliveries: &actions.deliveries)
        let host = RelayCore.Recipient(outbox: outbox, media: media)
        cell.state.withLock { r in
            r.recipients = [host]
            r.byConnection = [outbox.id: host]
        }
        rooms[roomID] = RoomEntry(cell: cell)
        admittedTotal += 1
        actions.opened = (roomID, message.identity)
        return actions
    }

    /// A limit that refused a join before its signature was checked.
    struct JoinRefusal {
        let error: ErrorMessage
        let limit: String?
    }

    /// The checks on a `JOIN` before its identity proof: attempts per address, and wrong
    /// passwords per address for a room with a password. Counts the attempt. In a cluster
    /// (`inCluster`) a room not here is routed later, so its absence is not a refusal.
    mutating func gateJoin(room roomID: RoomID, address: String, inCluster: Bool, now: RelayInstant) -> JoinRefusal? {
        let exempt = isExempt(address), millis = now.milliseconds
        if !exempt, case .limited(let retry) = joinAttempts.decision(for: address, now: millis) {
            return JoinRefusal(
                error: ErrorMessage(
                    code: .rateLimited, isFatal: true, retryAfterMilliseconds: retry,
                    message: "too many join attempts from this address"), limit: "join_attempts")
        }
        if !exempt { joinAttempts.recordFailure(for: address, now: millis) }
        guard let room = rooms[roomID] else {
            if inCluster { return nil }
            return JoinRefusal(error: ErrorMessage(code: .roomNotFound, isFatal: true, message: "no such room"), limit: nil)
        }
        // Wrong passwords per address refuse that address. Per room they only slow the
        // wrong answers (``recordWrongPassword(address:room:now:)``): a stranger who knows
        // the room id must not be able to lock its invitees out (5.4).
        if room.cell.passwordHash != nil, !exempt,
            case .limited(let retry) = passwordFailuresByAddress.decision(for: address, now: millis)
        {
            return JoinRefusal(
                error: ErrorMessage(
                    code: .rateLimited, isFatal: true, retryAfterMilliseconds: retry,
                    message: "too many wrong passwords; wait before trying again"), limit: "password_failures")
        }
        return nil
    }

    /// Counts a wrong password against its address and its room. True when the room is
    /// over its budget, so that the answer is to be delayed.
    mutating func recordWrongPassword(address: String, room: RoomID, now: RelayInstant) -> Bool {
        passwordFailuresByAddress.recordFailure(for: address, now: now.milliseconds)
        if case .limited = passwordFailuresByRoom.recordFailure(for: room, now: now.milliseconds) { return true }
        return false
    }

    /// A `JOIN` whose proof (and password) checked out: the room's policy admits, queues
    /// or refuses it.
    mutating func join(_ message: JoinMessage, outbox: ConnectionOutbox, now: RelayInstant) -> Actions {
        var actions = Actions()
        guard var connection = connections[outbox.id], connection.roomID == nil else { return actions }
        guard let room = rooms[message.roomID] else {
            actions.close(outbox, ErrorMessage(code: .roomNotFound, isFatal: true, message: "no such room"))
            return actions
        }
        connection.roomID = message.roomID
        connections[outbox.id] = connection
        outbox.room = room.cell
        mutateRoom(message.roomID, now: now, &actions) {
            $0.join(connection: outbox.id, identity: message.identity, knock: message.knock, now: now.milliseconds)
        }
        return actions
    }

    mutating func command(_ message: CommandMessage, from outbox: ConnectionOutbox, now: RelayInstant) -> Actions {
        var actions = Actions()
        guard let roomID = connections[outbox.id]?.roomID else {
            actions.close(
                outbox,
                ErrorMessage(
                    code: .unexpectedMessage, requestID: message.requestID, isFatal: true,
                    message: "join or create a room before sending commands"))
            return actions
        }
        mutateRoom(roomID, now: now, &actions) { $0.command(message, from: outbox.id, now: now.milliseconds) }
        return actions
    }

    /// Recording-acknowledgement deadlines for every room; expired limiter entries go.
    mutating func tick(now: RelayInstant) -> Actions {
        var actions = Actions()
        let millis = now.milliseconds
        for roomID in Array(rooms.keys) {
            mutateRoom(roomID, now: now, &actions) { $0.tick(now: millis) }
        }
        joinAttempts.removeExpired(now: millis)
        passwordFailuresByAddress.removeExpired(now: millis)
        passwordFailuresByRoom.removeExpired(now: millis)
        roomCreations.removeExpired(now: millis)
        return actions
    }

    /// Entries the rate limiters remember (tests of pruning).
    var limiterKeyCount: Int {
        joinAttempts.trackedKeyCount + passwordFailuresByAddress.trackedKeyCount
            + passwordFailuresByRoom.trackedKeyCount + roomCreations.trackedKeyCount
    }

    /// The relay is stopping: every room closes (its members told why), every other
    /// connection is told `shutting_down`, and no connection is accepted from now on.
    mutating func shutdown(now: RelayInstant) -> Actions {
        shuttingDown = true
        var actions = Actions()
        for roomID in Array(rooms.keys) {
            mutateRoom(roomID, now: now, &actions) { $0.shutdown(message: "the relay is shutting down") }
        }
        let notified = Set(actions.deliveries.map { ObjectIdentifier($0.outbox) })
        for entry in connections.values where !notified.contains(ObjectIdentifier(entry.outbox)) {
            actions.close(entry.outbox, ErrorMessage(code: .shuttingDown, isFatal: true, message: "the relay is shutting down"))
        }
        return actions
    }

    /// This cluster node drains (5.10): every room is let go (``ClosedRoom/mayMove``) and
    /// every client is told `REDIRECT draining` to `origin`, then closed normally.
    mutating func drain(redirectTo origin: String) -> Actions {
        shuttingDown = true
        var actions = Actions()
        for (roomID, room) in rooms {
            room.cell.state.withLock { r in
                r.isClosed = true
                r.recipients = []
                r.byConnection = [:]
            }
            actions.closed.append(ClosedRoom(id: roomID, mayMove: true))
            actions.rehomes += 1
        }
        rooms = [:]
        admittedTotal = 0
        waitingTotal = 0
        for (id, entry) in connections {
            connections[id]?.roomID = nil
            entry.outbox.room = nil
            if let media = entry.media { dropSession(media, roomLocked: false) }
            actions.deliveries.append(Delivery(outbox: entry.outbox, action: .message(.redirect(RedirectMessage(reason: .draining, origin: origin)))))
            actions.deliveries.append(Delivery(outbox: entry.outbox, action: .release))
        }
        return actions
    }

    // MARK: - Media sessions

    /// Records the bound media path; `MEDIA_SESSION`s name it from now on.
    mutating func mediaPathBound(_ endpoint: RelayCore.MediaEndpoint) { media = endpoint }

    /// Opens a media session for an admitted connection and queues its `MEDIA_SESSION`.
    /// Nil when the relay runs no media path.
    private mutating func openSession(
        for id: ConnectionID, room: RoomCell, now: RelayInstant,
        deliveries: inout [Delivery]
    ) -> MediaSession? {
        guard let media, let entry = connections[id] else { return nil }
        if let existing = entry.media { return existing }
        let key = SecretKey(copying: random.bytes(HopAuthenticator.keyByteCount))
        var session: MediaSession
        repeat {
            guard
                let candidate = try? MediaSession(
                    id: max(1, random.uint32()), connection: id, room: room, outbox: entry.outbox,
                    hopKey: key, configuration: configuration, now: now.milliseconds)
            else { return nil }
            session = candidate
        } while !sessions.insert(session)
        connections[id]?.media = session
        deliveries.append(
            Delivery(
                outbox: entry.outbox,
                action: .message(
                    .mediaSession(
                        MediaSessionMessage(sessionID: session.id, hopKey: key, port: media.port, host: media.advertisedHost)))))
        return session
    }

    /// Forgets a session: its datagrams are dropped as `unknown_session` from now on.
    /// `roomLocked`: the caller holds its room's lock (else it is taken here).
    private mutating func dropSession(_ session: MediaSession, roomLocked: Bool) {
        sessions.remove(session.id)
        if roomLocked { session.isOpen = false } else { session.room.state.withLock { _ in session.isOpen = false } }
        connections[session.connection]?.media = nil
    }

    /// Takes a connection out of its room (it was closed or released by the policy).
    private mutating func detach(_ id: ConnectionID, roomLocked: Bool) {
        guard let entry = connections[id] else { return }
        connections[id]?.roomID = nil
        entry.outbox.room = nil
        if let media = entry.media { dropSession(media, roomLocked: roomLocked) }
    }

    // MARK: - Room changes

    /// Runs `body` on a room's policy and turns its actions into deliveries. Takes the
    /// room's lock for the whole change, so that no frame is routed to a member list half
    /// updated.
    private mutating func mutateRoom(_ roomID: RoomID, now: RelayInstant, _ actions: inout Actions, _ body: (inout RoomPolicy) -> [RoomAction]) {
        guard let entry = rooms[roomID] else { return }
        let cell = entry.cell
        var closed = false
        var counts = (admitted: 0, waiting: 0)
        cell.state.withLock { r in
            // In place: a copy would duplicate the policy's tables (copy-on-write).
            let roomActions = body(&r.policy)
            actions.deliveries.reserveCapacity(actions.deliveries.count + roomActions.count)
            for action in roomActions {
                switch action {
                case let .send(id, message):
                    if let outbox = connections[id]?.outbox { actions.deliveries.append(Delivery(outbox: outbox, action: .message(message))) }
                    if case .admitted = message { _ = openSession(for: id, room: cell, now: now, deliveries: &actions.deliveries) }
                case let .close(id, error):
                    if let outbox = connections[id]?.outbox { actions.close(outbox, error) }
                    detach(id, roomLocked: true)
                case let .release(id):
                    if let outbox = connections[id]?.outbox { actions.deliveries.append(Delivery(outbox: outbox, action: .release)) }
                    detach(id, roomLocked: true)
                case .roomClosed:
                    closed = true
                }
            }
            if closed {
                r.isClosed = true
                r.recipients = []
                r.byConnection = [:]
                for (id, member) in connections where member.roomID == roomID { detach(id, roomLocked: true) }
            } else {
                let recipients = r.policy.admittedConnections.compactMap { id in
                    connections[id].map { RelayCore.Recipient(outbox: $0.outbox, media: $0.media) }
                }
                r.recipients = recipients
                r.byConnection = Dictionary(recipients.map { ($0.outbox.id, $0) }, uniquingKeysWith: { a, _ in a })
                counts = (r.policy.admittedCount, r.policy.waitingCount)
            }
        }
        admittedTotal += counts.admitted - entry.admitted
        waitingTotal += counts.waiting - entry.waiting
        if closed {
            rooms[roomID] = nil
            passwordFailuresByRoom.forget(roomID)
            actions.closed.append(ClosedRoom(id: roomID, mayMove: shuttingDown))
        } else {
            rooms[roomID]?.admitted = counts.admitted
            rooms[roomID]?.waiting = counts.waiting
        }
    }
}
