import ConclaveCrypto
import ConclaveProtocol
import Foundation
import Testing

/// The committed test vectors, `protocol/test-vectors/control-messages.json`.
///
/// `CONCLAVE_WRITE_VECTORS=1 swift test --filter MessageVectorTests` regenerates the file
/// from ``MessageVectors/cases`` before checking it. The check builds each message from its
/// human-readable `fields` with code independent of the codec's own decoders, and requires
/// that decoding `encoded` gives that message and that encoding it gives `encoded` back.
@Suite("Message test vectors")
struct MessageVectorTests {
    static let fileURL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("protocol/test-vectors/control-messages.json")

    /// Writes the file once, before either test reads it, when CONCLAVE_WRITE_VECTORS=1.
    static let regenerated: Bool = {
        guard ProcessInfo.processInfo.environment["CONCLAVE_WRITE_VECTORS"] == "1" else { return false }
        try! MessageVectors.document().fileText().write(to: fileURL, atomically: true, encoding: .utf8)
        return true
    }()

    @Test("the committed vectors decode to their fields and re-encode byte for byte")
    func committedVectors() throws {
        _ = Self.regenerated
        let data = try Data(contentsOf: Self.fileURL)  // fails when the file is missing
        let root = try JSONDecoder().decode(VectorJSON.self, from: data)
        let description = root["description"]?.string ?? ""
        #expect(!description.isEmpty)
        let vectors = try #require(root["vectors"]?.array)

        var types = Set<MessageType>(), ops = Set<CommandOp>(), events = Set<EventKind>(), codes = Set<ErrorCode>()
        var names = Set<String>()
        for vector in vectors {
            let name = try #require(vector["name"]?.string)
            #expect(names.insert(name).inserted, "duplicate vector name \(name)")
            let encoded = MessageFixtures.bytes(hex: try #require(vector["encoded"]?.string))
            let fields = try #require(vector["fields"])
            switch vector["direction"]?.string {
            case "client_to_relay":
                let expected = try VectorBuilder.clientMessage(fields)
                #expect(try ClientMessage.decode(encoded) == expected, "\(name)")
                #expect(expected.encoded() == encoded, "\(name)")
                types.insert(expected.type)
                if case let .command(command) = expected { ops.insert(command.action.op) }
            case "relay_to_client":
                let expected = try VectorBuilder.relayMessage(fields)
                #expect(try RelayMessage.decode(encoded) == expected, "\(name)")
                #expect(expected.encoded() == encoded, "\(name)")
                types.insert(expected.type)
                if case let .event(event) = expected { events.insert(event.event.kind) }
                if case let .error(error) = expected { codes.insert(error.code) }
            default:
                Issue.record("\(name): bad direction")
            }
        }
        #expect(types == Set(MessageType.allCases))
        #expect(ops == Set(CommandOp.allCases))
        #expect(events == Set(EventKind.allCases))
        #expect(codes == Set(ErrorCode.wireCodes))
    }

    @Test("the committed file is what the generator produces")
    func committedFileIsCurrent() throws {
        _ = Self.regenerated
        let committed = try String(contentsOf: Self.fileURL, encoding: .utf8)
        #expect(
            committed == MessageVectors.document().fileText(),
            "run CONCLAVE_WRITE_VECTORS=1 swift test --filter MessageVectorTests to regenerate")
    }
}

// MARK: - JSON

