import ConclaveProtocol

/// A command that is refused without closing the connection (section 5.5): the caller
/// answers with a non-fatal `ERROR` carrying the command's `request_id`.
struct CommandRefusal: Error {
    let code: ErrorCode
    let text: String

    static let notAllowed = CommandRefusal(code: .notAllowed, text: "your role may not do this")
    static let selfUnmuteNotAllowed = CommandRefusal(
        code: .notAllowed, text: "you may unmute yourself only when a host or co-host asks you to"
    )
    static let unknownParticipant = CommandRefusal(code: .unknownParticipant, text: "no participant has this index")
    static let roomFull = CommandRefusal(code: .roomFull, text: "the room is full")

    static func invalid(_ text: String) -> CommandRefusal { CommandRefusal(code: .invalidCommand, text: text) }
}

extension RoomPolicy {
    // MARK: Commands

    /// A `COMMAND` from a connection in this room.
    ///
    /// From a waiting connection only `leave` is accepted (`COMMAND_OK`, then
    /// ``RoomAction/release(_:)``); anything else closes it with `unexpected_message`. From an
    /// admitted member, the role is checked first (`not_allowed`, see ``CommandPermissions``),
    /// then the target (`unknown_participant` when the index is neither admitted nor waiting;
    /// `invalid_command` when it is the wrong kind, e.g. `admit` of an admitted member), then
    /// the room's state (`invalid_command`, or `room_full` for an `admit` over
    /// `max_participants`). Refusals are non-fatal `ERROR`s with the `request_id`; nothing
    /// changes. A success is `COMMAND_OK` to the sender first, then its events. A command
    /// whose result already holds (`lock` of a locked room, `mute` of a muted member…) succeeds
    /// without events.
    public mutating func command(_ command: CommandMessage, from connection: ConnectionID, now: RelayMillis) -> [RoomAction] {
        guard !isClosed else { return [.close(connection, PolicyErrors.roomGone)] }
        let requestID = command.requestID
        if waiters[connection] != nil {
            guard command.action == .leave else {
                return [.close(connection, PolicyErrors.waitingCommand)] + depart(connection, reason: .disconnected)
            }
            return [.send(connection, .commandOK(requestID: requestID)), .release(connection)]
                + depart(connection, reason: .left)
        }
        guard let sender = members[connection] else { return [.close(connection, PolicyErrors.notInRoom)] }

        var permitted = CommandPermissions.allows(sender.role, command.action.op)
        if case let .lowerHand(target) = command.action, target == sender.index { permitted = true }
        do throws(CommandRefusal) {
            guard permitted else { throw CommandRefusal.notAllowed }
            return try perform(command.action, by: connection, sender: sender, requestID: requestID, now: now)
        } catch {
            let answer = ErrorMessage(code: error.code, requestID: requestID, isFatal: false, message: error.text)
            return [.send(connection, .error(answer))]
        }
    }

    // MARK: Targets

    /// The admitted member with `index`.
    private func admittedTarget(_ index: ParticipantIndex) throws(CommandRefusal) -> ConnectionID {
        if let connection = memberByIndex[index] { return connection }
        if waiterByIndex[index] != nil { throw .invalid("the target is waiting, not admitted") }
        throw .unknownParticipant
    }

    /// The waiting joiner with `index`.
    private func waitingTarget(_ index: ParticipantIndex) throws(CommandRefusal) -> ConnectionID {
        if let connection = waiterByIndex[index] { return connection }
        if memberByIndex[index] != nil { throw .invalid("the target is not in the waiting room") }
        throw .unknownParticipant
    }

    // MARK: Ops

