import ConclaveProtocol

/// The policy of one room: who is in it and in which role, the waiting room, lock, mute,
/// screen sharing, bans, the recording notice, and where each frame goes.
///
/// A value-type state machine (STYLE.md §1): every mutating method takes one input (a join,
/// a command, a disconnection, a frame header, the time) and returns what the network layer
/// must do, as ``RoomAction``s in order, or a ``FrameRoute``. It does no I/O, reads no clock
/// (time comes in as ``RelayMillis``) and uses no randomness, so it is tested without
/// sockets. One room's policy is driven by one caller at a time (e.g. one event loop).
///
/// Guarantees:
/// - While anyone is admitted there is exactly one host.
/// - Participant indices are assigned from 1 in join order (waiting or admitted) and never
///   reused; when `0xFFFE` has been used, further joins get `room_full`.
/// - A waiting connection is sent only its `WAITING` and, at the end, its own close (or the
///   `COMMAND_OK` of its `leave`): no events, rosters or frames.
/// - Events carry indices and identity keys only; payloads are never looked at.
/// - When the last admitted member goes, everyone still waiting is closed with `ended` and
///   the actions end with ``RoomAction/roomClosed``; after that every input is refused.
///
/// Keep the value in one place and mutate it there (e.g. a stored property of the object
/// that owns the room): its tables are copy-on-write, so mutating a temporary copy would
/// copy them, and ``routeFrame(_:from:)`` is meant to allocate nothing.
public struct RoomPolicy: Sendable {
    /// The room's id, chosen by the registry.
    public let roomID: RoomID
    /// The identity that created the room. Joining with it (after the caller verified its
    /// signature over a fresh challenge) reclaims the host role.
    public let ownerIdentity: Identity
    /// The current settings, `locked` included.
    public internal(set) var settings: RoomSettings
    /// Whether the host has announced that the meeting is being recorded.
    public internal(set) var isRecording: Bool = false
    /// True once the actions returned ``RoomAction/roomClosed``.
    public internal(set) var isClosed: Bool = false

    /// Admitted connections in admission order (the longest-admitted first). Kept up to date
    /// as members come and go, never rebuilt per frame.
    public internal(set) var admittedConnections: [ConnectionID] = []

    // MARK: State

    var members: [ConnectionID: RoomMember] = [:]
    var memberByIndex: [ParticipantIndex: ConnectionID] = [:]
    var waiters: [ConnectionID: WaitingJoiner] = [:]
    var waiterByIndex: [ParticipantIndex: ConnectionID] = [:]
    /// Waiting connections in arrival order.
    var waitingOrder: [ConnectionID] = []
    var host: ConnectionID?
    /// The next index to assign; `0xFFFF` once every member index was used.
    var nextIndex: UInt16 = 1
    var admissionCounter: UInt64 = 0
    var bannedIdentities: Set<Identity> = []
    var bannedConnections: Set<ConnectionID> = []

    /// Creates the room with its owner admitted as host, with index 1.
    ///
    /// `settings` come from a decoded `CREATE_ROOM` (so they are in range). The creation
    /// reply (`ROOM_CREATED`) is the caller's to send.
    public init(roomID: RoomID, owner: Identity, ownerConnection: ConnectionID, settings: RoomSettings, now: RelayMillis) {
        self.roomID = roomID
        ownerIdentity = owner
        self.settings = settings
        let index = allocateIndex()!
        insertMember(connection: ownerConnection, identity: owner, index: index, role: .host, now: now)
        host = ownerConnection
    }

    // MARK: Queries

    /// Number of connections in the waiting room.
    public var waitingCount: Int { waitingOrder.count }
    /// Number of admitted members.
    public var admittedCount: Int { admittedConnections.count }

    /// True when `connection` is an admitted member (not merely waiting).
    public func isMember(_ connection: ConnectionID) -> Bool { members[connection] != nil }

    /// True when `connection` is in the waiting room.
    public func isWaiting(_ connection: ConnectionID) -> Bool { waiters[connection] != nil }

    /// The index of an admitted or waiting connection.
    public func index(of connection: ConnectionID) -> ParticipantIndex? {
        members[connection]?.index ?? waiters[connection]?.index
    }

    /// The role of an admitted connection.
    public func role(of connection: ConnectionID) -> Role? { members[connection]?.role }

    /// The connection that holds the host role; `nil` only when the room is closed.
    public func hostConnection() -> ConnectionID? { host }

    /// The admitted or waiting connection with this index.
    public func connection(forIndex index: ParticipantIndex) -> ConnectionID? {
        memberByIndex[index] ?? waiterByIndex[index]
    }

    /// The roster of admitted members, by index: what an `ADMITTED` sent now would carry.
    public var roster: [RosterEntry] {
        admittedConnections.compactMap { members[$0]?.rosterEntry }.sorted { $0.index < $1.index }
    }

    /// Indices in the waiting room, in arrival order.
    public var waitingIndices: [ParticipantIndex] { waitingOrder.compactMap { waiters[$0]?.index } }

    /// True when this identity was removed from the room and may not join again.
    public func isBanned(_ identity: Identity) -> Bool { bannedIdentities.contains(identity) }

    /// The earliest recording-acknowledgement deadline still running, if any: call
    /// ``tick(now:)`` at or after it.
    public var nextRecordingDeadline: RelayMillis? {
        admittedConnections.compactMap { members[$0]?.recordingDeadline }.min()
    }