/// A minimal JSON value: ordered objects for writing, decodable for reading.
indirect enum VectorJSON: Decodable {
    case null
    case bool(Bool)
    case int(Int64)
    case string(String)
    case array([VectorJSON])
    case object([(String, VectorJSON)])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([VectorJSON].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: VectorJSON].self).sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        }
    }

    subscript(key: String) -> VectorJSON? {
        if case let .object(pairs) = self { return pairs.first { $0.0 == key }?.1 }
        return nil
    }

    var string: String? { if case let .string(value) = self { value } else { nil } }
    var array: [VectorJSON]? { if case let .array(value) = self { value } else { nil } }
    var isNull: Bool { if case .null = self { true } else { false } }

    /// Pretty-printed with two-space indentation; objects that hold only scalars stay on one line.
    func serialized(indent: String = "") -> String {
        switch self {
        case .null: return "null"
        case let .bool(value): return value ? "true" : "false"
        case let .int(value): return String(value)
        case let .string(value): return Self.quote(value)
        case let .array(values):
            if values.isEmpty { return "[]" }
            let inner = indent + "  "
            return "[\n" + values.map { inner + $0.serialized(indent: inner) }.joined(separator: ",\n") + "\n" + indent + "]"
        case let .object(pairs):
            if pairs.isEmpty { return "{}" }
            if pairs.allSatisfy({ if case .object = $0.1 { false } else if case .array = $0.1 { false } else { true } }) {
                return "{" + pairs.map { Self.quote($0.0) + ": " + $0.1.serialized(indent: "") }.joined(separator: ", ") + "}"
            }
            let inner = indent + "  "
            return "{\n" + pairs.map { inner + Self.quote($0.0) + ": " + $0.1.serialized(indent: inner) }.joined(separator: ",\n") + "\n" + indent + "}"
        }
    }

    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

extension VectorJSON {
    /// The whole file: the document and a final newline.
    func fileText() -> String { serialized(indent: "") + "\n" }
}

// MARK: - Generation (message → fields)

enum MessageVectors {
    enum Direction { case clientToRelay, relayToClient }
    enum Message {
        case client(ClientMessage)
        case relay(RelayMessage)
    }

    typealias F = MessageFixtures

