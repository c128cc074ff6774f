import Testing
@_spi(Testing) import ConclaveClient
import ConclaveCrypto
import ConclaveProtocol
@testable import ConclaveRelay

/// The meeting rules of issue 3, over real WebSocket connections on loopback.
@Suite(.serialized, .timeLimit(.minutes(2)), .tags(.integration), .live) struct RelayRulesTests {
    /// A host and one admitted participant (waiting room on, so through admission).
    func hostAndGuest(_ endpoint: RelayEndpoint, settings: RoomSettings = .privacyDefaults) async throws -> (TestParticipant, TestParticipant, RoomID) {
        let host = try await TestParticipant.connect(endpoint)
        let room = try await host.createRoom(settings: settings)
        let guest = try await TestParticipant.connect(endpoint)
        let first = try await guest.join(room)
        if case .waiting = first {
            _ = try await host.expectMessage("KNOCK") {
                if case .knock = $0 { return true }; return false
            }
            try await host.commandOK(.admit(guest.index))
            _ = try await guest.expectMessage("ADMITTED") {
                if case .admitted = $0 { return true }; return false
            }
        }
        _ = try await host.expectEvent("joined") {
            if case .joined = $0 { return true }; return false
        }
        return (host, guest, room)
    }

    // Rule 1: waiting room.
    @Test func waitingJoinerReceivesNothingUntilAdmitted() async throws {
        try await withRelay { _, endpoint in
            let (host, guest, room) = try await hostAndGuest(endpoint)
            let waiter = try await TestParticipant.connect(endpoint)
            let knock = Array("opaque sealed knock".utf8)
            guard case .waiting(let w) = try await waiter.join(room, knock: knock) else { Issue.record("not waiting"); return }
            #expect(w.position == 1)
            // The host is told, with the knock bytes exactly as sent (the relay cannot read them).
            let k = try await host.expectMessage("KNOCK") {
                if case .knock = $0 { return true }; return false
            }
            guard case .knock(let km)? = k else { return }
            #expect(km.knock == knock && km.index == waiter.index && km.identity == waiter.identity.publicIdentity.wireIdentity)
            // Room traffic while waiting: audio, chat, a command-driven event. The waiter gets none of it.
            try await host.commandOK(.unmuteSelf)
            try await host.sendFrame(.audio, payload: [1, 2, 3])
            try await host.sendFrame(.chat, payload: Array("hello".utf8))
            try await guest.commandOK(.raiseHand)
            try await waiter.expectSilence(for: .milliseconds(400))
            // Admission delivers ADMITTED with the roster, then traffic flows.
            try await host.commandOK(.admit(waiter.index))
            let a = try await waiter.expectMessage("ADMITTED") {
                if case .admitted = $0 { return true }; return false
            }
            guard case .admitted(let adm)? = a else { return }
            #expect(adm.roster.count == 3 && adm.roster.contains { $0.index == waiter.index })
            try await host.sendFrame(.chat, payload: Array("welcome".utf8))
            _ = try await waiter.expectMessage("chat frame") {
                if case .frame(let f) = $0 { return f.payload == Array("welcome".utf8) }; return false
            }
        }
    }

    @Test func deniedJoinerIsDisconnectedAndWaitingRoomOffAdmitsAtOnce() async throws {
        try await withRelay { _, endpoint in
            let host = try await TestParticipant.connect(endpoint)
            let room = try await host.createRoom()
            let waiter = try await TestParticipant.connect(endpoint)
            try await waiter.join(room)
            _ = try await host.expectMessage("KNOCK") {
                if case .knock = $0 { return true }; return false
            }
            try await host.commandOK(.deny(waiter.index))
            try await waiter.expectFatal(.denied)

            var open = RoomSettings.privacyDefaults
            open.waitingRoom = false
            let host2 = try await TestParticipant.connect(endpoint)
            let room2 = try await host2.createRoom(settings: open)
            let direct = try await TestParticipant.connect(endpoint)
            guard case .admitted = try await direct.join(room2) else { Issue.record("expected immediate admission"); return }
        }
    }

    // Rule 2: lock.
    @Test func lockedRoomRefusesNewJoinsButKeepsWaiters() async throws {
        try await withRelay { _, endpoint in
            let host = try await TestParticipant.connect(endpoint)
            let room = try await host.createRoom()
            let waiter = try await TestParticipant.connect(endpoint)
            try await waiter.join(room)
            try await host.commandOK(.lock)
            let late = try await TestParticipant.connect(endpoint)
            try await late.sendJoin(room)
            try await late.expectFatal(.roomLocked)
            // The waiter stays until decided.
            try await host.commandOK(.admit(waiter.index))
            _ = try await waiter.expectMessage("ADMITTED") {
                if case .admitted = $0 { return true }; return false
            }
            try await host.commandOK(.unlock)
            let later = try await TestParticipant.connect(endpoint)
            guard case .waiting = try await later.join(room) else { Issue.record("unlock should admit to the waiting room"); return }
        }
    }

    // Rule 3: host-only sharing.
    @Test func nonPresenterScreenFramesReachNoOneWithOneNotice() async throws {
        try await withRelay { _, endpoint in
            let (host, guest, _) = try await hostAndGuest(endpoint)
            for i in 0..<5 { try await guest.sendFrame(.screen, payload: [UInt8(i)]) }
            let hostGot = try await host.drain(for: .milliseconds(400))
            #expect(receivedFrames(hostGot).isEmpty, "a non-presenter's screen frames reached the host")
            func isNotice(_ item: RelayInbound) -> Bool {
                if case .message(.error(let e)) = item { return e.code == .notAllowed && !e.isFatal }; return false
            }
            // One notice (waited for), and no second one for five frames.
            _ = try await guest.expect("the not_allowed notice", timeout: .seconds(10), isNotice)
            let more = try await guest.drain(for: .milliseconds(200)).filter(isNotice)
            #expect(more.isEmpty, "exactly one not_allowed notice, got \(1 + more.count)")
            // The host's own screen frames are forwarded; granting presenter lets the guest share.
            try await host.sendFrame(.screen, payload: [9])
            _ = try await guest.expectMessage("host screen") {
                if case .frame(let f) = $0 { return f.header.kind == .screen }; return false
            }
            try await host.commandOK(.grantShare(guest.index))
            try await guest.sendFrame(.screen, payload: [7, 7])
            _ = try await host.expectMessage("presenter screen") {
                if case .frame(let f) = $0 { return f.payload == [7, 7] }; return false
            }
        }
    }

    // Rule 4: mute on entry.
    @Test func newParticipantAudioReachesNoOneUntilUnmuted() async throws {
        try await withRelay { _, endpoint in
            let (host, guest, _) = try await hostAndGuest(endpoint)
            try await guest.sendFrame(.audio, payload: [1])
            try await guest.sendFrame(.audio, payload: [2])
            #expect(receivedFrames(try await host.drain(for: .milliseconds(400))).isEmpty, "muted audio was forwarded")
            try await guest.commandOK(.unmuteSelf)
            _ = try await host.expectEvent("unmuted") {
                if case .unmuted(let i) = $0 { return i == guest.index }; return false
            }
            try await guest.sendFrame(.audio, payload: [3])
            _ = try await host.expectMessage("audio") {
                if case .frame(let f) = $0 { return f.payload == [3] }; return false
            }
            // The host mutes the guest; no one can unmute someone else; self-unmute can be disallowed.
            try await host.commandOK(.mute(guest.index))
            try await guest.sendFrame(.audio, payload: [4])
            #expect(receivedFrames(try await host.drain(for: .milliseconds(300))).isEmpty)
            try await host.commandOK(.setSetting(try SettingChange(id: SettingID.selfUnmuteAllowed.rawValue, value: 0)))
            let denied = try await guest.command(.unmuteSelf)
            _ = try await guest.expectMessage("not_allowed") {
                if case .error(let e) = $0 { return e.requestID == denied && e.code == .notAllowed }; return false
            }
            // Asking to unmute makes self-unmute possible once.
            try await host.commandOK(.askUnmute(guest.index))
            _ = try await guest.expectEvent("unmute_requested") {
                if case .unmuteRequested = $0 { return true }; return false
            }
            try await guest.commandOK(.unmuteSelf)
        }
    }

    // Rule 5: remove and ban.
    @Test func removedParticipantCannotRejoin() async throws {
        try await withRelay { _, endpoint in
            let (host, guest, room) = try await hostAndGuest(endpoint)
            try await host.commandOK(.remove(guest.index))
            try await guest.expectFatal(.removed)
            _ = try await host.expectEvent("removed") {
                if case .removed(let i) = $0 { return i == guest.index }; return false
            }
            let again = try await TestParticipant.connect(endpoint, identity: guest.identity)
            try await again.sendJoin(room)
            try await again.expectFatal(.banned)
        }
    }

    // Rule 6: announce, and co-host permissions.
    @Test func eventsCarryIndicesAndKeysAndCoHostsAreLimited() async throws {
        try await withRelay { _, endpoint in
            let (host, guest, room) = try await hostAndGuest(endpoint)
            let third = try await TestParticipant.connect(endpoint)
            try await third.join(room)
            _ = try await host.expectMessage("KNOCK") {
                if case .knock = $0 { return true }; return false
            }
            try await host.commandOK(.promoteCohost(guest.index))
            _ = try await guest.expectMessage("KNOCK for the new co-host") {
                if case .knock(let k) = $0 { return k.index == third.index }; return false
            }
            try await guest.commandOK(.admit(third.index))
            let joined = try await host.expectEvent("joined") {
                if case .joined(let i, _, _) = $0 { return i == third.index }; return false
            }
            guard case .joined(_, let identity, _) = joined.event else { return }
            #expect(identity == third.identity.publicIdentity.wireIdentity)
            #expect(joined.actor == guest.index)
            // A co-host cannot remove the host or end the meeting.
            for action in [CommandAction.remove(host.index), .endMeeting, .promoteCohost(third.index)] {
                let id = try await guest.command(action)
                _ = try await guest.expectMessage("refusal of \(action)") {
                    if case .error(let e) = $0 { return e.requestID == id && !e.isFatal }; return false
                }
            }
            // Out-of-state: a participant may not admit.
            let id = try await third.command(.admit(host.index))
            _ = try await third.expectMessage("not_allowed") {
                if case .error(let e) = $0 { return e.requestID == id && e.code == .notAllowed }; return false
            }
        }
    }

    // Rule 7: recording notice.
    @Test func recordingIsAnnouncedAndUnacknowledgedReportedToHost() async throws {
        var settings = RoomSettings.privacyDefaults
        settings.recordingAcknowledgementTimeoutSeconds = 1
        try await withRelay { _, endpoint in
            let (host, guest, _) = try await hostAndGuest(endpoint, settings: settings)
            try await host.commandOK(.setRecording(on: true))
            _ = try await guest.expectEvent("recording on") {
                if case .recording(true) = $0 { return true }; return false
            }
            let report = try await host.expectEvent("recording_unacknowledged") {
                if case .recordingUnacknowledged(let i, _) = $0 { return i == guest.index }; return false
            }
            #expect(report.event.subject == guest.index.rawValue)
            try await guest.commandOK(.acknowledgeRecording)
            _ = try await host.expectEvent("recording_acknowledged") {
                if case .recordingAcknowledged(let i) = $0 { return i == guest.index }; return false
            }
        }
    }

    // Rule 8: host leaves, end meeting.
    @Test func hostLeavingPassesHostAndEndMeetingClosesAll() async throws {
        try await withRelay { server, endpoint in
            let (host, guest, room) = try await hostAndGuest(endpoint)
            await host.close()
            _ = try await guest.expectEvent("role_changed to host") {
                if case .roleChanged(let i, .host) = $0 { return i == guest.index }; return false
            }
            let third = try await TestParticipant.connect(endpoint)
            try await third.join(room)
            _ = try await guest.expectMessage("KNOCK to the new host") {
                if case .knock = $0 { return true }; return false
            }
            try await guest.commandOK(.admit(third.index))
            _ = try await third.expectMessage("ADMITTED") {
                if case .admitted = $0 { return true }; return false
            }
            try await guest.commandOK(.endMeeting)
            try await third.expectFatal(.ended)
            // Nothing is kept once the room ends.
            try await waitUntil("the ended room to leave the registry") { server.roomCount == 0 }
        }
    }

    // Rule 9: forwarding byte for byte, broadcast and addressed.
    @Test func framesAreForwardedByteForByteAndAddressedFramesToOneOnly() async throws {
        try await withRelay { _, endpoint in
            let (host, guest, room) = try await hostAndGuest(endpoint)
            let third = try await TestParticipant.connect(endpoint)
            try await third.join(room)
            try await host.commandOK(.admit(third.index))
            _ = try await third.expectMessage("ADMITTED") {
                if case .admitted = $0 { return true }; return false
            }
            // Real end-to-end encryption with a key only the participants hold.
            let epochSecret = SecretKey.random()
            let key = try EpochKeys.senderFrameKey(epochSecret: epochSecret, roomID: room, epoch: 1, sender: host.index.rawValue)
            let metadata = FrameMetadata(roomID: room).bytes(kind: FrameKind.chat.rawValue, sender: host.index.rawValue, recipient: 0xFFFF)
            var sealed = [UInt8](repeating: 0, count: key.sealedLength(counter: 0, plaintextLength: 14))
            let n = try sealed.withUnsafeMutableBytes { o in
                try metadata.withUnsafeBytes { m in
                    try Array("secret canary!".utf8).withUnsafeBytes { p in try key.seal(counter: 0, metadata: m, plaintext: p, into: o) }
                }
            }
            let sent = try await host.sendFrame(.chat, payload: Array(sealed[0..<n]))
            for p in [guest, third] {
                let got = try await p.expectMessage("forwarded frame") {
                    if case .frame = $0 { return true }; return false
                }
                var bytes: [UInt8] = []
                got!.encode(into: &bytes)
                #expect(bytes == sent, "the relay altered the frame")
                guard case .frame(let f)? = got else { continue }
                var out = [UInt8](repeating: 0, count: f.payload.count)
                let r = try out.withUnsafeMutableBytes { o in
                    try f.payload.withUnsafeBytes { fr in try metadata.withUnsafeBytes { m in try key.open(frame: fr, metadata: m, into: o) } }
                }
                #expect(Array(out[0..<r.plaintextLength]) == Array("secret canary!".utf8))
            }
            // Addressed: only the recipient gets it.
            try await host.sendFrame(.chat, to: third.index, payload: [0xAB])
            _ = try await third.expectMessage("addressed frame") {
                if case .frame(let f) = $0 { return f.payload == [0xAB] }; return false
            }
            #expect(receivedFrames(try await guest.drain(for: .milliseconds(300))).isEmpty, "an addressed frame reached a third party")
            // A frame claiming someone else's sender index is refused and its sender disconnected.
            let forged = try FrameMessage(kind: .chat, sender: host.index, recipient: .everyone, payload: [1])
            try await guest.connection.sendRaw(ClientMessage.frame(forged).encoded())
            try await guest.expectFatal(.malformed)
        }
    }

    @Test func wrongPasswordIsRefusedAndRateLimited() async throws {
        let config = testRelayConfiguration { $0.passwordFailuresPerAddressPerMinute = 3 }
        try await withRelay(config) { _, endpoint in
            let host = try await TestParticipant.connect(endpoint)
            let room = try await host.createRoom(password: "correct horse battery")
            for _ in 0..<3 {
                let p = try await TestParticipant.connect(endpoint)
                try await p.sendJoin(room, password: "wrong")
                try await p.expectFatal(.badPassword)
            }
            let limited = try await TestParticipant.connect(endpoint)
            try await limited.sendJoin(room, password: "correct horse battery")
            let m = try await limited.expectMessage("rate_limited") {
                if case .error(let e) = $0 { return e.code == .rateLimited }; return false
            }
            if case .error(let e)? = m { #expect(e.retryAfterMilliseconds > 0) }
            let missing = try await TestParticipant.connect(endpoint)
            _ = missing  // a fresh address would pass; here every client shares 127.0.0.1
        }
    }

    /// Issue 10, defect 5: wrong passwords from strangers exhaust the room's budget; the
    /// right password still gets in at once, and only the wrong answers come late.
    @Test func strangersCannotLockInviteesOutWithWrongPasswords() async throws {
        let config = testRelayConfiguration {
            $0.passwordFailuresPerAddressPerMinute = 100; $0.passwordFailuresPerRoomPerMinute = 4
        }
        try await withRelay(config) { _, endpoint in
            let host = try await TestParticipant.connect(endpoint)
            let room = try await host.createRoom(password: "correct horse battery")
            for _ in 0..<4 {
                let p = try await TestParticipant.connect(endpoint)
                try await p.sendJoin(room, password: "wrong")
                try await p.expectFatal(.badPassword)
            }
            // Past the room's budget: a wrong password is answered late ...
            let late = try await TestParticipant.connect(endpoint)
            let sent = ContinuousClock.now
            try await late.sendJoin(room, password: "wrong")
            try await late.expectFatal(.badPassword, timeout: .seconds(10))
            #expect(
                ContinuousClock.now - sent >= .milliseconds(Int64(RelayCore.wrongPasswordDelayMillis)), "a wrong password past the budget was answered early")
            // ... and the invitee with the right password waits for nothing.
            let invitee = try await TestParticipant.connect(endpoint)
            guard case .waiting = try await invitee.join(room, password: "correct horse battery") else {
                Issue.record("the invitee was not let into the waiting room"); return
            }
        }
    }

    /// Issue 10, defect 4: room creations per address are limited before any hashing.
    @Test func roomCreationsPerAddressAreLimited() async throws {
        let config = testRelayConfiguration { $0.roomCreationsPerAddressPerMinute = 3 }
        try await withRelay(config) { server, endpoint in
            var hosts: [TestParticipant] = []  // kept connected: their rooms stay open
            for _ in 0..<3 {
                let p = try await TestParticipant.connect(endpoint)
                _ = try await p.createRoom(password: "a password")
                hosts.append(p)
            }
            let fourth = try await TestParticipant.connect(endpoint)
            let room = RoomID(bytes: SecureRandom.bytes(count: 16))!
            try await fourth.connection.send(
                .createRoom(
                    CreateRoomMessage(
                        roomID: room, identity: fourth.identity.publicIdentity.wireIdentity,
                        signature: try fourth.proof(room: room),
                        relayAuth: Array(repeating: 7, count: 32), settings: .privacyDefaults)))
            let m = try await fourth.expectMessage("rate_limited") {
                if case .error(let e) = $0 { return e.code == .rateLimited }; return false
            }
            if case .error(let e)? = m { #expect(e.retryAfterMilliseconds > 0) }
            #expect(server.roomCount == 3)
            _ = hosts
        }
    }

    /// An operator's exempt address (a load generator's) skips the per-address limits.
    @Test func exemptAddressesSkipThePerAddressLimits() async throws {
        var config = testRelayConfiguration {
            $0.roomCreationsPerAddressPerMinute = 1; $0.joinAttemptsPerAddressPerMinute = 1
        }
        try config.set("exempt-addresses", to: "127.0.0.1, ::1")
        #expect(config.exemptAddresses == ["127.0.0.1", "::1"])
        #expect(throws: RelayConfigurationError.self) {
            var c = RelayConfiguration(); try c.set("exempt-addresses", to: "localhost")
        }
        try await withRelay(config) { server, endpoint in
            var hosts: [TestParticipant] = []
            for _ in 0..<3 {
                let p = try await TestParticipant.connect(endpoint)
                let room = try await p.createRoom()
                hosts.append(p)
                let joiner = try await TestParticipant.connect(endpoint)
                guard case .waiting = try await joiner.join(room) else { Issue.record("an exempt join was refused"); return }
                hosts.append(joiner)
            }
            #expect(server.roomCount == 3)
        }
    }

    @Test func correctPasswordJoins() async throws {
        try await withRelay { _, endpoint in
            let host = try await TestParticipant.connect(endpoint)
            let room = try await host.createRoom(password: "correct horse battery")
            let p = try await TestParticipant.connect(endpoint)
            guard case .waiting = try await p.join(room, password: "correct horse battery") else { Issue.record("not admitted to the waiting room"); return }
            let q = try await TestParticipant.connect(endpoint)
            try await q.sendJoin(room, password: nil)
            try await q.expectFatal(.badPassword)
        }
    }

    /// relay_auth is bound to the room and the relay (4.1): a proof made for one room (or
    /// one relay) with the same password opens no other, so a relay that sees it cannot
    /// replay it elsewhere.
    @Test func relayAuthOfAnotherRoomOrRelayIsRefused() async throws {
        try await withRelay { _, endpoint in
            let host = try await TestParticipant.connect(endpoint)
            let room = try await host.createRoom(password: "correct horse battery")
            let other = try await TestParticipant.connect(endpoint)
            let otherRoom = try await other.createRoom(password: "correct horse battery")
            for (proofRoom, origin) in [(otherRoom, TestParticipant.relayOrigin), (room, "wss://another-relay.example:443")] {
                let p = try await TestParticipant.connect(endpoint)
                let auth = try Invite.relayAuth(password: "correct horse battery", roomID: proofRoom, relayOrigin: origin)
                try await p.connection.send(
                    .join(
                        JoinMessage(
                            roomID: room, identity: p.identity.publicIdentity.wireIdentity,
                            signature: try p.proof(room: room), relayAuth: auth, knock: Array("knock".utf8))))
                try await p.expectFatal(.badPassword)
            }
            let good = try await TestParticipant.connect(endpoint)
            guard case .waiting = try await good.join(room, password: "correct horse battery") else { Issue.record("not admitted to the waiting room"); return }
        }
    }

    /// The host proposes the room id; an id already in use is refused with room_exists.
    @Test func createRoomWithAnIDInUseIsRefused() async throws {
        try await withRelay { _, endpoint in
            let host = try await TestParticipant.connect(endpoint)
            let room = try await host.createRoom()
            let squatter = try await TestParticipant.connect(endpoint)
            try await squatter.connection.send(
                .createRoom(
                    CreateRoomMessage(
                        roomID: room, identity: squatter.identity.publicIdentity.wireIdentity,
                        signature: try squatter.proof(room: room), relayAuth: nil, settings: .privacyDefaults)))
            try await squatter.expectFatal(.roomExists)
            // A proof signed for another room id than the one proposed does not verify.
            let liar = try await TestParticipant.connect(endpoint)
            try await liar.connection.send(
                .createRoom(
                    CreateRoomMessage(
                        roomID: RoomID(bytes: SecureRandom.bytes(count: 16))!,
                        identity: liar.identity.publicIdentity.wireIdentity,
                        signature: try liar.proof(room: .zero), relayAuth: nil, settings: .privacyDefaults)))
            try await liar.expectFatal(.badSignature)
        }
    }
}
