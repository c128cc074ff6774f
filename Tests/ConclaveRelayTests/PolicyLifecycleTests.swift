import ConclaveProtocol
import ConclaveRelay
import Testing

@Suite("Policy: host hand-over, closing, owner reconnect")
struct PolicyLifecycleTests: PolicyShorthands {
    typealias F = PolicyFixtures

    @Test func theHostLeavingPassesHostToTheLongestAdmittedCohost() {
        var room = PolicyRoom()
        room.admit(2, F.identity(2))  // participant, admitted first
        room.admit(3, F.identity(3))
        room.admit(4, F.identity(4))
        _ = room.command(1, .promoteCohost(I(4)))  // promoted first, admitted later
        _ = room.command(1, .promoteCohost(I(3)))
        let actions = room.policy.disconnected(C(1), reason: .disconnected, now: room.now)
        #expect(
            actions.eventMessages(to: C(2)) == [
                EventMessage(actor: .none, event: .left(I(1), reason: .disconnected)),
                EventMessage(actor: .none, event: .roleChanged(I(3), role: .host)),
            ])
        #expect(room.policy.hostConnection() == C(3))
        #expect(room.policy.role(of: C(4)) == .cohost)
        #expect(!actions.closesRoom)
    }

    @Test func withoutCohostsHostPassesToTheLongestAdmittedParticipant() {
        var room = PolicyRoom()
        room.admit(2, F.identity(2))
        room.admit(3, F.identity(3))
        _ = room.join(4, F.identity(4), knock: [4])
        let actions = room.command(1, .leave)
        #expect(actions.first == .send(C(1), .commandOK(requestID: room.lastRequestID)))
        #expect(actions.contains(.release(C(1))))
        #expect(actions.events(to: C(3)) == [.left(I(1), reason: .left), .roleChanged(I(2), role: .host)])
        #expect(room.policy.hostConnection() == C(2))
        // The new host learns who is waiting, and can admit.
        #expect(actions.messages(to: C(2)).last == .knock(KnockMessage(index: I(4), identity: F.identity(4), knock: [4])))
        #expect(room.command(2, .admit(I(4))).first == .send(C(2), .commandOK(requestID: room.lastRequestID)))
    }

    @Test func anEmptyRoomClosesAndThoseWaitingGetEnded() {
        var room = PolicyRoom()
        _ = room.join(2, F.identity(2))
        _ = room.join(3, F.identity(3))
        let actions = room.policy.disconnected(C(1), reason: .tooSlow, now: room.now)
        let ended = ErrorMessage(code: .ended, isFatal: true, message: "the meeting has ended")
        #expect(actions == [.close(C(2), ended), .close(C(3), ended), .roomClosed])
        #expect(room.policy.isClosed)
        #expect(room.policy.admittedCount == 0)
        #expect(room.policy.waitingCount == 0)
        #expect(room.policy.hostConnection() == nil)
        // Nothing more happens in a closed room.
        #expect(room.join(4, F.identity(4)).closeError(of: C(4))?.code == .roomNotFound)
        #expect(room.policy.tick(now: room.now + 1_000_000).isEmpty)
        #expect(room.policy.disconnected(C(2), reason: .disconnected, now: room.now).isEmpty)
        #expect(room.policy.shutdown(message: "bye").isEmpty)
    }

    @Test func endMeetingClosesEveryone() {
        var room = PolicyRoom()
        room.admitCohost(2, F.identity(2))
        room.admit(3, F.identity(3))
        _ = room.join(4, F.identity(4))
        #expect(room.command(2, .endMeeting).errors(to: C(2)).first?.code == .notAllowed)
        let actions = room.command(1, .endMeeting)
        let ended = ErrorMessage(code: .ended, isFatal: true, message: "the meeting has ended")
        #expect(
            actions == [
                .send(C(1), .commandOK(requestID: room.lastRequestID)),
                .close(C(1), ended), .close(C(2), ended), .close(C(3), ended), .close(C(4), ended),
                .roomClosed,
            ])
        #expect(room.policy.isClosed)
    }

    @Test func theOwnerReconnectingReclaimsHost() {
        var room = PolicyRoom()
        room.admit(2, F.identity(2))
        room.admit(3, F.identity(3))
        _ = room.command(1, .promoteCohost(I(3)))
        _ = room.join(4, F.identity(4), knock: [4])
        // The owner's connection drops: the co-host becomes host.
        _ = room.policy.disconnected(C(1), reason: .timedOut, now: room.now)
        #expect(room.policy.hostConnection() == C(3))
        _ = room.command(3, .lock)
        // The owner comes back (the caller verified its signature): host again, lock and
        // waiting room notwithstanding; the acting host becomes co-host first.
        let actions = room.join(9, F.owner, knock: [])
        guard
            case let .send(target, .admitted(admitted))? = actions.first(where: {
                if case .send(_, .admitted) = $0 { return true } else { return false }
            })
        else {
            Issue.record("owner not admitted: \(actions)")
            return
        }
        #expect(target == C(9))
        #expect(admitted.index == I(5))  // a new index, never reused
        #expect(admitted.role == .host)
        #expect(admitted.roster.first { $0.index == I(3) }?.role == .cohost)
        #expect(admitted.roster.first { $0.index == I(5) }?.state == [])  // not muted on entry
        #expect(actions.events(to: C(2)) == [.roleChanged(I(3), role: .cohost), .joined(I(5), identity: F.owner, role: .host)])
        #expect(actions.messages(to: C(9)).contains(.knock(KnockMessage(index: I(4), identity: F.identity(4), knock: [4]))))
        #expect(room.policy.hostConnection() == C(9))
        #expect(room.policy.role(of: C(3)) == .cohost)
        #expect(room.policy.roster.filter { $0.role == .host }.count == 1)
    }

    @Test func aBannedOwnerStaysOut() {
        var room = PolicyRoom()
        room.admit(2, F.identity(2))
        _ = room.command(1, .transferHost(I(2)))
        _ = room.command(2, .remove(I(1)))
        #expect(room.join(9, F.owner, knock: []).closeError(of: C(9))?.code == .banned)
    }

    @Test func aSecondJoinOnAConnectionInTheRoomClosesIt() {
        var room = PolicyRoom()
        room.admit(2, F.identity(2))
        let actions = room.join(2, F.identity(2))
        #expect(actions.closeError(of: C(2))?.code == .unexpectedMessage)
        #expect(actions.events(to: C(1)) == [.left(I(2), reason: .disconnected)])
        #expect(!room.policy.isMember(C(2)))
    }

    @Test func shutdownClosesEveryoneWithShuttingDown() {
        var room = PolicyRoom()
        room.admit(2, F.identity(2))
        _ = room.join(3, F.identity(3))
        let long = String(repeating: "é", count: 150)  // 300 UTF-8 bytes
        let actions = room.policy.shutdown(message: long)
        #expect(actions.closed == [C(1), C(2), C(3)])
        #expect(actions.last == .roomClosed)
        let error = actions.closeError(of: C(3))
        #expect(error?.code == .shuttingDown)
        #expect(error?.isFatal == true)
        #expect(error?.message.utf8.count == 200)
        #expect(room.policy.isClosed)
        // Every close is encodable (the 200-byte limit holds).
        for case let .close(_, message) in actions { #expect(RelayMessage.error(message).encoded().count > 0) }
    }
}

