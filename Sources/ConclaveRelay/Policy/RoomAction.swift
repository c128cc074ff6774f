import ConclaveProtocol

/// What the network layer must do after ``RoomPolicy`` handled an input.
///
/// Actions are returned in the order they must be carried out. Every connection named by
/// ``close(_:_:)`` or ``release(_:)`` has already been forgotten by the policy when the
/// actions are returned: a later ``RoomPolicy/disconnected(_:reason:now:)`` for it is
/// ignored, and nothing else is ever addressed to it.
public enum RoomAction: Sendable, Equatable {
    /// Send this message to one connection.
    case send(ConnectionID, RelayMessage)
    /// Send this fatal `ERROR`, then close that connection.
    case close(ConnectionID, ErrorMessage)
    /// The connection left the room with its own `leave` command and has been sent its
    /// `COMMAND_OK`: close it normally (no `ERROR`), or keep it open for nothing.
    case release(ConnectionID)
    /// The room is over; the registry forgets it (nothing is kept). Always the last action.
    case roomClosed
}

/// Where a `FRAME` goes (``RoomPolicy/routeFrame(_:from:)``). The caller forwards the
/// original message byte for byte; the payload is never looked at.
public enum FrameRoute: Sendable, Equatable {
    /// To every admitted connection except the sender: iterate
    /// ``RoomPolicy/admittedConnections`` and skip the sender.
    case broadcast
    /// To this one admitted connection.
    case unicast(ConnectionID)
    /// Silently dropped; the caller counts it under the reason.
    case drop(FrameDropReason)
    /// Dropped; send this non-fatal `not_allowed` notice to the sender. Returned once per
    /// episode: later frames of the same episode come back as ``drop(_:)``.
    case dropAndNotify(FrameDropReason, ErrorMessage)
    /// Protocol violation: send this fatal error and close the sender, then report it with
    /// ``RoomPolicy/disconnected(_:reason:now:)`` (routing does not change the room).
    case reject(ErrorMessage)
}

/// Why a frame was dropped, for the caller's counters.
public enum FrameDropReason: String, Sendable, CaseIterable {
    /// Audio from a muted participant.
    case muted
    /// Screen frames from someone who may not share while sharing is limited to hosts.
    case notPresenter
    /// A key package from someone other than the current host.
    case notLeader
    /// Addressed to an index that is not an admitted member.
    case unknownRecipient
}