    /// Carries out a permitted command. Throws before changing anything.
    private mutating func perform(
        _ action: CommandAction, by connection: ConnectionID, sender: RoomMember, requestID: UInt16, now: RelayMillis
    ) throws(CommandRefusal) -> [RoomAction] {
        let me = sender.index
        var actions: [RoomAction] = [.send(connection, .commandOK(requestID: requestID))]
        switch action {
        case let .admit(index):
            let target = try waitingTarget(index)
            guard admittedCount < Int(settings.maxParticipants) else { throw .roomFull }
            let waiter = deleteWaiter(target)!
            actions += admit(connection: target, identity: waiter.identity, index: waiter.index, role: .participant, actor: me, now: now)
            actions += sendToHosts(.waitingDecided(waiter.index, admitted: true), actor: me)

        case let .deny(index):
            let target = try waitingTarget(index)
            let waiter = deleteWaiter(target)!
            actions.append(.close(target, PolicyErrors.denied))
            actions += sendToHosts(.waitingDecided(waiter.index, admitted: false), actor: me)

        case .lock, .unlock:
            let lock = action == .lock
            if settings.locked != lock {
                settings.locked = lock
                actions += broadcast(lock ? .locked : .unlocked, actor: me)
            }

        case let .mute(index):
            actions += mute(try admittedTarget(index), actor: me)

        case .muteAll:
            for member in admittedConnections where member != connection {
                actions += mute(member, actor: me)
            }

        case .muteSelf:
            actions += mute(connection, actor: me)

        case .unmuteSelf:
            if sender.state.contains(.muted) {
                guard sender.role != .participant || settings.selfUnmuteAllowed || sender.unmuteRequested else {
                    throw .selfUnmuteNotAllowed
                }
                members[connection]!.state.remove(.muted)
                members[connection]!.unmuteRequested = false
                actions += broadcast(.unmuted(me), actor: me)
            }

        case let .askUnmute(index):
            let target = try admittedTarget(index)
            if members[target]!.state.contains(.muted) {
                members[target]!.unmuteRequested = true
                actions.append(.send(target, .event(EventMessage(actor: me, event: .unmuteRequested(index)))))
            }

        case .raiseHand:
            if !sender.state.contains(.handRaised) {
                members[connection]!.state.insert(.handRaised)
                actions += broadcast(.handRaised(me), actor: me)
            }

        case let .lowerHand(index):
            let target = try admittedTarget(index)
            if members[target]!.state.contains(.handRaised) {
                members[target]!.state.remove(.handRaised)
                actions += broadcast(.handLowered(index), actor: me)
            }

        case let .remove(index):
            let target = try admittedTarget(index)
            guard target != connection else { throw .invalid("you cannot remove yourself; use leave") }
            guard target != host else { throw .invalid("the host cannot be removed") }
            actions += remove(target, actor: me)

        case let .promoteCohost(index):
            let target = try admittedTarget(index)
            let role = members[target]!.role
            guard role != .host else { throw .invalid("the host cannot be promoted") }
            if role == .participant { actions += changeRole(of: target, to: .cohost, actor: me) }

        case let .demoteCohost(index):
            let target = try admittedTarget(index)
            let role = members[target]!.role
            guard role != .host else { throw .invalid("the host cannot be demoted; transfer host instead") }
            if role == .cohost { actions += changeRole(of: target, to: .participant, actor: me) }

        case let .transferHost(index):
            let target = try admittedTarget(index)
            guard target != connection else { throw .invalid("you are already the host") }
            // Step down first, so that no one ever sees two hosts.
            actions += changeRole(of: connection, to: .cohost, actor: me)
            actions += changeRole(of: target, to: .host, actor: me)

        case let .grantShare(index), let .revokeShare(index):
            let target = try admittedTarget(index)
            let grant = action.op == .grantShare
            if members[target]!.state.contains(.presenter) != grant {
                if grant { members[target]!.state.insert(.presenter) } else { members[target]!.state.remove(.presenter) }
                members[target]!.sharingNoticeSent = false
                actions += broadcast(.presenterChanged(index, granted: grant), actor: me)
            }

        case let .setRecording(on):
            if on != isRecording {
                isRecording = on
                let deadline = now.addingSaturating(recordingTimeoutMillis)
                for member in admittedConnections {
                    members[member]!.state.remove(.recordingAcknowledged)
                    members[member]!.recordingAcknowledgementPending = true
                    members[member]!.recordingNoticeTime = now
                    members[member]!.recordingDeadline = deadline
                }
                actions += broadcast(.recording(on: on), actor: me)
            }

        case .acknowledgeRecording:
            if !sender.state.contains(.recordingAcknowledged) {
                guard sender.recordingAcknowledgementPending else {
                    throw .invalid("there is no recording change to acknowledge")
                }
                members[connection]!.state.insert(.recordingAcknowledged)
                members[connection]!.recordingAcknowledgementPending = false
                members[connection]!.recordingDeadline = nil
                actions += broadcast(.recordingAcknowledged(me), actor: me)
            }

        case let .setSetting(change):
            var updated = settings
            change.apply(to: &updated)
            if updated != settings {
                settings = updated
                if change.id == .hostsOnlySharing {
                    // Sharing rules changed: a new notice episode for everyone.
                    for member in admittedConnections { members[member]!.sharingNoticeSent = false }
                }
                actions += broadcast(.settingChanged(change), actor: me)
            }

        case .endMeeting:
            actions += closeRoom(with: PolicyErrors.ended)

        case .leave:
            actions.append(.release(connection))
            actions += depart(connection, reason: .left)
        }
        return actions
    }

    /// Mutes an admitted member; `muted` to everyone unless it already was.
    private mutating func mute(_ connection: ConnectionID, actor: ParticipantIndex) -> [RoomAction] {
        guard let member = members[connection], !member.state.contains(.muted) else { return [] }
        members[connection]!.state.insert(.muted)
        return broadcast(.muted(member.index), actor: actor)
    }

    /// Removes and bans a member that is not the host: `removed` to it (fatal), `removed`
    /// event to the others. Its identity and connection are banned; joiners waiting with the
    /// same identity are closed with `banned` (`waiting_left` to the hosts), so a ban cannot
    /// be side-stepped from the waiting room.
    private mutating func remove(_ connection: ConnectionID, actor: ParticipantIndex) -> [RoomAction] {
        guard let member = deleteMember(connection) else { return [] }
        bannedIdentities.insert(member.identity)
        bannedConnections.insert(connection)
        var actions: [RoomAction] = [.close(connection, PolicyErrors.removed)]
        actions += broadcast(.removed(member.index), actor: actor)
        for waiting in waitingOrder where waiters[waiting]?.identity == member.identity {
            let waiter = deleteWaiter(waiting)!
            actions.append(.close(waiting, PolicyErrors.banned))
            actions += sendToHosts(.waitingLeft(waiter.index), actor: actor)
        }
        return actions
    }
}

extension RelayMillis {
    /// `self + other`, or `UInt64.max` on overflow.
    func addingSaturating(_ other: RelayMillis) -> RelayMillis {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }
}
