import ConclaveCrypto
import ConclaveProtocol

/// Sample values and helpers shared by the Message* tests. Namespaced so that other test
/// files in this target cannot collide with them.
enum MessageFixtures {
    // MARK: Bytes and hex

    /// `count` bytes `start, start+step, …` (wrapping).
    static func pattern(_ count: Int, start: UInt8, step: UInt8 = 1) -> [UInt8] {
        (0..<count).map { start &+ UInt8(truncatingIfNeeded: $0) &* step }
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef")
        var out = ""
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return out
    }

    /// Parses hex, ignoring spaces; traps on bad input (test data only).
    static func bytes(hex: String) -> [UInt8] {
        let clean = Array(hex.utf8.filter { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\n") })
        precondition(clean.count % 2 == 0, "odd hex length")
        func nibble(_ c: UInt8) -> UInt8 {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: preconditionFailure("bad hex digit")
            }
        }
        return stride(from: 0, to: clean.count, by: 2).map { nibble(clean[$0]) << 4 | nibble(clean[$0 + 1]) }
    }

    // MARK: Values

    static func identity(_ seed: UInt8) -> Identity {
        Identity(ed25519Public: pattern(32, start: seed, step: 3), x25519Public: pattern(32, start: seed &+ 0x80, step: 5))!
    }

    static let identityA = identity(0x01)
    static let identityB = identity(0x42)
    static let identityC = identity(0xE7)
    static let roomID = RoomID(bytes: pattern(16, start: 0xA0, step: 7))!
    static let signature = pattern(64, start: 0x10, step: 11)
    static let relayAuth = pattern(32, start: 0xC0, step: 13)
    static let challenge = pattern(32, start: 0x55, step: 17)

    /// Every field away from its default, at the edge of its range.
    static let edgeSettings = RoomSettings(
        waitingRoom: false, muteOnEntry: true, selfUnmuteAllowed: false, hostsOnlySharing: true, locked: true,
        maxParticipants: 900, maxWaiting: 1000, recordingAcknowledgementTimeoutSeconds: 3600
    )
    static let smallSettings = RoomSettings(
        waitingRoom: true, muteOnEntry: false, selfUnmuteAllowed: true, hostsOnlySharing: false, locked: false,
        maxParticipants: 1, maxWaiting: 0, recordingAcknowledgementTimeoutSeconds: 1
    )

    static let roster: [RosterEntry] = [
        RosterEntry(index: 1, identity: identityA, role: .host, state: [.recordingAcknowledged]),
        RosterEntry(index: 0x0203, identity: identityB, role: .cohost, state: [.muted, .presenter]),
        RosterEntry(index: 0xFFFE, identity: identityC, role: .participant, state: [.muted, .presenter, .handRaised, .recordingAcknowledged]),
    ]

    static let maximumRoster: [RosterEntry] = (1...900).map {
        RosterEntry(
            index: ParticipantIndex(UInt16($0)), identity: identity(UInt8(truncatingIfNeeded: $0)),
            role: $0 == 1 ? .host : .participant, state: ParticipantState(rawValue: UInt8($0 % 16)))
    }

    /// At least one action per op, and every setting at both ends of its range.
    static let commandActions: [CommandAction] = [
        .admit(1), .deny(0xFFFE), .lock, .unlock, .mute(7), .muteAll, .unmuteSelf, .askUnmute(0x1234),
        .raiseHand, .lowerHand(9), .remove(0x0101), .promoteCohost(3), .demoteCohost(4), .transferHost(5),
        .grantShare(6), .revokeShare(8), .setRecording(on: true), .setRecording(on: false), .acknowledgeRecording,
        .setSetting(.waitingRoom(true)), .setSetting(.waitingRoom(false)), .setSetting(.muteOnEntry(true)),
        .setSetting(.selfUnmuteAllowed(false)), .setSetting(.hostsOnlySharing(true)),
        .setSetting(.maxParticipants(1)), .setSetting(.maxParticipants(900)),
        .setSetting(.maxWaiting(0)), .setSetting(.maxWaiting(1000)),
        .setSetting(.recordingAcknowledgementTimeout(seconds: 1)),
        .setSetting(.recordingAcknowledgementTimeout(seconds: 3600)),
        .endMeeting, .leave, .muteSelf,
    ]

    /// At least one event per kind, with edge values.
    static let events: [RoomEvent] = [
        .joined(0x0042, identity: identityB, role: .participant), .joined(0xFFFE, identity: identityC, role: .host),
        .left(3, reason: .left), .left(4, reason: .disconnected), .left(5, reason: .timedOut), .left(6, reason: .tooSlow),
        .removed(7), .muted(8), .unmuted(9), .roleChanged(10, role: .cohost), .presenterChanged(11, granted: true),
        .presenterChanged(12, granted: false), .locked, .unlocked, .recording(on: true), .recording(on: false),
        .handRaised(13), .handLowered(14), .unmuteRequested(15), .settingChanged(.maxWaiting(77)),
        .settingChanged(.hostsOnlySharing(false)), .recordingUnacknowledged(16, seconds: UInt32.max),
        .waitingLeft(17), .waitingDecided(18, admitted: true), .waitingDecided(19, admitted: false),
        .recordingAcknowledged(20),
    ]

    static func frame(_ kind: FrameKind, payloadLength: Int, recipient: ParticipantIndex? = nil) -> FrameMessage {
        let to = recipient ?? (kind.addressing == .addressedOnly ? 0x0777 : .everyone)
        return try! FrameMessage(
            kind: kind, sender: 0x0123, recipient: to,
            payload: pattern(payloadLength, start: UInt8(payloadLength & 0xFF), step: 31))
    }

    static let frames: [FrameMessage] =
        FrameKind.allCases.flatMap {
            [frame($0, payloadLength: 1), frame($0, payloadLength: $0.payloadLimit)]
        } + [frame(.chat, payloadLength: 100, recipient: 0xFFFE), frame(.control, payloadLength: 33, recipient: 1)]

    /// A 200-byte message mixing 1-, 2-, 3- and 4-byte UTF-8 sequences.
    static let maximumErrorText: String = {
        var text = "Room full – réessayez 🙂 "
        while text.utf8.count < 200 { text += "a" }
        return text
    }()

    // MARK: Messages

    static let clientMessages: [(name: String, message: ClientMessage)] = {
        var all: [(String, ClientMessage)] = [
            ("hello 1-1", .hello(HelloMessage())),
            ("hello 1-255", .hello(HelloMessage(minimumVersion: 1, maximumVersion: 255))),
            (
                "create room with password",
                .createRoom(CreateRoomMessage(roomID: roomID, identity: identityA, signature: signature, relayAuth: relayAuth, settings: edgeSettings))
            ),
            (
                "create room without password",
                .createRoom(CreateRoomMessage(roomID: roomID, identity: identityB, signature: signature.reversed(), relayAuth: nil, settings: .privacyDefaults))
            ),
            (
                "join with password and maximum knock",
                .join(JoinMessage(roomID: roomID, identity: identityC, signature: signature, relayAuth: relayAuth, knock: pattern(2048, start: 9, step: 7)))
            ),
            ("join without password, empty knock", .join(JoinMessage(roomID: roomID, identity: identityA, signature: signature, relayAuth: nil, knock: []))),
            ("ping", .ping(nonce: 0xFEDC_BA98_7654_3210)),
            ("ping max", .ping(nonce: .max)),
        ]
        for (offset, action) in commandActions.enumerated() {
            all.append(("command \(action.op.name) #\(offset)", .command(CommandMessage(requestID: UInt16(0xFF00 + offset), action: action))))
        }
        for frame in frames {
            all.append(("frame \(frame.header.kind.name) \(frame.payload.count)", .frame(frame)))
        }
        return all
    }()

    static let relayMessages: [(name: String, message: RelayMessage)] = {
        var all: [(String, RelayMessage)] = [
            ("welcome", .welcome(WelcomeMessage(challenge: challenge, maximumMessageLength: 65535, maximumFramesPerSecond: 400))),
            ("welcome minimum max_message", .welcome(WelcomeMessage(challenge: challenge.reversed(), maximumMessageLength: 16392, maximumFramesPerSecond: 0))),
            ("room created", .roomCreated(RoomCreatedMessage(roomID: roomID, index: 1, settings: edgeSettings))),
            ("waiting", .waiting(WaitingMessage(roomID: roomID, index: 0xFFFE, position: 0xFFFF))),
            ("admitted roster of 3", .admitted(AdmittedMessage(index: 0x0203, role: .cohost, settings: smallSettings, recording: true, roster: roster))),
            (
                "admitted maximum roster",
                .admitted(AdmittedMessage(index: 900, role: .participant, settings: .privacyDefaults, recording: false, roster: maximumRoster))
            ),
            ("knock maximum", .knock(KnockMessage(index: 0x0999, identity: identityB, knock: pattern(2048, start: 1, step: 1)))),
            ("knock empty", .knock(KnockMessage(index: 2, identity: identityC, knock: []))),
            ("command ok", .commandOK(requestID: 0xABCD)),
            ("pong", .pong(nonce: 0x0102_0304_0506_0708)),
            (
                "media session same host",
                .mediaSession(
                    MediaSessionMessage(
                        sessionID: 0x0A0B_0C0D, hopKey: SecretKey(copying: pattern(32, start: 0x40, step: 3)),
                        port: 7443, host: ""))
            ),
            (
                "media session named host",
                .mediaSession(
                    MediaSessionMessage(
                        sessionID: 0xFFFF_FFFF, hopKey: SecretKey(copying: pattern(32, start: 0x90, step: 5)),
                        port: 0xFFFF, host: "media.example"))
            ),
            ("redirect elsewhere", .redirect(RedirectMessage(reason: .elsewhere, origin: "ws://127.0.0.1:7002"))),
            ("redirect draining IPv6", .redirect(RedirectMessage(reason: .draining, origin: "wss://[2001:db8::7]:65535"))),
            ("error maximum text", .error(ErrorMessage(code: .roomFull, requestID: 0, isFatal: true, message: maximumErrorText))),
            (
                "error rate limited",
                .error(ErrorMessage(code: .rateLimited, requestID: 77, isFatal: false, retryAfterMilliseconds: .max, message: "Slow down."))
            ),
            ("error empty text", .error(ErrorMessage(code: .notAllowed, requestID: 0xFFFF, isFatal: false, message: ""))),
        ]
        for (offset, event) in events.enumerated() {
            let actor: ParticipantIndex = offset.isMultiple(of: 2) ? .none : ParticipantIndex(UInt16(0xFFFE - offset))
            all.append(("event \(event.kind.name) #\(offset)", .event(EventMessage(actor: actor, event: event))))
        }
        for code in ErrorCode.wireCodes {
            all.append(
                ("error \(code.name)", .error(ErrorMessage(code: code, requestID: code.rawValue, isFatal: code != .notAllowed, message: "Error \(code.name).")))
            )
        }
        for frame in frames {
            all.append(("frame \(frame.header.kind.name) \(frame.payload.count)", .frame(frame)))
        }
        return all
    }()
}

/// The fuzz loops use the shared SplitMix64 of TestSupport.swift.
typealias MessageFuzzRandom = SplitMix64
