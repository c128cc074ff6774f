import ConclaveCrypto

/// One participant's end-to-end state and the glue between its parts (sections 3.2–3.7):
/// the key schedule (leading or following), the receive ring and the send state.
///
/// A value with no I/O, no clock and no tasks: the caller passes `now` and carries out
/// the returned ``Output``s in order. It turns the leader's ``LeaderAction``s into sealed
/// frames, and received frames and key payloads into opened frames and key-schedule
/// events, applying every epoch install where the protocol puts it. The end-to-end test
/// harness and the client's participant both drive it, so the rules live in one place.
public struct E2ESession: Sendable {
    public let roomID: RoomID
    public let me: UInt16
    public var ring: ReceiverKeyRing
    public var sender: SenderKeyState
    /// Set while following a leader.
    public var member: MemberKeySchedule?
    /// Set while leading.
    public var leader: LeaderKeySchedule?
    /// Numbers the leader's multi-part control messages (3.6 `CONTROL_PART`).
    private var controlMessageNumber: UInt32 = 0

    /// A frame to send, in order.
    public struct OutgoingFrame: Sendable, Equatable {
        public let kind: FrameKind
        public let recipient: ParticipantIndex
        public let payload: [UInt8]

        public init(kind: FrameKind, recipient: ParticipantIndex, payload: [UInt8]) {
            self.kind = kind; self.recipient = recipient; self.payload = payload
        }
    }

    public enum Output: Sendable {
        /// Send this `FRAME` (kinds 4 and 5 keep their order: 3.2).
        case send(OutgoingFrame)
        /// A frame that opened and is not the key schedule's: media, chat, and, while
        /// leading, control messages from members (moderation requests).
        case opened(ReceivedFrame)
        /// What the member key schedule reported; installs and removals are already applied.
        case member(MemberAction)
        /// An input the key schedule refused; nothing changed (report `key_rejected`).
        case rejected(KeyRejectionReason)
        /// An epoch was installed here (the ring and the send state hold it now).
        case installed(EpochInstall)
    }

    public init(roomID: RoomID, me: UInt16, identity: PrivateIdentity) {
        self.roomID = roomID
        self.me = me
        self.ring = ReceiverKeyRing(roomID: roomID, me: me, identity: identity)
        self.sender = SenderKeyState(roomID: roomID, me: me, identity: identity)
    }

    /// The security code of the verified roster under the current leader key (4.3).
    public var securityCode: SecurityCode? { leader?.securityCode ?? member?.securityCode }

    // MARK: Leading

    /// Carries out the leader's actions in order: control messages sealed under the newest
    /// epoch (cut into `CONTROL_PART`s when longer than one frame), key packages and wraps
    /// as `keys` frames, installs applied where they stand (the ones after an install are
    /// sealed under the new epoch, which their recipients hold: ``LeaderAction``).
    public mutating func perform(_ actions: [LeaderAction], now: UInt64) throws -> [Output] {
        var out: [Output] = []
        for action in actions {
            switch action {
            case let .broadcastControl(plaintext):
                out += try sealControl(plaintext, to: .everyone, now: now)
            case let .sendControl(recipient, plaintext):
                out += try sealControl(plaintext, to: ParticipantIndex(recipient), now: now)
            case let .sendKeyPackage(recipient, payload):
                out.append(.send(OutgoingFrame(kind: .keys, recipient: ParticipantIndex(recipient), payload: payload)))
            case let .install(install):
                out += apply(install, now: now)
            }
        }
        return out
    }

    private mutating func sealControl(_ plaintext: [UInt8], to recipient: ParticipantIndex, now: UInt64) throws -> [Output] {
        try sealControlFrames(plaintext, to: recipient, now: now).map { .send($0) }
    }

    /// Seals a control message for `recipient` under the newest epoch: in `CONTROL_PART`s
    /// when it is longer than one control frame carries (3.6).
    public mutating func sealControlFrames(_ plaintext: [UInt8], to recipient: ParticipantIndex, now: UInt64) throws -> [OutgoingFrame] {
        controlMessageNumber &+= 1
        return try ControlPart.split(plaintext, messageNumber: controlMessageNumber).map { piece in
            let payload = try sender.seal(kind: .control, recipient: recipient, plaintext: piece, now: now, epoch: .newest)
            return OutgoingFrame(kind: .control, recipient: recipient, payload: payload)
        }
    }

    // MARK: Receiving

    /// A `FRAME` of kind 1–4: opens it; a control frame goes to the key schedule (while
    /// leading: out as `.opened`). Returns the ring's verdict and what followed. A media or
    /// chat frame that opened is in the result only, with no outputs: the per-frame path
    /// allocates nothing more.
    public mutating func receive(header: FrameHeader, payload: [UInt8], now: UInt64) -> (result: ReceiveResult, outputs: [Output]) {
        let result = ring.open(header: header, payload: payload, now: now)
        guard case let .opened(frame) = result, frame.header.kind == .control else { return (result, []) }
        return (result, handleOpened(frame, now: now))
    }

    /// A key package or key wrap (the payload of a `keys` frame from `sender`).
    public mutating func receiveKeys(_ payload: [UInt8], from sender: UInt16, now: UInt64) -> [Output] {
        guard var m = member else { return [] }
        do {
            let actions = try m.receiveKeyPackage(payload, from: sender)
            member = m
            return apply(actions, now: now)
        } catch {
            guard case let .keyRejected(reason) = error else { return [] }
            return [.rejected(reason)]
        }
    }

    private mutating func handleOpened(_ frame: ReceivedFrame, now: UInt64) -> [Output] {
        guard frame.header.kind == .control, var m = member else { return [.opened(frame)] }
        // Recording notices and consents (3.8) come from any member, not the leader: the
        // participant checks them against the verified roster.
        if let type = frame.plaintext.first, type == RecordingNotice.type || type == RecordingConsent.type { return [.opened(frame)] }
        do {
            let actions = try m.receiveControl(frame.plaintext, from: frame.sender)
            member = m
            return apply(actions, now: now)
        } catch {
            guard case let .keyRejected(reason) = error else { return [] }
            return [.rejected(reason)]
        }
    }

    /// Applies the key schedule's installs and removals and reports every action: for what
    /// the caller got from the member schedule directly (``MemberKeySchedule/leaderLost()``).
    public mutating func apply(_ actions: [MemberAction], now: UInt64) -> [Output] {
        var out: [Output] = []
        for action in actions {
            out.append(.member(action))
            switch action {
            case let .install(install): out += apply(install, now: now)
            case let .membersRemoved(gone): ring.revoke(gone)
            default: break
            }
        }
        return out
    }

    /// Installs an epoch; frames it releases from the buffer are handled in turn.
    private mutating func apply(_ install: EpochInstall, now: UInt64) -> [Output] {
        // Epochs only move forward (3.3): the schedules guarantee it, and this keeps a
        // mistake from reaching the ring's and the send state's preconditions.
        if install.mode != .confirm, let current = ring.currentEpoch, install.epoch <= current {
            return [.rejected(.staleEpoch(current: current, received: install.epoch))]
        }
        let released = install.apply(receiver: &ring, sender: &sender, now: now)
        var out: [Output] = [.installed(install)]
        for frame in released { out += handleOpened(frame, now: now) }
        return out
    }
}
