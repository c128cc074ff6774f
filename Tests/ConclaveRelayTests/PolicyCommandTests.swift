import ConclaveProtocol
import ConclaveRelay
import Testing

@Suite("Policy: commands")
struct PolicyCommandTests: PolicyShorthands {
    let alice = PolicyFixtures.identity(2)
    let bob = PolicyFixtures.identity(3)
    let carol = PolicyFixtures.identity(4)
    let dave = PolicyFixtures.identity(5)

    /// Host 1 (#1), co-host 2 (#2), participants 3 (#3) and 4 (#4), waiting 5 (#5).
    func makeRoom() -> PolicyRoom {
        var room = PolicyRoom()
        room.admitCohost(2, alice)
        room.admit(3, bob)
        room.admit(4, carol)
        _ = room.join(5, dave)
        return room
    }

    func expectRefusal(
        _ room: inout PolicyRoom, _ sender: UInt64, _ action: CommandAction, _ code: ErrorCode,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let roster = room.policy.roster
        let actions = room.command(sender, action)
        #expect(actions.count == 1, "\(action): \(actions)", sourceLocation: sourceLocation)
        #expect(
            actions.errors(to: C(sender)).first?.isCommandError(code, requestID: room.lastRequestID) == true,
            "\(action) should be \(code): \(actions)", sourceLocation: sourceLocation)
        #expect(room.policy.roster == roster, sourceLocation: sourceLocation)
    }

    @Test func unknownTargetsAreUnknownParticipant() {
        var room = makeRoom()
        for action: CommandAction in [
            .admit(I(77)), .deny(I(77)), .mute(I(77)), .askUnmute(I(77)), .lowerHand(I(77)),
            .remove(I(77)), .grantShare(I(77)), .revokeShare(I(77)),
        ] {
            expectRefusal(&room, 2, action, .unknownParticipant)
        }
        for action: CommandAction in [.promoteCohost(I(77)), .demoteCohost(I(77)), .transferHost(I(77))] {
            expectRefusal(&room, 1, action, .unknownParticipant)
        }
        // An index that left is no longer in the room.
        _ = room.policy.disconnected(C(4), reason: .disconnected, now: room.now)
        expectRefusal(&room, 1, .mute(I(4)), .unknownParticipant)
    }

    @Test func commandsThatDoNotFitAreInvalidCommand() {
        var room = makeRoom()
        expectRefusal(&room, 1, .admit(I(3)), .invalidCommand)  // admitted, not waiting
        expectRefusal(&room, 1, .deny(I(3)), .invalidCommand)  // deny an admitted member
        expectRefusal(&room, 1, .mute(I(5)), .invalidCommand)  // waiting, not admitted
        expectRefusal(&room, 1, .remove(I(5)), .invalidCommand)
        expectRefusal(&room, 1, .transferHost(I(5)), .invalidCommand)
        expectRefusal(&room, 2, .remove(I(2)), .invalidCommand)  // remove self
        expectRefusal(&room, 1, .remove(I(1)), .invalidCommand)  // the host removing itself
        expectRefusal(&room, 2, .remove(I(1)), .invalidCommand)  // a co-host removing the host
        expectRefusal(&room, 1, .promoteCohost(I(1)), .invalidCommand)  // promote the host
        expectRefusal(&room, 1, .demoteCohost(I(1)), .invalidCommand)  // demote the host
        expectRefusal(&room, 1, .transferHost(I(1)), .invalidCommand)  // to self
        expectRefusal(&room, 3, .acknowledgeRecording, .invalidCommand)  // nothing to acknowledge
        #expect(room.policy.hostConnection() == C(1))
        #expect(room.policy.isWaiting(C(5)))
    }

    @Test func commandsWhoseResultAlreadyHoldsSucceedWithoutEvents() {
        var room = makeRoom()
        _ = room.command(1, .lock)
        for (sender, action): (UInt64, CommandAction) in [
            (1, .lock), (2, .mute(I(3))), (3, .muteSelf), (2, .lowerHand(I(3))), (1, .promoteCohost(I(2))),
            (1, .demoteCohost(I(3))), (2, .revokeShare(I(3))), (1, .setRecording(on: false)),
            (1, .setSetting(.waitingRoom(true))), (2, .askUnmute(I(1))), (1, .unmuteSelf),
        ] {
            let actions = room.command(sender, action)
            #expect(actions == [.send(C(sender), .commandOK(requestID: room.lastRequestID))], "\(action): \(actions)")
        }
    }

    @Test func aCommandFromAConnectionNotInTheRoomClosesIt() {
        var room = makeRoom()
        let actions = room.command(42, .raiseHand)
        #expect(actions.count == 1)
        #expect(actions.closeError(of: C(42))?.code == .unexpectedMessage)
    }

    @Test func muteAndMuteAllAnnounceEachNewlyMutedMember() {
        var room = PolicyRoom(settings: PolicyFixtures.settings(muteOnEntry: false))
        room.admitCohost(2, alice)
        room.admit(3, bob)
        room.admit(4, carol)
        let mute = room.command(2, .mute(I(3)))
        for member in [C(1), C(2), C(3), C(4)] {
            #expect(mute.eventMessages(to: member) == [EventMessage(actor: I(2), event: .muted(I(3)))])
        }
        // mute_all by the co-host: everyone except the sender, the host included, once each.
        let all = room.command(2, .muteAll)
        #expect(all.events(to: C(4)) == [.muted(I(1)), .muted(I(4))])
        #expect(room.policy.roster.map { $0.state.contains(.muted) } == [true, false, true, true])
        // mute_self
        let own = room.command(2, .muteSelf)
        #expect(own.events(to: C(1)) == [.muted(I(2))])
    }

    @Test func aNewParticipantsAudioIsDroppedUntilItUnmutes() {
        var room = PolicyRoom()
        let bobIndex = room.admit(3, bob)
        #expect(room.policy.roster.last?.state.contains(.muted) == true)
        let audio = PolicyFixtures.header(.audio, from: bobIndex)
        #expect(room.policy.routeFrame(audio, from: C(3)) == .drop(.muted))
        #expect(room.policy.routeFrame(audio, from: C(3)) == .drop(.muted))  // silently, every time
        let unmute = room.command(3, .unmuteSelf)
        #expect(unmute.first == .send(C(3), .commandOK(requestID: room.lastRequestID)))
        #expect(unmute.eventMessages(to: C(1)) == [EventMessage(actor: bobIndex, event: .unmuted(bobIndex))])
        #expect(unmute.events(to: C(3)) == [.unmuted(bobIndex)])
        #expect(room.policy.routeFrame(audio, from: C(3)) == .broadcast)
        // Muted again by the host: dropped again.
        _ = room.command(1, .mute(bobIndex))
        #expect(room.policy.routeFrame(audio, from: C(3)) == .drop(.muted))
    }

    @Test func selfUnmuteNeedsTheSettingOrAnAsk() {
        var room = makeRoom()
        let disallow = room.command(1, .setSetting(.selfUnmuteAllowed(false)))
        #expect(disallow.events(to: C(3)) == [.settingChanged(.selfUnmuteAllowed(false))])
        let refused = room.command(3, .unmuteSelf)
        #expect(refused.count == 1)
        #expect(refused.errors(to: C(3)).first?.isCommandError(.notAllowed, requestID: room.lastRequestID) == true)
        // ask_unmute: the event goes to the target only.
        let ask = room.command(2, .askUnmute(I(3)))
        #expect(
            ask == [
                .send(C(2), .commandOK(requestID: room.lastRequestID)),
                .send(C(3), .event(EventMessage(actor: I(2), event: .unmuteRequested(I(3))))),
            ])
        // Carol was not asked.
        #expect(room.command(4, .unmuteSelf).errors(to: C(4)).first?.code == .notAllowed)
        // Bob may now, once.
        let unmute = room.command(3, .unmuteSelf)
        #expect(unmute.events(to: C(1)) == [.unmuted(I(3))])
        _ = room.command(3, .muteSelf)
        #expect(room.command(3, .unmuteSelf).errors(to: C(3)).first?.code == .notAllowed)
        // Hosts and co-hosts may always unmute themselves.
        _ = room.command(2, .muteSelf)
        #expect(room.command(2, .unmuteSelf).first == .send(C(2), .commandOK(requestID: room.lastRequestID)))
    }

    @Test func raiseAndLowerHands() {
        var room = makeRoom()
        let raise = room.command(4, .raiseHand)
        for member in [C(1), C(2), C(3), C(4)] { #expect(raise.events(to: member) == [.handRaised(I(4))]) }
        #expect(room.policy.roster.first { $0.index == I(4) }?.state.contains(.handRaised) == true)
        let lower = room.command(1, .lowerHand(I(4)))
        #expect(lower.eventMessages(to: C(4)) == [EventMessage(actor: I(1), event: .handLowered(I(4)))])
        #expect(room.policy.roster.first { $0.index == I(4) }?.state.contains(.handRaised) == false)
    }

    @Test func aRemovedParticipantCannotRejoin() {
        var room = makeRoom()
        _ = room.join(6, carol)  // carol waits on another device too
        let actions = room.command(2, .remove(I(4)))
        #expect(actions.first == .send(C(2), .commandOK(requestID: room.lastRequestID)))
        #expect(actions.closeError(of: C(4)) == ErrorMessage(code: .removed, isFatal: true, message: "you were removed from the room"))
        #expect(actions.messages(to: C(4)).isEmpty)
        for member in [C(1), C(2), C(3)] {
            #expect(actions.eventMessages(to: member).first == EventMessage(actor: I(2), event: .removed(I(4))))
        }
        // The other device's knock is void: closed as banned, hosts told.
        #expect(actions.closeError(of: C(6))?.code == .banned)
        #expect(actions.events(to: C(1)).contains(.waitingLeft(I(6))))
        #expect(!room.policy.isMember(C(4)))
        #expect(room.policy.isBanned(carol))
        // Rejoin with a new connection: banned. Banned is checked before the lock.
        #expect(room.join(7, carol) == [.close(C(7), ErrorMessage(code: .banned, isFatal: true, message: "you were removed from this room"))])
        _ = room.command(1, .lock)
        #expect(room.join(8, carol).closeError(of: C(8))?.code == .banned)
        // The removed connection itself is banned whatever identity it claims.
        _ = room.command(1, .unlock)
        #expect(room.join(4, PolicyFixtures.identity(40)).closeError(of: C(4))?.code == .banned)
        // Others still get in.
        #expect(room.join(9, PolicyFixtures.identity(41)).closeError(of: C(9)) == nil)
    }

    @Test func promoteDemoteAndTransferHost() {
        var room = makeRoom()
        let promote = room.command(1, .promoteCohost(I(3)))
        #expect(promote.events(to: C(4)) == [.roleChanged(I(3), role: .cohost)])
        #expect(promote.messages(to: C(3)).contains(.knock(KnockMessage(index: I(5), identity: dave, knock: PolicyFixtures.knock))))
        let demote = room.command(1, .demoteCohost(I(3)))
        #expect(demote.events(to: C(4)) == [.roleChanged(I(3), role: .participant)])
        #expect(room.policy.role(of: C(3)) == .participant)
        // Transfer: the old host steps down to co-host first, then the new host.
        let transfer = room.command(1, .transferHost(I(4)))
        #expect(transfer.first == .send(C(1), .commandOK(requestID: room.lastRequestID)))
        #expect(transfer.events(to: C(3)) == [.roleChanged(I(1), role: .cohost), .roleChanged(I(4), role: .host)])
        #expect(room.policy.hostConnection() == C(4))
        #expect(room.policy.role(of: C(1)) == .cohost)
        #expect(room.policy.roster.filter { $0.role == .host }.map(\.index) == [I(4)])
        // The new host learns who is waiting.
        #expect(transfer.messages(to: C(4)).contains(.knock(KnockMessage(index: I(5), identity: dave, knock: PolicyFixtures.knock))))
        // The old host, now a co-host, may no longer end the meeting or set recording.
        #expect(room.command(1, .endMeeting).errors(to: C(1)).first?.code == .notAllowed)
        #expect(room.command(1, .setRecording(on: true)).errors(to: C(1)).first?.code == .notAllowed)
        // ... and may not remove the new host.
        #expect(room.command(1, .remove(I(4))).errors(to: C(1)).first?.code == .invalidCommand)
    }

    @Test func grantAndRevokeShare() {
        var room = makeRoom()
        let grant = room.command(2, .grantShare(I(3)))
        #expect(grant.eventMessages(to: C(4)) == [EventMessage(actor: I(2), event: .presenterChanged(I(3), granted: true))])
        #expect(room.policy.roster.first { $0.index == I(3) }?.state.contains(.presenter) == true)
        let revoke = room.command(1, .revokeShare(I(3)))
        #expect(revoke.events(to: C(3)) == [.presenterChanged(I(3), granted: false)])
        #expect(room.policy.roster.first { $0.index == I(3) }?.state.contains(.presenter) == false)
    }

    @Test func setSettingChangesAndAnnounces() {
        var room = makeRoom()
        let changes: [SettingChange] = [
            .waitingRoom(false), .muteOnEntry(false), .selfUnmuteAllowed(false), .hostsOnlySharing(false),
            .maxParticipants(7), .maxWaiting(3), .recordingAcknowledgementTimeout(seconds: 90),
        ]
        for change in changes {
            let actions = room.command(1, .setSetting(change))
            for member in [C(1), C(2), C(3), C(4)] {
                #expect(actions.eventMessages(to: member) == [EventMessage(actor: I(1), event: .settingChanged(change))])
            }
            #expect(!actions.recipients.contains(C(5)))
        }
        #expect(
            room.policy.settings
                == RoomSettings(
                    waitingRoom: false, muteOnEntry: false, selfUnmuteAllowed: false, hostsOnlySharing: false, locked: false,
                    maxParticipants: 7, maxWaiting: 3, recordingAcknowledgementTimeoutSeconds: 90
                ))
        // Turning the waiting room off leaves those already waiting to be decided.
        #expect(room.policy.isWaiting(C(5)))
        // New settings apply to the next joiner: admitted at once, not muted.
        let join = room.join(6, PolicyFixtures.identity(6))
        guard
            let admitted = join.lazy.compactMap({ action -> AdmittedMessage? in
                if case let .send(_, .admitted(a)) = action { return a }; return nil
            }).first
        else {
            Issue.record("expected direct admission: \(join)")
            return
        }
        #expect(admitted.roster.last?.state == [])
    }

    @Test func leaveByAParticipant() {
        var room = makeRoom()
        let actions = room.command(3, .leave)
        #expect(actions.first == .send(C(3), .commandOK(requestID: room.lastRequestID)))
        #expect(actions.contains(.release(C(3))))
        #expect(actions.messages(to: C(3)).count == 1)
        #expect(actions.eventMessages(to: C(4)) == [EventMessage(actor: I(3), event: .left(I(3), reason: .left))])
        #expect(!room.policy.isMember(C(3)))
        // A later disconnect of that connection is ignored.
        #expect(room.policy.disconnected(C(3), reason: .disconnected, now: room.now).isEmpty)
        // Network departures carry their reason and the relay as actor.
        let timedOut = room.policy.disconnected(C(4), reason: .timedOut, now: room.now)
        #expect(timedOut.eventMessages(to: C(1)) == [EventMessage(actor: .none, event: .left(I(4), reason: .timedOut))])
    }
}
