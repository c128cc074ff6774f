import ConclaveProtocol

/// An admitted participant as the room policy keeps it.
struct RoomMember: Sendable {
    let index: ParticipantIndex
    let identity: Identity
    var role: Role
    /// The roster state bits (muted, presenter, hand raised, recording acknowledged).
    var state: ParticipantState
    /// Increases with every admission: the smallest value is the longest-admitted member.
    let admissionOrder: UInt64

    /// A host or co-host asked this member to unmute; cleared when it unmutes itself.
    var unmuteRequested = false
    /// The sharing-not-allowed notice of the current episode was sent. Reset when the
    /// member's role or presenter state, or the hosts-only-sharing setting, changes.
    var sharingNoticeSent = false
    /// The key-package-not-allowed notice of the current episode was sent. Reset when the
    /// member's role changes.
    var keysNoticeSent = false

    /// The member owes an acknowledgement of the current recording state.
    var recordingAcknowledgementPending = false
    /// When the member was told of the recording state it has to acknowledge.
    var recordingNoticeTime: RelayMillis = 0
    /// When to report the member to the host; `nil` once acknowledged or reported.
    var recordingDeadline: RelayMillis?

    init(index: ParticipantIndex, identity: Identity, role: Role, state: ParticipantState, admissionOrder: UInt64) {
        self.index = index
        self.identity = identity
        self.role = role
        self.state = state
        self.admissionOrder = admissionOrder
    }

    var isHostOrCohost: Bool { role != .participant }

    var rosterEntry: RosterEntry { RosterEntry(index: index, identity: identity, role: role, state: state) }

    /// Sets the role and starts new notice episodes.
    mutating func changeRole(to newRole: Role) {
        role = newRole
        sharingNoticeSent = false
        keysNoticeSent = false
    }
}

/// A joiner in the waiting room.
struct WaitingJoiner: Sendable {
    let index: ParticipantIndex
    let identity: Identity
    /// The sealed knock from its `JOIN`, kept to show it to hosts promoted later.
    let knock: [UInt8]
}