    static var cases: [(name: String, message: Message)] {
        var all: [(String, Message)] = []
        func client(_ name: String, _ message: ClientMessage) { all.append(("\(message.type.name) \(name)", .client(message))) }
        func relay(_ name: String, _ message: RelayMessage) { all.append(("\(message.type.name) \(name)", .relay(message))) }

        client("versions 1 to 1", .hello(HelloMessage()))
        client("versions 1 to 3", .hello(HelloMessage(minimumVersion: 1, maximumVersion: 3)))
        relay("version 1", .welcome(WelcomeMessage(challenge: F.challenge, maximumMessageLength: 65535, maximumFramesPerSecond: 200)))
        client(
            "with password, privacy defaults",
            .createRoom(CreateRoomMessage(roomID: F.roomID, identity: F.identityA, signature: F.signature, relayAuth: F.relayAuth, settings: .privacyDefaults)))
        client(
            "without password, edge settings",
            .createRoom(CreateRoomMessage(roomID: F.roomID, identity: F.identityB, signature: F.signature, relayAuth: nil, settings: F.edgeSettings)))
        relay("host index 1", .roomCreated(RoomCreatedMessage(roomID: F.roomID, index: 1, settings: .privacyDefaults)))
        client(
            "with password and knock",
            .join(
                JoinMessage(roomID: F.roomID, identity: F.identityB, signature: F.signature, relayAuth: F.relayAuth, knock: F.pattern(48, start: 0x30, step: 3))
            ))
        client("without password, empty knock", .join(JoinMessage(roomID: F.roomID, identity: F.identityC, signature: F.signature, relayAuth: nil, knock: [])))
        relay("second in queue", .waiting(WaitingMessage(roomID: F.roomID, index: 0x0203, position: 2)))
        relay("roster of 3", .admitted(AdmittedMessage(index: 0x0203, role: .cohost, settings: F.smallSettings, recording: true, roster: F.roster)))
        relay("sealed knock", .knock(KnockMessage(index: 0x0203, identity: F.identityB, knock: F.pattern(48, start: 0x30, step: 3))))
        for (offset, action) in F.commandActions.enumerated() {
            var label = action.op.name
            if case let .setSetting(change) = action { label += " \(change.id.name)=\(change.value)" }
            if case let .setRecording(on) = action { label += on ? " on" : " off" }
            client(label, .command(CommandMessage(requestID: UInt16(100 + offset), action: action)))
        }
        relay("request 100", .commandOK(requestID: 100))
        for (offset, event) in F.events.enumerated() {
            var label = event.kind.name
            switch event {
            case let .left(_, reason): label += " \(reason.name)"
            case let .joined(_, _, role), let .roleChanged(_, role): label += " \(role.name)"
            case let .settingChanged(change): label += " \(change.id.name)=\(change.value)"
            case let .recording(on): label += on ? " on" : " off"
            case let .presenterChanged(_, flag): label += flag ? " granted" : " revoked"
            case let .waitingDecided(_, flag): label += flag ? " admitted" : " denied"
            default: break
            }
            let actor: ParticipantIndex = offset.isMultiple(of: 3) ? .none : 1
            relay(label, .event(EventMessage(actor: actor, event: event)))
        }
        for code in ErrorCode.wireCodes {
            let retry: UInt32 = code == .rateLimited ? 30_000 : 0
            let fatal = ![.notAllowed, .unknownParticipant, .invalidCommand, .rateLimited].contains(code)
            let request: UInt16 = [.notAllowed, .unknownParticipant, .invalidCommand, .rateLimited].contains(code) ? 101 : 0
            relay(
                code.name,
                .error(
                    ErrorMessage(
                        code: code, requestID: request, isFatal: fatal, retryAfterMilliseconds: retry,
                        message: "\(code.meaning.prefix(1).uppercased())\(code.meaning.dropFirst()).")))
        }
        relay("non-ASCII text", .error(ErrorMessage(code: .roomLocked, isFatal: true, message: "Salle verrouillée – réessayez plus tard 🙂")))
        client("nonce", .ping(nonce: 0x0123_4567_89AB_CDEF))
        relay("nonce", .pong(nonce: 0x0123_4567_89AB_CDEF))
        relay(
            "same host",
            .mediaSession(MediaSessionMessage(sessionID: 0x0A0B_0C0D, hopKey: SecretKey(copying: F.pattern(32, start: 0x40, step: 3)), port: 7443, host: "")))
        relay(
            "named host",
            .mediaSession(
                MediaSessionMessage(
                    sessionID: 0xFFFF_FFFF, hopKey: SecretKey(copying: F.pattern(32, start: 0x90, step: 5)), port: 0xFFFF, host: "media.example")))
        relay("elsewhere", .redirect(RedirectMessage(reason: .elsewhere, origin: "wss://relay-2.example.org:443")))
        relay("draining", .redirect(RedirectMessage(reason: .draining, origin: "ws://[::1]:7001")))
        client("audio broadcast", .frame(try! FrameMessage(kind: .audio, sender: 0x0203, recipient: .everyone, payload: F.pattern(24, start: 0x90, step: 7))))
        client("keys addressed", .frame(try! FrameMessage(kind: .keys, sender: 0x0203, recipient: 1, payload: F.pattern(40, start: 0x10, step: 9))))
        client("chat addressed", .frame(try! FrameMessage(kind: .chat, sender: 0x0203, recipient: 0xFFFE, payload: F.pattern(16, start: 0x01, step: 1))))
        relay("screen broadcast", .frame(try! FrameMessage(kind: .screen, sender: 1, recipient: .everyone, payload: F.pattern(32, start: 0xF0, step: 5))))
        relay("control broadcast", .frame(try! FrameMessage(kind: .control, sender: 1, recipient: .everyone, payload: [0x42])))
        relay(
            "keys addressed, as forwarded", .frame(try! FrameMessage(kind: .keys, sender: 1, recipient: 0x0203, payload: F.pattern(40, start: 0x10, step: 9))))
        return all
    }