@Suite("Policy: recording notice")
struct PolicyRecordingTests: PolicyShorthands {
    typealias F = PolicyFixtures

    @Test func theRecordingAcknowledgementDeadlineReportsToTheHostOnce() {
        var room = PolicyRoom(settings: F.settings(recordingTimeout: 30))
        room.admitCohost(2, F.identity(2))
        room.admit(3, F.identity(3))
        room.admit(4, F.identity(4))
        let start = room.now
        let on = room.command(1, .setRecording(on: true))
        for member in [C(1), C(2), C(3), C(4)] {
            #expect(on.eventMessages(to: member) == [EventMessage(actor: I(1), event: .recording(on: true))])
        }
        #expect(room.policy.isRecording)
        #expect(room.policy.nextRecordingDeadline == start + 30_000)
        // Host, co-host and participant 3 acknowledge; 4 does not.
        _ = room.command(1, .acknowledgeRecording)
        _ = room.command(2, .acknowledgeRecording)
        let ack = room.command(3, .acknowledgeRecording)
        #expect(ack.events(to: C(4)) == [.recordingAcknowledged(I(3))])
        #expect(room.policy.roster.first { $0.index == I(3) }?.state.contains(.recordingAcknowledged) == true)
        #expect(room.policy.tick(now: start + 29_999).isEmpty)
        let report = room.policy.tick(now: start + 31_500)
        #expect(report == [.send(C(1), .event(EventMessage(actor: .none, event: .recordingUnacknowledged(I(4), seconds: 31))))])
        // Once only.
        #expect(room.policy.tick(now: start + 90_000).isEmpty)
        #expect(room.policy.nextRecordingDeadline == nil)
        // It may still acknowledge late.
        #expect(room.command(4, .acknowledgeRecording).events(to: C(1)) == [.recordingAcknowledged(I(4))])
        // A new change clears acknowledgements and starts new deadlines.
        room.now = start + 100_000
        let off = room.command(1, .setRecording(on: false))
        #expect(off.events(to: C(3)) == [.recording(on: false)])
        #expect(room.policy.roster.allSatisfy { !$0.state.contains(.recordingAcknowledged) })
        _ = room.command(1, .acknowledgeRecording)
        let second = room.policy.tick(now: room.now + 30_000)
        #expect(second.count == 3)
        #expect(second.recipients == [C(1)])
        #expect(
            second.events(to: C(1)) == [
                .recordingUnacknowledged(I(2), seconds: 30), .recordingUnacknowledged(I(3), seconds: 30),
                .recordingUnacknowledged(I(4), seconds: 30),
            ])
    }

    @Test func membersAdmittedWhileRecordingGetTheirOwnDeadline() {
        var room = PolicyRoom(settings: F.settings(recordingTimeout: 10))
        let start = room.now
        _ = room.command(1, .setRecording(on: true))
        _ = room.command(1, .acknowledgeRecording)
        room.now = start + 8_000
        let index = room.admit(2, F.identity(2))
        let admitted = room.policy.roster.first { $0.index == index }
        #expect(admitted?.state.contains(.recordingAcknowledged) == false)
        #expect(room.policy.tick(now: start + 12_000).isEmpty)  // the room's deadline is not its own
        #expect(
            room.policy.tick(now: start + 18_000) == [
                .send(C(1), .event(EventMessage(actor: .none, event: .recordingUnacknowledged(index, seconds: 10))))
            ])
    }

    @Test func onlyTheHostSetsRecording() {
        var room = PolicyRoom()
        room.admitCohost(2, F.identity(2))
        #expect(room.command(2, .setRecording(on: true)).errors(to: C(2)).first?.code == .notAllowed)
        #expect(!room.policy.isRecording)
    }
}
