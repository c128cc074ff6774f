import ConclaveProtocol
import ConclaveRelay
import Testing

@Suite("Policy: joining, waiting room, lock, limits")
struct PolicyJoinTests: PolicyShorthands {
    let alice = PolicyFixtures.identity(2)
    let bob = PolicyFixtures.identity(3)
    let carol = PolicyFixtures.identity(4)
    let dave = PolicyFixtures.identity(5)

    @Test func ownerIsAdmittedAsHostWithIndexOne() {
        let room = PolicyRoom()
        #expect(room.policy.index(of: C(1)) == I(1))
        #expect(room.policy.role(of: C(1)) == .host)
        #expect(room.policy.hostConnection() == C(1))
        #expect(room.policy.admittedConnections == [C(1)])
        #expect(room.policy.admittedCount == 1)
        #expect(room.policy.waitingCount == 0)
        #expect(room.policy.ownerIdentity == PolicyFixtures.owner)
        #expect(room.policy.roomID == PolicyFixtures.roomID)
        // The creator is not muted by mute-on-entry: it applies to participants.
        #expect(room.policy.roster == [RosterEntry(index: I(1), identity: PolicyFixtures.owner, role: .host, state: [])])
    }

    @Test func joinerWaitsAndHostAndCohostsGetTheKnockByteForByte() {
        var room = PolicyRoom()
        room.admitCohost(2, alice)
        room.admit(3, bob)
        let knock: [UInt8] = [9, 8, 7, 6, 5]
        let actions = room.join(4, carol, knock: knock)
        #expect(actions.first == .send(C(4), .waiting(WaitingMessage(roomID: PolicyFixtures.roomID, index: I(4), position: 1))))
        let expectedKnock = RelayMessage.knock(KnockMessage(index: I(4), identity: carol, knock: knock))
        #expect(actions.messages(to: C(1)) == [expectedKnock])
        #expect(actions.messages(to: C(2)) == [expectedKnock])
        #expect(actions.messages(to: C(3)).isEmpty)
        #expect(actions.messages(to: C(4)).count == 1)
        #expect(room.policy.isWaiting(C(4)))
        #expect(!room.policy.isMember(C(4)))
        // Positions count the queue.
        let second = room.join(5, dave)
        #expect(second.first == .send(C(5), .waiting(WaitingMessage(roomID: PolicyFixtures.roomID, index: I(5), position: 2))))
        #expect(room.policy.waitingIndices == [I(4), I(5)])
    }

    @Test func aWaitingJoinerReceivesNothingFromTheRoom() {
        var room = PolicyRoom()
        let aliceIndex = room.admitCohost(2, alice)
        let bobIndex = room.admit(3, bob)
        _ = room.join(4, carol)
        let waiter = C(4)
        var everything: [RoomAction] = []
        everything += room.command(1, .lock)
        everything += room.command(2, .unlock)
        everything += room.command(1, .mute(bobIndex))
        everything += room.command(3, .raiseHand)
        everything += room.command(1, .setSetting(.selfUnmuteAllowed(false)))
        everything += room.command(1, .setRecording(on: true))
        everything += room.command(3, .acknowledgeRecording)
        everything += room.command(1, .grantShare(bobIndex))
        everything += room.command(1, .promoteCohost(bobIndex))
        everything += room.command(1, .transferHost(aliceIndex))
        room.now += 60_000
        everything += room.policy.tick(now: room.now)
        everything += room.join(5, dave)  // another knock
        everything += room.policy.disconnected(C(3), reason: .disconnected, now: room.now)
        #expect(!everything.recipients.contains(waiter))
        #expect(!everything.closed.contains(waiter))
        // Frames: broadcasts never reach it, addressing its index is dropped.
        #expect(!room.policy.admittedConnections.contains(waiter))
        #expect(room.policy.routeFrame(PolicyFixtures.header(.chat, from: aliceIndex, to: I(4)), from: C(2)) == .drop(.unknownRecipient))
        #expect(room.policy.routeFrame(PolicyFixtures.header(.keys, from: aliceIndex, to: I(4)), from: C(2)) == .drop(.unknownRecipient))
        #expect(room.policy.isWaiting(waiter))
    }

