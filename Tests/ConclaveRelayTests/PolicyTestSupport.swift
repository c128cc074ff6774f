import ConclaveProtocol
import ConclaveRelay
import Testing

// Shared fixtures for the room-policy tests: no sockets, no clocks.

/// Shorthands for the policy tests, scoped to the types that adopt this protocol so that
/// the one-letter names cannot clash with other tests in this target.
protocol PolicyShorthands {}

extension PolicyShorthands {
    /// A connection id.
    func C(_ raw: UInt64) -> ConnectionID { ConnectionID(raw) }
    /// A participant index.
    func I(_ raw: UInt16) -> ParticipantIndex { ParticipantIndex(raw) }
    static func C(_ raw: UInt64) -> ConnectionID { ConnectionID(raw) }
    static func I(_ raw: UInt16) -> ParticipantIndex { ParticipantIndex(raw) }
}

enum PolicyFixtures {
    /// A distinct identity per non-zero seed byte.
    static func identity(_ seed: UInt8) -> Identity {
        Identity(bytes: (0..<64).map { UInt8(truncatingIfNeeded: Int(seed) &* 31 &+ $0) })!
    }

    static let owner = identity(1)
    static let roomID = RoomID(bytes: [UInt8](repeating: 0x5A, count: 16))!
    static let knock: [UInt8] = [0xC0, 0xFF, 0xEE]

    static func settings(
        waitingRoom: Bool = true, muteOnEntry: Bool = true, selfUnmuteAllowed: Bool = true,
        hostsOnlySharing: Bool = true, locked: Bool = false, maxParticipants: UInt16 = 100,
        maxWaiting: UInt16 = 50, recordingTimeout: UInt16 = 30
    ) -> RoomSettings {
        RoomSettings(
            waitingRoom: waitingRoom, muteOnEntry: muteOnEntry, selfUnmuteAllowed: selfUnmuteAllowed,
            hostsOnlySharing: hostsOnlySharing, locked: locked, maxParticipants: maxParticipants,
            maxWaiting: maxWaiting, recordingAcknowledgementTimeoutSeconds: recordingTimeout
        )
    }

    static func header(_ kind: FrameKind, from sender: ParticipantIndex, to recipient: ParticipantIndex = .everyone) -> FrameHeader {
        try! FrameHeader(kind: kind, sender: sender, recipient: recipient)
    }
}

/// A room under test: the owner is connection 1 with index 1; time starts at 1 000 ms.
struct PolicyRoom: PolicyShorthands {
    var policy: RoomPolicy
    var now: RelayMillis = 1_000
    var nextRequestID: UInt16 = 100

    init(settings: RoomSettings = PolicyFixtures.settings()) {
        policy = RoomPolicy(
            roomID: PolicyFixtures.roomID, owner: PolicyFixtures.owner, ownerConnection: Self.C(1), settings: settings, now: 1_000
        )
    }

    mutating func join(_ connection: UInt64, _ identity: Identity, knock: [UInt8] = PolicyFixtures.knock) -> [RoomAction] {
        policy.join(connection: C(connection), identity: identity, knock: knock, now: now)
    }

    /// Sends a command with a fresh request id (readable as `lastRequestID`).
    mutating func command(_ connection: UInt64, _ action: CommandAction) -> [RoomAction] {
        nextRequestID += 1
        return policy.command(CommandMessage(requestID: nextRequestID, action: action), from: C(connection), now: now)
    }

    var lastRequestID: UInt16 { nextRequestID }

    /// Joins through the waiting room (if on) and is admitted by the host; returns the index.
    @discardableResult
    mutating func admit(_ connection: UInt64, _ identity: Identity, by admitter: UInt64 = 1) -> ParticipantIndex {
        let joined = join(connection, identity)
        if policy.settings.waitingRoom {
            guard case let .send(_, .waiting(waiting))? = joined.first else {
                Issue.record("expected WAITING, got \(joined)")
                return .none
            }
            let actions = command(admitter, .admit(waiting.index))
            #expect(actions.first == .send(C(admitter), .commandOK(requestID: lastRequestID)))
        }
        #expect(policy.isMember(C(connection)))
        return policy.index(of: C(connection)) ?? .none
    }

    /// Admits and promotes to co-host.
    @discardableResult
    mutating func admitCohost(_ connection: UInt64, _ identity: Identity) -> ParticipantIndex {
        let index = admit(connection, identity)
        _ = command(1, .promoteCohost(index))
        #expect(policy.role(of: C(connection)) == .cohost)
        return index
    }
}

extension Array where Element == RoomAction {
    /// Messages sent to `connection`, in order.
    func messages(to connection: ConnectionID) -> [RelayMessage] {
        compactMap { action in
            if case let .send(target, message) = action, target == connection { return message }
            return nil
        }
    }

    /// Event messages sent to `connection`.
    func eventMessages(to connection: ConnectionID) -> [EventMessage] {
        messages(to: connection).compactMap { if case let .event(event) = $0 { return event } else { return nil } }
    }

    /// Events sent to `connection`.
    func events(to connection: ConnectionID) -> [RoomEvent] { eventMessages(to: connection).map(\.event) }

    /// Non-fatal errors sent to `connection`.
    func errors(to connection: ConnectionID) -> [ErrorMessage] {
        messages(to: connection).compactMap { if case let .error(error) = $0 { return error } else { return nil } }
    }

    /// The fatal error `connection` is closed with, if any.
    func closeError(of connection: ConnectionID) -> ErrorMessage? {
        for case let .close(target, error) in self where target == connection { return error }
        return nil
    }

    /// Connections closed, in order.
    var closed: [ConnectionID] {
        compactMap { if case let .close(target, _) = $0 { return target } else { return nil } }
    }

    /// Every connection that is sent something.
    var recipients: Set<ConnectionID> {
        Set(compactMap { if case let .send(target, _) = $0 { return target } else { return nil } })
    }

    var closesRoom: Bool { contains(.roomClosed) }
}

extension ErrorMessage {
    /// A non-fatal command answer with this code and request id?
    func isCommandError(_ code: ErrorCode, requestID: UInt16) -> Bool {
        self.code == code && self.requestID == requestID && !isFatal
    }
}
