import ConclaveProtocol
import ConclaveRelay
import Testing

@Suite("Policy: frame routing")
struct PolicyFrameTests: PolicyShorthands {
    typealias F = PolicyFixtures

    /// Host 1 (#1), co-host 2 (#2), participants 3 (#3) and 4 (#4), waiting 5 (#5).
    func makeRoom(_ settings: RoomSettings = PolicyFixtures.settings()) -> PolicyRoom {
        var room = PolicyRoom(settings: settings)
        room.admitCohost(2, F.identity(2))
        room.admit(3, F.identity(3))
        room.admit(4, F.identity(4))
        _ = room.join(5, F.identity(5))
        return room
    }

    @Test func theSenderFieldMustBeTheConnectionsIndex() {
        var room = makeRoom()
        for kind in FrameKind.allCases {
            let recipient = kind.addressing == .broadcastOnly ? ParticipantIndex.everyone : I(1)
            let route = room.policy.routeFrame(F.header(kind, from: I(4), to: recipient), from: C(3))
            #expect(route == .reject(ErrorMessage(code: .malformed, isFatal: true, message: "the frame's sender is not this connection's index")))
        }
    }

    @Test func unknownAndWaitingConnectionsAreRejected() {
        var room = makeRoom()
        #expect(
            room.policy.routeFrame(F.header(.chat, from: I(5)), from: C(5))
                == .reject(
                    ErrorMessage(code: .unexpectedMessage, isFatal: true, message: "frames are only accepted from admitted participants")))
        guard case let .reject(error) = room.policy.routeFrame(F.header(.chat, from: I(9)), from: C(99)) else {
            Issue.record("unknown connection must be rejected")
            return
        }
        #expect(error.code == .unexpectedMessage)
    }

    @Test func aNonPresentersScreenFramesGoNowhereWithOneNotice() {
        var room = makeRoom()
        let screen = F.header(.screen, from: I(3))
        let notice = ErrorMessage(code: .notAllowed, isFatal: false, message: "only the host, co-hosts and presenters may share the screen")
        #expect(room.policy.routeFrame(screen, from: C(3)) == .dropAndNotify(.notPresenter, notice))
        for _ in 0..<50 { #expect(room.policy.routeFrame(screen, from: C(3)) == .drop(.notPresenter)) }
        // Another participant has its own episode.
        #expect(room.policy.routeFrame(F.header(.screen, from: I(4)), from: C(4)) == .dropAndNotify(.notPresenter, notice))
        // Granted presenter: forwarded. Revoked: a new episode, one notice again.
        _ = room.command(2, .grantShare(I(3)))
        #expect(room.policy.routeFrame(screen, from: C(3)) == .broadcast)
        _ = room.command(2, .revokeShare(I(3)))
        #expect(room.policy.routeFrame(screen, from: C(3)) == .dropAndNotify(.notPresenter, notice))
        #expect(room.policy.routeFrame(screen, from: C(3)) == .drop(.notPresenter))
        // A role change also starts a new episode.
        _ = room.command(1, .promoteCohost(I(3)))
        #expect(room.policy.routeFrame(screen, from: C(3)) == .broadcast)
        _ = room.command(1, .demoteCohost(I(3)))
        #expect(room.policy.routeFrame(screen, from: C(3)) == .dropAndNotify(.notPresenter, notice))
    }

    @Test func hostsAndCohostsMayAlwaysShareAndAnyoneMayWhenSharingIsOpen() {
        var room = makeRoom()
        #expect(room.policy.routeFrame(F.header(.screen, from: I(1)), from: C(1)) == .broadcast)
        #expect(room.policy.routeFrame(F.header(.screen, from: I(2)), from: C(2)) == .broadcast)
        _ = room.command(1, .setSetting(.hostsOnlySharing(false)))
        #expect(room.policy.routeFrame(F.header(.screen, from: I(3)), from: C(3)) == .broadcast)
        // Limited again: a new episode, with its notice.
        _ = room.command(1, .setSetting(.hostsOnlySharing(true)))
        guard case .dropAndNotify(.notPresenter, _) = room.policy.routeFrame(F.header(.screen, from: I(3)), from: C(3)) else {
            Issue.record("expected a notice after sharing was limited again")
            return
        }
    }

    @Test func audioIsBroadcastUnlessMuted() {
        var room = makeRoom(PolicyFixtures.settings(muteOnEntry: false))
        #expect(room.policy.routeFrame(F.header(.audio, from: I(3)), from: C(3)) == .broadcast)
        _ = room.command(3, .muteSelf)
        #expect(room.policy.routeFrame(F.header(.audio, from: I(3)), from: C(3)) == .drop(.muted))
    }

    @Test func chatAndControlAreBroadcastOrUnicastToAdmittedMembers() {
        var room = makeRoom()
        for kind: FrameKind in [.chat, .control] {
            #expect(room.policy.routeFrame(F.header(kind, from: I(3)), from: C(3)) == .broadcast)
            #expect(room.policy.routeFrame(F.header(kind, from: I(3), to: I(1)), from: C(3)) == .unicast(C(1)))
            #expect(room.policy.routeFrame(F.header(kind, from: I(3), to: I(5)), from: C(3)) == .drop(.unknownRecipient))  // waiting
            #expect(room.policy.routeFrame(F.header(kind, from: I(3), to: I(600)), from: C(3)) == .drop(.unknownRecipient))
        }
        // Muted participants may still chat.
        #expect(room.policy.routeFrame(F.header(.chat, from: I(4), to: I(3)), from: C(4)) == .unicast(C(3)))
    }

    @Test func onlyTheHostSendsKeyPackages() {
        var room = makeRoom()
        #expect(room.policy.routeFrame(F.header(.keys, from: I(1), to: I(4)), from: C(1)) == .unicast(C(4)))
        #expect(room.policy.routeFrame(F.header(.keys, from: I(1), to: I(5)), from: C(1)) == .drop(.unknownRecipient))
        let notice = ErrorMessage(code: .notAllowed, isFatal: false, message: "only the host may send key packages")
        #expect(room.policy.routeFrame(F.header(.keys, from: I(2), to: I(4)), from: C(2)) == .dropAndNotify(.notLeader, notice))
        #expect(room.policy.routeFrame(F.header(.keys, from: I(2), to: I(4)), from: C(2)) == .drop(.notLeader))
        #expect(room.policy.routeFrame(F.header(.keys, from: I(3), to: I(1)), from: C(3)) == .dropAndNotify(.notLeader, notice))
        // The co-host becomes host: it may now.
        _ = room.command(1, .transferHost(I(2)))
        #expect(room.policy.routeFrame(F.header(.keys, from: I(2), to: I(4)), from: C(2)) == .unicast(C(4)))
        #expect(room.policy.routeFrame(F.header(.keys, from: I(1), to: I(4)), from: C(1)) == .dropAndNotify(.notLeader, notice))
    }

    @Test func broadcastTargetsAreExactlyTheAdmittedMembers() {
        var room = makeRoom()
        #expect(room.policy.admittedConnections == [C(1), C(2), C(3), C(4)])
        _ = room.policy.disconnected(C(2), reason: .disconnected, now: room.now)
        #expect(room.policy.admittedConnections == [C(1), C(3), C(4)])
        _ = room.command(1, .admit(I(5)))
        #expect(room.policy.admittedConnections == [C(1), C(3), C(4), C(5)])
    }
}