    @Test func aWaitingConnectionMaySendOnlyLeave() {
        var room = PolicyRoom()
        room.admitCohost(2, alice)
        _ = room.join(3, bob)
        _ = room.join(4, carol)
        // A frame from a waiter is a protocol violation.
        let route = room.policy.routeFrame(PolicyFixtures.header(.audio, from: I(3)), from: C(3))
        #expect(route == .reject(ErrorMessage(code: .unexpectedMessage, isFatal: true, message: "frames are only accepted from admitted participants")))
        // Any command but leave closes it, and the hosts learn it left the queue.
        let actions = room.command(3, .raiseHand)
        #expect(actions.closeError(of: C(3))?.code == .unexpectedMessage)
        #expect(actions.closeError(of: C(3))?.isFatal == true)
        #expect(actions.events(to: C(1)) == [.waitingLeft(I(3))])
        #expect(actions.events(to: C(2)) == [.waitingLeft(I(3))])
        #expect(!room.policy.isWaiting(C(3)))
        // leave: COMMAND_OK, released, hosts told.
        let leave = room.command(4, .leave)
        #expect(leave.first == .send(C(4), .commandOK(requestID: room.lastRequestID)))
        #expect(leave.contains(.release(C(4))))
        #expect(leave.events(to: C(1)) == [.waitingLeft(I(4))])
        #expect(room.policy.waitingCount == 0)
    }

    @Test func admitSendsAdmittedJoinedMutedAndDecided() {
        var room = PolicyRoom()
        let aliceIndex = room.admitCohost(2, alice)
        room.admit(3, bob)
        _ = room.join(4, carol)
        let actions = room.command(2, .admit(I(4)))
        #expect(actions.first == .send(C(2), .commandOK(requestID: room.lastRequestID)))
        let toCarol = actions.messages(to: C(4))
        #expect(toCarol.count == 1)
        guard case let .admitted(admitted)? = toCarol.first else {
            Issue.record("expected ADMITTED, got \(toCarol)")
            return
        }
        #expect(admitted.index == I(4))
        #expect(admitted.role == .participant)
        #expect(admitted.settings == room.policy.settings)
        #expect(admitted.recording == false)
        #expect(admitted.roster.map(\.index) == [I(1), I(2), I(3), I(4)])
        #expect(admitted.roster.last == RosterEntry(index: I(4), identity: carol, role: .participant, state: [.muted]))
        #expect(admitted.roster == room.policy.roster)
        // joined then muted to the other members; waiting_decided to host and co-host only.
        let joined = EventMessage(actor: aliceIndex, event: .joined(I(4), identity: carol, role: .participant))
        let muted = EventMessage(actor: .none, event: .muted(I(4)))
        let decided = EventMessage(actor: aliceIndex, event: .waitingDecided(I(4), admitted: true))
        #expect(actions.eventMessages(to: C(3)) == [joined, muted])
        #expect(actions.eventMessages(to: C(1)) == [joined, muted, decided])
        #expect(actions.eventMessages(to: C(2)) == [joined, muted, decided])
        #expect(room.policy.admittedConnections == [C(1), C(2), C(3), C(4)])
    }

    @Test func denyClosesTheJoinerWithDenied() {
        var room = PolicyRoom()
        room.admit(2, alice)
        _ = room.join(3, bob)
        let actions = room.command(1, .deny(I(3)))
        #expect(actions.first == .send(C(1), .commandOK(requestID: room.lastRequestID)))
        #expect(actions.closeError(of: C(3)) == ErrorMessage(code: .denied, isFatal: true, message: "the host denied admission"))
        #expect(actions.events(to: C(1)) == [.waitingDecided(I(3), admitted: false)])
        #expect(actions.messages(to: C(2)).isEmpty)
        #expect(room.policy.waitingCount == 0)
        // Denied is not banned.
        #expect(room.join(4, bob).first == .send(C(4), .waiting(WaitingMessage(roomID: PolicyFixtures.roomID, index: I(4), position: 1))))
    }