    static func document() -> VectorJSON {
        .object([
            (
                "description",
                .string(
                    """
                    Conclave control messages (protocol section 5), version 1. Each vector is one whole \
                    binary WebSocket message: `encoded` is its lowercase hex, preamble included; `direction` \
                    says which decoder reads it; `fields` gives its content in readable form: integers in \
                    decimal (the u64 PING/PONG nonce as a decimal string), byte strings in lowercase hex, \
                    room ids in URL-safe base64 without padding, enumerations by their snake_case names next \
                    to their numeric wire values. Generated by Tests/ConclaveProtocolTests/MessageVectorTests.swift \
                    (CONCLAVE_WRITE_VECTORS=1).
                    """)
            ),
            (
                "vectors",
                .array(
                    cases.map { name, message in
                        switch message {
                        case let .client(message):
                            .object([
                                ("name", .string(name)), ("direction", .string("client_to_relay")),
                                ("fields", fields(message)), ("encoded", .string(F.hex(message.encoded()))),
                            ])
                        case let .relay(message):
                            .object([
                                ("name", .string(name)), ("direction", .string("relay_to_client")),
                                ("fields", fields(message)), ("encoded", .string(F.hex(message.encoded()))),
                            ])
                        }
                    })
            ),
        ])
    }

    private static func int(_ value: some BinaryInteger) -> VectorJSON { .int(Int64(value)) }
    private static func hex(_ bytes: [UInt8]) -> VectorJSON { .string(F.hex(bytes)) }

    static func identity(_ identity: Identity) -> VectorJSON {
        .object([("ed25519_public", hex(identity.ed25519Public)), ("x25519_public", hex(identity.x25519Public))])
    }

    static func settings(_ s: RoomSettings) -> VectorJSON {
        .object([
            ("waiting_room", .bool(s.waitingRoom)), ("mute_on_entry", .bool(s.muteOnEntry)),
            ("self_unmute_allowed", .bool(s.selfUnmuteAllowed)), ("hosts_only_sharing", .bool(s.hostsOnlySharing)),
            ("locked", .bool(s.locked)), ("max_participants", int(s.maxParticipants)), ("max_waiting", int(s.maxWaiting)),
            ("recording_ack_timeout_s", int(s.recordingAcknowledgementTimeoutSeconds)),
        ])
    }

    static func frame(_ frame: FrameMessage) -> [(String, VectorJSON)] {
        [
            ("type", .string("FRAME")), ("kind", .string(frame.header.kind.name)), ("kind_value", int(frame.header.kind.rawValue)),
            ("sender", int(frame.header.sender.rawValue)), ("recipient", int(frame.header.recipient.rawValue)),
            ("payload", hex(frame.payload)),
        ]
    }

    static func fields(_ message: ClientMessage) -> VectorJSON {
        let type: (String, VectorJSON) = ("type", .string(message.type.name))
        switch message {
        case let .hello(m):
            return .object([type, ("min_version", int(m.minimumVersion)), ("max_version", int(m.maximumVersion))])
        case let .createRoom(m):
            return .object([
                type, ("room_id", .string(m.roomID.base64URL)), ("identity", identity(m.identity)), ("signature", hex(m.signature)),
                ("relay_auth", m.relayAuth.map(hex) ?? .null), ("settings", settings(m.settings)),
            ])
        case let .join(m):
            return .object([
                type, ("room_id", .string(m.roomID.base64URL)), ("identity", identity(m.identity)),
                ("signature", hex(m.signature)), ("relay_auth", m.relayAuth.map(hex) ?? .null), ("knock", hex(m.knock)),
            ])
        case let .command(m):
            var pairs: [(String, VectorJSON)] = [
                type, ("request_id", int(m.requestID)), ("op", .string(m.action.op.name)),
                ("op_value", int(m.action.op.rawValue)), ("target", int(m.action.target)), ("value", int(m.action.value)),
            ]
            if case let .setSetting(change) = m.action { pairs.append(("setting", .string(change.id.name))) }
            return .object(pairs)
        case let .ping(nonce):
            return .object([type, ("nonce", .string(String(nonce)))])
        case let .frame(f):
            return .object(frame(f))
        }
    }

