import ConclaveProtocol

extension RoomPolicy {
    // MARK: Frames

    /// Decides where a `FRAME` from `connection` goes. The header was decoded and checked by
    /// ``FrameHeader/decode(message:)``; the payload is never looked at.
    ///
    /// Hot path: dictionary look-ups and, at most, an in-place flag update; it allocates
    /// nothing (the notices are prebuilt from static text).
    ///
    /// - A connection that is not admitted (waiting or unknown): ``FrameRoute/reject(_:)``
    ///   with `unexpected_message`; a `sender` other than the connection's index:
    ///   ``FrameRoute/reject(_:)`` with `malformed`.
    /// - audio: broadcast, or dropped (``FrameDropReason/muted``) while the sender is muted.
    /// - screen: broadcast when sharing is open to all, or the sender is host, co-host or
    ///   presenter; otherwise dropped (``FrameDropReason/notPresenter``) with one `not_allowed`
    ///   notice per episode. An episode ends when the sender's role or presenter state, or
    ///   the hosts-only-sharing setting, changes.
    /// - chat, control: broadcast, or unicast to an admitted recipient; any other recipient
    ///   is dropped (``FrameDropReason/unknownRecipient``).
    /// - keys: only from the current host (others: ``FrameDropReason/notLeader`` with one
    ///   notice per episode, reset when the sender's role changes), unicast to an admitted
    ///   recipient, else ``FrameDropReason/unknownRecipient``.
    public mutating func routeFrame(_ header: FrameHeader, from connection: ConnectionID) -> FrameRoute {
        guard let member = members[connection] else { return .reject(PolicyErrors.frameNotAdmitted) }
        guard header.sender == member.index else { return .reject(PolicyErrors.wrongSender) }
        switch header.kind {
        case .audio:
            return member.state.contains(.muted) ? .drop(.muted) : .broadcast
        case .screen:
            if !settings.hostsOnlySharing || member.role != .participant || member.state.contains(.presenter) {
                return .broadcast
            }
            if member.sharingNoticeSent { return .drop(.notPresenter) }
            members[connection]?.sharingNoticeSent = true
            return .dropAndNotify(.notPresenter, PolicyErrors.sharingNotAllowed)
        case .chat, .control:
            return header.isBroadcast ? .broadcast : addressed(to: header.recipient)
        case .keys:
            guard member.role == .host else {
                if member.keysNoticeSent { return .drop(.notLeader) }
                members[connection]?.keysNoticeSent = true
                return .dropAndNotify(.notLeader, PolicyErrors.keysNotAllowed)
            }
            return addressed(to: header.recipient)
        }
    }

    /// Unicast to an admitted member, else dropped. (A header never addresses its sender.)
    private func addressed(to recipient: ParticipantIndex) -> FrameRoute {
        guard let connection = memberByIndex[recipient] else { return .drop(.unknownRecipient) }
        return .unicast(connection)
    }

    // MARK: Time

    /// Reports, to the host only, every member whose recording-acknowledgement deadline has
    /// passed: `recording_unacknowledged(member, seconds since it was told)`, once per member
    /// per recording change (or per admission while recording). See ``nextRecordingDeadline``.
    public mutating func tick(now: RelayMillis) -> [RoomAction] {
        guard !isClosed, let host else { return [] }
        var actions: [RoomAction] = []
        for connection in admittedConnections {
            guard let member = members[connection], let deadline = member.recordingDeadline, deadline <= now else { continue }
            members[connection]!.recordingDeadline = nil
            let seconds = UInt32(clamping: (now - min(now, member.recordingNoticeTime)) / 1_000)
            let event = EventMessage(actor: .none, event: .recordingUnacknowledged(member.index, seconds: seconds))
            actions.append(.send(host, .event(event)))
        }
        return actions
    }
}