    @Test func withoutWaitingRoomJoinersAreAdmittedAtOnce() {
        var room = PolicyRoom(settings: PolicyFixtures.settings(waitingRoom: false, muteOnEntry: false))
        let actions = room.join(2, alice)
        // Protocol version 2: the host gets the knock first, even without a waiting room.
        #expect(actions.first == .send(C(1), .knock(KnockMessage(index: I(2), identity: alice, knock: PolicyFixtures.knock))))
        guard case let .send(target, .admitted(admitted))? = actions.dropFirst().first else {
            Issue.record("expected KNOCK to the host, then ADMITTED, got \(actions)")
            return
        }
        #expect(target == C(2))
        #expect(admitted.roster.count == 2)
        #expect(actions.eventMessages(to: C(1)) == [EventMessage(actor: .none, event: .joined(I(2), identity: alice, role: .participant))])
        #expect(room.policy.roster.last?.state == [])
    }

    @Test func waitingRoomFullIsFatal() {
        var room = PolicyRoom(settings: PolicyFixtures.settings(maxWaiting: 2))
        _ = room.join(2, alice)
        _ = room.join(3, bob)
        let actions = room.join(4, carol)
        #expect(actions == [.close(C(4), ErrorMessage(code: .waitingRoomFull, isFatal: true, message: "the waiting room is full"))])
        #expect(room.policy.waitingCount == 2)
        // No index was spent on the refused joiner.
        _ = room.command(1, .deny(I(2)))
        #expect(room.join(5, dave).first == .send(C(5), .waiting(WaitingMessage(roomID: PolicyFixtures.roomID, index: I(4), position: 2))))
    }

    @Test func anEmptyKnockIsMalformedWithoutAWaitingRoomToo() {
        var room = PolicyRoom(settings: PolicyFixtures.settings(waitingRoom: false))
        let actions = room.join(2, alice, knock: [])
        #expect(actions.closeError(of: C(2))?.code == .malformed)
        #expect(room.policy.admittedCount == 1)
    }

    @Test func anEmptyKnockIntoTheWaitingRoomIsMalformed() {
        var room = PolicyRoom()
        let actions = room.join(2, alice, knock: [])
        #expect(actions.closeError(of: C(2))?.code == .malformed)
        #expect(room.policy.waitingCount == 0)
    }

    @Test func indicesAreSequentialAndNeverReused() {
        var room = PolicyRoom(settings: PolicyFixtures.settings(waitingRoom: false))
        #expect(room.admit(2, alice) == I(2))
        _ = room.policy.disconnected(C(2), reason: .disconnected, now: room.now)
        #expect(room.admit(3, alice) == I(3))
        _ = room.command(1, .setSetting(.waitingRoom(true)))
        _ = room.join(4, bob)
        #expect(room.policy.index(of: C(4)) == I(4))
        _ = room.command(1, .deny(I(4)))
        #expect(room.admit(5, carol) == I(5))
    }

    @Test func exhaustingIndicesIsRoomFull() {
        var room = PolicyRoom(settings: PolicyFixtures.settings(waitingRoom: false, muteOnEntry: false))
        // Indices 2 … 0xFFFE: join and leave again.
        for raw in UInt64(2)...0xFFFE {
            let actions = room.join(raw, alice)
            guard actions.contains(where: { if case .send(_, .admitted) = $0 { true } else { false } }) else {
                Issue.record("join \(raw) failed: \(actions)")
                return
            }
            _ = room.policy.disconnected(C(raw), reason: .disconnected, now: room.now)
        }
        let actions = room.join(0x1_0000, alice)
        #expect(actions.closeError(of: C(0x1_0000))?.code == .roomFull)
        #expect(room.policy.admittedCount == 1)
    }

    @Test func joiningBeyondMaxParticipantsIsRoomFull() {
        var room = PolicyRoom(settings: PolicyFixtures.settings(waitingRoom: false, maxParticipants: 2))
        room.admit(2, alice)
        let actions = room.join(3, bob)
        #expect(actions == [.close(C(3), ErrorMessage(code: .roomFull, isFatal: true, message: "the room is full"))])
    }