    static func fields(_ message: RelayMessage) -> VectorJSON {
        let type: (String, VectorJSON) = ("type", .string(message.type.name))
        switch message {
        case let .welcome(m):
            return .object([
                type, ("version", int(m.version)), ("challenge", hex(m.challenge)),
                ("max_message", int(m.maximumMessageLength)), ("max_frame_per_second", int(m.maximumFramesPerSecond)),
            ])
        case let .roomCreated(m):
            return .object([type, ("room_id", .string(m.roomID.base64URL)), ("index", int(m.index.rawValue)), ("settings", settings(m.settings))])
        case let .waiting(m):
            return .object([type, ("room_id", .string(m.roomID.base64URL)), ("index", int(m.index.rawValue)), ("position", int(m.position))])
        case let .admitted(m):
            let roster: [VectorJSON] = m.roster.map { entry in
                var state: [VectorJSON] = []
                if entry.state.contains(.muted) { state.append(.string("muted")) }
                if entry.state.contains(.presenter) { state.append(.string("presenter")) }
                if entry.state.contains(.handRaised) { state.append(.string("hand_raised")) }
                if entry.state.contains(.recordingAcknowledged) { state.append(.string("recording_acknowledged")) }
                return .object([
                    ("index", int(entry.index.rawValue)), ("identity", identity(entry.identity)),
                    ("role", .string(entry.role.name)), ("state", .array(state)),
                ])
            }
            return .object([
                type, ("index", int(m.index.rawValue)), ("role", .string(m.role.name)), ("settings", settings(m.settings)),
                ("recording", .bool(m.recording)), ("roster", .array(roster)),
            ])
        case let .knock(m):
            return .object([type, ("index", int(m.index.rawValue)), ("identity", identity(m.identity)), ("knock", hex(m.knock))])
        case let .event(m):
            var pairs: [(String, VectorJSON)] = [
                type, ("event", .string(m.event.kind.name)), ("event_value", int(m.event.kind.rawValue)),
                ("subject", int(m.event.subject)), ("actor", int(m.actor.rawValue)), ("value", int(m.event.value)),
                ("identity", m.event.identity.map(identity) ?? .null),
            ]
            switch m.event {
            case let .settingChanged(change): pairs.append(("setting", .string(change.id.name)))
            case let .left(_, reason): pairs.append(("reason", .string(reason.name)))
            case let .joined(_, _, role), let .roleChanged(_, role): pairs.append(("role", .string(role.name)))
            default: break
            }
            return .object(pairs)
        case let .commandOK(requestID):
            return .object([type, ("request_id", int(requestID))])
        case let .error(m):
            return .object([
                type, ("code", .string(m.code.name)), ("code_value", int(m.code.rawValue)), ("request_id", int(m.requestID)),
                ("fatal", .bool(m.isFatal)), ("retry_after_ms", int(m.retryAfterMilliseconds)), ("message", .string(m.message)),
            ])
        case let .pong(nonce):
            return .object([type, ("nonce", .string(String(nonce)))])
        case let .frame(f):
            return .object(frame(f))
        case let .mediaSession(m):
            return .object([
                type, ("session_id", int(m.sessionID)), ("hop_key", .string(m.hopKey.unsafeHexExport())),
                ("port", int(m.port)), ("host", .string(m.host)),
            ])
        case let .redirect(m):
            return .object([
                type, ("reason", .string(m.reason == .elsewhere ? "elsewhere" : "draining")), ("reason_value", int(m.reason.rawValue)),
                ("origin", .string(m.origin)),
            ])
        }
    }
}

// MARK: - Checking (fields → message), written independently of the codec's decoders

enum VectorBuilder {
    struct BadField: Error, CustomStringConvertible {
        let description: String
    }

    static func int<T: FixedWidthInteger>(_ json: VectorJSON, _ key: String, as _: T.Type = T.self) throws -> T {
        guard case let .int(value)? = json[key], let result = T(exactly: value) else { throw BadField(description: "\(key): not an integer in range") }
        return result
    }

    static func bool(_ json: VectorJSON, _ key: String) throws -> Bool {
        guard case let .bool(value)? = json[key] else { throw BadField(description: "\(key): not a boolean") }
        return value
    }

    static func string(_ json: VectorJSON, _ key: String) throws -> String {
        guard let value = json[key]?.string else { throw BadField(description: "\(key): not a string") }
        return value
    }

    static func bytes(_ json: VectorJSON, _ key: String) throws -> [UInt8] { MessageFixtures.bytes(hex: try string(json, key)) }