    // MARK: Building blocks shared by the inputs

    /// Hands out the next index, or `nil` once `0xFFFE` was used.
    mutating func allocateIndex() -> ParticipantIndex? {
        guard ParticipantIndex.memberRange.contains(nextIndex) else { return nil }
        defer { nextIndex += 1 }
        return ParticipantIndex(nextIndex)
    }

    var recordingTimeoutMillis: RelayMillis {
        RelayMillis(settings.recordingAcknowledgementTimeoutSeconds) * 1_000
    }

    /// Adds an admitted member (no messages). Mute on entry applies to participants; a member
    /// admitted while recording is on owes an acknowledgement with its own deadline.
    mutating func insertMember(connection: ConnectionID, identity: Identity, index: ParticipantIndex, role: Role, now: RelayMillis) {
        var state: ParticipantState = []
        if role == .participant, settings.muteOnEntry { state.insert(.muted) }
        admissionCounter += 1
        var member = RoomMember(index: index, identity: identity, role: role, state: state, admissionOrder: admissionCounter)
        if isRecording {
            member.recordingAcknowledgementPending = true
            member.recordingNoticeTime = now
            member.recordingDeadline = now.addingSaturating(recordingTimeoutMillis)
        }
        members[connection] = member
        memberByIndex[index] = connection
        admittedConnections.append(connection)
    }

    /// Removes an admitted member from every table (no messages, no host hand-over).
    @discardableResult
    mutating func deleteMember(_ connection: ConnectionID) -> RoomMember? {
        guard let member = members.removeValue(forKey: connection) else { return nil }
        memberByIndex[member.index] = nil
        if let position = admittedConnections.firstIndex(of: connection) { admittedConnections.remove(at: position) }
        if host == connection { host = nil }
        return member
    }

    /// Removes a waiting joiner from every table (no messages).
    @discardableResult
    mutating func deleteWaiter(_ connection: ConnectionID) -> WaitingJoiner? {
        guard let waiter = waiters.removeValue(forKey: connection) else { return nil }
        waiterByIndex[waiter.index] = nil
        if let position = waitingOrder.firstIndex(of: connection) { waitingOrder.remove(at: position) }
        return waiter
    }

    /// An `EVENT` to every admitted member, optionally skipping one.
    func broadcast(_ event: RoomEvent, actor: ParticipantIndex, except skipped: ConnectionID? = nil) -> [RoomAction] {
        let message = RelayMessage.event(EventMessage(actor: actor, event: event))
        var actions: [RoomAction] = []
        actions.reserveCapacity(admittedConnections.count)
        for connection in admittedConnections where connection != skipped {
            actions.append(.send(connection, message))
        }
        return actions
    }

    /// An `EVENT` to the host and every co-host.
    func sendToHosts(_ event: RoomEvent, actor: ParticipantIndex) -> [RoomAction] {
        let message = RelayMessage.event(EventMessage(actor: actor, event: event))
        return admittedConnections.compactMap { connection in
            members[connection]?.isHostOrCohost == true ? .send(connection, message) : nil
        }
    }

    /// `KNOCK` for everyone still waiting, in arrival order, to one (new) host or co-host.
    func knocks(to connection: ConnectionID) -> [RoomAction] {
        waitingOrder.compactMap { waiting in
            waiters[waiting].map { .send(connection, .knock(KnockMessage(index: $0.index, identity: $0.identity, knock: $0.knock))) }
        }
    }

    /// Changes a member's role and announces it to every admitted member (`except` one whose
    /// `ADMITTED` already shows it). A participant who becomes host or co-host is shown
    /// everyone waiting.
    mutating func changeRole(of connection: ConnectionID, to role: Role, actor: ParticipantIndex, except skipped: ConnectionID? = nil) -> [RoomAction] {
        guard var member = members[connection], member.role != role else { return [] }
        let wasParticipant = member.role == .participant
        member.changeRole(to: role)
        members[connection] = member
        if role == .host { host = connection }
        var actions = broadcast(.roleChanged(member.index, role: role), actor: actor, except: skipped)
        if wasParticipant { actions += knocks(to: connection) }
        return actions
    }

    /// After an admitted member was deleted: announces nothing itself, but closes the room
    /// when it is empty, or hands the host role on when the host left.
    mutating func afterMemberLeft(wasHost: Bool) -> [RoomAction] {
        if admittedConnections.isEmpty { return closeRoom(with: PolicyErrors.ended) }
        guard wasHost, host == nil else { return [] }
        // Longest-admitted co-host, else longest-admitted participant.
        let successor = admittedConnections.first { members[$0]?.role == .cohost } ?? admittedConnections[0]
        return changeRole(of: successor, to: .host, actor: .none)
    }

    /// Closes every remaining connection (admitted first, then waiting, in order) with
    /// `error`, forgets everything and ends with ``RoomAction/roomClosed``.
    mutating func closeRoom(with error: ErrorMessage) -> [RoomAction] {
        var actions: [RoomAction] = []
        for connection in admittedConnections { actions.append(.close(connection, error)) }
        for connection in waitingOrder { actions.append(.close(connection, error)) }
        actions.append(.roomClosed)
        members = [:]
        memberByIndex = [:]
        waiters = [:]
        waiterByIndex = [:]
        waitingOrder = []
        admittedConnections = []
        host = nil
        isClosed = true
        return actions
    }
}
