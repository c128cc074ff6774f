import ConclaveProtocol

extension RoomPolicy {
    // MARK: Joining

    /// A `JOIN` whose signature, password proof and rate limits the caller has checked.
    ///
    /// Checks, in order: a connection already in the room (`unexpected_message`; it leaves
    /// the room); a banned identity or connection (`banned`); the owner identity, admitted
    /// at once as host whatever the lock and waiting room (the current host becomes co-host),
    /// but not beyond `max_participants` (`room_full`); the lock (`room_locked`); an empty
    /// knock (`malformed`); then with the waiting room on: a full waiting room
    /// (`waiting_room_full`), and index exhaustion (`room_full`), else `WAITING` to the joiner
    /// and `KNOCK` to the host and co-hosts; with it off: `max_participants` and index
    /// exhaustion (`room_full`), else `KNOCK` to the host and co-hosts and admission. Every refusal is a fatal ``RoomAction/close(_:_:)``.
    public mutating func join(connection: ConnectionID, identity: Identity, knock: [UInt8], now: RelayMillis) -> [RoomAction] {
        guard !isClosed else { return [.close(connection, PolicyErrors.roomGone)] }
        if members[connection] != nil || waiters[connection] != nil {
            return [.close(connection, PolicyErrors.alreadyInRoom)] + depart(connection, reason: .disconnected)
        }
        if bannedIdentities.contains(identity) || bannedConnections.contains(connection) {
            return [.close(connection, PolicyErrors.banned)]
        }
        guard knock.count <= MessageLimits.maximumKnockLength else {
            return [.close(connection, PolicyErrors.knockTooLong)]
        }
        if identity == ownerIdentity {
            return ownerRejoins(connection: connection, now: now)
        }
        if settings.locked { return [.close(connection, PolicyErrors.roomLocked)] }
        // Every joiner knocks (protocol version 2): the leader keys no one whose knock it
        // did not open, waiting room or not.
        guard !knock.isEmpty else { return [.close(connection, PolicyErrors.emptyKnock)] }

        guard settings.waitingRoom else {
            guard admittedCount < Int(settings.maxParticipants) else { return [.close(connection, PolicyErrors.roomFull)] }
            guard let index = allocateIndex() else { return [.close(connection, PolicyErrors.indicesExhausted)] }
            // The host and co-hosts get the knock first, then `joined`.
            let knockMessage = RelayMessage.knock(KnockMessage(index: index, identity: identity, knock: knock))
            var actions: [RoomAction] = []
            for member in admittedConnections where members[member]?.isHostOrCohost == true {
                actions.append(.send(member, knockMessage))
            }
            return actions + admit(connection: connection, identity: identity, index: index, role: .participant, actor: .none, now: now)
        }
        guard waitingCount < Int(settings.maxWaiting) else { return [.close(connection, PolicyErrors.waitingRoomFull)] }
        guard let index = allocateIndex() else { return [.close(connection, PolicyErrors.indicesExhausted)] }

        waiters[connection] = WaitingJoiner(index: index, identity: identity, knock: knock)
        waiterByIndex[index] = connection
        waitingOrder.append(connection)
        let position = UInt16(clamping: waitingOrder.count)
        var actions: [RoomAction] = [.send(connection, .waiting(WaitingMessage(roomID: roomID, index: index, position: position)))]
        let knockMessage = RelayMessage.knock(KnockMessage(index: index, identity: identity, knock: knock))
        for member in admittedConnections where members[member]?.isHostOrCohost == true {
            actions.append(.send(member, knockMessage))
        }
        return actions
    }

    /// The owner's identity joins: admitted directly as host; whoever holds host becomes
    /// co-host first, so that no one ever sees two hosts.
    private mutating func ownerRejoins(connection: ConnectionID, now: RelayMillis) -> [RoomAction] {
        guard admittedCount < Int(settings.maxParticipants) else { return [.close(connection, PolicyErrors.roomFull)] }
        guard let index = allocateIndex() else { return [.close(connection, PolicyErrors.indicesExhausted)] }
        var actions: [RoomAction] = []
        if let previous = host {
            actions += changeRole(of: previous, to: .cohost, actor: .none)
        }
        actions += admit(connection: connection, identity: ownerIdentity, index: index, role: .host, actor: .none, now: now)
        return actions
    }

    /// Admits a connection (from the waiting room, directly, or as the returning owner):
    /// `ADMITTED` with the full roster to it, then `joined` (and `muted`, when it enters
    /// muted) to the others, then — for a host — `KNOCK` for everyone waiting.
    mutating func admit(
        connection: ConnectionID, identity: Identity, index: ParticipantIndex, role: Role,
        actor: ParticipantIndex, now: RelayMillis
    ) -> [RoomAction] {
        insertMember(connection: connection, identity: identity, index: index, role: role, now: now)
        if role == .host { host = connection }
        let member = members[connection]!
        let admitted = AdmittedMessage(index: index, role: role, settings: settings, recording: isRecording, roster: roster)
        var actions: [RoomAction] = [.send(connection, .admitted(admitted))]
        actions += broadcast(.joined(index, identity: identity, role: role), actor: actor, except: connection)
        if member.state.contains(.muted) {
            actions += broadcast(.muted(index), actor: .none, except: connection)
        }
        if member.isHostOrCohost { actions += knocks(to: connection) }
        return actions
    }

    // MARK: Leaving

    /// The connection closed, timed out or was too slow (or the caller closed it after a
    /// ``FrameRoute/reject(_:)``). An admitted member's departure is announced with `left`
    /// and `reason`, the host role passes on if it held it, and an empty room closes; a
    /// waiting joiner's is reported to the host and co-hosts with `waiting_left`. Unknown
    /// connections (e.g. ones the policy already closed) are ignored.
    public mutating func disconnected(_ connection: ConnectionID, reason: LeaveReason, now: RelayMillis) -> [RoomAction] {
        guard !isClosed else { return [] }
        return depart(connection, reason: reason)
    }

    /// Removes an admitted or waiting connection and returns what the others must learn.
    mutating func depart(_ connection: ConnectionID, reason: LeaveReason) -> [RoomAction] {
        if let waiter = deleteWaiter(connection) {
            return sendToHosts(.waitingLeft(waiter.index), actor: .none)
        }
        guard let member = deleteMember(connection) else { return [] }
        // The member caused its own `leave`; the relay noticed every other departure.
        let actor = reason == .left ? member.index : ParticipantIndex.none
        var actions = broadcast(.left(member.index, reason: reason), actor: actor)
        actions += afterMemberLeft(wasHost: member.role == .host)
        return actions
    }

    // MARK: Relay shutdown

    /// The relay is stopping: every admitted and waiting connection is closed with
    /// `shutting_down` (`message` is cut to 200 UTF-8 bytes), then ``RoomAction/roomClosed``.
    public mutating func shutdown(message: String) -> [RoomAction] {
        guard !isClosed else { return [] }
        return closeRoom(with: PolicyErrors.shuttingDown(message))
    }
}