    static func optionalBytes(_ json: VectorJSON, _ key: String) throws -> [UInt8]? {
        guard let value = json[key] else { throw BadField(description: "\(key): missing") }
        return value.isNull ? nil : try bytes(json, key)
    }

    static func index(_ json: VectorJSON, _ key: String) throws -> ParticipantIndex { ParticipantIndex(try int(json, key, as: UInt16.self)) }

    static func identity(_ json: VectorJSON?) throws -> Identity {
        guard let json, let identity = Identity(ed25519Public: try bytes(json, "ed25519_public"), x25519Public: try bytes(json, "x25519_public")) else {
            throw BadField(description: "identity")
        }
        return identity
    }

    static func roomID(_ json: VectorJSON) throws -> RoomID { try RoomID(base64URL: try string(json, "room_id")) }

    static func role(_ name: String) throws -> Role {
        switch name {
        case "participant": .participant
        case "co_host": .cohost
        case "host": .host
        default: throw BadField(description: "role \(name)")
        }
    }

    static func settings(_ json: VectorJSON?) throws -> RoomSettings {
        guard let json else { throw BadField(description: "settings") }
        return RoomSettings(
            waitingRoom: try bool(json, "waiting_room"), muteOnEntry: try bool(json, "mute_on_entry"),
            selfUnmuteAllowed: try bool(json, "self_unmute_allowed"), hostsOnlySharing: try bool(json, "hosts_only_sharing"),
            locked: try bool(json, "locked"), maxParticipants: try int(json, "max_participants"),
            maxWaiting: try int(json, "max_waiting"), recordingAcknowledgementTimeoutSeconds: try int(json, "recording_ack_timeout_s")
        )
    }

    /// Setting (id, value) → change, from section 5.5's list.
    static func setting(id: UInt16, value: UInt32, name: String?) throws -> SettingChange {
        let names = [
            1: "waiting_room", 2: "mute_on_entry", 3: "self_unmute_allowed", 4: "hosts_only_sharing",
            5: "max_participants", 6: "max_waiting", 7: "recording_ack_timeout_s",
        ]
        guard names[Int(id)] == name else { throw BadField(description: "setting name \(name ?? "nil") for id \(id)") }
        switch id {
        case 1: return .waitingRoom(value == 1)
        case 2: return .muteOnEntry(value == 1)
        case 3: return .selfUnmuteAllowed(value == 1)
        case 4: return .hostsOnlySharing(value == 1)
        case 5: return .maxParticipants(UInt16(value))
        case 6: return .maxWaiting(UInt16(value))
        case 7: return .recordingAcknowledgementTimeout(seconds: UInt16(value))
        default: throw BadField(description: "setting id \(id)")
        }
    }

    static func frame(_ json: VectorJSON) throws -> FrameMessage {
        let kinds: [String: (FrameKind, UInt8)] = [
            "audio": (.audio, 1), "screen": (.screen, 2), "chat": (.chat, 3), "control": (.control, 4), "keys": (.keys, 5),
        ]
        guard let (kind, raw) = kinds[try string(json, "kind")], raw == (try int(json, "kind_value", as: UInt8.self)) else {
            throw BadField(description: "kind")
        }
        return try FrameMessage(kind: kind, sender: try index(json, "sender"), recipient: try index(json, "recipient"), payload: try bytes(json, "payload"))
    }

