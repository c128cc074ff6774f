import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing
@_spi(Testing) import ConclaveClient
import ConclaveCrypto
import ConclaveProtocol
@testable import ConclaveRelay

/// A participant speaking the protocol over a real WebSocket connection.
final class TestParticipant: @unchecked Sendable {
    let connection: RelayConnection
    let identity: PrivateIdentity
    var challenge: [UInt8] = []
    var index: ParticipantIndex = .none
    var roomID: RoomID = .zero
    private var nextRequest: UInt16 = 1
    /// Everything received and not yet consumed by an `expect`.
    private var backlog: [RelayInbound] = []
    /// The UDP media session the relay offered (`MEDIA_SESSION` is kept here, not in the
    /// backlog, so tests about other messages need not expect it).
    var mediaSession: MediaSessionMessage?

    init(connection: RelayConnection, identity: PrivateIdentity = .generate()) {
        self.connection = connection
        self.identity = identity
    }

    static func connect(_ endpoint: RelayEndpoint, tls: ClientTLS? = nil, identity: PrivateIdentity = .generate()) async throws -> TestParticipant {
        // The relay's tests count every frame the relay sends: no client-side media drops.
        var options = RelayConnection.Options()
        options.inboundMedia = .keepAll
        let c = try await RelayConnection.connect(to: endpoint, tls: tls, options: options)
        let p = TestParticipant(connection: c, identity: identity)
        try await c.send(.hello(HelloMessage()))
        guard
            case .welcome(let w)? = try await p.expectMessage(
                "WELCOME",
                {
                    if case .welcome = $0 { return true }; return false
                })
        else {
            throw TestTimeout(what: "WELCOME")
        }
        p.challenge = w.challenge
        return p
    }

    /// The relay origin the test clients bind `relay_auth` to (the relay never learns it).
    static let relayOrigin = "ws://127.0.0.1:7443"

    func proof(room: RoomID) throws -> [UInt8] {
        let id = identity.publicIdentity
        return try identity.signingKey.signature(
            for: challenge + room.bytes + id.signingKey.rawRepresentation + id.agreementKey.rawRepresentation,
            context: "conclave/v1 relay-auth")
    }

    /// Creates a room; returns its id.
    @discardableResult
    func createRoom(password: String? = nil, settings: RoomSettings = .privacyDefaults) async throws -> RoomID {
        let proposed = RoomID(bytes: SecureRandom.bytes(count: 16))!
        let auth = try password.map { try Invite.relayAuth(password: $0, roomID: proposed, relayOrigin: Self.relayOrigin) }
        try await connection.send(
            .createRoom(
                CreateRoomMessage(
                    roomID: proposed, identity: identity.publicIdentity.wireIdentity,
                    signature: try proof(room: proposed), relayAuth: auth, settings: settings)))
        guard
            case .roomCreated(let created)? = try await expectMessage(
                "ROOM_CREATED",
                {
                    if case .roomCreated = $0 { return true }; return false
                })
        else {
            throw TestTimeout(what: "ROOM_CREATED")
        }
        roomID = created.roomID
        index = created.index
        return created.roomID
    }

    /// Sends JOIN (does not wait for the answer).
    func sendJoin(_ room: RoomID, password: String? = nil, knock: [UInt8] = Array("sealed-knock-bytes".utf8)) async throws {
        roomID = room
        let auth = try password.map { try Invite.relayAuth(password: $0, roomID: room, relayOrigin: Self.relayOrigin) }
        try await connection.send(
            .join(
                JoinMessage(
                    roomID: room, identity: identity.publicIdentity.wireIdentity, signature: try proof(room: room),
                    relayAuth: auth, knock: knock)))
    }

    /// Joins and waits for WAITING or ADMITTED.
    @discardableResult
    func join(_ room: RoomID, password: String? = nil, knock: [UInt8] = Array("sealed-knock-bytes".utf8)) async throws -> RelayMessage {
        try await sendJoin(room, password: password, knock: knock)
        let m = try await expectMessage("WAITING or ADMITTED") {
            switch $0 {
            case .waiting, .admitted: return true;
            default: return false
            }
        }
        switch m {
        case .waiting(let w)?: index = w.index
        case .admitted(let a)?: index = a.index
        default: break
        }
        return m!
    }

    @discardableResult
    func command(_ action: CommandAction) async throws -> UInt16 {
        let id = nextRequest
        nextRequest &+= 1
        try await connection.send(.command(CommandMessage(requestID: id, action: action)))
        return id
    }

    /// Sends a command and waits for its COMMAND_OK (or fails on its ERROR).
    func commandOK(_ action: CommandAction) async throws {
        let id = try await command(action)
        let m = try await expectMessage("COMMAND_OK \(id)") {
            switch $0 {
            case .commandOK(let r): return r == id
            case .error(let e): return e.requestID == id
            default: return false
            }
        }
        if case .error(let e)? = m { Issue.record("command \(action) failed: \(e.code.name) \(e.message)") }
    }

