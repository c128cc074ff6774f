import ConclaveProtocol
import ConclaveRelay
import Testing

/// Every command op against every role: allowed ops succeed with `COMMAND_OK`, the others
/// are refused with a non-fatal `not_allowed` carrying the request id and change nothing.
@Suite("Policy: role permissions per command op")
struct PolicyPermissionTests: PolicyShorthands {
    /// The expected table, written out independently of ``CommandPermissions``
    /// (table 5.5 and the issue). `lower_hand` here targets someone else's hand.
    static func expectedAllowed(_ op: CommandOp, _ role: Role) -> Bool {
        switch op {
        case .admit, .deny, .lock, .unlock, .mute, .muteAll, .askUnmute, .lowerHand, .remove, .grantShare, .revokeShare:
            role == .host || role == .cohost
        case .promoteCohost, .demoteCohost, .transferHost, .setRecording, .setSetting, .endMeeting:
            role == .host
        case .unmuteSelf, .raiseHand, .acknowledgeRecording, .leave, .muteSelf:
            true
        }
    }

    /// Host 1 (#1), co-host 2 (#2), participant 3 (#3), participant 4 (#4, muted, hand
    /// raised), co-host 6 (#6), waiting 5 (#5); recording on, so everyone owes an ack.
    static func makeRoom() -> PolicyRoom {
        var room = PolicyRoom()
        room.admitCohost(2, PolicyFixtures.identity(2))
        room.admit(3, PolicyFixtures.identity(3))
        room.admit(4, PolicyFixtures.identity(4))
        _ = room.command(4, .raiseHand)
        _ = room.join(5, PolicyFixtures.identity(5))
        let cohost = room.policy.join(connection: C(6), identity: PolicyFixtures.identity(6), knock: [1], now: room.now)
        #expect(cohost.count >= 1)
        _ = room.command(1, .admit(I(6)))
        _ = room.command(1, .promoteCohost(I(6)))
        _ = room.command(1, .setRecording(on: true))
        return room
    }

    /// A representative command for `op`; targets are someone other than the sender.
    static func action(for op: CommandOp) -> CommandAction {
        switch op {
        case .admit: .admit(I(5))
        case .deny: .deny(I(5))
        case .lock: .lock
        case .unlock: .unlock
        case .mute: .mute(I(4))
        case .muteAll: .muteAll
        case .unmuteSelf: .unmuteSelf
        case .askUnmute: .askUnmute(I(4))
        case .raiseHand: .raiseHand
        case .lowerHand: .lowerHand(I(4))
        case .remove: .remove(I(4))
        case .promoteCohost: .promoteCohost(I(4))
        case .demoteCohost: .demoteCohost(I(6))
        case .transferHost: .transferHost(I(4))
        case .grantShare: .grantShare(I(4))
        case .revokeShare: .revokeShare(I(4))
        case .setRecording: .setRecording(on: false)
        case .acknowledgeRecording: .acknowledgeRecording
        case .setSetting: .setSetting(.muteOnEntry(false))
        case .endMeeting: .endMeeting
        case .leave: .leave
        case .muteSelf: .muteSelf
        }
    }

    static let senders: [Role: UInt64] = [.host: 1, .cohost: 2, .participant: 3]

    @Test(arguments: CommandOp.allCases, Role.allCases)
    func permission(op: CommandOp, role: Role) {
        var room = Self.makeRoom()
        let sender = Self.senders[role]!
        #expect(room.policy.role(of: C(sender)) == role)
        let rosterBefore = room.policy.roster
        let settingsBefore = room.policy.settings
        let actions = room.command(sender, Self.action(for: op))
        if Self.expectedAllowed(op, role) {
            #expect(actions.first == .send(C(sender), .commandOK(requestID: room.lastRequestID)), "\(op) by \(role): \(actions)")
            #expect(actions.errors(to: C(sender)).isEmpty)
        } else {
            let refusal = ErrorMessage(code: .notAllowed, requestID: room.lastRequestID, isFatal: false, message: "your role may not do this")
            #expect(actions == [.send(C(sender), .error(refusal))], "\(op) by \(role)")
            #expect(room.policy.roster == rosterBefore)
            #expect(room.policy.settings == settingsBefore)
            #expect(room.policy.waitingCount == 1)
        }
        #expect(CommandPermissions.allows(role, op) == Self.expectedAllowed(op, role))
    }

    @Test func aParticipantMayLowerItsOwnHandOnly() {
        var room = Self.makeRoom()
        _ = room.command(3, .raiseHand)
        let own = room.command(3, .lowerHand(I(3)))
        #expect(own.first == .send(C(3), .commandOK(requestID: room.lastRequestID)))
        #expect(own.events(to: C(1)) == [.handLowered(I(3))])
        // Someone else's hand, even an index that does not exist: not_allowed (role first).
        #expect(room.command(3, .lowerHand(I(4))).errors(to: C(3)).first?.code == .notAllowed)
        #expect(room.command(3, .lowerHand(I(999))).errors(to: C(3)).first?.code == .notAllowed)
        // A co-host may lower another's hand.
        let byCohost = room.command(2, .lowerHand(I(4)))
        #expect(byCohost.events(to: C(4)) == [.handLowered(I(4))])
    }
}