    static func clientMessage(_ json: VectorJSON) throws -> ClientMessage {
        switch try string(json, "type") {
        case "HELLO":
            return .hello(HelloMessage(minimumVersion: try int(json, "min_version"), maximumVersion: try int(json, "max_version")))
        case "CREATE_ROOM":
            return .createRoom(
                CreateRoomMessage(
                    roomID: try roomID(json), identity: try identity(json["identity"]), signature: try bytes(json, "signature"),
                    relayAuth: try optionalBytes(json, "relay_auth"), settings: try settings(json["settings"])))
        case "JOIN":
            return .join(
                JoinMessage(
                    roomID: try roomID(json), identity: try identity(json["identity"]), signature: try bytes(json, "signature"),
                    relayAuth: try optionalBytes(json, "relay_auth"), knock: try bytes(json, "knock")))
        case "COMMAND":
            let op = try string(json, "op"), opValue: UInt8 = try int(json, "op_value")
            let target: UInt16 = try int(json, "target"), value: UInt32 = try int(json, "value")
            let ops = [
                "admit", "deny", "lock", "unlock", "mute", "mute_all", "unmute_self", "ask_unmute", "raise_hand", "lower_hand",
                "remove", "promote_cohost", "demote_cohost", "transfer_host", "grant_share", "revoke_share", "set_recording",
                "ack_recording", "set_setting", "end_meeting", "leave", "mute_self",
            ]
            guard ops.firstIndex(of: op).map({ $0 + 1 }) == Int(opValue) else { throw BadField(description: "op \(op)=\(opValue)") }
            let t = ParticipantIndex(target)
            let action: CommandAction =
                switch op {
                case "admit": .admit(t)
                case "deny": .deny(t)
                case "lock": .lock
                case "unlock": .unlock
                case "mute": .mute(t)
                case "mute_all": .muteAll
                case "unmute_self": .unmuteSelf
                case "ask_unmute": .askUnmute(t)
                case "raise_hand": .raiseHand
                case "lower_hand": .lowerHand(t)
                case "remove": .remove(t)
                case "promote_cohost": .promoteCohost(t)
                case "demote_cohost": .demoteCohost(t)
                case "transfer_host": .transferHost(t)
                case "grant_share": .grantShare(t)
                case "revoke_share": .revokeShare(t)
                case "set_recording": .setRecording(on: value == 1)
                case "ack_recording": .acknowledgeRecording
                case "set_setting": .setSetting(try setting(id: target, value: value, name: json["setting"]?.string))
                case "end_meeting": .endMeeting
                case "leave": .leave
                default: .muteSelf
                }
            return .command(CommandMessage(requestID: try int(json, "request_id"), action: action))
        case "PING":
            guard let nonce = UInt64(try string(json, "nonce")) else { throw BadField(description: "nonce") }
            return .ping(nonce: nonce)
        case "FRAME":
            return .frame(try frame(json))
        case let other:
            throw BadField(description: "client type \(other)")
        }
    }