    /// A FRAME from this participant, as the exact bytes sent.
    @discardableResult
    func sendFrame(_ kind: FrameKind, to recipient: ParticipantIndex = .everyone, payload: [UInt8]) async throws -> [UInt8] {
        let frame = try FrameMessage(kind: kind, sender: index, recipient: recipient, payload: payload)
        let bytes = ClientMessage.frame(frame).encoded()
        try await connection.sendRaw(bytes)
        return bytes
    }

    /// Waits for the next inbound item satisfying `predicate` (others stay in the backlog).
    func expect(_ what: String, timeout: Duration = .seconds(5), _ predicate: (RelayInbound) -> Bool) async throws -> RelayInbound {
        if let i = backlog.firstIndex(where: predicate) { return backlog.remove(at: i) }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard let item = try await nextItem(deadline - ContinuousClock.now) else { break }
            if predicate(item) { return item }
            backlog.append(item)
            if item.isClosed { break }
        }
        throw TestTimeout(what: what)
    }

    func expectMessage(_ what: String, timeout: Duration = .seconds(5), _ predicate: (RelayMessage) -> Bool) async throws -> RelayMessage? {
        try await expect(what, timeout: timeout) { item in item.message.map(predicate) ?? false }.message
    }

    /// Waits for a fatal ERROR with this code followed by the close.
    func expectFatal(_ code: ErrorCode, timeout: Duration = .seconds(5)) async throws {
        let m = try await expectMessage("ERROR \(code.name)", timeout: timeout) {
            if case .error(let e) = $0 { return e.code == code }; return false
        }
        if case .error(let e)? = m { #expect(e.isFatal, "\(code.name) should be fatal") }
        _ = try await expect("close after \(code.name)", timeout: timeout) { $0.isClosed }
    }

    func expectEvent(_ what: String, _ predicate: @escaping (RoomEvent) -> Bool) async throws -> EventMessage {
        let m = try await expectMessage(what) {
            if case .event(let e) = $0 { return predicate(e.event) }; return false
        }
        guard case .event(let e)? = m else { throw TestTimeout(what: what) }
        return e
    }

    /// Collects every inbound item for `duration` (including the backlog).
    func drain(for duration: Duration) async throws -> [RelayInbound] {
        var out = backlog
        backlog.removeAll()
        let deadline = ContinuousClock.now + duration
        while ContinuousClock.now < deadline {
            guard let item = try await nextItem(deadline - ContinuousClock.now) else { break }
            out.append(item)
            if item.isClosed { break }
        }
        return out
    }

    /// Waits for the next `count` frames (other items stay in the backlog) and returns their
    /// bytes in arrival order: a positive check that waits for what it expects, where a
    /// fixed `drain` would cut a slow machine short.
    func expectFrames(_ count: Int, timeout: Duration = .seconds(10)) async throws -> [[UInt8]] {
        let deadline = ContinuousClock.now + timeout
        var frames: [RelayInbound] = []
        for k in 0..<count {
            frames.append(
                try await expect("frame \(k + 1) of \(count)", timeout: max(.zero, deadline - ContinuousClock.now)) { item in
                    if case .message(.frame) = item { return true }; return false
                })
        }
        return receivedFrames(frames)
    }

    /// Asserts that nothing but the allowed items arrives for `duration`.
    func expectSilence(for duration: Duration = .milliseconds(300), sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let got = try await drain(for: duration)
        #expect(got.isEmpty, "expected silence, got \(got.map { String(describing: $0).prefix(80) })", sourceLocation: sourceLocation)
    }

    func close() async { await connection.close() }

    /// The `MEDIA_SESSION` the relay sends after admission (waits for it; other items stay in the backlog).
    func awaitMediaSession(timeout: Duration = .seconds(3)) async throws -> MediaSessionMessage {
        let deadline = ContinuousClock.now + timeout
        while mediaSession == nil, ContinuousClock.now < deadline {
            if let item = try await nextItem(.milliseconds(20)) { backlog.append(item) }
        }
        guard let mediaSession else { throw TestTimeout(what: "MEDIA_SESSION") }
        return mediaSession
    }

    /// The next inbound item, or nil when none arrives within `timeout` or the connection
    /// already reported its close.
    private func nextItem(_ timeout: Duration) async throws -> RelayInbound? {
        let deadline = ContinuousClock.now + timeout
        while deadline > ContinuousClock.now {
            do {
                let item = try await connection.next(timeout: deadline - ContinuousClock.now)
                if case .message(.mediaSession(let m))? = item {
                    mediaSession = m
                    continue
                }
                return item
            } catch RelayConnectionError.timeout {
                return nil
            }
        }
        return nil
    }
}

/// Frames received by a participant (their exact bytes).
func receivedFrames(_ items: [RelayInbound]) -> [[UInt8]] {
    items.compactMap { item in
        if case .message(.frame(let f)) = item {
            var bytes: [UInt8] = []
            RelayMessage.frame(f).encode(into: &bytes)
            return bytes
        }
        return nil
    }
}