    @Test func admittingBeyondMaxParticipantsIsANonFatalCommandError() {
        var room = PolicyRoom(settings: PolicyFixtures.settings(maxParticipants: 2))
        room.admit(2, alice)
        _ = room.join(3, bob)
        let actions = room.command(1, .admit(I(3)))
        #expect(actions.count == 1)
        #expect(actions.errors(to: C(1)).first?.isCommandError(.roomFull, requestID: room.lastRequestID) == true)
        #expect(room.policy.isWaiting(C(3)))
    }

    @Test func aWaiterThatDisconnectsIsReportedToHosts() {
        var room = PolicyRoom()
        room.admitCohost(2, alice)
        room.admit(3, bob)
        _ = room.join(4, carol)
        let actions = room.policy.disconnected(C(4), reason: .disconnected, now: room.now)
        #expect(
            actions == [
                .send(C(1), .event(EventMessage(actor: .none, event: .waitingLeft(I(4))))),
                .send(C(2), .event(EventMessage(actor: .none, event: .waitingLeft(I(4))))),
            ])
        #expect(room.policy.connection(forIndex: I(4)) == nil)
    }

    @Test func aNewlyPromotedCohostGetsAKnockForEveryoneWaiting() {
        var room = PolicyRoom()
        let aliceIndex = room.admit(2, alice)
        _ = room.join(3, bob, knock: [1])
        _ = room.join(4, carol, knock: [2, 2])
        let actions = room.command(1, .promoteCohost(aliceIndex))
        #expect(
            actions.messages(to: C(2)) == [
                .event(EventMessage(actor: I(1), event: .roleChanged(aliceIndex, role: .cohost))),
                .knock(KnockMessage(index: I(3), identity: bob, knock: [1])),
                .knock(KnockMessage(index: I(4), identity: carol, knock: [2, 2])),
            ])
    }

    @Test func aLockedRoomRefusesNewJoinsButKeepsThoseWaiting() {
        var room = PolicyRoom()
        room.admitCohost(2, alice)
        room.admit(3, bob)
        _ = room.join(4, carol)
        let lock = room.command(2, .lock)  // co-hosts may lock
        #expect(lock.first == .send(C(2), .commandOK(requestID: room.lastRequestID)))
        for member in [C(1), C(2), C(3)] { #expect(lock.events(to: member) == [.locked]) }
        #expect(room.policy.settings.locked)
        let refused = room.join(5, dave)
        #expect(refused == [.close(C(5), ErrorMessage(code: .roomLocked, isFatal: true, message: "the room is locked"))])
        #expect(room.policy.waitingCount == 1)
        // The waiting joiner stays until decided, and can still be admitted.
        let admitted = room.command(1, .admit(I(4)))
        #expect(admitted.first == .send(C(1), .commandOK(requestID: room.lastRequestID)))
        #expect(room.policy.isMember(C(4)))
        // Also refused with the waiting room off.
        _ = room.command(1, .setSetting(.waitingRoom(false)))
        #expect(room.join(6, dave).closeError(of: C(6))?.code == .roomLocked)
        // unlock opens it again.
        let unlock = room.command(1, .unlock)
        for member in room.policy.admittedConnections { #expect(unlock.events(to: member) == [.unlocked]) }
        guard room.join(7, dave).contains(where: { if case .send(_, .admitted) = $0 { true } else { false } }) else {
            Issue.record("unlocked room should admit")
            return
        }
    }

    @Test func theOwnerBypassesLockAndWaitingRoom() {
        var room = PolicyRoom()
        room.admit(2, alice)
        _ = room.command(1, .lock)
        #expect(room.join(3, bob).closeError(of: C(3))?.code == .roomLocked)
        let actions = room.join(9, PolicyFixtures.owner, knock: [])
        guard case let .admitted(admitted)? = actions.messages(to: C(9)).first else {
            Issue.record("owner should be admitted, got \(actions)")
            return
        }
        #expect(admitted.role == .host)
        #expect(actions.closeError(of: C(9)) == nil)
        #expect(room.policy.hostConnection() == C(9))
        #expect(room.policy.waitingCount == 0)
    }
}