    static func relayMessage(_ json: VectorJSON) throws -> RelayMessage {
        switch try string(json, "type") {
        case "WELCOME":
            return .welcome(
                WelcomeMessage(
                    version: try int(json, "version"), challenge: try bytes(json, "challenge"),
                    maximumMessageLength: try int(json, "max_message"), maximumFramesPerSecond: try int(json, "max_frame_per_second")))
        case "ROOM_CREATED":
            return .roomCreated(RoomCreatedMessage(roomID: try roomID(json), index: try index(json, "index"), settings: try settings(json["settings"])))
        case "WAITING":
            return .waiting(WaitingMessage(roomID: try roomID(json), index: try index(json, "index"), position: try int(json, "position")))
        case "ADMITTED":
            guard let rosterJSON = json["roster"]?.array else { throw BadField(description: "roster") }
            let roster = try rosterJSON.map { entry -> RosterEntry in
                var state = ParticipantState()
                for flag in entry["state"]?.array ?? [] {
                    switch flag.string {
                    case "muted": state.insert(.muted)
                    case "presenter": state.insert(.presenter)
                    case "hand_raised": state.insert(.handRaised)
                    case "recording_acknowledged": state.insert(.recordingAcknowledged)
                    default: throw BadField(description: "state flag")
                    }
                }
                return RosterEntry(
                    index: try index(entry, "index"), identity: try identity(entry["identity"]), role: try role(try string(entry, "role")), state: state)
            }
            return .admitted(
                AdmittedMessage(
                    index: try index(json, "index"), role: try role(try string(json, "role")), settings: try settings(json["settings"]),
                    recording: try bool(json, "recording"), roster: roster))
        case "KNOCK":
            return .knock(KnockMessage(index: try index(json, "index"), identity: try identity(json["identity"]), knock: try bytes(json, "knock")))
        case "EVENT":
            let kind = try string(json, "event"), kindValue: UInt8 = try int(json, "event_value")
            let kinds = [
                "joined", "left", "removed", "muted", "unmuted", "role_changed", "presenter_changed", "locked", "unlocked",
                "recording", "hand_raised", "hand_lowered", "unmute_requested", "setting_changed", "recording_unacknowledged",
                "waiting_left", "waiting_decided", "recording_acknowledged",
            ]
            guard kinds.firstIndex(of: kind).map({ $0 + 1 }) == Int(kindValue) else { throw BadField(description: "event \(kind)=\(kindValue)") }
            let subject = try index(json, "subject"), value: UInt32 = try int(json, "value")
            func roleValue() throws -> Role {
                let role = try role(try string(json, "role"))
                guard UInt32(role.rawValue) == value else { throw BadField(description: "role value") }
                return role
            }
            let event: RoomEvent =
                switch kind {
                case "joined": .joined(subject, identity: try identity(json["identity"]), role: try roleValue())
                case "left":
                    .left(
                        subject,
                        reason: try {
                            let reasons: [String: (LeaveReason, UInt32)] = [
                                "left": (.left, 1), "disconnected": (.disconnected, 2), "timed_out": (.timedOut, 3), "too_slow": (.tooSlow, 4),
                            ]
                            guard let (reason, raw) = reasons[try string(json, "reason")], raw == value else { throw BadField(description: "reason") }
                            return reason
                        }())
                case "removed": .removed(subject)
                case "muted": .muted(subject)
                case "unmuted": .unmuted(subject)
                case "role_changed": .roleChanged(subject, role: try roleValue())
                case "presenter_changed": .presenterChanged(subject, granted: value == 1)
                case "locked": .locked
                case "unlocked": .unlocked
                case "recording": .recording(on: value == 1)
                case "hand_raised": .handRaised(subject)
                case "hand_lowered": .handLowered(subject)
                case "unmute_requested": .unmuteRequested(subject)
                case "setting_changed": .settingChanged(try setting(id: subject.rawValue, value: value, name: json["setting"]?.string))
                case "recording_unacknowledged": .recordingUnacknowledged(subject, seconds: value)
                case "waiting_left": .waitingLeft(subject)
                case "waiting_decided": .waitingDecided(subject, admitted: value == 1)
                default: .recordingAcknowledged(subject)
                }
            guard (json["identity"]?.isNull ?? false) == (kind != "joined") else { throw BadField(description: "identity presence") }
            return .event(EventMessage(actor: try index(json, "actor"), event: event))
        case "COMMAND_OK":
            return .commandOK(requestID: try int(json, "request_id"))
        case "ERROR":
            let name = try string(json, "code"), code: UInt16 = try int(json, "code_value")
            guard let errorCode = ErrorCode(rawValue: code), errorCode.name == name else { throw BadField(description: "code \(name)=\(code)") }
            return .error(
                ErrorMessage(
                    code: errorCode, requestID: try int(json, "request_id"), isFatal: try bool(json, "fatal"),
                    retryAfterMilliseconds: try int(json, "retry_after_ms"), message: try string(json, "message")))
        case "PONG":
            guard let nonce = UInt64(try string(json, "nonce")) else { throw BadField(description: "nonce") }
            return .pong(nonce: nonce)
        case "FRAME":
            return .frame(try frame(json))
        case "MEDIA_SESSION":
            return .mediaSession(
                MediaSessionMessage(
                    sessionID: try int(json, "session_id"), hopKey: SecretKey(copying: try bytes(json, "hop_key")),
                    port: try int(json, "port"), host: try string(json, "host")))
        case "REDIRECT":
            let name = try string(json, "reason"), value: UInt8 = try int(json, "reason_value")
            guard let reason = RedirectMessage.Reason(rawValue: value), (reason == .elsewhere ? "elsewhere" : "draining") == name else {
                throw BadField(description: "reason \(name)=\(value)")
            }
            return .redirect(RedirectMessage(reason: reason, origin: try string(json, "origin")))
        case let other:
            throw BadField(description: "relay type \(other)")
        }
    }
}
